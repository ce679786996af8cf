"""Feed-forward universal transfer (wct/adain + a decoder trained here for a few steps): alpha=0 is the
decoder's reconstruction, a mask puts each style's colours on its side, bad input is one line."""
from __future__ import annotations

import json

import pytest
import torch

from vistoolbox.images import save_png
from vistoolbox.style.train_decoder import train_decoder
from vistoolbox.style.universal_transfer import universal_transfer

from tests.style.test_stylizer import _images, run_cli

LAYER = "relu1"  # alexnet: stride 4, 64 channels — colour statistics survive a short training


@pytest.fixture(scope="module")
def setup(tmp_path_factory, alexnet_random):
    root = tmp_path_factory.mktemp("uts")
    _images(root / "photos", [(40, 56), (64, 48), (50, 50), (70, 40), (45, 45)])
    decoder = root / "dec.pt"
    train_decoder(alexnet_random, root / "photos", layers=[LAYER], out=decoder, size=32, batch_size=2, width=16,
                  steps=30, lr=3e-3, quiet=True, checkpoint_every=1000)
    g = torch.Generator().manual_seed(5)
    content = save_png(torch.rand(1, 3, 8, 12, generator=g).repeat_interleave(6, 2).repeat_interleave(6, 3)
                       * 0.5 + 0.25, root / "content.png")
    red = torch.stack([0.8 + 0.2 * torch.rand(48, 48, generator=g), 0.2 * torch.rand(48, 48, generator=g),
                       0.1 * torch.rand(48, 48, generator=g)])[None]
    blue = red.flip(1)
    styles = save_png(red, root / "red.png"), save_png(blue, root / "blue.png")
    mask = torch.zeros(48, 72)
    mask[:, :36] = 1  # left: style 1 (red), right: style 2 (blue)
    save_png(mask.expand(3, -1, -1)[None], root / "mask.png")
    return root, decoder, content, styles


def test_alpha_zero_is_the_decoders_reconstruction(setup, alexnet_random):
    root, decoder_path, content, styles = setup
    from vistoolbox.images import load_tensor
    from vistoolbox.style.decoder import load_decoder

    out = universal_transfer(alexnet_random, content, styles[0], decoder=decoder_path, alpha=0.0)
    x = load_tensor(content)
    captured = {}

    def grab(module, inputs, output):
        captured["f"] = output
        raise StopIteration  # the rest of the network is not needed

    module = alexnet_random.module.get_submodule(alexnet_random.resolve(LAYER))
    handle = module.register_forward_hook(grab)
    with torch.no_grad(), pytest.raises(StopIteration):
        alexnet_random.module(alexnet_random.preprocessing.normalize(x))
    handle.remove()
    decoder = load_decoder(decoder_path).decoders[LAYER]
    with torch.no_grad():
        expected = decoder(captured["f"], x.shape[-2:]).clamp(0, 1)
    assert out.images.shape == expected.shape == (1, 3, 48, 72)
    assert (out.images - expected).abs().max() < 1e-5
    # alpha matters: full style is far from the reconstruction
    styled = universal_transfer(alexnet_random, content, styles[0], decoder=decoder_path, alpha=1.0)
    assert (styled.images - expected).abs().mean() > 0.05


@pytest.mark.parametrize("method", ["wct", "adain"])
def test_mask_puts_each_styles_colour_on_its_side(setup, alexnet_random, method):
    root, decoder_path, content, styles = setup
    out = universal_transfer(alexnet_random, content, list(styles), decoder=decoder_path, method=method,
                             mask=root / "mask.png").images[0]
    from vistoolbox.images import load_tensor
    means = [load_tensor(s)[0].mean((1, 2)) for s in styles]
    left, right = out[:, :, 4:32].mean((1, 2)), out[:, :, 40:68].mean((1, 2))
    dist = lambda a, b: float((a - b).norm())  # noqa: E731
    assert dist(left, means[0]) < dist(left, means[1]) and dist(right, means[1]) < dist(right, means[0])
    assert left[0] - left[2] > 0.2 and right[2] - right[0] > 0.2  # red side, blue side


def test_bad_input_one_line_exit_2_nothing_written(setup, tmp_path, capsys):
    root, decoder_path, content, styles = setup
    out = tmp_path / "o.png"
    base = ["transfer", "--model", "alexnet", "--weights", "random", str(content), str(styles[0])]
    grey_rgb = tmp_path / "color.png"
    save_png(torch.rand(1, 3, 48, 72), grey_rgb)
    cases = [
        (["--method", "wct", "--decoder", str(decoder_path), "--alpha", "1.5"], "alpha"),
        (["--method", "wct", "--decoder", str(decoder_path), "--alpha", "-0.1"], "alpha"),
        (["--method", "wct", "--decoder", str(decoder_path), "--seed", "1"], "another encoder"),
        (["--method", "wct"], "--decoder"),
        ([str(styles[1]), "--method", "wct", "--decoder", str(decoder_path), "--mask", str(grey_rgb)], "grey"),
        ([str(styles[1]), "--method", "wct", "--decoder", str(decoder_path), "--mask", str(root / "nope.png")],
         "does not exist"),
        ([str(styles[1]), "--method", "wct", "--decoder", str(decoder_path), "--mask", str(decoder_path)],
         "cannot read"),
    ]
    for extra, words in cases:
        code, stdout, err = run_cli(capsys, *base, *extra, "--out", str(out), "--quiet")
        assert code == 2, (extra, err)
        assert words in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not list(tmp_path.glob("o*")), extra


def test_cli_end_to_end_sidecar_and_any_size(setup, tmp_path, capsys):
    root, decoder_path, content, styles = setup
    out = tmp_path / "t.png"
    code, stdout, err = run_cli(capsys, "transfer", "--model", "alexnet", "--weights", "random", str(content),
                                str(styles[0]), str(styles[1]), "--style-blend", "0.7,0.3", "--method", "adain",
                                "--decoder", str(decoder_path), "--alpha", "0.6", "--size", "40x24",
                                "--preserve-colors", "luminance", "--refine", "3", "--content-layer", "relu2",
                                "--style-layers", "relu1,relu2", "--out", str(out), "--quiet")
    assert code == 0, err
    record = json.loads(out.with_suffix(".json").read_text())
    import hashlib
    assert record["method"] == "adain" and record["alpha"] == 0.6
    assert record["decoder"]["sha256"] == hashlib.sha256(decoder_path.read_bytes()).hexdigest()
    assert record["output_size"] == [24, 40] and record["stages"][0]["steps"] == 3
    assert {"feed_forward_seconds", "refine_seconds", "total_seconds"} <= set(record["timings"])
    from vistoolbox.images import load_tensor
    assert load_tensor(out).shape == (1, 3, 24, 40)


def test_wct_cascade_runs_deepest_layer_first(setup, alexnet_random, tmp_path):
    """A two-layer decoder file: WCT at relu2 → its decoder → WCT at relu1 → its decoder, composed here
    by hand from hooked features and the tested `wct`."""
    from vistoolbox.images import load_tensor
    from vistoolbox.style.decoder import load_decoder
    from vistoolbox.style.universal import wct

    root, _, content, styles = setup
    path = tmp_path / "two.pt"
    train_decoder(alexnet_random, root / "photos", layers=["relu1", "relu2"], out=path, size=32, batch_size=2,
                  width=8, steps=2, quiet=True, checkpoint_every=1000)
    decoders = load_decoder(path).decoders

    def feats(x, layer):
        captured = {}

        def grab(module, inputs, output):
            captured["f"] = output
            raise StopIteration

        handle = alexnet_random.module.get_submodule(alexnet_random.resolve(layer)).register_forward_hook(grab)
        with torch.no_grad(), pytest.raises(StopIteration):
            alexnet_random.module(alexnet_random.preprocessing.normalize(x))
        handle.remove()
        return captured["f"]

    x, s = load_tensor(content), load_tensor(styles[0])
    with torch.no_grad():
        for layer in ("relu2", "relu1"):
            x = decoders[layer](wct(feats(x, layer), feats(s, layer)), x.shape[-2:]).clamp(0, 1)
    out = universal_transfer(alexnet_random, content, styles[0], decoder=path, method="wct")
    assert out.record["decoder"]["levels"] == ["relu2", "relu1"]
    assert (out.images - x).abs().max() < 1e-4
    adain_out = universal_transfer(alexnet_random, content, styles[0], decoder=path, method="adain")
    assert adain_out.record["decoder"]["levels"] == ["relu2"]
