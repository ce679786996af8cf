"""Benchmark: our ``lucid`` loop vs torch-lucent's ``render_vis``, interleaved step by step.

Same model (deep-copied for Lucent, so its leaked hooks stay on its copy; its copy keeps
trainable parameters as a torchvision model has, since Lucent never freezes them), same
objective (pre-ReLU channel mean: our models have out-of-place ReLUs, so Lucent's hook sees the
conv output too), same 224 px Fourier/decorrelated image, Adam lr 0.05, same steps, and Lucent's
own ``standard_transforms`` on both sides. Lucent's ImageNet ``preprocess`` is off; both sides
append the model's own normalisation (Caffe-style for the ``hed`` VGG16). A 224 px image means
Lucent does not upsample. One thread. Lucent runs in a worker thread that hands control back at
the start of each of its steps, so the two sides alternate (A, B, A, B …) and each step is timed
alone; we report medians of per-step times and of per-step ratios (first step excluded).
Final images are judged by one shared function (``vistoolbox.actmax.measure``, our extractor).

Quality over many seeds (``--quality-seeds N``, no timing): the final activation varies a lot with
the random start, so each side also optimises N seeds as one batch (N independent images: Adam is
per-element and Lucent's batch objective is a mean, so batching only shares the transform draws
within a side) for ``--quality-steps`` steps, and we report every seed's final activation, both
medians and their ratio.

Usage: python scripts/bench_maximize.py [--steps-alexnet 128] [--steps-vgg 128]
                                        [--seeds-alexnet 0,1,2] [--seeds-vgg 0]
                                        [--quality-seeds 0] [--quality-steps 512]
                                        [--quality-first-seed 0] [--cases alexnet,vgg16]
                                        [--schedule-seeds 0,1,2,3,4,5,6,7]
                                        [--default-seeds 0,1,2,3,4,5,6,7 [--default-run RUN]
                                         [--plot PNG] [--default-model alexnet|vgg16] [--no-lucent]
                                         [--workers 1]]

Reduced time-to-quality case (``--schedule-seeds``): AlexNet ``conv4:12`` (random weights) only — the
``lucid`` preset against coarse-to-fine schedules, no Lucent side (see :func:`schedule_case`). VGG16
``conv4_3`` is left out: 512 ``lucid`` steps take about 6 minutes per seed on the 2-core machine.

Time to quality of the default preset (``--default-seeds``, optionally ``--default-run RUN`` for
plausibility and ``--plot PNG`` for the curves): AlexNet ``conv4:12`` (or ``--default-model vgg16``:
``conv4_3:12``), Lucent vs ``lucid`` vs the default, per seed (``--no-lucent``: without Lucent; see
:func:`default_case`).
The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import threading
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # this checkout's vistoolbox
# torch-lucent 0.1.8 pins kornia 0.4.1, which works on torch 2.14 but uses torch.jit.script at import
# (a FutureWarning per scripted function); silence exactly that, and kornia's own warnings.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", module=r"kornia(\..*)?")


def lucent_side(module, layer_name: str, unit: int, steps: int, normalize, size: int, gate):
    """Run Lucent's render_vis in this thread, pausing at the start of every step."""
    from lucent.optvis import param, render, transform

    def marker(x):
        gate.lucent_paused()
        return x

    transforms = [marker, *transform.standard_transforms, normalize]
    images = render.render_vis(module, f"{layer_name}:{unit}", param_f=lambda: param.image(size),
                               transforms=transforms, thresholds=(steps,), preprocess=False,
                               progress=False, show_image=False)
    gate.lucent_paused(final=True)
    return images


class Gate:
    """Baton between the main thread (ours) and Lucent's thread; times Lucent's steps."""

    def __init__(self) -> None:
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.started = 0.0
        self.lucent_times: list[float] = []
        self.result = None

    def lucent_paused(self, final: bool = False) -> None:
        now = time.perf_counter()
        if self.started:
            self.lucent_times.append(now - self.started)
        self.done.release()
        if not final:
            self.go.acquire()
            self.started = time.perf_counter()

    def lucent_step(self) -> None:
        self.go.release()
        self.done.acquire()


def run_case(model_name: str, weights: str, layer: str, unit: int, steps: int, seed: int, size: int = 224) -> dict:
    from vistoolbox import load_model
    from vistoolbox.actmax import Channel, measure, settings_for
    from vistoolbox.actmax.render import quantize, run_lucid, unit_generator
    from lucent.optvis import transform as ltransform

    model = load_model(model_name, weights)
    canonical = model.resolve(layer)
    # Lucent gets the model as a user hands it over: trainable parameters (torchvision's default),
    # but with our out-of-place ReLUs so that its hook sees the same pre-ReLU output we optimise.
    lucent_module = copy.deepcopy(model.module).requires_grad_(True)
    lucent_layer = canonical.replace(".", "_")
    torch.manual_seed(seed)
    np.random.seed(seed)

    gate = Gate()

    def lucent_thread() -> None:
        torch.set_num_threads(1)
        gate.result = lucent_side(lucent_module, lucent_layer, unit, steps, model.preprocessing.normalize, size, gate)

    worker = threading.Thread(target=lucent_thread, daemon=True)
    worker.start()
    gate.done.acquire()  # Lucent has built its image and waits before step 1

    ours_times: list[float] = []
    last = [time.perf_counter()]

    def callback(step: int, act: torch.Tensor) -> None:
        ours_times.append(time.perf_counter() - last[0])
        gate.lucent_step()
        last[0] = time.perf_counter()

    lucent_tf = ltransform.compose(list(ltransform.standard_transforms))
    objective = Channel(layer, (unit,))
    settings = settings_for("lucid", steps=steps, size=size)
    trace = run_lucid(model, objective, objective, settings, [unit_generator(seed, unit)], seed, (size, size),
                      callback=callback, transform=lambda x, g: lucent_tf(x))
    worker.join()
    lucent_image = torch.from_numpy(np.ascontiguousarray(gate.result[-1])).permute(0, 3, 1, 2).float()
    ours_final = measure(model, objective, quantize(trace.images))[0]
    lucent_final = measure(model, objective, quantize(lucent_image))[0]
    ours, theirs = ours_times[1:], gate.lucent_times[1:]
    ratios = [b / a for a, b in zip(ours, theirs)]
    return {"model": model_name, "weights": weights, "layer": layer, "canonical": canonical, "unit": unit,
            "size": size, "steps": steps, "ours_s_per_step": round(statistics.median(ours), 5),
            "lucent_s_per_step": round(statistics.median(theirs), 5),
            "speedup": round(statistics.median(theirs) / statistics.median(ours), 3),
            "median_step_ratio": round(statistics.median(ratios), 3),
            "ours_final": round(ours_final, 4), "lucent_final": round(lucent_final, 4),
            "activation_ratio": round(ours_final / lucent_final, 3) if lucent_final > 0 else None}


def quality_case(model_name: str, weights: str, layer: str, unit: int, steps: int, seeds: int,
                 first_seed: int = 0, size: int = 224) -> dict:
    """Final activations of `seeds` independent images per side (each side one batch): image seeds
    ``first_seed …``; numpy and torch are seeded with `first_seed` before each side (transform draws)."""
    from vistoolbox import load_model
    from vistoolbox.actmax import Channel, measure, settings_for
    from vistoolbox.actmax.render import quantize, run_lucid, unit_generator
    from lucent.optvis import param, render
    from lucent.optvis import transform as ltransform

    model = load_model(model_name, weights)
    objective = Channel(layer, (unit,))
    np.random.seed(first_seed)
    torch.manual_seed(first_seed)
    lucent_tf = ltransform.compose(list(ltransform.standard_transforms))
    start = time.perf_counter()
    trace = run_lucid(model, objective, objective, settings_for("lucid", steps=steps, size=size),
                      [unit_generator(seed, unit) for seed in range(first_seed, first_seed + seeds)], 0, (size, size),
                      transform=lambda x, g: lucent_tf(x))
    ours_s = time.perf_counter() - start
    np.random.seed(first_seed)  # each side starts from the same global RNG state, as if run alone
    torch.manual_seed(first_seed)
    lucent_module = copy.deepcopy(model.module).requires_grad_(True)
    start = time.perf_counter()
    images = render.render_vis(lucent_module, f"{model.resolve(layer).replace('.', '_')}:{unit}",
                               param_f=lambda: param.image(size, batch=seeds),
                               transforms=[*ltransform.standard_transforms, model.preprocessing.normalize],
                               thresholds=(steps,), preprocess=False, progress=False, show_image=False)
    lucent_s = time.perf_counter() - start
    lucent_images = torch.from_numpy(np.ascontiguousarray(images[-1])).permute(0, 3, 1, 2).float()
    ours = measure(model, objective, quantize(trace.images))
    lucent = measure(model, objective, quantize(lucent_images))
    med_ours, med_lucent = statistics.median(ours), statistics.median(lucent)
    return {"model": model_name, "weights": weights, "layer": layer, "unit": unit, "size": size, "steps": steps,
            "seeds": list(range(first_seed, first_seed + seeds)), "ours_finals": [round(v, 4) for v in ours],
            "lucent_finals": [round(v, 4) for v in lucent], "ours_median": round(med_ours, 4),
            "lucent_median": round(med_lucent, 4),
            "median_ratio": round(med_ours / med_lucent, 3) if med_lucent > 0 else None,
            "ours_s_per_step_batch": round(ours_s / steps, 4), "lucent_s_per_step_batch": round(lucent_s / steps, 4)}


#: Schedule case arms: name → ``maximize`` overrides (the default preset, then coarse-to-fine variants).
SCHEDULE_ARMS = {"default": {}, "c2f_0.5:0.75,1:0.25": {"schedule": "0.5:0.75,1:0.25"},
                 "c2f_0.5:0.75,1:0.25_half_steps": {"schedule": "0.5:0.75,1:0.25", "steps": 256}}


def schedule_case(model_name: str, weights: str, layer: str, unit: int, seeds: list[int]) -> dict:
    """A reduced time-to-quality case (no Lucent side): the ``lucid`` preset against coarse-to-fine
    schedules, arms interleaved per seed (A, B, C, A, B, C …), each run timed alone; per arm the
    median wall time and final activation (8-bit image, ``activation_final``) and both as ratios to
    the default (``speedup`` = default's time / the arm's)."""
    from vistoolbox import load_model
    from vistoolbox.actmax import maximize

    model = load_model(model_name, weights, quiet=True)
    runs: dict[str, list[dict]] = {name: [] for name in SCHEDULE_ARMS}
    for seed in seeds:
        for name, overrides in SCHEDULE_ARMS.items():
            start = time.perf_counter()
            result = maximize(model, f"{layer}:{unit}", preset="lucid", seed=seed, **overrides)
            runs[name].append({"seed": seed, "seconds": round(time.perf_counter() - start, 3),
                               "final": round(result.record["activation_final"][0], 4)})
            print(f"{model_name} {layer}:{unit} {name} seed {seed}: {runs[name][-1]}", flush=True)
    med = {name: (statistics.median(r["seconds"] for r in rows), statistics.median(r["final"] for r in rows))
           for name, rows in runs.items()}
    base_s, base_act = med["default"]
    arms = {name: {"overrides": SCHEDULE_ARMS[name], "median_seconds": round(sec, 3), "median_final": round(act, 4),
                   "speedup": round(base_s / sec, 3),
                   "final_ratio": round(act / base_act, 3) if base_act > 0 else None, "runs": runs[name]}
            for name, (sec, act) in med.items()}
    return {"model": model_name, "weights": weights, "layer": layer, "unit": unit, "preset": "lucid",
            "seeds": seeds, "arms": arms}


#: Steps between the checkpoints of the time-to-quality curves (each side's image measured there).
CHECKPOINT = 32


def lucent_run(model, layer: str, unit: int, steps: int, size: int, seed: int) -> tuple[list[torch.Tensor], float]:
    """Lucent's own ``render_vis`` as a user runs it (its standard transforms, its Adam lr 0.05):
    its images ``[1, 3, size, size]`` every :data:`CHECKPOINT` steps and its wall seconds."""
    from lucent.optvis import param, render
    from lucent.optvis import transform as ltransform

    np.random.seed(seed)
    torch.manual_seed(seed)
    module = copy.deepcopy(model.module).requires_grad_(True)
    start = time.perf_counter()
    images = render.render_vis(module, f"{model.resolve(layer).replace('.', '_')}:{unit}",
                               param_f=lambda: param.image(size),
                               transforms=[*ltransform.standard_transforms, model.preprocessing.normalize],
                               thresholds=tuple(range(CHECKPOINT, steps + 1, CHECKPOINT)), preprocess=False,
                               progress=False, show_image=False)
    seconds = time.perf_counter() - start
    return [torch.from_numpy(np.ascontiguousarray(i)).permute(0, 3, 1, 2).float() for i in images], seconds


def default_rows(model_name: str, weights: str, layer: str, unit: int, seeds: list[int],
                 run: str | None = None, lucent_side: bool = True) -> list[dict]:
    """The per-seed rows of :func:`default_case` (one thread; a worker process runs some seeds)."""
    torch.set_num_threads(1)
    from vistoolbox import load_model
    from vistoolbox.actmax import DEFAULT_PRESET, Channel, default_judge, maximize, measure
    from vistoolbox.actmax.quality import unit_plausibility
    from vistoolbox.actmax.render import quantize

    model = load_model(model_name, weights, quiet=True)
    objective = Channel(layer, (unit,))
    rows: list[dict] = []

    def row(arm: str, seed: int, seconds: float, images: list[torch.Tensor], steps: int, plaus) -> dict:
        acts = [measure(model, objective, quantize(image))[0] for image in images]
        curve = [(seconds * CHECKPOINT * (i + 1) / steps, act) for i, act in enumerate(acts)]
        return {"arm": arm, "seed": seed, "seconds": round(seconds, 3), "final": round(acts[-1], 4),
                "plausibility": plaus, "curve": curve}

    lucent: dict = {"seconds": None, "final": None}
    for seed in seeds:
        if lucent_side:
            images, seconds = lucent_run(model, layer, unit, 512, model.input_size, seed)
            plaus = unit_plausibility(run, layer, [unit], images[-1], default_judge(model))["plausibility"][0] if run else None
            lucent = row("lucent", seed, seconds, images, 512, plaus)
            rows.append(lucent)
        for preset in ("lucid", DEFAULT_PRESET):
            snaps: list[torch.Tensor] = []
            result = maximize(model, f"{layer}:{unit}", preset=preset, seed=seed, run=run, snapshot_every=CHECKPOINT,
                              progress=lambda info: snaps.append(info["images"]) if "images" in info else None)
            plaus = result.record.get("plausibility")
            rows.append(row(preset, seed, result.record["seconds"], snaps, result.record["steps_done"],
                            plaus[0] if isinstance(plaus, list) else plaus))
            print(f"{model_name} {layer}:{unit} seed {seed}: lucent {lucent['seconds']} s {lucent['final']}, "
                  f"{preset} {rows[-1]['seconds']} s {rows[-1]['final']} plausibility {rows[-1]['plausibility']}",
                  flush=True)
    return rows


def default_case(model_name: str, weights: str, layer: str, unit: int, seeds: list[int],
                 run: str | None = None, lucent_side: bool = True, workers: int = 1) -> dict:
    """Time to quality of the default preset: per seed, interleaved and each timed alone, Lucent's
    512-step ``render_vis`` (224 px), our old default ``lucid`` (512 steps, 224 px) and the new
    default (``DEFAULT_PRESET``). Every side's image is measured every :data:`CHECKPOINT` steps (8-bit,
    one shared ``measure``, no transforms) at the time its run had reached there (its seconds × the
    step's share; ours: the optimisation alone, not the plausibility judge). Reported per arm: the
    median curve (seconds, activation), medians of seconds and final activation, and with `run` (a
    mining run of `layer`) the plausibility of every final image and their median;
    ``speedup_vs_lucid``, ``final_ratio_vs_lucid``, ``plausibility_ratio_vs_lucid``;
    ``time_to_lucent_ratio`` = Lucent's median time / the time at which the new default's median curve
    first reaches Lucent's median final activation (None if it never does; ``reached`` counts the
    seeds whose own curve gets there); ``plausibility_ratio`` = the new default's median plausibility /
    Lucent's. Without `lucent_side` only ``lucid`` and the default run (VGG16 on a CPU: Lucent takes
    11 min a seed). `workers` > 1 splits the seeds over that many processes of one thread each (every
    seed's arms stay interleaved in one process), for a machine with that many idle cores."""
    from vistoolbox.actmax import DEFAULT_PRESET

    groups = [seeds[i::workers] for i in range(workers) if seeds[i::workers]]
    jobs = [(model_name, weights, layer, unit, group, run, lucent_side) for group in groups]
    if len(groups) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(len(groups)) as pool:
            parts = pool.starmap(default_rows, jobs)
            pool.close()
            pool.join()
        rows = [r for part in parts for r in part]
    else:
        rows = default_rows(*jobs[0])
    rows.sort(key=lambda r: r["seed"])
    arms: dict[str, dict] = {}
    for arm in ("lucent", "lucid", DEFAULT_PRESET) if lucent_side else ("lucid", DEFAULT_PRESET):
        mine = [r for r in rows if r["arm"] == arm]
        points = len(mine[0]["curve"])
        curve = [(round(statistics.median(r["curve"][i][0] for r in mine), 3),
                  round(statistics.median(r["curve"][i][1] for r in mine), 4)) for i in range(points)]
        arms[arm] = {"median_seconds": round(statistics.median(r["seconds"] for r in mine), 3),
                     "median_final": round(statistics.median(r["final"] for r in mine), 4),
                     "finals": [r["final"] for r in mine], "curve": curve}
        scores = [r["plausibility"] for r in mine if r["plausibility"] is not None]
        if scores:
            arms[arm]["plausibilities"] = scores
            arms[arm]["median_plausibility"] = round(statistics.median(scores), 4)
    target = arms["lucent"]["median_final"] if lucent_side else float("inf")
    reach = [next((t for t, act in r["curve"] if act >= target), None) for r in rows if r["arm"] == DEFAULT_PRESET]
    new, old = arms[DEFAULT_PRESET], arms["lucid"]
    median_reach = next((t for t, act in new["curve"] if act >= target), None)
    ratio = lambda a, b: round(a / b, 3) if a is not None and b else None  # noqa: E731
    return {"model": model_name, "weights": weights, "layer": layer, "unit": unit, "seeds": seeds,
            "default_preset": DEFAULT_PRESET, "workers": len(groups), "arms": arms,
            "speedup_vs_lucid": ratio(old["median_seconds"], new["median_seconds"]),
            "final_ratio_vs_lucid": ratio(new["median_final"], old["median_final"]) if old["median_final"] > 0 else None,
            "reached": f"{sum(t is not None for t in reach)}/{len(reach)}",
            "time_to_lucent_ratio": ratio(arms["lucent"]["median_seconds"], median_reach) if lucent_side else None,
            "plausibility_ratio": ratio(new.get("median_plausibility"), arms.get("lucent", {}).get("median_plausibility")),
            "plausibility_ratio_vs_lucid": ratio(new.get("median_plausibility"), old.get("median_plausibility"))}


def plot_curves(case: dict, path: str) -> None:
    """The median activation-vs-seconds curve of each arm of a :func:`default_case` (needs matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for arm, data in case["arms"].items():
        seconds, acts = zip(*data["curve"])
        ax.plot(seconds, acts, marker=".", label=f"{arm} (median of {len(case['seeds'])} seeds)")
    if "lucent" in case["arms"]:
        ax.axhline(case["arms"]["lucent"]["median_final"], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("seconds (one CPU thread)")
    ax.set_ylabel("activation (8-bit image)")
    ax.set_title(f"{case['model']} {case['layer']}:{case['unit']}: activation against time")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def aggregate(runs: list[dict]) -> dict:
    """One case over several seeds: medians of the per-seed numbers, and the runs themselves."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    ours, lucent = med("ours_s_per_step"), med("lucent_s_per_step")
    ratios = [r["ours_final"] / r["lucent_final"] for r in runs if r["lucent_final"] > 0]
    keep = ("model", "weights", "layer", "canonical", "unit", "size", "steps")
    return {**{k: runs[0][k] for k in keep}, "seeds": [r["seed"] for r in runs],
            "ours_s_per_step": round(ours, 5), "lucent_s_per_step": round(lucent, 5),
            "speedup": round(lucent / ours, 3), "median_step_ratio": round(med("median_step_ratio"), 3),
            "ours_final": round(med("ours_final"), 4), "lucent_final": round(med("lucent_final"), 4),
            "activation_ratio": round(statistics.median(ratios), 3) if len(ratios) == len(runs) else None,
            "ours_final_ge_lucent": sum(r["ours_final"] >= r["lucent_final"] for r in runs), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-alexnet", type=int, default=128)
    parser.add_argument("--steps-vgg", type=int, default=128)
    parser.add_argument("--seeds-alexnet", default="0,1,2", help="comma-separated seeds (empty: skip)")
    parser.add_argument("--seeds-vgg", default="0", help="comma-separated seeds (empty: skip)")
    parser.add_argument("--quality-seeds", type=int, default=0,
                        help="also compare final activations over this many seeds per side (batched)")
    parser.add_argument("--quality-steps", type=int, default=512)
    parser.add_argument("--quality-first-seed", type=int, default=0,
                        help="first image seed of the quality batch (also seeds the transform draws)")
    parser.add_argument("--cases", default="alexnet,vgg16", help="which models to run (comma-separated)")
    parser.add_argument("--schedule-seeds", default="",
                        help="comma-separated seeds for the reduced time-to-quality case on AlexNet conv4:12 "
                             "(default preset vs coarse-to-fine; empty: skip)")
    parser.add_argument("--default-seeds", default="",
                        help="comma-separated seeds for the time-to-quality case of the default preset on "
                             "--default-model's unit (Lucent, lucid and the default, interleaved; empty: skip)")
    parser.add_argument("--default-run", default=None,
                        help="a mining run of the default case's layer, for the plausibility of each side")
    parser.add_argument("--plot", default=None, help="PNG of the default case's activation-vs-seconds curves")
    parser.add_argument("--default-model", default="alexnet", choices=["alexnet", "vgg16"],
                        help="the default case's model: AlexNet (random) conv4:12 or VGG16 (hed) conv4_3:12")
    parser.add_argument("--no-lucent", action="store_true", help="the default case without the Lucent side")
    parser.add_argument("--workers", type=int, default=1,
                        help="the default case's seeds split over this many one-thread processes (idle cores)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plan = [("alexnet", "random", "conv4", args.steps_alexnet, args.seeds_alexnet),
            ("vgg16", "hed", "conv4_3", args.steps_vgg, args.seeds_vgg)]
    plan = [case for case in plan if case[0] in args.cases.split(",")]
    cases = []
    for model, weights, layer, steps, seeds in plan:
        runs = []
        for seed in (int(v) for v in seeds.split(",") if v.strip()):
            run = {"seed": seed, **run_case(model, weights, layer, 12, steps, seed)}
            print(f"{model} {layer}:12 seed {seed}  ours {run['ours_s_per_step']:.4f} s/step  lucent "
                  f"{run['lucent_s_per_step']:.4f} s/step  speedup {run['speedup']}x  final "
                  f"{run['ours_final']} vs {run['lucent_final']}", flush=True)
            runs.append(run)
        if runs:  # an empty seed list skips the timed case
            cases.append(aggregate(runs))
    quality = []
    for model, weights, layer, _, _ in plan if args.quality_seeds > 0 else ():
        result = quality_case(model, weights, layer, 12, args.quality_steps, args.quality_seeds,
                              args.quality_first_seed)
        print(f"{model} {layer}:12 over seeds {result['seeds']}, {result['steps']} steps: median final "
              f"{result['ours_median']} (ours) vs {result['lucent_median']} (Lucent)", flush=True)
        quality.append(result)
    seeds = [int(v) for v in args.schedule_seeds.split(",") if v.strip()]
    schedule = [schedule_case("alexnet", "random", "conv4", 12, seeds)] if seeds else []
    seeds = [int(v) for v in args.default_seeds.split(",") if v.strip()]
    model_case = {"alexnet": ("alexnet", "random", "conv4"), "vgg16": ("vgg16", "hed", "conv4_3")}[args.default_model]
    default = ([default_case(*model_case, 12, seeds, args.default_run, not args.no_lucent, max(1, args.workers))]
               if seeds else [])
    if default and args.plot:
        plot_curves(default[0], args.plot)
    print(json.dumps({"torch": torch.__version__, "threads": 1, "cases": cases,
                      **({"quality": quality} if quality else {}), **({"schedule": schedule} if schedule else {}),
                      **({"default": default} if default else {})}))


if __name__ == "__main__":
    main()
