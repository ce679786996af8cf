"""The Transfer tab's fast mode: stylizers found in a run's ``stylizers/`` and the ``--stylizers``
folder, applied through the real Dash callbacks (and once in a real browser)."""
from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard_browser import needs_browser, screenshot, write_dataset
from test_dashboard_browser import duo, run_dir, set_inputs, wait_images  # noqa: F401 - shared fixtures/helpers
from vistoolbox import load_stylizer, load_tensor, stylize
from vistoolbox.errors import VisUsageError

ALEX_LAYERS = ["relu1", "relu2"]


class Marker:
    """Unpickling this writes a file: proof that a stylizer file was (wrongly) unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path(self.path).write_text, ("unpickled!",))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, alexnet_random) -> dict[str, Path]:
    """Two tiny stylizers (seeds 0 and 1; 3 steps on 32 px crops against random AlexNet)."""
    from vistoolbox import train_stylizer

    root = tmp_path_factory.mktemp("fast")
    dataset = write_dataset(root / "photos", count=4, longest=48)
    style = root / "coffee.png"
    shutil.copy(dataset / "coffee.png", style)
    out = {"texture": root / "texture.pt"}
    train_stylizer(alexnet_random, style, out=out["texture"], mode="texture", size=32, steps=2, batch_size=1,
                   style_layers=ALEX_LAYERS, width=8, res_blocks=1, quiet=True)
    for seed in (0, 1):
        path = root / f"stylizer_{seed}.pt"
        train_stylizer(alexnet_random, style, dataset, out=path, size=32, steps=3, batch_size=2,
                       style_layers=ALEX_LAYERS, content_layer="relu2", width=8, res_blocks=1, seed=seed, quiet=True)
        out[seed] = path
    return out


@pytest.fixture(scope="module")
def fast_app(tmp_path_factory, trained, alexnet_random):
    """A dashboard on a tiny AlexNet run whose stylizers/ holds seed 1, with a stylizers folder holding
    seed 0, a corrupt file and a pickle that must never be unpickled."""
    from vistoolbox.dashboard import create_app
    from vistoolbox import mine

    root = tmp_path_factory.mktemp("fast-app")
    dataset = write_dataset(root / "images", count=4, longest=64)
    run = mine(alexnet_random, dataset, root / "run", layers=["conv1"], resize=72, crop=64, quiet=True)
    (run / "stylizers").mkdir()
    shutil.copy(trained[1], run / "stylizers" / "run_style.pt")
    folder = root / "stylizers"
    folder.mkdir()
    shutil.copy(trained[0], folder / "folder_style.pt")
    shutil.copy(trained["texture"], folder / "texture.pt")
    (folder / "broken.pt").write_bytes(b"not a torch file at all")
    marker = root / "unpickled.txt"
    (folder / "evil.pt").write_bytes(pickle.dumps(Marker(str(marker))))
    (folder / "notes.txt").write_text("ignored: not a .pt file")
    app = create_app([run], "alexnet", "random", cache_dir=root / "cache", stylizers_dir=folder)
    return app, {"run": run / "stylizers" / "run_style.pt", "folder": folder / "folder_style.pt",
                 "marker": marker}


def call(app, outputs: list[tuple[str, str]], inputs: dict[str, object], changed: str, states=None):  # noqa: ANN001, ANN201
    """POST one callback to the app's real ``/_dash-update-component`` endpoint; → (status, response)."""
    out_ids = [{"id": i, "property": p} for i, p in outputs]
    output = out_ids[0]["id"] + "." + out_ids[0]["property"] if len(outputs) == 1 else \
        ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
    body = {"output": output, "outputs": out_ids if len(outputs) > 1 else out_ids[0],
            "inputs": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v} for k, v in inputs.items()],
            "changedPropIds": [changed], "state": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
                                                   for k, v in (states or {}).items()]}
    response = app.server.test_client().post("/_dash-update-component", json=body)
    return response.status_code, (response.get_json() if response.status_code == 200 else None)


SWITCH = [("tr-style-col", "style"), ("tr-options-col", "style"), ("tr-job-panel", "style"),
          ("fast-options", "style"), ("fast-panel", "style"), ("stylizer-select", "options"),
          ("stylizer-message", "children"), ("fast-controls", "style"), ("stylizer-select", "value")]
FAST = [("fast-result", "src"), ("fast-status", "children")]


def switch_to(app, mode: str, value: str | None = None) -> dict:  # noqa: ANN001
    status, data = call(app, SWITCH, {"transfer-mode.value": mode}, "transfer-mode.value",
                        states={"stylizer-select.value": value})
    assert status == 200
    return data["response"]


def run_fast(app, content, key, strength, size, mode="fast"):  # noqa: ANN001, ANN201
    return call(app, FAST, {"transfer-mode.value": mode, "tr-content-images.data": content,
                            "stylizer-select.value": key, "stylizer-strength.value": strength,
                            "stylizer-size.value": size}, "stylizer-select.value")


def content_store(app) -> dict:  # noqa: ANN001
    from vistoolbox.dashboard.jobs import resolve_pick

    return {"keys": [resolve_pick(app.vis_context, "sample:chelsea")]}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_dropdown_lists_run_and_folder_stylizers_and_skips_bad_files(fast_app):
    app, paths = fast_app
    response = switch_to(app, "fast")
    assert response["fast-options"]["style"] == {} and response["tr-job-panel"]["style"] == {"display": "none"}
    options = response["stylizer-select"]["options"]
    labels = [o["label"] for o in options]
    assert labels == ["coffee.png (run 0: run_style.pt)", "coffee.png (folder: folder_style.pt)",
                      "coffee.png (folder: texture.pt) — texture mode, not for content"]
    assert [o["disabled"] for o in options] == [False, False, True]
    message = json.dumps(response["stylizer-message"]["children"])
    assert "skipped broken.pt (folder)" in message and "skipped evil.pt (folder)" in message
    assert "notes.txt" not in message
    assert not paths["marker"].exists()                 # the pickle was refused, never unpickled
    assert str(paths["run"].parent) not in json.dumps(options)   # no server path reaches the browser
    back = switch_to(app, "optimise")
    assert back["fast-options"]["style"] == {"display": "none"} and back["tr-job-panel"]["style"] == {}


def test_stylizer_info_shows_its_record_and_the_other_loss_network(fast_app, trained):
    from vistoolbox.dashboard import stylizers

    app, paths = fast_app
    found = {f.path: f for f in stylizers.find_stylizers(app.vis_context)[0]}
    key = found[paths["folder"]].key
    status, data = call(app, [("stylizer-info", "children")], {"stylizer-select.value": key}, "stylizer-select.value")
    text = data["response"]["stylizer-info"]["children"]
    sha = load_stylizer(trained[0]).style["sha256"]
    assert f"sha256 {sha[:12]}" in text and "3 steps at 32 px" in text and "alexnet/random" in text
    assert "not the dashboard's" not in text        # same loss network as this dashboard's model
    other = stylizers.describe(type(app.vis_context)(runs=[], model_name="vgg16", weights="hed"), found[paths["folder"]])
    assert "not the dashboard's vgg16/hed" in other


@pytest.mark.parametrize("which, strength, size", [("folder", 0.6, 64), ("run", 1.0, 48)])
def test_fast_mode_equals_stylize_of_the_loaded_file(fast_app, which, strength, size):
    from vistoolbox.dashboard import stylizers
    from vistoolbox.dashboard.uploads import cached_path

    app, paths = fast_app
    ctx = app.vis_context
    key = next(f.key for f in stylizers.find_stylizers(ctx)[0] if f.path == paths[which])
    content = content_store(app)
    status, data = run_fast(app, content, key, strength, size)
    assert status == 200, data
    response = data["response"]
    assert response["fast-status"]["children"].startswith("done in ") and " ms (" in response["fast-status"]["children"]
    src = response["fast-result"]["src"]
    image = Image.open(io.BytesIO(app.server.test_client().get(src).data)).convert("RGB")

    source = cached_path(ctx, content["keys"][0])
    reference = stylize(load_stylizer(paths[which]), load_tensor(source, size=size), strength=strength)
    tensor, record = stylizers.fast_stylize(ctx, source, key, strength, size)
    assert torch.equal(tensor, reference)                          # bit for bit
    expected = (reference[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    assert np.abs(np.asarray(image).astype(int) - expected.astype(int)).max() <= 1   # PNG of the same tensor
    assert max(image.size) == size and record["strength"] == strength
    big, _ = stylizers.fast_stylize(ctx, source, key, strength, 2000)      # never scaled up
    assert big.shape[-2:] == load_tensor(source).shape[-2:]

    status, data = call(app, [("fast-download", "data")], {"fast-download-btn.n_clicks": 1}, "fast-download-btn.n_clicks",
                        states={"fast-result.src": src})
    sent = data["response"]["fast-download"]["data"]
    assert sent["filename"].startswith("stylized_") and base64.b64decode(sent["content"]) == \
        app.server.test_client().get(src).data


def test_two_stylizers_give_different_results(fast_app):
    from vistoolbox.dashboard import stylizers

    app, paths = fast_app
    ctx = app.vis_context
    source = [f for f in stylizers.find_stylizers(ctx)[0] if f.stylizer.mode == "image"]
    from vistoolbox.dashboard.uploads import cached_path

    image = cached_path(ctx, content_store(app)["keys"][0])
    a, b = (stylizers.fast_stylize(ctx, image, f.key, 1.0, 40)[0] for f in source)
    assert not torch.equal(a, b)


def test_fast_mode_messages_instead_of_crashes(fast_app, tmp_path):
    app, paths = fast_app
    status, data = run_fast(app, content_store(app), "0" * 24, 1.0, 64)
    assert "no longer in the run or stylizers folder" in data["response"]["fast-status"]["children"]
    key = next(f.key for f in stylizers_of(app) if f.stylizer.mode == "image")
    status, data = run_fast(app, None, key, 1.0, 64)
    assert data["response"]["fast-status"]["children"] == "⚠ choose a content image first"
    status, data = run_fast(app, content_store(app), None, 1.0, 64)       # no stylizer chosen: no warning
    assert data["response"]["fast-status"]["children"] == "" and data["response"]["fast-result"]["src"] is None
    status, _ = run_fast(app, content_store(app), None, 1.0, 64, mode="optimise")
    assert status == 204                                            # optimise mode: fast does nothing
    from vistoolbox.dashboard import stylizers

    key = next(f.key for f in stylizers.find_stylizers(app.vis_context)[0])
    status, data = run_fast(app, content_store(app), key, 1.0, 99999)
    assert "size must be between 16 and" in data["response"]["fast-status"]["children"]
    texture = next(f.key for f in stylizers.find_stylizers(app.vis_context)[0] if f.stylizer.mode == "texture")
    status, data = run_fast(app, content_store(app), texture, 1.0, 64)
    assert "trained in texture mode" in data["response"]["fast-status"]["children"]
    from vistoolbox.dashboard import create_app

    with pytest.raises(VisUsageError, match="is not a folder"):
        create_app([], "alexnet", "random", cache_dir=tmp_path, stylizers_dir=tmp_path / "missing")


def stylizers_of(app):  # noqa: ANN001, ANN201
    from vistoolbox.dashboard import stylizers

    return stylizers.find_stylizers(app.vis_context)[0]


def test_without_a_stylizer_fast_mode_is_one_empty_state(tmp_path, alexnet_random, trained):
    """No stylizer anywhere: one calm block that says where stylizers are looked for and the command
    that trains one; no dropdown, no result panel, no warning. A texture-mode file alone is no better."""
    from vistoolbox.dashboard import create_app
    from vistoolbox.dashboard.transfer import TRAIN_COMMAND

    folder = tmp_path / "stylizers"
    folder.mkdir()
    app = create_app(None, "alexnet", "random", cache_dir=tmp_path / "cache", stylizers_dir=folder)
    app.vis_context._model = alexnet_random
    for texture_only in (False, True):
        if texture_only:
            shutil.copy(trained["texture"], folder / "texture.pt")
        response = switch_to(app, "fast")
        text = json.dumps(response["stylizer-message"]["children"])
        assert TRAIN_COMMAND in text and str(folder) in text and "⚠" not in text
        assert ("only texture-mode ones" in text) == texture_only
        assert response["fast-controls"]["style"] == {"display": "none"}
        assert response["fast-panel"]["style"] == {"display": "none"} and response["fast-options"]["style"] == {}
        assert "stylizer-select" not in response or response["stylizer-select"].get("value") is None
    status, data = call(app, [("stylizer-info", "children")], {"stylizer-select.value": None}, "stylizer-select.value")
    assert data["response"]["stylizer-info"]["children"] == ""
    shutil.copy(trained[0], folder / "mine.pt")                    # one appears: switching again shows it
    response = switch_to(app, "fast")
    assert response["fast-controls"]["style"] == {} and response["fast-panel"]["style"] == {}
    assert response["stylizer-select"]["value"] == next(f.key for f in stylizers_of(app) if f.path.name == "mine.pt")
    assert "stylizer-empty" not in json.dumps(response["stylizer-message"]["children"])


@pytest.mark.browser
@needs_browser
@pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")
def test_fast_mode_in_the_browser(duo, trained):  # noqa: F811
    """On the shared browser app (vgg16/hed run): a stylizer dropped into the run's stylizers/ shows up
    when switching to fast mode; picking it shows the stylized image and its time."""
    from vistoolbox.dashboard.transfer import TRAIN_COMMAND

    folder = duo.app.vis_context.runs[0].root / "stylizers"
    target = folder / "browser_style.pt"
    try:
        duo.driver.get(duo.server_url + "/")
        duo.wait_for_element("#tab-transfer").click()
        duo.wait_for_element("#tr-content-thumbs img")
        modes = duo.find_elements("#transfer-mode input")
        modes[1].click()                                              # fast (trained stylizer), none yet
        duo.wait_for_element("#stylizer-empty")
        assert TRAIN_COMMAND in duo.find_element("#stylizer-empty").text
        assert not duo.find_element("#fast-controls").is_displayed() and not duo.find_element("#fast-panel").is_displayed()
        assert "choose a stylizer" not in duo.find_element("#tab-transfer").text  # nothing to choose: not said
        screenshot(duo, "transfer-fast-empty")
        folder.mkdir(exist_ok=True)
        shutil.copy(trained[0], target)
        modes[0].click()
        modes[1].click()                                              # switching back rescans: it is there
        duo.wait_for_element("#stylizer-select")
        duo.wait_for_contains_text("#stylizer-info", "steps at", timeout=20)
        assert not duo.find_elements("#stylizer-empty")
        duo.wait_for_contains_text("#stylizer-info", "not the dashboard's vgg16/hed")
        set_inputs(duo, {"#stylizer-size": "96"})
        wait_images(duo, "#fast-result", 1, timeout=30)
        duo.wait_for_contains_text("#fast-status", "done in", timeout=30)
        assert "96×" in duo.find_element("#fast-status").text or "×96" in duo.find_element("#fast-status").text
        assert not duo.find_element("#tr-job-panel").is_displayed()
        screenshot(duo, "transfer-fast")
    finally:
        target.unlink()
