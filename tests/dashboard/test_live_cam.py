"""The Live tab's attribution overlay through the app's real ``/_dash-update-component`` endpoint:
the overlay is :func:`vistoolbox.cam`'s map for the same inputs, a click lists the units behind the
place with the contributions ``units_behind`` gives, and bad requests are a message, never a 500."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from test_dashboard_limits import post

LAYER = "features.8"      # alexnet's conv4 (13x13)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from vistoolbox.dashboard import create_app

    return create_app(model="alexnet", weights="random", device="cpu", cache_dir=tmp_path_factory.mktemp("cam-cache"))


@pytest.fixture(scope="module")
def image(app):
    from skimage import data

    from vistoolbox.dashboard.uploads import cache_image

    key, _ = cache_image(app.vis_context, Image.fromarray(data.chelsea()).convert("RGB"))
    return {"key": key}


def controls(image, method="gradcam", kind="unit", index=7, target_layer="features.10", layer=LAYER):
    return [image, layer, method, kind, index, target_layer]


def picture(figure: dict) -> np.ndarray:
    source = figure["data"][0]["source"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))


def reference(app, method: str, target: str, opacity: float):
    """vistoolbox.cam on the image as Live crops it, and its overlay as a PNG would hold it."""
    from vistoolbox import cam
    from vistoolbox.attribution.overlay import overlay
    from vistoolbox.dashboard.uploads import load_cached
    from vistoolbox.images import to_pil, to_tensor

    model = app.vis_context.model
    return model, (lambda key: _ref(model, key, method, target, opacity, cam, overlay, load_cached, to_pil, to_tensor, app))


def _ref(model, key, method, target, opacity, cam, overlay, load_cached, to_pil, to_tensor, app):  # noqa: ANN001
    x = to_tensor(model.preprocessing.model_crop(load_cached(app.vis_context, key)))
    result = cam(model, x, LAYER, target=target, method=method)
    return result, np.asarray(to_pil(overlay(x[0], result.upsampled[0], opacity)))


@pytest.mark.parametrize("method,kind,index,target", [("gradcam", "unit", 7, "unit:features.10:7"),
                                                      ("layercam", "class", 281, "class:281"),
                                                      ("eigencam", "top", 0, "top")])
def test_the_overlay_is_cams_map_and_a_click_lists_its_units(app, image, method, kind, index, target):
    response, _ = post(app, "..cam-overlay.figure", [["on"], image, *controls(image, method, kind, index)[1:], 0.7])
    assert response.status_code == 200, response.data[:300]
    out = response.get_json()["response"]
    _, make = reference(app, method, target, 0.7)
    result, expected = make(image["key"])
    got = picture(out["cam-overlay"]["figure"])
    assert got.shape == expected.shape and np.array_equal(got, expected)
    assert out["cam-message"]["children"] == ""
    assert f"max {float(result.maps[0].max()):.4g}" in out["cam-record"]["children"]

    # a click at overlay pixel (x, y) = (100, 40) is map place (40*13//224, 100*13//224) = (2, 5)
    click = {"points": [{"x": 100, "y": 40}]}
    response, _ = post(app, "..cam-units.children", [click], controls(image, method, kind, index))
    assert response.status_code == 200
    out = response.get_json()["response"]
    listed = str(out["cam-units"]["children"])
    terms = result.contributions[0][:, 2, 5].double()
    top = terms.sort(descending=True, stable=True)
    for unit, value in zip(top.indices[:10].tolist(), top.values[:10].tolist()):
        assert f"unit {unit}: {value:+.4g}" in listed
    assert f"map (2, 5): {float(terms.sum()):+.4g} before the ReLU" in listed
    assert "no run mined this layer" in listed and out["cam-queries"]["data"] == []   # no run: no links


def test_bad_requests_are_a_message_in_the_tab(app, image):
    for bad, says in ((controls(image, target_layer="features.99"), "`target layer` must be one of"),
                      (controls(image, method="nope"), "method must be one of"),
                      (controls(image, kind="class", index=5000), "class"),
                      (controls(image, layer="features.10", target_layer="features.3"), "")):
        response, _ = post(app, "..cam-overlay.figure", [["on"], *bad, 0.5])
        assert response.status_code == 200
        message = response.get_json()["response"]["cam-message"]["children"]
        assert message.startswith("⚠") and says in message, message
    response, _ = post(app, "..cam-units.children", [{"points": [{"x": 260, "y": 10}]}], controls(image))
    assert "not on the image (224x224)" in response.get_json()["response"]["cam-message"]["children"]
