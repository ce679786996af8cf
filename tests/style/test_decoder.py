"""Universal-transfer decoders: shapes, the file and its encoder check, training lowers the
reconstruction loss, and a run killed with SIGKILL resumes to the same bytes."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pytest
import torch

from vistoolbox import VisUsageError, load_model
from vistoolbox.style.decoder import Decoder, DecoderConfig, Encoder, check_encoder, load_decoder
from vistoolbox.style.train_decoder import train_decoder

from tests.style.test_stylizer import _images, run_cli

TINY = dict(size=32, batch_size=2, width=8, quiet=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoder")
    _images(root / "photos", [(40, 56), (64, 48), (50, 50), (70, 40), (45, 45)])
    _images(root / "styles", [(48, 48), (40, 60), (52, 44)], seed=3)
    return root / "photos", root / "styles"


def test_decoder_output_has_the_image_size_for_any_stride(alexnet_random):
    encoder = Encoder(alexnet_random, ["relu1", "relu2"])
    try:
        for layer, channels in (("relu1", 64), ("relu2", 192)):
            c, ups = encoder.shape(layer)
            assert c == channels and ups == {"relu1": 2, "relu2": 3}[layer]  # strides ≈ 4 and 8
            decoder = Decoder(DecoderConfig(c, ups, width=8))
            x = torch.rand(2, 3, 37, 45)
            assert decoder(encoder(x)[layer], x.shape[-2:]).shape == (2, 3, 37, 45)
    finally:
        encoder.close()
    with pytest.raises(VisUsageError, match="ups"):
        DecoderConfig(64, 99)


def _reconstruction(model, decoder, layer, images):
    """mean((D(φ(x)) − x)²), with φ taken by a hook written here (not the library's extractor)."""
    out = {}

    def grab(module, inputs, output):
        out["f"] = output
        raise StopIteration  # the rest of the network is not needed (nor fits 32 px)

    handle = model.module.get_submodule(model.resolve(layer)).register_forward_hook(grab)
    try:
        with torch.no_grad():
            with pytest.raises(StopIteration):
                model.module(model.preprocessing.normalize(images))
            return float((decoder(out["f"], images.shape[-2:]) - images).pow(2).mean())
    finally:
        handle.remove()


def test_wct_training_lowers_the_reconstruction_loss_and_file_checks_its_encoder(folders, alexnet_random, tmp_path):
    from vistoolbox.style.train_stylizer import training_batch, list_images

    photos, _ = folders
    trained = train_decoder(alexnet_random, photos, layers=["relu1"], steps=25, lr=3e-3,
                            out=tmp_path / "d.pt", checkpoint_every=10, **TINY)
    torch.manual_seed(0)  # the same seed → the untrained start
    start = Decoder(trained.decoders["relu1"].config)
    held = training_batch(list_images(photos), 1000, 4, 32, 7)  # crops no step drew
    before = _reconstruction(alexnet_random, start, "relu1", held)
    after = _reconstruction(alexnet_random, trained.decoders["relu1"], "relu1", held)
    assert after < 0.6 * before, (before, after)
    raw = torch.load(tmp_path / "d.pt", weights_only=True)
    assert raw["kind"] == "wct" and raw["encoder"]["model"] == "alexnet" and raw["encoder"]["layers"] == ["relu1"]
    assert raw["training"]["steps"] == 25 and len(raw["history"]["total"]) == 25
    loaded = load_decoder(tmp_path / "d.pt")
    assert loaded.sha256 == hashlib.sha256((tmp_path / "d.pt").read_bytes()).hexdigest()
    check_encoder(loaded, alexnet_random, ["relu1"])
    with pytest.raises(VisUsageError, match="no layer 'relu2'"):
        check_encoder(loaded, alexnet_random, ["relu2"])
    with pytest.raises(VisUsageError, match="another encoder"):
        check_encoder(loaded, load_model("alexnet", "random", seed=1))
    with pytest.raises(VisUsageError, match="another encoder"):
        check_encoder(loaded, load_model("resnet18", "random", seed=0))
    with pytest.raises(VisUsageError, match="not a vistoolbox decoder"):
        torch.save({"format": "vistoolbox.stylizer"}, tmp_path / "s.pt")
        load_decoder(tmp_path / "s.pt")


def test_adain_training_lowers_its_loss(folders, alexnet_random):
    photos, styles = folders
    trained = train_decoder(alexnet_random, photos, styles, layers=["relu2"], style_layers=["relu1", "relu2"],
                            steps=20, lr=3e-3, **TINY)
    total = trained.history["total"]
    assert trained.kind == "adain" and sum(total[-4:]) < 0.8 * sum(total[:4])
    for i in range(20):
        assert total[i] == pytest.approx(trained.history["content"][i] + trained.history["style"][i], rel=1e-5)
    with pytest.raises(VisUsageError, match="one layer"):
        train_decoder(alexnet_random, photos, styles, layers=["relu1", "relu2"], steps=1, **TINY)


KILLED_RUN = """
import os, signal, sys
import vistoolbox.style.train_stylizer as ts
import vistoolbox.style.train_decoder as td
real = ts.training_batch
def batch(files, step, *args):
    if step == 5:                      # after the checkpoint at step 4: no cleanup, no finally
        os.kill(os.getpid(), signal.SIGKILL)
    return real(files, step, *args)
td.training_batch = batch
from vistoolbox.cli import main
main(sys.argv[1:])
"""


def test_killed_run_resumes_to_the_same_bytes(folders, tmp_path, capsys):
    photos, _ = folders
    args = ["train-decoder", "--model", "alexnet", "--weights", "random", "--content", str(photos),
            "--layers", "relu1,relu2", "--size", "32", "--batch-size", "2", "--width", "8", "--steps", "7",
            "--checkpoint-every", "2", "--quiet"]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "straight.pt"))
    assert code == 0, err
    assert "wct decoder for relu1,relu2, 7 steps" in out
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), *args, "--out",
                             str(tmp_path / "k.pt")], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert load_decoder(tmp_path / "k.pt").steps == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pt", "straight.pt"]  # no temp file left
    code, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "k.pt"))
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, *args, "--resume", "--out", str(tmp_path / "k.pt"))
    assert code == 0, err
    assert (tmp_path / "k.pt").read_bytes() == (tmp_path / "straight.pt").read_bytes()
    code, _, err = run_cli(capsys, *[a if a != "32" else "40" for a in args], "--resume", "--out",
                           str(tmp_path / "k.pt"))
    assert code == 2 and "cannot resume" in err and len(err.strip().splitlines()) == 1
