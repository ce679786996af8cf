"""Activation maximization: quality, regularizer effects, objectives vs brute force, determinism,
CLI errors and the JSON sidecar. Small random AlexNet at 64 px keeps it fast."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vistoolbox import load_tensor, maximize, maximize_layer
from vistoolbox.actmax import Channel, DeepDream, Diversity, Neuron, dream, measure
from vistoolbox.actmax.regularizers import Blur, ContribClip, L2Decay, NormClip, gaussian_blur, progress_lr
from vistoolbox.actmax.transforms import Jitter, lucid_transforms
from vistoolbox.cli import main
from vistoolbox.rundir import maximize_path

SIZE = 64


def _test_images() -> torch.Tensor:
    """A small real test set: scikit-image photos, centre-cropped and resized to SIZE."""
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        arr = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)
        s = min(arr.shape[1:])
        arr = arr[:, :s, :s].unsqueeze(0)
        out.append(F.interpolate(arr, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out)


@pytest.fixture(scope="module")
def batch8(alexnet_random):
    """Units 0-7 of AlexNet conv4, optimised in one batch."""
    return maximize(alexnet_random, "conv4:0-7", steps=64, size=SIZE, seed=0)


# ------------------------------------------------------------------ quality
def test_optimised_image_beats_noise_and_photos_and_is_selective(alexnet_random, batch8):
    units = batch8.units
    layer = Channel("conv4", tuple(range(256)))
    acts = _all_channels(alexnet_random, batch8.images)                      # [8 images, 256 units]
    photos = _all_channels(alexnet_random, _test_images())                   # [5, 256]
    noise = _all_channels(alexnet_random, torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)))
    # units differ in scale (random weights): compare in standard units of the reference images
    ref = torch.cat([photos, noise])
    z = (acts - ref.mean(0)) / ref.std(0)
    for i, unit in enumerate(units):
        mine = acts[i, unit]
        assert mine > noise[:, unit].max(), (unit, mine, noise[:, unit])
        assert mine > photos[:, unit].max(), (unit, mine, photos[:, unit])
        assert mine > batch8.record["activation_initial"][i]
        # selectivity: the image drives its own unit harder than most other units of the layer
        assert (z[i] < z[i, unit]).float().mean() > 0.9
        # and harder than the images made for the other units drive it
        others = [acts[j, unit] for j in range(len(units)) if j != i]
        assert mine > max(others)
    assert layer.layers == ("conv4",)


def _all_channels(model, images: torch.Tensor) -> torch.Tensor:
    from vistoolbox import FeatureExtractor

    with torch.no_grad(), FeatureExtractor(model, ["conv4"]) as fx:
        return fx(model.preprocessing.normalize(images))["conv4"].mean((2, 3))


def test_record_activation_final_is_the_saved_images_activation(alexnet_random, batch8, tmp_path):
    paths = batch8.save(tmp_path / "grid.png")
    assert len(paths) == 9
    reloaded = torch.cat([load_tensor(p) for p in paths[1:]])
    expected = measure(alexnet_random, Channel("conv4", tuple(batch8.units)), reloaded)
    assert np.allclose(batch8.record["activation_final"], expected, rtol=1e-4, atol=1e-6)
    assert np.allclose(_all_channels(alexnet_random, reloaded)[range(8), batch8.units].tolist(), expected, atol=1e-5)


def test_yosinski_pixel_loop_raises_activation(alexnet_random):
    res = maximize(alexnet_random, "conv4:5", preset="yosinski3", steps=12, size=SIZE, lr=2e4)
    assert res.record["activation_final"][0] > res.record["activation_initial"][0]
    assert res.record["settings"]["blur_radius"] == 1.0 and res.record["settings"]["decay"] == 1e-4


def test_negate_lowers_and_neuron_targets_the_centre(alexnet_random):
    low = maximize(alexnet_random, "conv4:6", negate=True, steps=16, size=SIZE)
    assert low.record["activation_final"][0] < low.record["activation_initial"][0]
    cen = maximize(alexnet_random, "conv4:3", neuron=True, steps=16, size=SIZE)
    assert cen.record["neuron"] == [1, 1]  # conv4 is 3x3 at 64 px
    assert cen.record["activation_final"][0] > cen.record["activation_initial"][0]


def test_logit_objective_with_an_extra_term(alexnet_random):
    res = maximize(alexnet_random, "fc8:5", preset="lucid", steps=8, size=SIZE, extra=0.01 * DeepDream("conv3"))
    assert res.record["objective"] == "channel(fc8, 5) + 0.01*(deepdream(conv3))"
    assert res.record["activation_final"][0] > res.record["activation_initial"][0]


def test_batch_unit_starts_like_the_single_unit(alexnet_random, batch8):
    single = maximize(alexnet_random, "conv4:3", steps=1, size=SIZE)
    assert single.record["activation_initial"][0] == pytest.approx(batch8.record["activation_initial"][3], rel=1e-5)


def test_dream_amplifies_the_layer(alexnet_random, astronaut):
    res = dream(alexnet_random, astronaut, "conv3", steps=6, size=SIZE, lr=8.0)
    assert res.images.shape == (1, 3, SIZE, SIZE)
    assert res.record["activation_final"][0] > 1.2 * res.record["activation_initial"][0]


# ------------------------------------------------------------------ regularizers
def _hf_energy(x: torch.Tensor) -> float:
    spec = torch.fft.fft2(x).abs() ** 2
    f = torch.fft.fftfreq(x.shape[-1]).abs()
    high = (f[:, None] > 0.25) | (f[None, :] > 0.25)
    return float(spec[..., high].sum())


def test_blur_lowers_high_frequencies_and_matches_scipy():
    from scipy.ndimage import gaussian_filter

    x = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 10
    y = x.clone()
    Blur(1.0, 4)(y, torch.zeros_like(y), step=0)
    assert _hf_energy(y) < 0.2 * _hf_energy(x)
    ref = np.stack([gaussian_filter(x[0, c].numpy(), sigma=1.0, mode="mirror", truncate=4.0) for c in range(3)])
    assert np.allclose(y[0].numpy(), ref, atol=1e-4)
    z = x.clone()
    Blur(1.0, 4)(z, torch.zeros_like(z), step=3)  # not a blur step
    assert torch.equal(z, x)


def test_norm_clip_zeroes_the_stated_percentile():
    x = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    norms = x.norm(dim=1).flatten(1)
    y = x.clone()
    NormClip(30)(y, torch.zeros_like(y), 0)
    zero = (y.abs().sum(1) == 0).flatten(1)
    for i in range(2):
        assert zero[i].float().mean().item() == pytest.approx(0.30, abs=1 / 400 + 1e-9)
        thr = np.percentile(norms[i].numpy(), 30)
        assert torch.equal(zero[i], norms[i] < thr)
    assert torch.equal(y[~zero.view(2, 1, 20, 20).expand_as(y)], x[~zero.view(2, 1, 20, 20).expand_as(x)])


def test_contribution_clip_zeroes_small_contributions():
    g = torch.Generator().manual_seed(2)
    x, grad = torch.randn(1, 3, 10, 10, generator=g), torch.randn(1, 3, 10, 10, generator=g)
    y = x.clone()
    ContribClip(90)(y, grad, 0)
    contrib = np.abs((grad * -x).sum(1).numpy().ravel())
    expected_zero = contrib < np.percentile(contrib, 90)
    zero = (y.abs().sum(1) == 0).numpy().ravel()
    assert (zero == expected_zero).all() and zero.sum() == 90


def test_decay_shrinks_and_progress_lr_hits_the_desired_gain():
    x = torch.ones(1, 3, 4, 4) * 5
    L2Decay(0.3)(x, torch.zeros_like(x), 0)
    assert torch.allclose(x, torch.full_like(x, 3.5))
    grad = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    lr = progress_lr(grad, desired=2.0, max_lr=1e8)
    gain = (lr * grad * grad).flatten(1).sum(1)
    assert torch.allclose(gain, torch.full((2,), 2.0))
    assert progress_lr(grad, desired=2.0, max_lr=1e-3).max() == pytest.approx(1e-3)


def test_gaussian_blur_preserves_constants():
    c = torch.full((1, 3, 9, 9), 7.0)
    assert torch.allclose(gaussian_blur(c, 2.0), c)


# ------------------------------------------------------------------ objectives and transforms
def test_objectives_match_brute_force():
    a = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(4))
    acts = {"L": a}
    units = (4, 0, 2)
    ch = Channel("L", units)(acts)
    assert torch.allclose(ch, torch.stack([a[i, u].mean() for i, u in enumerate(units)]))
    ne = Neuron("L", units)(acts)
    assert torch.allclose(ne, torch.stack([a[i, u, 2, 3] for i, u in enumerate(units)]))
    assert torch.allclose(Neuron("L", units, 1, 5)(acts), torch.stack([a[i, u, 1, 5] for i, u in enumerate(units)]))
    assert torch.allclose(DeepDream("L")(acts), (a ** 2).mean((1, 2, 3)))
    gram = [a[i].reshape(5, -1) @ a[i].reshape(5, -1).T for i in range(3)]
    cos = lambda p, q: float((p * q).sum() / (p.norm() * q.norm()))  # noqa: E731
    ref = [-sum(cos(gram[i], gram[j]) for j in range(3) if j != i) / 2 for i in range(3)]
    assert np.allclose(Diversity("L")(acts).tolist(), ref, atol=1e-5)
    combo = Channel("L", units) + 0.5 * Diversity("L") - Neuron("L", units)
    assert torch.allclose(combo(acts), ch + 0.5 * Diversity("L")(acts) - ne)
    assert torch.allclose((-Channel("L", units))(acts), -ch)
    fc = Channel("F", (1, 2, 0))({"F": a[:, :, 0, 0]})
    assert torch.allclose(fc, torch.stack([a[0, 1, 0, 0], a[1, 2, 0, 0], a[2, 0, 0, 0]]))


def test_transforms_are_seeded_and_sized():
    x = torch.rand(2, 3, 32, 32)
    t = lucid_transforms()
    a = t(x, torch.Generator().manual_seed(5))
    b = t(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert Jitter(8)(x, torch.Generator()).shape[-2:] == (24, 24)


# ------------------------------------------------------------------ determinism, CLI, sidecar
def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


BASE = ["maximize", "--model", "alexnet", "--weights", "random", "--quiet", "--size", str(SIZE)]


def test_same_seed_gives_identical_png_bytes(tmp_path, capsys):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _, err = _cli(BASE + ["--layer", "conv4", "--unit", "7", "--steps", "6", "--seed", str(seed),
                                    "--out", str(tmp_path / f"{name}.png")], capsys)
        assert code == 0, err
        runs.append((tmp_path / f"{name}.png").read_bytes())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("args, expected", [
    (["--layer", "conv4", "--unit", "256"], "valid: 0-255"),
    (["--layer", "fc8", "--unit", "3", "--neuron"], "spatial dimensions"),
    (["--layer", "conv4", "--unit", "1", "--preset", "nope"], "valid: lucid, distill, yosinski1"),
    (["--layer", "conv4", "--unit", "1", "--steps", "0"], "--steps must be at least 1"),
    (["--layer", "conv4", "--unit", "1", "--size", "16"], "too small for layer 'conv4'"),
    (["--layer", "conv4", "--unit", "1", "--neuron", "9,9"], "valid: 0-2,0-2"),
    (["--layer", "conv9", "--unit", "1"], "unknown layer 'conv9'"),
    (["--layer", "conv4", "--unit", "1", "--units", "2-3"], "exactly one of --unit"),
])
def test_cli_bad_input_is_one_line_exit_2(args, expected, capsys):
    code, out, err = _cli(BASE + args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


def test_cli_batch_writes_grid_units_and_full_sidecar(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, err = _cli(BASE + ["--layer", "conv4", "--units", "2-4", "--steps", "5", "--diversity", "0.5",
                                     "--seed", "9", "--out", str(out)], capsys)
    assert code == 0, err
    assert out.exists() and len(stdout.split()) == 4
    grid = json.loads(out.with_suffix(".json").read_text())
    assert grid["units"] == [2, 3, 4] and len(grid["history"]) == 5 and len(grid["history"][0]) == 3
    rec = json.loads((tmp_path / "grid" / "unit_0003.json").read_text())
    for key in ("model", "weights", "layer", "layer_canonical", "preset", "settings", "seed", "device",
                "torch_version", "activation_initial", "activation_final", "history", "objective", "size"):
        assert key in rec, key
    assert rec["unit"] == 3 and rec["seed"] == 9 and rec["device"] == "cpu" and rec["torch_version"] == torch.__version__
    from vistoolbox.actmax import DEFAULT_PRESET, PRESETS

    assert rec["preset"] == DEFAULT_PRESET and rec["settings"]["lr"] == PRESETS[DEFAULT_PRESET].lr
    assert rec["settings"]["steps"] == 5 and rec["diversity"] == 0.5
    assert "diversity(conv4)" in rec["objective"] and rec["layer_canonical"] == "features.8"
    assert len(rec["history"]) == 5 and isinstance(rec["activation_final"], float)


def network_run(path, model, seed=0):
    """A run folder of `model` with no mined layer yet (``maximize_layer`` writes only into a run of its own
    network): the manifest through the run-directory API."""
    from vistoolbox.rundir import write_manifest

    write_manifest(path, {**model.describe(), "seed": seed if model.weights == "random" else None, "layers": {}},
                   "complete", [], {})
    return path


def test_all_units_into_run_directory_resume(alexnet_random, tmp_path):
    run = network_run(tmp_path / "run", alexnet_random)
    first = maximize_layer(alexnet_random, "conv4", run, units=[0, 1, 2], batch=2, steps=2, size=SIZE)
    assert first == [maximize_path(run, "features.8", u) for u in (0, 1, 2)]
    assert all(p.with_suffix(".json").exists() for p in first)
    first[1].unlink()
    again = maximize_layer(alexnet_random, "conv4", run, units=[0, 1, 2], batch=2, steps=2, size=SIZE)
    assert again == [first[1]]


def test_ray_backend_writes_the_same_files_as_local(alexnet_random, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'vistoolbox[ray]')")
    local = maximize_layer(alexnet_random, "conv4", network_run(tmp_path / "local", alexnet_random), units=[0, 1, 2],
                           batch=2, steps=2, size=SIZE)
    try:
        remote = maximize_layer(alexnet_random, "conv4", network_run(tmp_path / "ray", alexnet_random), units=[0, 1, 2],
                                batch=2, steps=2,
                                size=SIZE, backend="ray")
    finally:
        ray.shutdown()
    assert sorted(p.name for p in remote) == [p.name for p in local]
    for path in local:
        twin = tmp_path / "ray" / path.relative_to(tmp_path / "local")
        assert twin.read_bytes() == path.read_bytes()
        assert json.loads(twin.with_suffix(".json").read_text())["activation_final"] == \
            json.loads(path.with_suffix(".json").read_text())["activation_final"]


def test_interrupt_keeps_the_image_so_far(alexnet_random):
    from vistoolbox.actmax import settings_for
    from vistoolbox.actmax.render import run_lucid, unit_generator

    def stop_at_3(step: int, act: torch.Tensor) -> None:
        if step == 3:
            raise KeyboardInterrupt

    obj = Channel("conv4", (2,))
    trace = run_lucid(alexnet_random, obj, obj, settings_for("lucid", steps=50, size=SIZE),
                      [unit_generator(0, 2)], 0, (SIZE, SIZE), callback=stop_at_3)
    assert trace.interrupted and len(trace.history) == 4
    assert not torch.equal(trace.images, trace.start)
    assert alexnet_random.module.features[0].weight.is_contiguous()  # layout restored


# ------------------------------------------------------------------ progress
@pytest.mark.parametrize("preset", ["lucid", "yosinski1"])
def test_progress_reports_every_step_and_snapshots(alexnet_random, preset):
    """`progress` sees each step's activation (= the record's history) and, every `snapshot_every`
    steps and at the end, the current images; the last snapshot is the result before 8-bit rounding."""
    infos: list[dict] = []
    result = maximize(alexnet_random, "conv2:1-2", preset=preset, steps=6, size=SIZE, seed=0,
                      progress=infos.append, snapshot_every=4)
    assert [i["step"] for i in infos] == list(range(1, 7)) and {i["steps_total"] for i in infos} == {6}
    assert [i["activation"] for i in infos] == result.record["history"]
    assert [i["step"] for i in infos if "images" in i] == [4, 6]
    last = infos[-1]["images"]
    assert last.shape == (2, 3, SIZE, SIZE) and 0 <= float(last.min()) and float(last.max()) <= 1
    assert torch.equal(last.mul(255).round().div(255), result.images)
    assert not torch.equal(infos[3]["images"], last)                      # a real preview of step 4
    quiet = maximize(alexnet_random, "conv2:1-2", preset=preset, steps=6, size=SIZE, seed=0)
    assert torch.equal(quiet.images, result.images)                        # watching changes nothing


def test_maximize_layer_progress_names_the_batch_and_overwrite_recomputes(alexnet_random, tmp_path):
    run = network_run(tmp_path / "run", alexnet_random)
    infos: list[dict] = []
    maximize_layer(alexnet_random, "conv2", run, units=[0, 1, 2], batch=2, steps=3, size=SIZE,
                   progress=infos.append, snapshot_every=3)
    assert [(i["units"], i["step"], i["units_done"]) for i in infos] == [
        ([0, 1], 1, 0), ([0, 1], 2, 0), ([0, 1], 3, 0), ([2], 1, 2), ([2], 2, 2), ([2], 3, 2)]
    assert {i["units_total"] for i in infos} == {3} and [i["step"] for i in infos if "images" in i] == [3, 3]
    path = maximize_path(run, "features.3", 2)
    before = json.loads(path.with_suffix(".json").read_text())
    assert maximize_layer(alexnet_random, "conv2", run, units=[2], steps=5, size=SIZE) == []   # cached
    assert maximize_layer(alexnet_random, "conv2", run, units=[2], steps=5, size=SIZE, overwrite=True) == [path]
    after = json.loads(path.with_suffix(".json").read_text())
    assert before["settings"]["steps"] == 3 and after["settings"]["steps"] == 5
