"""The model zoo: ten torchvision families on random weights at a small input size.

For each: ``vis layers`` gives every layer a layout, its units equal the channel count the module
itself declares (conv out_channels, linear out_features, norm features), no field is left unknown,
and the fields it reports agree with the gradient field on a spread of layers; then a tiny mine,
maximize (channel and neuron objectives) and Live map run on one mid-level layer. The heavy classic
CNNs (already covered elsewhere) and the Ray round trip are marked ``slow``.

Beyond the ten, every classifier ``torchvision.models.list_models()`` names: each layer whose output
depends on the image has a layout whose units are the channels its module declares.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vistoolbox import FeatureExtractor, cli, load_model, maximize, maximize_layer, mine, open_run
from vistoolbox.dashboard.live import live_layers, montage_png, overlay_png, tile_layout
from vistoolbox.features.layout import parse_layout
from vistoolbox.features.receptive import field_of
from vistoolbox.features.views import _field, batch_views
from vistoolbox.mining.datasets import Transform
from vistoolbox.mining.positions import eligible_mask
from vistoolbox.rundir import maximize_path

from gradient_field import check_unit, empirical_box, positive_copy, reach

SIZE = 64
#: model → (input size, mid-level layer, its expected layout)
ZOO = {
    "vit_b_16": (SIZE, "encoder.layers.encoder_layer_5", "NC:1+4x4"),
    "swin_t": (SIZE, "features.3.1", "HWC"),
    "convnext_tiny": (SIZE, "features.3.0.block.3", "HWC"),
    "efficientnet_b0": (SIZE, "features.3.1", "CHW"),
    "mobilenet_v3_small": (SIZE, "features.4", "CHW"),
    "regnet_y_400mf": (SIZE, "trunk_output.block2", "CHW"),
    "googlenet": (SIZE, "inception4a", "CHW"),
    "resnet50": (SIZE, "layer2.1", "CHW"),
    "densenet121": (SIZE, "features.denseblock2", "CHW"),
    "inception_v3": (80, "Mixed_5b", "CHW"),  # the smallest input it takes is 75
}
SLOW = {"resnet50", "densenet121", "inception_v3"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in ZOO]


@functools.lru_cache(maxsize=None)
def zoo_model(name: str):
    """Each zoo model is built once for the module (random weights, seed 0)."""
    return load_model(name, "random", input_size=ZOO[name][0])


def declared_units(module: nn.Module) -> int | None:
    """The channel count a module declares itself, independent of any output shape."""
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, nn.BatchNorm2d):
        return module.num_features
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    return None


def vis_layers(capsys, name: str, size: int) -> list[dict]:
    with pytest.raises(SystemExit) as done:
        cli.main(["layers", "--model", name, "--weights", "random", "--input-size", str(size), "--json"])
    assert done.value.code == 0
    return json.loads(capsys.readouterr().out)


def _classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


#: input sizes where 64 px does not fit: the smallest each takes (maxvit's partitions need 224·k)
ZOO_SIZES = {"inception_v3": 80, "maxvit_t": 224, "vit_h_14": 70}
#: the zoo members that take seconds just to build (hundreds of millions of random weights)
HEAVY = {"regnet_y_128gf", "vit_h_14", "vit_l_16", "vit_l_32", "convnext_large", "efficientnet_v2_l",
         "regnet_y_32gf", "regnet_x_32gf", "swin_b", "swin_v2_b", "convnext_base", "wide_resnet101_2"}


def image_dependent(module: nn.Module, size: int) -> set[str]:
    """The named modules whose first output changes with the image (two random images compared):
    the reference for which layers must have a layout."""
    passes: list[dict[str, torch.Tensor]] = [{}, {}]
    current: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(mod, inputs, out):
            items = [out] if isinstance(out, torch.Tensor) else list(out) if isinstance(out, (tuple, list)) else []
            first = next((t for t in items if isinstance(t, torch.Tensor)), None)
            if first is not None and name not in current:
                current[name] = first.detach().clone()
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in module.named_modules() if n]
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            for seen in passes:
                current = seen
                module(torch.rand(1, 3, size, size, generator=gen))
    finally:
        for handle in handles:
            handle.remove()
    first, second = passes
    return {name for name in first if name in second and not torch.equal(first[name], second[name])}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in _classifiers()])
def test_every_torchvision_classifier_has_every_layer_readable(capsys, name):
    """Every module of every torchvision classifier whose output depends on the image has a layout,
    and its units are the channels the module declares (random weights, a small input)."""
    size = ZOO_SIZES.get(name, SIZE)
    model = load_model(name, "random", input_size=size)
    depends = image_dependent(model.module, size)
    from vistoolbox.features.layers import layer_table

    rows = [r for r in layer_table(model, size) if r.shape is not None]
    modules = dict(model.module.named_modules())
    assert len(rows) > 10
    checked = [row for row in rows if row.name in depends]
    assert len(checked) > 10  # swin_v2's position-bias MLPs run on a constant table: no image in them
    for row in checked:
        assert row.layout is not None, row
        assert row.units == parse_layout(row.layout).channels(row.shape), row
        declared = declared_units(modules[row.name])
        assert declared is None or row.units == declared, row


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four real photos (scikit-image), one of them upside down."""
    from skimage import data

    root = tmp_path_factory.mktemp("zoo-images")
    for i, picture in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.rocket()[::-1]]):
        Image.fromarray(np.ascontiguousarray(picture[:, :, :3])).save(root / f"p{i}.png")
    return root


@pytest.mark.parametrize("name", PARAMS)
def test_layers_units_and_gradient_fields(capsys, name):
    size, mid, layout = ZOO[name]
    rows = vis_layers(capsys, name, size)
    model = zoo_model(name)
    modules = dict(model.module.named_modules())
    ran = [r for r in rows if r["shape"] is not None]
    assert ran and all(r["layout"] is not None and r["rf"] != "unknown" for r in ran)
    for row in ran:
        declared = declared_units(modules[row["name"]])
        assert declared is None or row["units"] == declared, row
    assert next(r for r in ran if r["name"] == mid)["layout"] == layout
    # the gradient field: three units of the mid layer, two of three more layers spread over the depth
    spatial = [r for r in ran if r["layout"] != "C"]
    picked = {mid} | {spatial[int(f * (len(spatial) - 1))]["name"] for f in (0.2, 0.5, 0.8)}
    net = positive_copy(model.module)
    far = reach(net, (size, size))
    for row in (r for r in spatial if r["name"] in picked):
        field, grid = field_of(row), parse_layout(row["layout"])
        assert field.kind == row["rf"]
        rows_, cols = grid.positions(row["shape"])
        units = [(rows_ // 2, cols // 2), (0, 0), (rows_ - 1, cols - 1)]
        for y, x in units if row["name"] == mid else units[1:]:
            seen = empirical_box(net, row["name"], (size, size), y, x, grid)
            assert seen is not None, (row["name"], y, x)
            check_unit(field, y, x, (size, size), seen, far)


@pytest.mark.parametrize("name", PARAMS)
def test_mine_maximize_live_on_a_mid_layer(name, images, tmp_path):
    size, layer, layout = ZOO[name]
    model = zoo_model(name)
    patches = layout != "CHW"  # classic conv patches are tested elsewhere; writing 500 units' PNGs costs seconds
    run = open_run(trust_dataset=True, path=mine(model, images, tmp_path / "run", layers=[layer], k=2, batch_size=4, patches=patches,
                        quiet=True))
    entry = run.layer_info(layer)
    grid = parse_layout(entry["layout"])
    rows, cols = grid.positions(entry["shape"])
    top = run.topk(layer)
    assert str(grid) == layout and top["values"].shape == (entry["units"], 2)
    assert (top["y"] >= 0).all() and (top["y"] < rows).all() and (top["x"] < cols).all()
    pre = run.manifest["preprocessing"]
    pixels = Transform(pre["resize"], pre["crop"])(run.image_path(int(top["image_index"][0, 0])))
    with FeatureExtractor(model, [layer], channels_first=True) as fx:  # unit 0's top-1: an eligible grid maximum
        first = fx(model.preprocessing.normalize(pixels[None].float() / 255))[layer]
    assert first.shape == (1, entry["units"], rows, cols)
    mask = eligible_mask(entry, size, run.manifest["positions"]["min_inside"])
    assert mask is None or mask.shape == (rows, cols)
    assert entry["rf"] == "exact" or mask is None  # bound/global fields (token mixing): every position
    eligible = first[0, 0] if mask is None else first[0, 0][torch.as_tensor(mask)]
    assert eligible.max().item() == pytest.approx(float(top["values"][0, 0]), rel=1e-4, abs=1e-5)
    assert mask is None or mask[top["y"], top["x"]].all()
    if patches:
        patch = Image.open(run.patch(layer, 0, 0))
        whole = entry["rf"] in ("global", "unknown")
        assert patch.size == ((size, size) if whole else tuple(entry["rf_size"][::-1]))
    # maximize: a channel objective on two units and a neuron at the grid's centre
    res = maximize(model, f"{layer}:0-1", steps=2, size=size, quiet=True)   # the mined size: the same grid
    assert res.images.shape == (2, 3, size, size) and res.record["layout"] == layout
    assert res.record["layer_shape"] == [entry["units"], rows, cols]
    neuron = maximize(model, f"{layer}:3", neuron=True, steps=2, size=size, quiet=True)
    assert neuron.record["neuron"] == [rows // 2, cols // 2] and np.isfinite(neuron.record["activation_final"]).all()
    # Live: the layer is offered (conv nets: their convs, ReLUs and pools) and its maps tile the grid
    assert layer in [o["value"] for o in live_layers(model)] or layout == "CHW"
    maps = first[0].numpy()
    meta = tile_layout(*maps.shape)
    assert meta["channels"] == entry["units"]
    assert montage_png(maps, meta)[:4] == b"\x89PNG" and overlay_png(Image.new("RGB", (size, size)), maps[0])[:4] == \
        b"\x89PNG"


#: the mid layers whose views run on receptive-field windows: exact, strided fields on a grid (no token
#: mixing: ViT's attention and the squeeze-excitation gates make fields global, Swin's windows a bound)
WINDOWED = {"convnext_tiny", "googlenet", "resnet50", "densenet121", "inception_v3"}


@pytest.mark.parametrize("name", PARAMS)
def test_views_on_a_mid_layer_equal_the_whole_image_pass(name):
    size, layer, _ = ZOO[name]
    model = zoo_model(name)
    assert (_field(model, layer, (size, size)) is not None) == (name in WINDOWED)
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, size, size, generator=gen)
    with FeatureExtractor(model, [layer], channels_first=True) as fx:
        rows, cols = fx(images[:1])[layer].shape[-2:]
    ys, xs = [0, rows - 1], [cols - 1, cols // 2]
    windowed = batch_views(model, images, layer, [0, 1], ys, xs, ["backprop"])["backprop"]
    whole = batch_views(model, images, layer, [0, 1], ys, xs, ["backprop"], windowed=False)["backprop"]
    scale = float(whole.abs().max())
    assert scale > 0
    torch.testing.assert_close(windowed, whole, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.slow
def test_token_layers_on_ray_equal_local(ray_cluster, images, tmp_path):
    """A ViT token layer mined and maximized (``--all``) on Ray gives the local files exactly."""
    model = zoo_model("vit_b_16")
    layer = "encoder.layers.encoder_layer_2"
    kwargs = dict(layers=[layer], k=2, batch_size=2, patches=False, quiet=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each Ray task runs one torch thread: compare like with like
    try:
        local = open_run(mine(model, images, tmp_path / "local", **kwargs))
        maximize_layer(model, layer, tmp_path / "local", units=[0, 1], batch=1, steps=2)
    finally:
        torch.set_num_threads(threads)
    remote = open_run(mine(model, images, tmp_path / "ray", backend="ray", ray_tasks=2, **kwargs))
    for key, value in local.topk(layer).items():
        np.testing.assert_array_equal(value, remote.topk(layer)[key], err_msg=key)
    assert local.manifest["layers"] == remote.manifest["layers"]
    torch.set_num_threads(1)
    try:
        maximize_layer(model, layer, tmp_path / "ray", units=[0, 1], batch=1, steps=2, backend="ray")
    finally:
        torch.set_num_threads(threads)
    for unit in (0, 1):
        assert maximize_path(tmp_path / "ray", layer, unit).read_bytes() == \
            maximize_path(tmp_path / "local", layer, unit).read_bytes()
