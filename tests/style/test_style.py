"""Texture synthesis and style transfer: statistics against direct formulas, real short runs on the
offline hed VGG16 (small images), colour control measured in YIQ, determinism, CLI errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vistoolbox.cli import main
from vistoolbox.images import save_png
from vistoolbox.style import StyleLoss, synthesize_texture, transfer_style, with_pooling
from vistoolbox.style.color import match_color, rgb_to_yiq
from vistoolbox.style.stats import Gram, Histogram, MeanStd, gram

SIZE = 72


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These runs are many tiny steps: one thread is faster than two on a busy 2-core box (threads
    spin-wait for each other); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _resize(image: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(image, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def content(astronaut) -> torch.Tensor:
    return _resize(astronaut[..., 30:330, 120:420], SIZE).clamp(0, 1)


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    """A coloured, strongly textured image: scikit-image's gravel, brick and grass as R, G, B."""
    from skimage import data

    planes = [torch.from_numpy(getattr(data, n)()[:512, :512]).float().div(255) for n in ("gravel", "brick", "grass")]
    rgb = torch.stack([planes[0], 0.5 * planes[1] + 0.3 * planes[0], 0.8 * planes[2]])[None]
    return _resize(rgb, SIZE).clamp(0, 1)


# ------------------------------------------------------------------ statistics vs direct formulas
def test_gram_and_its_loss_match_direct_sums():
    torch.manual_seed(0)
    f, t = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(1, 3, 6, 2, dtype=torch.float64)
    g = gram(f)
    for n in range(2):
        for a in range(3):
            for b in range(3):
                direct = sum(f[n, a, i, j] * f[n, b, i, j] for i in range(4) for j in range(5)) / 20
                assert abs(float(g[n, a, b]) - float(direct)) < 1e-12
    stat = Gram()
    target = stat.target(t)
    direct_t = (t.reshape(3, 12) @ t.reshape(3, 12).T) / 12
    assert torch.allclose(target[0], direct_t)
    loss = sum(float(((g[n] - direct_t) ** 2).sum()) for n in range(2)) / (2 * 9)
    assert abs(float(stat.loss(f, target)) - loss) < 1e-12


def test_mean_std_loss_matches_numpy():
    rng = np.random.default_rng(1)
    f, t = rng.normal(size=(1, 4, 5, 6)), rng.normal(2, 3, size=(1, 4, 7, 3))
    stat = MeanStd()
    target = stat.target(torch.from_numpy(t))
    mu, sd = f.reshape(4, -1).mean(1), np.sqrt(f.reshape(4, -1).var(1) + 1e-5)
    mu_t, sd_t = t.reshape(4, -1).mean(1), np.sqrt(t.reshape(4, -1).var(1) + 1e-5)
    expected = ((mu - mu_t) ** 2).mean() + ((sd - sd_t) ** 2).mean()
    assert abs(float(stat.loss(torch.from_numpy(f), target)) - expected) < 1e-10


def test_histogram_loss_is_w2_of_sorted_values_and_ignores_layout():
    rng = np.random.default_rng(2)
    f, t = rng.normal(size=(1, 3, 4, 4)), rng.exponential(size=(1, 3, 4, 4))
    stat = Histogram()
    target = stat.target(torch.from_numpy(t))
    expected = np.mean([(np.sort(f[0, c].ravel()) - np.sort(t[0, c].ravel())) ** 2 for c in range(3)])
    assert abs(float(stat.loss(torch.from_numpy(f), target)) - expected) < 1e-12
    # a spatial shuffle of the target has the same histogram: zero loss; Gram loss stays 0 too
    shuffled = torch.from_numpy(t).flatten(2)[..., torch.randperm(16)].reshape(1, 3, 4, 4)
    assert float(stat.loss(shuffled, target)) < 1e-20
    # different sizes: the target quantile function is linearly resampled (numpy interp)
    big = rng.normal(size=(1, 3, 8, 4))
    target_big = stat.target(torch.from_numpy(big))
    q = np.stack([np.interp(np.linspace(0, 31, 16), np.arange(32), np.sort(big[0, c].ravel())) for c in range(3)])
    expected = np.mean((np.sort(f[0].reshape(3, -1), 1) - q) ** 2)
    assert abs(float(stat.loss(torch.from_numpy(f), target_big)) - expected) < 1e-12


def test_style_loss_terms_match_formulas_on_a_directly_run_network(alexnet_random):
    torch.manual_seed(3)
    x, c, s = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 80, 80)
    loss = StyleLoss(alexnet_random, {"relu1": 1.0, "relu2": 3.0}, "relu3", "gram", content_weight=2.0,
                     style_weight=5.0, tv_weight=0.5, normalize=False)
    loss.set_style([s])
    loss.set_content(c)
    total, terms = loss(x)
    feats = alexnet_random.module.features
    norm = alexnet_random.preprocessing.normalize
    run = lambda img, k: feats[:k](norm(img))  # noqa: E731 - relu1 = features.1, relu2 = .4, relu3 = .7
    content_direct = 2.0 * ((run(x, 8) - run(c, 8)) ** 2).mean()
    style_direct = 5.0 * (0.25 * ((gram(run(x, 2)) - gram(run(s, 2))) ** 2).mean()
                          + 0.75 * ((gram(run(x, 5)) - gram(run(s, 5))) ** 2).mean())
    tv_direct = 0.5 * (((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., 1:] - x[..., :-1]) ** 2).mean())
    assert torch.allclose(terms["content"], content_direct, rtol=1e-5)
    assert torch.allclose(terms["style"], style_direct, rtol=1e-5)
    assert torch.allclose(terms["tv"], tv_direct, rtol=1e-5)
    assert torch.allclose(total, content_direct + style_direct + tv_direct, rtol=1e-5)
    # blending two style targets equals the weighted Gram average
    loss.set_style([s, c], [3.0, 1.0])
    blended = 0.75 * gram(run(s, 5)) + 0.25 * gram(run(c, 5))
    assert torch.allclose(loss.style_targets["relu2"], blended, rtol=1e-5)


def test_avg_pooling_is_a_copy(alexnet_random):
    avg = with_pooling(alexnet_random, "avg")
    assert any(isinstance(m, nn.AvgPool2d) for m in avg.module.modules())
    assert not any(isinstance(m, nn.AvgPool2d) for m in alexnet_random.module.modules())
    assert avg.module.features[0].weight.data_ptr() != alexnet_random.module.features[0].weight.data_ptr()


def test_match_color_gives_the_content_mean_and_covariance(content, style):
    target = content * 0.5 + 0.25  # moderate contrast: the result needs (almost) no clamping to 0–1
    matched = match_color(style, target)
    flat_m, flat_c = matched[0].reshape(3, -1).double(), target[0].reshape(3, -1).double()
    assert torch.allclose(flat_m.mean(1), flat_c.mean(1), atol=0.02)
    assert torch.allclose(torch.cov(flat_m), torch.cov(flat_c), atol=0.002)
    assert not torch.allclose(torch.cov(style[0].reshape(3, -1)).double(), torch.cov(flat_c), atol=0.01)


# ------------------------------------------------------------------ real runs (hed VGG16, small images)
def _distances(model, image, content, style):
    """(style distance to `style`, content distance to `content`), normalised Gram/relu4_2 terms."""
    meter = StyleLoss(model, content_layer="relu4_2", content_weight=1.0, style_weight=1.0)
    meter.set_style([style])
    meter.set_content(content)
    with torch.no_grad():
        _, terms = meter(image)
    meter.close()
    return float(terms["style"]), float(terms["content"])


@pytest.fixture(scope="module")
def transferred(hed_vgg16, content, style):
    # a content-leaning weight: at 72 px relu4_2 is 9×9 and the default (10) paints over more
    return transfer_style(hed_vgg16, content, [style], steps=40, seed=0, style_weight=0.3)


@pytest.mark.hed
def test_transfer_moves_style_and_keeps_content(hed_vgg16, content, style, transferred):
    image, record = transferred.images, transferred.record
    assert image.shape == (1, 3, SIZE, SIZE) and 0 <= image.min() and image.max() <= 1
    out_style, out_content = _distances(hed_vgg16, image, content, style)
    content_style, _ = _distances(hed_vgg16, content, content, style)
    _, style_content = _distances(hed_vgg16, style, content, style)
    assert out_style < 0.05 * content_style  # measured 0.014
    assert out_content < 0.35 * style_content  # measured 0.27
    curves = record["stages"][0]["curves"]
    assert len(curves["total"]) == 40 and {"content", "style", "tv", "style:relu5_1"} <= set(curves)
    assert min(curves["total"]) < 0.1 * curves["total"][0]
    assert record["settings"]["style_weight"] == 0.3 and record["seed"] == 0 and record["device"] == "cpu"


@pytest.mark.hed
def test_luminance_transfer_keeps_the_content_chroma(hed_vgg16, content, style, transferred):
    result = transfer_style(hed_vgg16, content, [style], steps=25, preserve_colors="luminance")
    image = result.images
    chroma = lambda img: rgb_to_yiq(img)[:, 1:]  # noqa: E731
    kept = (chroma(image) - chroma(content)).abs().mean()
    plain = (chroma(transferred.images) - chroma(content)).abs().mean()
    assert kept < 0.01 < plain
    assert (rgb_to_yiq(image)[:, 0] - rgb_to_yiq(content)[:, 0]).abs().mean() > 0.02  # luminance did change


@pytest.mark.hed
def test_texture_is_deterministic_and_matches_the_style(hed_vgg16, style):
    calls: list[dict] = []
    result = synthesize_texture(hed_vgg16, style, size=48, steps=30, seed=5, snapshot_every=10,
                                progress=calls.append)
    a, rec = result.images, result.record
    result = synthesize_texture(hed_vgg16, style, size=48, steps=30, seed=5)
    b = result.images
    result = synthesize_texture(hed_vgg16, style, size=48, steps=30, seed=6)
    c = result.images
    assert torch.equal(a, b) and not torch.equal(a, c)
    curve = rec["stages"][0]["curves"]["style"]
    assert min(curve) < 0.05 * curve[0]
    assert [info["step"] for info in calls] == list(range(1, 31))
    assert [info["step"] for info in calls if "image" in info] == [10, 20, 30]
    assert calls[9]["image"].shape == (1, 3, 48, 48)


@pytest.mark.hed
def test_pyramid_adam_avg_pooling_blend_and_interrupt(hed_vgg16, content, style):
    result = transfer_style(hed_vgg16, content, [style, content], style_blend=[0.7, 0.3], sizes=[40, 64],
                            steps=[6, 4], optimizer="adam", pooling="avg", init="noise",
                            statistic="mean_std", preserve_colors="histogram")
    image, record = result.images, result.record
    assert image.shape == (1, 3, 64, 64)
    assert [s["size"] for s in record["stages"]] == [[40, 40], [64, 64]]
    assert [s["evaluations"] for s in record["stages"]] == [6, 4]
    assert record["stages"][0]["curves"]["total"][-1] < record["stages"][0]["curves"]["total"][0]

    def stop(info: dict) -> None:
        if info["step"] == 3:
            raise KeyboardInterrupt

    result = transfer_style(hed_vgg16, content, style, steps=10, progress=stop, statistic="histogram")

    image, record = result.images, result.record
    assert record["status"] == "interrupted" and record["stages"][0]["evaluations"] == 3
    assert image.shape == (1, 3, SIZE, SIZE)


@pytest.mark.hed
def test_style_scale_init_style_and_output_size(hed_vgg16, content, style):
    wide = F.interpolate(content, size=(36, 72), mode="bilinear", align_corners=False)
    calls: list[dict] = []
    result = transfer_style(hed_vgg16, wide, style, size=64, steps=1, style_scale=0.5, init="style",
                            tv_weight=0.0, progress=calls.append)
    image, record = result.images, result.record
    assert image.shape == (1, 3, 32, 64) and record["stages"][0]["style_sizes"] == [[32, 32]]
    assert "tv" not in calls[0]["losses"] and calls[0]["size"] == [32, 64]
    # the default output size is the content's own size, capped at 512 px on the longest side
    result = transfer_style(hed_vgg16, wide, style, steps=1)  # 0 steps is refused
    record = result.record
    assert record["output_size"] == [36, 72]


@pytest.mark.hed
def test_exploding_lbfgs_falls_back_to_a_line_search(hed_vgg16, content, style):
    result = transfer_style(hed_vgg16, content, style, size=40, steps=12, lr=1e4)
    image, record = result.images, result.record
    info, curve = record["stages"][0]["optimizer"], record["stages"][0]["curves"]["total"]
    assert info["line_search_from_step"] is not None and info["returned"] == "best"
    assert torch.isfinite(image).all() and min(curve) < curve[0]


# ------------------------------------------------------------------ CLI
@pytest.mark.hed
def test_cli_texture_writes_png_and_sidecar(tmp_path, style, capsys):
    src = save_png(style, tmp_path / "style.png")
    out = tmp_path / "tex.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["texture", str(src), "--size", "40", "--steps", "5", "--snapshot-every", "5", "--quiet",
              "--out", str(out)])
    assert exit_info.value.code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["kind"] == "texture" and record["status"] == "complete"
    assert len(record["stages"][0]["curves"]["total"]) == 5 and record["snapshots"]
    assert (tmp_path / "tex_snapshots" / "step_00005.png").is_file() and out.is_file()


@pytest.mark.parametrize("args, message", [
    (["transfer", "{missing}", "{style}"], "does not exist"),
    (["transfer", "{style}", "{style}", "--style-layers", "relu9_9"], "unknown layer 'relu9_9'"),
    (["transfer", "{style}", "{style}", "--sizes", "32,64", "--steps", "5"], "one step count per size"),
    (["transfer", "{style}", "{style}", "--size", "64", "--max-pixels", "1000"], "--max-pixels"),
    (["texture", "{style}", "--layers", "conv9"], "unknown layer 'conv9'"),
    (["transfer", "{style}", "{style}", "--out", "x.jpg"], "must end in .png"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, style, capsys, hed_vgg16, args, message):
    src = save_png(style, tmp_path / "style.png")
    argv = [a.format(missing=tmp_path / "nope.png", style=src) for a in args] + ["--quiet"]
    argv += [] if "--steps" in args else ["--steps", "1"]
    argv += [] if "--out" in args else ["--out", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_default_layers_follow_a_model_without_vgg_names(alexnet_random, hed_vgg16):
    relus = [f"features.{i}" for i, m in enumerate(alexnet_random.module.features) if isinstance(m, nn.ReLU)]
    assert len(relus) == 5                                     # alexnet: relu1 … relu5, all with feature maps
    loss = StyleLoss(alexnet_random)                           # the library's defaults, VGG names
    assert list(loss.layer_weights) == relus and loss.content_layer == relus[3]
    vgg = StyleLoss(hed_vgg16)
    assert list(vgg.layer_weights) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]   # VGG keeps its own
    assert vgg.content_layer == "relu4_2"
    chosen = StyleLoss(alexnet_random, ["relu2"], "relu1")      # a choice is kept
    assert list(chosen.layer_weights) == ["relu2"] and chosen.content_layer == "relu1"
    result = synthesize_texture(alexnet_random, torch.rand(1, 3, 64, 64), size=64, steps=2)
    assert result.record["loss"]["style_layers"] == {name: 0.2 for name in relus}
