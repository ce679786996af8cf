"""One-line errors: the library names its parameters, the CLI shows its flags."""
from __future__ import annotations

import pickle

import pytest

from vistoolbox.cli import flag_names, main
from vistoolbox.errors import VisUsageError


def test_messages_name_parameters_and_front_ends_rename_them():
    err = VisUsageError("`batch_size` must be at least 1, got 0 (see `views`)")
    assert str(err) == "batch_size must be at least 1, got 0 (see views)"
    assert err.params == ("batch_size", "views")
    assert err.renamed({"batch_size": "--batch-size"}) == "--batch-size must be at least 1, got 0 (see views)"
    again = pickle.loads(pickle.dumps(err))  # Ray and Dash's job processes send errors back pickled
    assert str(again) == str(err) and again.params == err.params


def test_cli_flags_of_a_command_cover_renamed_destinations():
    names = flag_names(["mine", "--dataset", "x"])
    assert names["k"] == "--k" and names["batch_size"] == "--batch-size" and names["views"] == "--with"
    assert names["layers"] == "--layers" and names["checkpoint_every"] == "--checkpoint-every"
    assert flag_names(["--debug"]) == {}


def test_library_error_names_the_parameter(alexnet_random, tmp_path):
    from vistoolbox import mine

    (tmp_path / "data").mkdir()
    with pytest.raises(VisUsageError) as err:
        mine(alexnet_random, tmp_path / "data", tmp_path / "run", k=0)
    assert str(err.value) == "k must be at least 1, got 0"


def test_cli_error_names_the_flag(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit) as code:
        main(["mine", "--model", "alexnet", "--weights", "random", "--dataset", str(tmp_path / "data"),
              "--out", str(tmp_path / "run"), "--checkpoint-every", "0"])
    err = capsys.readouterr().err.strip()
    assert code.value.code == 2 and err.count("\n") == 0
    assert err.startswith("vis: error: ") and "--checkpoint-every must be at least 1, got 0" in err
