"""Feed-forward stylizer: generator shape rules, the file format, applying it, training, resuming,
texture mode and the two commands."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from vistoolbox import VisUsageError
from vistoolbox.images import load_tensor, save_png
from vistoolbox.style.generator import GeneratorConfig, StyleGenerator
from vistoolbox.style.stylizer import Stylizer, generate_texture, load_stylizer, save_stylizer, stylize

TINY = dict(width=8, res_blocks=1)
ALEX_LAYERS = ["relu1", "relu2"]


def _stylizer(mode: str = "image", seed: int = 0) -> Stylizer:
    torch.manual_seed(seed)
    gen = StyleGenerator(GeneratorConfig(mode=mode, **TINY))
    with torch.no_grad():  # non-trivial instance-norm affine parameters, so the round trip covers them
        for m in gen.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return Stylizer(generator=gen.eval(), style={"name": "s.png", "sha256": "0" * 64, "size": [8, 8]},
                    training={"steps": 3}, history={"step": [1, 2, 3], "total": [3.0, 2.0, 1.0],
                                                   "content": [0.0] * 3, "style": [3.0, 2.0, 1.0], "tv": [0.0] * 3})


def _images(folder, sizes, seed=0):
    """Small smooth random colour images written as PNGs (real files for the dataset)."""
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        low = torch.rand(1, 3, 4, 4, generator=g)
        image = nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        paths.append(save_png(image.clamp(0, 1), folder / f"img_{i}.png"))
    return paths


def _style_image(path):
    """Stripes: a style with strong, easily measured second-order statistics."""
    y = torch.arange(48).float()
    stripes = (torch.sin(y[None, :] / 2.0 + y[:, None] / 3.0) > 0).float()
    image = torch.stack([stripes, 1 - stripes, 0.5 * stripes]).unsqueeze(0)
    return save_png(image, path)


# --------------------------------------------------------------------------- generator
def test_generator_architecture_and_any_size():
    gen = StyleGenerator(GeneratorConfig(**TINY))
    kinds = {type(m) for m in gen.modules()}
    assert nn.InstanceNorm2d in kinds and nn.ReflectionPad2d in kinds and nn.Upsample in kinds
    assert nn.ConvTranspose2d not in kinds and nn.BatchNorm2d not in kinds
    assert all(m.mode == "nearest" for m in gen.modules() if isinstance(m, nn.Upsample))
    assert all(m.padding == (0, 0) for m in gen.modules() if isinstance(m, nn.Conv2d))  # padding by reflection
    for h, w in [(1, 1), (5, 7), (37, 50), (65, 33)]:
        out = gen(torch.rand(2, 3, h, w))
        assert out.shape == (2, 3, h, w) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(VisUsageError):
        GeneratorConfig(mode="video")


def test_input_skip_starts_as_identity_and_learns():
    torch.manual_seed(0)
    gen = StyleGenerator(GeneratorConfig(input_skip=True, **TINY))
    x = torch.rand(1, 3, 19, 26) * 0.98 + 0.01
    assert torch.allclose(gen(x), x, atol=1e-6)
    target = 1 - x  # one gradient step moves it: the zero-initialised last layer still learns
    loss = (gen(x) - target).pow(2).mean()
    loss.backward()
    torch.optim.SGD(gen.parameters(), lr=1.0).step()
    assert (gen(x) - target).pow(2).mean() < loss
    with pytest.raises(VisUsageError, match="image mode"):
        GeneratorConfig(mode="texture", input_skip=True)


# --------------------------------------------------------------------------- file format
def test_save_load_round_trip_is_exact(tmp_path):
    original = _stylizer()
    path = save_stylizer(original, tmp_path / "s.pt")
    raw = torch.load(path, weights_only=True)  # only plain types in the file
    assert raw["format"] == "vistoolbox.stylizer" and raw["config"]["width"] == 8
    loaded = load_stylizer(path)
    x = torch.rand(2, 3, 21, 30)
    assert torch.equal(original.generator(x), loaded.generator(x))
    assert loaded.history == original.history and loaded.style == original.style and loaded.steps == 3
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # atomic write leaves no temp file


def test_load_errors_are_usage_errors(tmp_path):
    with pytest.raises(VisUsageError, match="does not exist"):
        load_stylizer(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(VisUsageError, match="cannot read"):
        load_stylizer(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(VisUsageError, match="not a vistoolbox stylizer"):
        load_stylizer(tmp_path / "other.pt")


# --------------------------------------------------------------------------- applying
def test_stylize_keeps_sizes_batches_and_blends():
    stylizer = _stylizer()
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, h, w, generator=g) for h, w in [(17, 23), (17, 23), (31, 9), (17, 23)]]
    outs = stylize(stylizer, images, batch_size=2)
    assert [o.shape[-2:] for o in outs] == [im.shape[-2:] for im in images]
    for image, out in zip(images, outs):  # batching never changes a result (instance norm is per image)
        alone = stylizer.generator(image.unsqueeze(0))
        assert torch.allclose(out, alone, atol=1e-5)
    assert torch.equal(stylize(stylizer, images, strength=0.0)[2], images[2].unsqueeze(0))
    half = stylize(stylizer, images[:1], strength=0.5)[0]
    assert torch.allclose(half, 0.5 * images[0].unsqueeze(0) + 0.5 * outs[0], atol=1e-6)
    batch = torch.stack(images[:2])
    assert stylize(stylizer, batch).shape == batch.shape
    with pytest.raises(VisUsageError, match="strength"):
        stylize(stylizer, images, strength=1.5)
    with pytest.raises(VisUsageError, match="texture mode"):
        stylize(_stylizer("texture"), images)


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stylizer")
    _images(root / "photos", [(40, 56), (64, 48), (50, 50), (70, 40), (45, 45)])
    (root / "photos" / "notes.txt").write_text("not an image")
    return root / "photos", _style_image(root / "style.png")


def _train(data, model, **kw):
    from vistoolbox.style.train_stylizer import train_stylizer

    folder, style = data
    settings = dict(size=40, batch_size=2, style_layers=ALEX_LAYERS, content_layer="relu2", lr=3e-3, quiet=True,
                    **TINY)
    settings.update(kw)
    return train_stylizer(model, style, None if kw.get("mode") == "texture" else folder, **settings)


def test_training_loss_falls_and_file_describes_itself(data, alexnet_random, tmp_path):
    stylizer = _train(data, alexnet_random, steps=16, out=tmp_path / "s.pt", checkpoint_every=5)
    total = stylizer.history["total"]
    assert stylizer.history["step"] == list(range(1, 17))
    assert sum(total[-4:]) < 0.85 * sum(total[:4])
    for i in range(16):  # the recorded total is the sum of its weighted terms
        assert total[i] == pytest.approx(sum(stylizer.history[k][i] for k in ("content", "style", "tv")), rel=1e-5)
    raw = torch.load(tmp_path / "s.pt", weights_only=True)
    assert raw["training"]["steps"] == 16 and raw["history"]["total"] == total
    assert raw["style"]["sha256"] == __import__("hashlib").sha256(data[1].read_bytes()).hexdigest()
    assert raw["descriptor"]["model"] == "alexnet" and raw["descriptor"]["content_layer"] == "relu2"
    assert raw["training"]["dataset"]["count"] == 5 and raw["config"]["res_blocks"] == 1
    assert raw["optimizer"]["state"]  # Adam moments travel with the file for resuming


def test_resume_continues_the_curve_exactly(data, alexnet_random, tmp_path, monkeypatch):
    """Interrupted at step 4 (Ctrl-C), resumed to 6: same history and bit-identical weights as an
    uninterrupted 6-step run with the same seed (batches are a function of seed and step)."""
    import vistoolbox.style.train_stylizer as ts

    straight = _train(data, alexnet_random, steps=6)
    real_batch = ts.training_batch

    def interrupt_at_4(files, step, *args):
        if step == 4:
            raise KeyboardInterrupt
        return real_batch(files, step, *args)

    monkeypatch.setattr(ts, "training_batch", interrupt_at_4)
    with pytest.raises(KeyboardInterrupt):
        _train(data, alexnet_random, steps=6, out=tmp_path / "s.pt", checkpoint_every=3)
    saved = load_stylizer(tmp_path / "s.pt")
    assert saved.steps == 4 and saved.history["step"] == [1, 2, 3, 4]  # finished work kept
    monkeypatch.setattr(ts, "training_batch", real_batch)
    resumed = _train(data, alexnet_random, steps=6, out=tmp_path / "s.pt", resume=True)
    assert resumed.history == straight.history and resumed.steps == 6
    for key, value in straight.generator.state_dict().items():
        assert torch.equal(value, resumed.generator.state_dict()[key]), key
    with pytest.raises(VisUsageError, match="exists"):
        _train(data, alexnet_random, steps=8, out=tmp_path / "s.pt")
    with pytest.raises(VisUsageError, match="cannot resume: size"):
        _train(data, alexnet_random, steps=8, out=tmp_path / "s.pt", resume=True, size=32)


def test_texture_mode(data, alexnet_random, tmp_path):
    stylizer = _train(data, alexnet_random, mode="texture", steps=10, noise_channels=4)
    total = stylizer.history["total"]
    assert sum(total[-3:]) < 0.85 * sum(total[:3]) and stylizer.history["content"] == [0.0] * 10
    a = generate_texture(stylizer, (37, 45), count=2, seed=3)
    assert a.shape == (2, 3, 37, 45)
    assert torch.equal(a, generate_texture(stylizer, (37, 45), count=2, seed=3))
    assert not torch.equal(a[0], a[1])
    with pytest.raises(VisUsageError, match="image mode"):
        generate_texture(_stylizer(), 16)


# --------------------------------------------------------------------------- commands
def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`vis ARGS` in this process (same entry point as the script): exit code, stdout, stderr."""
    from vistoolbox.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_cli_train_then_stylize_and_noise(data, tmp_path, capsys):
    folder, style = data
    common = ["--model", "alexnet", "--weights", "random", "--size", "40", "--batch-size", "2", "--width", "8",
              "--res-blocks", "1", "--style-layers", "relu1,relu2:2", "--content-layer", "relu2", "--quiet"]
    code, out, err = run_cli(capsys, "train-stylizer", str(style), "--dataset", str(folder), "--steps", "3",
                             "--out", str(tmp_path / "s.pt"), *common)
    assert code == 0, err
    saved = load_stylizer(tmp_path / "s.pt")
    assert "3 steps" in out and saved.steps == 3
    assert saved.descriptor["style_layers"] == {"relu1": pytest.approx(1 / 3), "relu2": pytest.approx(2 / 3)}
    odd = _images(tmp_path / "in", [(33, 47), (20, 21)], seed=5)
    code, out, err = run_cli(capsys, "stylize", str(tmp_path / "s.pt"), *map(str, odd), "--out",
                             str(tmp_path / "out"), "--strength", "0.7", "--quiet")
    assert code == 0, err
    for src in odd:  # same size as the input, and the library's result (up to 8-bit rounding)
        written = tmp_path / "out" / src.name
        assert Image.open(written).size == Image.open(src).size and str(written) in out
        expected = stylize(saved, [load_tensor(src)], strength=0.7)[0]
        assert (load_tensor(written) - expected).abs().max() <= 1 / 255 + 1e-6
    code, out, err = run_cli(capsys, "train-stylizer", str(style), "--mode", "texture", "--steps", "2", "--out",
                             str(tmp_path / "t.pt"), *common)
    assert code == 0, err
    code, out, err = run_cli(capsys, "stylize", str(tmp_path / "t.pt"), "--noise", "--size", "24", "--count", "2",
                             "--out", str(tmp_path / "tex"))
    assert code == 0, err
    assert [Image.open(tmp_path / "tex" / f"texture_00{i}.png").size for i in range(2)] == [(24, 24)] * 2


@pytest.mark.parametrize("args, message", [
    (["train-stylizer", "{tmp}/missing.png", "--dataset", "{data}"], "does not exist"),
    (["train-stylizer", "{style}", "--dataset", "{tmp}/nowhere"], "dataset folder"),
    (["train-stylizer", "{style}", "--dataset", "{tmp}"], "no images"),
    (["train-stylizer", "{style}"], "needs --dataset"),
    (["train-stylizer", "{style}", "--dataset", "{data}", "--steps", "0"], "--steps must be"),
    (["train-stylizer", "{style}", "--dataset", "{data}", "--style-layers", "relu9"], "unknown layer"),
    (["stylize", "{style}", "{style}"], "cannot read"),
    (["stylize", "{tmp}/nope.pt", "{style}"], "does not exist"),
    (["stylize", "{model}", "{style}", "--strength", "2"], "--strength must be between 0 and 1"),
    (["stylize", "{model}", "--noise"], "trained in image mode"),
    (["stylize", "{model}"], "at least one input"),
])
def test_cli_bad_input_one_line_exit_2(data, tmp_path, capsys, args, message):
    folder, style = data
    model = save_stylizer(_stylizer(), tmp_path / "m.pt")
    filled = [a.format(tmp=tmp_path, style=style, data=folder, model=model) for a in args]
    extra = ["--model", "alexnet", "--weights", "random", "--out", str(tmp_path / "x.pt")] \
        if args[0] == "train-stylizer" else ["--out", str(tmp_path / "o")]
    code, _, err = run_cli(capsys, *filled, *extra)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_cli_script_reports_usage_error_without_traceback(tmp_path):
    """The real `python -m vistoolbox.cli` process: one line on stderr, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "vistoolbox.cli", "stylize", str(tmp_path / "none.pt"), "a.png"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


def test_identical_training_runs_give_identical_files(data, alexnet_random, tmp_path):
    """The stylizer file is a function of the run: no temp-file name (or anything else random) in it."""
    import hashlib

    digests = []
    for name in ("a.pt", "b.pt"):
        _train(data, alexnet_random, steps=2, out=tmp_path / name)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_mode_errors_name_the_parameter_not_a_cli_flag():
    """Library messages name Python parameters (`noise`); the CLI swaps in its flags (``--noise``)."""
    from vistoolbox.cli import flag_names

    with pytest.raises(VisUsageError) as error:
        stylize(_stylizer("texture"), [torch.rand(3, 8, 8)])
    assert "--" not in str(error.value) and "noise" in error.value.params, str(error.value)
    assert "(--noise)" in error.value.renamed(flag_names(["stylize"]))
