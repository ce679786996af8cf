"""Benchmark `vis mine`: (a) plain forward pass to the deepest mined layer vs (b) mining every conv
layer (top-9 + statistics), on the same decoded batches of 10× `--images` real photos, interleaved
batch by batch, medians over repeats, one thread; then the peak memory of a whole `mine` run (loader included, no patches) over
1× and 10× `--images`, each in a fresh process.

    python scripts/bench_mine.py [--images 24] [--batch-size 8] [--repeats 3]

Last line: {"cases": [{"model", "forward_img_per_s", "mine_img_per_s", "throughput_ratio",
"peak_mb_1x", "peak_mb_10x", ...}]}
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vistoolbox import FeatureExtractor, load_model  # noqa: E402
from vistoolbox.mining.datasets import Transform, discover_images, make_loader  # noqa: E402
from vistoolbox.mining.pipeline import layer_entries, resolve_layers
from vistoolbox.mining.topk import MiningState  # noqa: E402

CASES = [("alexnet", 224), ("vgg16", 128)]


def write_dataset(folder: Path, count: int) -> Path:
    """`count` real photos (scikit-image crops, JPEG) in `folder`."""
    from PIL import Image
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera()]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        src = sources[i % len(sources)]
        top, left = (13 * i) % 80, (29 * i) % 80
        Image.fromarray(src[top:top + 300, left:left + 300]).convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def throughput(model_name: str, size: int, folder: Path, batch_size: int, repeats: int) -> dict:
    model = load_model(model_name, "random", seed=0, input_size=size)
    layers = resolve_layers(model, model.layers_of_type(nn.Conv2d))
    entries = layer_entries(model, layers, size)
    images = discover_images(folder)
    transform = Transform(round(size * 256 / 224), size)
    # the same decoded batches for both: decoding is common to both and not what is compared
    batches = [(idx, model.preprocessing.normalize(px.float() / 255), ok)
               for idx, px, ok in make_loader(images, transform, range(len(images)), batch_size)]
    deepest = layers[-1]

    def one_pass() -> tuple[float, float]:
        """Forward and mining alternate batch by batch (fine interleaving cancels load swings)."""
        state = MiningState.empty({n: e["units"] for n, e in entries.items()}, 9)
        t_forward = t_mine = 0.0
        with FeatureExtractor(model, [deepest]) as plain, FeatureExtractor(model, layers) as fx, torch.no_grad():
            for idx, x, ok in batches:
                start = time.perf_counter()
                plain(x)
                t_forward += time.perf_counter() - start
                start = time.perf_counter()
                feats = fx(x)
                for name in layers:
                    state.layers[name].update(feats[name], idx, ok)
                t_mine += time.perf_counter() - start
        return t_forward, t_mine

    full = batches
    batches = full[:1]
    one_pass()  # warm-up on one batch
    batches = full
    t_forward, t_mine = [], []
    for _ in range(repeats):
        forward_s, mine_s = one_pass()
        t_forward.append(forward_s)
        t_mine.append(mine_s)
    n = len(images)
    f, m = n / statistics.median(t_forward), n / statistics.median(t_mine)
    return {"model": model_name, "input_size": size, "layers": len(layers), "images": n,
            "batch_size": batch_size, "forward_img_per_s": round(f, 3), "mine_img_per_s": round(m, 3),
            "throughput_ratio": round(m / f, 4)}


# Peak resident memory of the mining phase: the kernel's high-water mark (VmHWM) is reset to the
# current RSS after the model is built (write "5" to /proc/self/clear_refs), so the peak of model
# construction does not mask the mining; it includes the model's own resident memory.
MEMORY_CHILD = """
import gc, resource, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from vistoolbox import load_model
from vistoolbox.mining import mine
model = load_model({name!r}, "random", seed=0, input_size={size})
gc.collect()
try:
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
mine(model, {folder!r}, {out!r}, layers=[n for n in model.layers_of_type(torch.nn.Conv2d)],
     batch_size={batch}, patches=False, quiet=True)
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(int(hwm) / 1024)
except (OSError, IndexError):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_mb(name: str, size: int, folder: Path, out: Path, batch_size: int) -> float:
    code = MEMORY_CHILD.format(root=str(ROOT), name=name, size=size, folder=str(folder), out=str(out),
                               batch=batch_size)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        small = write_dataset(Path(tmp) / "x1", args.images)
        large = write_dataset(Path(tmp) / "x10", 10 * args.images)
        for name, size in CASES:
            # throughput over the 10× set: a long stream, as in real use (the first batches all
            # enter the top-k; later ones rarely do)
            case = throughput(name, size, large, args.batch_size, args.repeats)
            case["peak_mb_1x"] = peak_mb(name, size, small, Path(tmp) / f"{name}_1x", args.batch_size)
            case["peak_mb_10x"] = peak_mb(name, size, large, Path(tmp) / f"{name}_10x", args.batch_size)
            print(json.dumps(case), file=sys.stderr, flush=True)
            cases.append(case)
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
