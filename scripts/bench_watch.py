"""Benchmark: the overhead of ``vistoolbox.watch`` on the training step of ``smallcnn`` — the bare
loop and the watched loop (``every`` = 1, 10, 50) side by side in one process, one thread,
alternating round by round; per-step medians over the rounds.

Each round trains `steps` Adam steps on seeded random batches (``[B, 3, 28, 28]``, 10 classes), once
bare and once per `every` inside ``watch(model, out=TMP, every=N, probe=P)`` (probe: `probe`
images; the log is fsync'd per record, as in a real run). Overhead = watched / bare − 1 per step (entering and leaving the watcher —
manifest, log, start record, once per run — is timed apart as ``enter_exit_ms``). Target:
≤ 10 % at every=50.

Usage: python scripts/bench_watch.py [--steps 200] [--rounds 5] [--batch-size 64] [--probe 64]
       [--every 1,10,50] [--threads 1]
The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import watch  # noqa: E402
from vistoolbox.small_cnn import SmallCNN  # noqa: E402


def run_loop(batches: list[tuple[torch.Tensor, torch.Tensor]], probe: torch.Tensor,
             every: int | None) -> tuple[float, float]:
    """Seconds per step of `len(batches)` training steps (watched every `every` steps, or bare), and
    the seconds entering and leaving the watcher took (manifest, log, start record; once per run)."""
    torch.manual_seed(0)
    model = SmallCNN(10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def steps(watcher=None) -> None:
        for x, y in batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if watcher is not None:
                watcher.step(loss=float(loss.detach()))

    with tempfile.TemporaryDirectory() as tmp:
        if every is None:
            start = time.perf_counter()
            steps()
            return (time.perf_counter() - start) / len(batches), 0.0
        begin = time.perf_counter()
        with watch(model, tmp, every=every, probe=probe) as watcher:
            start = time.perf_counter()
            steps(watcher)
            elapsed = time.perf_counter() - start
        return elapsed / len(batches), time.perf_counter() - begin - elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--every", default="1,10,50")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch_size, 3, 28, 28, generator=gen), torch.randint(0, 10, (args.batch_size,),
                                                                                     generator=gen))
               for _ in range(args.steps)]
    probe = torch.randn(args.probe, 3, 28, 28, generator=gen)
    everies = [int(e) for e in args.every.split(",") if e.strip()]
    run_loop(batches[:10], probe, None)  # warm-up
    run_loop(batches[:10], probe, 1)
    times: dict[str, list[float]] = {"bare": [], **{f"every={e}": [] for e in everies}}
    setup: list[float] = []
    ratios: dict[str, list[float]] = {f"every={e}": [] for e in everies}
    for _ in range(args.rounds):
        bare, _ = run_loop(batches, probe, None)
        times["bare"].append(bare)
        for e in everies:
            t, once = run_loop(batches, probe, e)
            setup.append(once)
            times[f"every={e}"].append(t)
            ratios[f"every={e}"].append(t / bare - 1)
    result = {"model": "smallcnn", "steps": args.steps, "rounds": args.rounds, "batch_size": args.batch_size,
              "probe": args.probe, "threads": args.threads,
              "step_ms": {k: round(1000 * statistics.median(v), 3) for k, v in times.items()},
              "enter_exit_ms": round(1000 * statistics.median(setup), 2),
              "overhead": {k: round(statistics.median(v), 4) for k, v in ratios.items()},
              "target": "overhead <= 0.10 at every=50",
              "meets_target": statistics.median(ratios["every=50"]) <= 0.10 if "every=50" in ratios else None}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
