"""vis mine: exact streaming top-k against brute force, patches, skipped files, resume, shards, views."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vistoolbox import FeatureExtractor, load_model, open_run
from vistoolbox.mining.datasets import Transform, discover_images
from vistoolbox.errors import VisUsageError
from vistoolbox.images import resize_center_crop
from vistoolbox.mining.pipeline import layer_entries, merge_runs, mine, resolve_layers
from vistoolbox.mining.positions import DEFAULT_MIN_INSIDE, eligible_masks
from vistoolbox.mining.stream import mine_indices
from vistoolbox.mining.topk import HIST_EDGES, MiningState, UnitTopK

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is in tests/mining)
SIZE = 64          # crop the models see: small, so everything runs in seconds
RESIZE = 72


def _crops(count: int) -> list[np.ndarray]:
    """Real photos from scikit-image, cut into distinct crops of varied shape (some grayscale)."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera(), data.coins()]
    crops = []
    for i in range(count):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        size = 90 + 17 * (i % 5)
        top, left = (37 * i) % (h - size), (53 * i) % (w - size)
        crop = src[top:top + size, left:left + size + 10 * (i % 3)]
        crops.append(crop)
    return crops


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """22 real images (PNG and JPEG, in sub-folders), one garbage .png, one truncated .jpg and a
    non-image file (ignored)."""
    root = tmp_path_factory.mktemp("images")
    for i, crop in enumerate(_crops(22)):
        folder = root / ("b" if i % 4 == 0 else "a")
        folder.mkdir(exist_ok=True)
        if i % 2:
            Image.fromarray(crop).save(folder / f"img_{i:02d}.png")
        else:
            Image.fromarray(crop).convert("RGB").save(folder / f"img_{i:02d}.jpg", quality=92)
    (root / "a" / "img_05_garbage.png").write_bytes(b"this is not a PNG file at all")
    buf = io.BytesIO()
    Image.fromarray(_crops(1)[0]).save(buf, format="JPEG")
    (root / "b" / "img_09_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (root / "a" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def alexnet():
    return load_model("alexnet", "random", seed=0, input_size=SIZE)


def _reference_pixels(path: Path) -> np.ndarray | None:
    """The preprocessed image, decoded independently of the mining code (None if unreadable)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except Exception:  # noqa: BLE001
        return None
    return np.asarray(resize_center_crop(img, RESIZE, SIZE)).transpose(2, 0, 1).copy()


def eligible_by_counting(model, layer: str, size: int, min_inside: float) -> np.ndarray:
    """The eligible positions of a layer, by counting the pixels of each position's field that fall
    on a `size`² image (independent of the library's area formula); no position reaching
    `min_inside` → those with the largest share."""
    from vistoolbox.features.layers import layer_field

    shape, field = layer_field(model, layer, size)
    pad = max(field.size) + max(field.stride) * max(shape[1:])
    canvas = np.zeros((size + 2 * pad, size + 2 * pad), bool)
    canvas[pad:pad + size, pad:pad + size] = True
    share = np.zeros(shape[1:])
    for y in range(shape[1]):
        for x in range(shape[2]):
            r, c = pad + field.offset[0] + y * field.stride[0], pad + field.offset[1] + x * field.stride[1]
            share[y, x] = canvas[r:r + field.size[0], c:c + field.size[1]].mean()
    return share >= min(min_inside, share.max()) - 1e-12


def brute_force(model, root: Path, paths: list[str], layer: str, k: int, min_inside: float = DEFAULT_MIN_INSIDE):
    """Top-k by sorting every (image, unit) spatial maximum over the eligible positions: value desc,
    then image index asc."""
    pixels = [_reference_pixels(root / p) for p in paths]
    valid = [i for i, p in enumerate(pixels) if p is not None]
    batch = torch.from_numpy(np.stack([pixels[i] for i in valid])).float() / 255
    with torch.no_grad(), FeatureExtractor(model, [layer]) as fx:
        acts = fx(model.preprocessing.normalize(batch))[layer].numpy()
    if acts.ndim == 2:
        maxima, ys, xs = acts, -np.ones_like(acts, dtype=np.int64), -np.ones_like(acts, dtype=np.int64)
    else:
        mask = eligible_by_counting(model, layer, batch.shape[-1], min_inside).ravel()
        flat = np.where(mask, acts.reshape(acts.shape[0], acts.shape[1], -1), -np.inf)
        pos = flat.argmax(axis=2)  # first maximum in row-major order
        maxima, ys, xs = flat.max(axis=2), pos // acts.shape[3], pos % acts.shape[3]
    index = np.array(valid)
    out = {key: [] for key in ("values", "image_index", "y", "x")}
    for unit in range(maxima.shape[1]):
        order = np.lexsort((index, -maxima[:, unit]))[:k]
        out["values"].append(maxima[order, unit])
        out["image_index"].append(index[order])
        out["y"].append(ys[order, unit])
        out["x"].append(xs[order, unit])
    return {key: np.stack(value) for key, value in out.items()}, maxima, valid


def assert_topk_matches(got: dict, ref: dict, maxima: np.ndarray, valid: list[int], rtol: float = 1e-5) -> None:
    """Equal to the brute force: values to float tolerance; image indices and (y, x) exactly, except
    where two candidates are closer than the conv's float noise (a different batch size may
    legitimately change their last bits and hence their order)."""
    np.testing.assert_allclose(got["values"], ref["values"], rtol=rtol, atol=rtol)
    row = {index: i for i, index in enumerate(valid)}
    for unit, rank in zip(*np.nonzero(got["image_index"] != ref["image_index"])):
        mine_value = maxima[row[int(got["image_index"][unit, rank])], unit]
        assert abs(mine_value - ref["values"][unit, rank]) <= rtol * (1 + abs(mine_value)), (unit, rank)
    same = got["image_index"] == ref["image_index"]
    np.testing.assert_array_equal(got["y"][same], ref["y"][same])
    np.testing.assert_array_equal(got["x"][same], ref["x"][same])
    assert (got["image_index"] == ref["image_index"]).mean() > 0.99


# --------------------------------------------------------------------------- top-k core
@pytest.mark.parametrize("batch_size, min_inside", [(1, DEFAULT_MIN_INSIDE), (5, 0.0), (24, 0.5), (24, 1.0)])
def test_topk_equals_brute_force_for_any_batch_size_and_policy(alexnet, dataset, batch_size, min_inside):
    images = discover_images(dataset)
    layers = resolve_layers(alexnet, ["conv1", "conv2", "conv5", "fc8"])
    entries = layer_entries(alexnet, layers, SIZE)
    state = mine_indices(alexnet, images, Transform(RESIZE, SIZE), MiningState.empty({n: e["units"] for n, e in entries.items()}, 4),
                         range(len(images)), batch_size=batch_size, workers=2 if batch_size == 5 else 0,
                         quiet=True, eligible=eligible_masks(entries, SIZE, min_inside))
    for layer in layers:
        ref, maxima, valid = brute_force(alexnet, images.root, images.paths, layer, 4, min_inside)
        got = state.layers[layer].topk_file()
        assert_topk_matches(got, ref, maxima, valid)
        stats = state.layers[layer].stats_file(state.seen)
        np.testing.assert_allclose(stats["mean_max"], maxima.mean(0), atol=2.0 ** -16)
        np.testing.assert_array_equal(stats["frac_active"], (maxima > 0).mean(0))
        assert stats["hist_counts"].sum(1).tolist() == [maxima.shape[0]] * maxima.shape[1]
    assert state.seen == len(images) - 2


def _brute_ties(values: np.ndarray, k: int):
    index = np.arange(values.shape[0])
    return np.stack([index[np.lexsort((index, -values[:, u]))[:k]] for u in range(values.shape[1])])


def test_exact_ties_break_toward_lower_image_index_whatever_the_split():
    gen = torch.Generator().manual_seed(0)
    # 40 images, 6 units, values from a tiny set so most candidates tie exactly; 3x3 maps with ties
    acts = torch.randint(0, 3, (40, 6, 3, 3), generator=gen).float()
    maxima = acts.flatten(2).max(2).values.numpy()
    expected = _brute_ties(maxima, 5)
    first_pos = acts.flatten(2).argmax(2).numpy()  # torch's first-occurrence rule
    for splits in ([40], [1] * 40, [7, 13, 20], [39, 1]):
        topk, start = UnitTopK.empty(6, 5), 0
        for size in splits:
            topk.update(acts[start:start + size], torch.arange(start, start + size))
            start += size
        np.testing.assert_array_equal(topk.index.numpy(), expected)
        np.testing.assert_array_equal(topk.values.numpy(), np.take_along_axis(maxima.T, expected, 1))
        flat_first = np.stack([acts.flatten(2)[expected[u], u].numpy().argmax(1) for u in range(6)])
        np.testing.assert_array_equal(topk.y.numpy() * 3 + topk.x.numpy(), flat_first)
        assert (first_pos >= 0).all()
    # merging disjoint halves (in either order) gives the same as streaming everything
    a, b = UnitTopK.empty(6, 5), UnitTopK.empty(6, 5)
    a.update(acts[:17], torch.arange(17))
    b.update(acts[17:], torch.arange(17, 40))
    for merged in (a.merge(b), b.merge(a)):
        np.testing.assert_array_equal(merged.index.numpy(), expected)
        edges = HIST_EDGES
        bins = np.clip(np.searchsorted(edges[1:-1], maxima, side="right"), 0, len(edges) - 2)
        hist = np.stack([np.bincount(bins[:, u], minlength=len(edges) - 1) for u in range(6)])
        np.testing.assert_array_equal(merged.hist.numpy(), hist)


def test_fewer_images_than_k_leave_empty_slots():
    topk = UnitTopK.empty(2, 4)
    topk.update(torch.tensor([[1.0, 2.0], [3.0, 0.5]]), torch.tensor([0, 1]))
    assert topk.index.tolist() == [[1, 0, -1, -1], [0, 1, -1, -1]]
    assert topk.y.tolist()[0] == [-1, -1, -1, -1]
    assert np.isneginf(topk.values.numpy()[:, 2:]).all()


# --------------------------------------------------------------------------- run directory
@pytest.fixture(scope="module")
def run(alexnet, dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    return mine(alexnet, dataset, out, layers=["conv1", "conv5", "fc8"], k=4, resize=RESIZE, crop=SIZE,
                batch_size=8, quiet=True)


def test_run_directory_manifest_and_skipped_files(run, dataset, alexnet):
    opened = open_run(run)
    manifest = opened.manifest
    assert manifest["status"] == "complete" and opened.complete
    assert manifest["model"] == "alexnet" and manifest["weights"] == "random" and manifest["k"] == 4
    assert list(manifest["layers"]) == ["features.0", "features.10", "classifier.6"]
    assert manifest["layers"]["features.10"]["aliases"] == ["conv5"]
    assert opened.resolve("conv5") == "features.10"
    assert manifest["preprocessing"]["crop"] == SIZE and manifest["preprocessing"]["resize"] == RESIZE
    assert manifest["dataset"]["root"] == str(dataset.resolve()) and len(manifest["dataset"]["fingerprint"]) == 64
    assert manifest["dataset"]["kind"] == "imagefolder" and manifest["dataset"]["classes"] == ["a", "b"]
    counts = manifest["counts"]
    assert counts["skipped"] == 2 and counts["seen"] == 22 and counts["images"] == 24
    assert sorted(counts["skipped_paths"]) == ["a/img_05_garbage.png", "b/img_09_truncated.jpg"]
    assert "a/notes.txt" not in opened.images
    skipped = {opened.images.index(p) for p in counts["skipped_paths"]}
    for layer in opened.layers:
        topk = opened.topk(layer)
        assert topk["values"].dtype == np.float32 and topk["image_index"].dtype == np.int64
        assert topk["values"].shape == (manifest["layers"][layer]["units"], 4)
        assert not skipped & set(topk["image_index"].ravel().tolist())
        assert (np.diff(topk["values"], axis=1) <= 0).all()
        stats = opened.stats(layer)
        assert stats["hist_counts"].shape == (topk["values"].shape[0], len(stats["hist_edges"]) - 1)
        assert (stats["hist_counts"].sum(1) == 22).all()
    assert "versions" in manifest and manifest["versions"]["torch"] == torch.__version__
    assert not (run / "checkpoint.npz").exists()


def test_patches_are_the_unit_box_padded_with_the_mean_colour(run, alexnet):
    from vistoolbox.features.layers import layer_field
    from vistoolbox.features.receptive import unit_box

    opened = open_run(run, trust_dataset=True)
    mean_u8 = np.round(np.array(alexnet.preprocessing.mean) * 255).astype(np.uint8)
    padded_seen = 0
    for alias in ("conv1", "conv5"):
        _, field = layer_field(alexnet, alias, SIZE)
        topk = opened.topk(alias)
        for unit in (0, 7, 31):
            for rank in range(4):
                image = _reference_pixels(opened.image_path(int(topk["image_index"][unit, rank])))
                box = unit_box(field, int(topk["y"][unit, rank]), int(topk["x"][unit, rank]), (SIZE, SIZE))
                patch = np.asarray(Image.open(opened.patch(alias, unit, rank))).transpose(2, 0, 1)
                assert patch.shape[1:] == tuple(field.size)
                # rows/cols r of the patch are input rows offset + y*stride + r
                r0 = field.offset[0] + int(topk["y"][unit, rank]) * field.stride[0]
                c0 = field.offset[1] + int(topk["x"][unit, rank]) * field.stride[1]
                for r in range(0, field.size[0], 5):
                    for c in range(0, field.size[1], 5):
                        inside = 0 <= r0 + r < SIZE and 0 <= c0 + c < SIZE
                        want = image[:, r0 + r, c0 + c] if inside else mean_u8
                        assert patch[:, r, c].tolist() == want.tolist()
                        padded_seen += not inside
                np.testing.assert_array_equal(
                    patch[:, box.pad_top:box.pad_top + box.bottom - box.top, box.pad_left:box.pad_left + box.right - box.left],
                    image[:, box.top:box.bottom, box.left:box.right])
            grid = Image.open(opened.patch(alias, unit))
            assert grid.size == (2 * field.size[1] + 2, 2 * field.size[0] + 2)  # k = 4: a 2×2 montage
    assert padded_seen > 0  # conv5's field (163 px) is larger than the 64 px image
    fc = opened.topk("fc8")
    assert (fc["y"] == -1).all() and (fc["x"] == -1).all()
    whole = np.asarray(Image.open(opened.patch("fc8", 3, 0))).transpose(2, 0, 1)
    np.testing.assert_array_equal(whole, _reference_pixels(opened.image_path(int(fc["image_index"][3, 0]))))
    # fc hits refer to one stored copy of each image: no file per unit, no montage (1000 units × 4 hits)
    assert not (run / "layers" / "classifier.6" / "patches").exists()
    stored = sorted(int(p.stem.split("_")[1]) for p in (run / "inputs").glob("img_*.png"))
    assert stored == sorted(set(fc["image_index"].ravel().tolist())) and len(stored) <= 22
    assert opened.patch("fc8", 3, 0) == run.resolve() / "inputs" / f"img_{int(fc['image_index'][3, 0]):06d}.png"


def test_text_file_dataset_lists_missing_paths_as_skipped(alexnet, dataset, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{dataset / 'a' / 'img_01.png'}\n# comment\n{dataset / 'b' / 'img_00.jpg'}\n"
                       f"{dataset / 'a' / 'missing.png'}\n")
    out = mine(alexnet, listing, tmp_path / "run", layers=["conv1"], k=2, resize=RESIZE, crop=SIZE,
               patches=False, quiet=True)
    manifest = open_run(out).manifest
    assert open_run(out).images == ["a/img_01.png", "b/img_00.jpg", "a/missing.png"]
    assert manifest["dataset"]["kind"] == "list" and manifest["dataset"]["root"] == str(dataset.resolve())
    assert manifest["counts"]["skipped_paths"] == ["a/missing.png"] and manifest["counts"]["seen"] == 2
    assert set(open_run(out).topk("conv1")["image_index"].ravel()) == {0, 1}


def test_other_model_or_dataset_in_existing_out_is_refused(run, alexnet, dataset, tmp_path):
    other = load_model("alexnet", "random", seed=1, input_size=SIZE)
    with pytest.raises(VisUsageError, match="different"):
        mine(other, dataset, run, layers=["conv1", "conv5", "fc8"], k=4, resize=RESIZE, crop=SIZE, seed=1, quiet=True)
    with pytest.raises(VisUsageError, match="different dataset"):
        mine(alexnet, dataset, run, layers=["conv1", "conv5", "fc8"], k=4, resize=RESIZE, crop=SIZE, limit=5, quiet=True)
    with pytest.raises(VisUsageError, match="different preprocessing"):
        mine(alexnet, dataset, run, layers=["conv1", "conv5", "fc8"], k=4, resize=80, crop=SIZE, quiet=True)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(VisUsageError, match="not a vistoolbox run"):
        mine(alexnet, dataset, tmp_path / "x", layers=["conv1"], quiet=True)
    # --overwrite replaces a different run
    copy = tmp_path / "copy"
    mine(alexnet, dataset, copy, layers=["conv1"], k=2, resize=RESIZE, crop=SIZE, limit=4, patches=False, quiet=True)
    mine(other, dataset, copy, layers=["conv1"], k=2, resize=RESIZE, crop=SIZE, limit=4, patches=False, seed=1,
         overwrite=True, quiet=True)
    assert open_run(copy).manifest["seed"] == 1


# --------------------------------------------------------------------------- resume, shards
def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _same_runs(a: Path, b: Path) -> None:
    ta, tb = _tree(a / "layers"), _tree(b / "layers")
    assert ta.keys() == tb.keys()
    different = [name for name in ta if ta[name] != tb[name]]
    assert not different, different[:5]
    assert (a / "images.json").read_bytes() == (b / "images.json").read_bytes()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vistoolbox.cli", *args]


def test_killed_run_resumes_to_an_identical_result(alexnet, dataset, tmp_path):
    common = ["mine", "--model", "alexnet", "--weights", "random", "--input-size", str(SIZE), "--dataset",
              str(dataset), "--layers", "conv1,conv5", "--k", "2", "--resize", str(RESIZE), "--crop", str(SIZE),
              "--batch-size", "2", "--limit", "12", "--checkpoint-every", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(killed)), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (killed / "checkpoint.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = MiningState.load(killed / "checkpoint.npz")
    assert 0 < state.done < 12, "the kill must land mid-run"
    assert json.loads((killed / "manifest.json").read_text())["status"] == "running"
    done = subprocess.run(_cli(*common, "--out", str(killed)), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    clean = mine(alexnet, dataset, tmp_path / "clean", layers=["conv1", "conv5"], k=2, resize=RESIZE, crop=SIZE,
                 batch_size=2, limit=12, quiet=True)
    _same_runs(killed, clean)
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (killed, clean))
    assert ma == mb and ma["status"] == "complete"
    assert not (killed / "checkpoint.npz").exists()


def test_shards_merge_to_the_unsharded_run(alexnet, dataset, tmp_path):
    kwargs = dict(layers=["conv2", "fc8"], k=3, resize=RESIZE, crop=SIZE, batch_size=3, patches=False, quiet=True)
    full = mine(alexnet, dataset, tmp_path / "full", **kwargs)  # patches after a merge: tests/test_mine_cli.py
    shards = [mine(alexnet, dataset, tmp_path / f"s{i}", shard=(i, 3), **kwargs) for i in (2, 0, 1)]
    assert open_run(shards[0]).manifest["shard"] == {"index": 2, "count": 3}
    with pytest.raises(VisUsageError, match="missing"):
        merge_runs(shards[:2], tmp_path / "bad", quiet=True)
    merged = merge_runs(shards, tmp_path / "merged", patches=False, quiet=True)
    _same_runs(full, merged)
    ma, mb = open_run(full).manifest, open_run(merged).manifest
    assert ma == mb


def test_hed_vgg16_conv5_3_small(hed_vgg16, dataset, tmp_path):
    out = mine(hed_vgg16, dataset, tmp_path / "hed", layers=["conv5_3"], k=3, resize=RESIZE, crop=SIZE,
               limit=8, patches=False, quiet=True)
    opened = open_run(out)
    assert opened.layers == ["features.28"] and "conv5_3" in opened.aliases("features.28")
    ref, maxima, valid = brute_force(hed_vgg16, Path(opened.manifest["dataset"]["root"]), opened.images,
                                     "conv5_3", 3)
    assert_topk_matches(opened.topk("conv5_3"), ref, maxima, valid, rtol=1e-4)


def test_with_views_writes_cropped_deconv_and_guided_patches(alexnet, dataset, tmp_path):
    from vistoolbox.features.views import batch_views
    from vistoolbox.images import to_pil
    from vistoolbox.features.layers import layer_field
    from vistoolbox.features.receptive import unit_box

    out = mine(alexnet, dataset, tmp_path / "views", layers=["conv1"], k=2, resize=RESIZE, crop=SIZE, limit=4,
               views="guided,deconv", quiet=True)
    opened = open_run(out, trust_dataset=True)
    assert opened.manifest["views"] == ["deconv", "guided"]
    topk = opened.topk("conv1")
    _, field = layer_field(alexnet, "conv1", SIZE)
    unit, rank = 17, 1
    y, x = int(topk["y"][unit, rank]), int(topk["x"][unit, rank])
    image = torch.from_numpy(_reference_pixels(opened.image_path(int(topk["image_index"][unit, rank])))).float() / 255
    box = unit_box(field, y, x, (SIZE, SIZE))
    for mode in ("deconv", "guided"):
        # the whole-image view, cut to the field; contrast: 99.5th percentile ('higher') of the field's pixels
        view = batch_views(alexnet, image[None], "conv1", [unit], [y], [x], [mode], windowed=False)[mode][0]
        inner = view[:, box.top:box.bottom, box.left:box.right]
        magnitude = np.sort(inner.abs().amax(0).numpy().ravel())
        scale = magnitude[int(np.ceil(0.995 * (magnitude.size - 1)))]
        shown = (inner / (2 * scale) + 0.5).clamp(0, 1)
        want = np.full((3, *box.full_size), 128, dtype=np.uint8)
        crop = np.asarray(to_pil(shown)).transpose(2, 0, 1)
        want[:, box.pad_top:box.pad_top + crop.shape[1], box.pad_left:box.pad_left + crop.shape[2]] = crop
        got = np.asarray(Image.open(opened.patch("conv1", unit, rank, mode))).transpose(2, 0, 1)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert not opened.patch("conv1", unit, rank, "backprop").exists()
