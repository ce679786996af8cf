"""Feed-forward stylizer vs optimisation-based style transfer (Gatys et al.) at 512×512 on this CPU.

Speed: ms per 512×512 image for ``stylize`` (one generator pass) versus seconds for
``transfer_style`` (L-BFGS on the pixels, vgg16/hed), timed interleaved in one process with
``torch.set_num_threads(1)``; medians over `--rounds`. The optimisation is run for
`--transfer-steps` steps per round; its seconds per step (loss evaluation) come from its own
record (optimisation only, without the one-off style/content targets) and are extrapolated to
its default 300 steps.

Quality: both outputs (plus the unstylised photo as a reference) are scored by one judge that is
neither method's training loss: StyleLoss on vgg16/hed with Gatys et al.'s layers (style
relu1_1…relu5_1, content relu4_2), normalised terms, weights 1. The optimisation result scored here
runs `--quality-steps` steps (fewer than its default, to fit the machine: stated in the output).

Usage::

    python scripts/bench_stylize.py --stylizer stylizer.pt --style STYLE.png [--content photo.png]

The last line printed is JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model, load_stylizer, load_tensor, stylize  # noqa: E402
from vistoolbox.images import resize_center_crop, save_png, to_tensor  # noqa: E402
from vistoolbox.style.losses import StyleLoss  # noqa: E402
from vistoolbox.weights import sha256_file  # noqa: E402
from vistoolbox.style.transfer import transfer_style  # noqa: E402

SIZE = 512
JUDGE_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
JUDGE_CONTENT = "relu4_2"


def content_image(path: str | None) -> torch.Tensor:
    """The 512×512 content photo: a file (centre-cropped) or scikit-image's astronaut."""
    if path:
        from vistoolbox.images import open_image

        return to_tensor(resize_center_crop(open_image(path), SIZE, SIZE))
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylizer", required=True, help="a file from vis train-stylizer")
    parser.add_argument("--style", required=True, help="the style image it was trained on")
    parser.add_argument("--content", default=None, help="content photo (default: scikit-image astronaut)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stylize-runs", type=int, default=2, help="stylize calls per round")
    parser.add_argument("--transfer-steps", type=int, default=2, help="optimisation steps timed per round")
    parser.add_argument("--quality-steps", type=int, default=20, help="optimisation steps of the scored result")
    parser.add_argument("--out", default=None, help="folder for the two 512×512 outputs (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    stylizer = load_stylizer(args.stylizer)
    sha_ok = stylizer.style.get("sha256") == sha256_file(args.style)
    model = load_model("vgg16", "hed", quiet=True)
    content = content_image(args.content)
    style = load_tensor(args.style)

    def run_transfer(steps: int):
        result = transfer_style(model, content, style, size=SIZE, steps=steps, seed=0)
        return result.images, result.record

    stylize(stylizer, content)  # warm-up
    ff_ms: list[float] = []
    tr_step_s: list[float] = []
    tr_total_s: list[float] = []
    for _ in range(args.rounds):  # interleaved: the machine's noise hits both alike
        for _ in range(args.stylize_runs):
            seconds, _ = timed(lambda: stylize(stylizer, content))
            ff_ms.append(seconds * 1000)
        seconds, (_, record) = timed(lambda: run_transfer(args.transfer_steps))
        tr_step_s.append(record["stages"][0]["s_per_step"])  # optimisation only, per loss evaluation
        tr_total_s.append(seconds)

    fast = stylize(stylizer, content)
    quality_s, (optimised, record) = timed(lambda: run_transfer(args.quality_steps))
    judge = StyleLoss(model, JUDGE_STYLE, JUDGE_CONTENT, content_weight=1.0, style_weight=1.0, tv_weight=0.0)
    judge.set_style([torch.nn.functional.interpolate(style, scale_factor=SIZE / max(style.shape[-2:]),
                                                     mode="bilinear", antialias=True, align_corners=False)])
    judge.set_content(content)
    scores = {}
    with torch.no_grad():
        for name, image in (("photo", content), ("stylize", fast), ("transfer", optimised)):
            _, terms = judge(image.clamp(0, 1))
            scores[name] = {"content": round(terms["content"].item(), 4), "style": round(terms["style"].item(), 4)}
    if args.out:
        save_png(fast, Path(args.out) / "stylize_512.png")
        save_png(optimised, Path(args.out) / "transfer_512.png")

    ms = statistics.median(ff_ms)
    step_s = statistics.median(tr_step_s)
    result = {
        "size": SIZE, "threads": 1, "device": "cpu", "stylizer_steps": stylizer.steps,
        "stylizer_config": stylizer.config.to_dict(), "style_matches_stylizer": sha_ok,
        "stylize_ms_per_image": round(ms, 1), "stylize_ms_all": [round(v, 1) for v in ff_ms],
        "transfer_s_per_step": round(step_s, 2), "transfer_s_per_step_all": [round(v, 2) for v in tr_step_s],
        "transfer_s_per_run_of_timed_steps": [round(v, 2) for v in tr_total_s],
        "transfer_s_default_300_steps_extrapolated": round(step_s * 300, 1),
        "speedup_vs_300_step_transfer": round(step_s * 300 / (ms / 1000), 1),
        "quality_transfer_steps": args.quality_steps, "quality_transfer_s": round(quality_s, 1),
        "quality_transfer_s_per_step": round(record["stages"][0]["s_per_step"], 2),
        "judge": {"model": "vgg16/hed", "style_layers": list(JUDGE_STYLE), "content_layer": JUDGE_CONTENT,
                  "normalized": True},
        "losses": scores,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
