"""The Transfer tab's fast mode: time of one request (the real ``/_dash-update-component`` callback:
load the content at the chosen size, ``stylize``, write the PNG) versus ``stylize`` alone on the same
tensor, at several sizes, with a default-architecture generator (width 32, 5 residual blocks; its
speed does not depend on the trained values, so random weights are used).

Interleaved rounds, medians, ``torch.set_num_threads(1)``. Usage::

    python scripts/bench_dashboard_fast.py [--sizes 256 512] [--rounds 5]

The last line printed is JSON.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox.dashboard import create_app, stylizers  # noqa: E402
from vistoolbox.dashboard.jobs import resolve_pick  # noqa: E402
from vistoolbox.dashboard.uploads import cached_path  # noqa: E402
from vistoolbox import load_tensor, save_stylizer, stylize  # noqa: E402
from vistoolbox.style.generator import GeneratorConfig, StyleGenerator  # noqa: E402
from vistoolbox.style.stylizer import Stylizer  # noqa: E402


def request_body(content: dict, key: str, size: int, strength: float) -> dict:
    """The fast-mode callback as the browser sends it."""
    outputs = [{"id": "fast-result", "property": "src"}, {"id": "fast-status", "property": "children"}]
    values = {"transfer-mode": "fast", "tr-content-images": content, "stylizer-select": key,
              "stylizer-strength": strength, "stylizer-size": size}
    props = {"tr-content-images": "data"}
    return {"output": "..fast-result.src...fast-status.children..", "outputs": outputs,
            "inputs": [{"id": k, "property": props.get(k, "value"), "value": v} for k, v in values.items()],
            "changedPropIds": ["stylizer-strength.value"], "state": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-fast-"))
    torch.manual_seed(0)
    save_stylizer(Stylizer(generator=StyleGenerator(GeneratorConfig()).eval(), style={"name": "random.png"}),
                  root / "stylizers" / "random.pt")
    app = create_app([], "alexnet", "random", cache_dir=root / "cache", stylizers_dir=root / "stylizers")
    ctx = app.vis_context
    client = app.server.test_client()
    key = stylizers.find_stylizers(ctx)[0][0].key
    found = stylizers.lookup(ctx, key)
    content = {"keys": [resolve_pick(ctx, "sample:astronaut")]}     # 512×512 photo
    source = cached_path(ctx, content["keys"][0])
    times: dict[int, dict[str, list[float]]] = {s: {"request": [], "stylize": []} for s in args.sizes}
    for round_ in range(args.rounds + 1):                              # round 0 warms up
        for size in args.sizes:
            image = load_tensor(source, size=size)
            start = time.perf_counter()
            stylize(found.stylizer, image, strength=0.8)
            alone = time.perf_counter() - start
            start = time.perf_counter()
            response = client.post("/_dash-update-component", json=request_body(content, key, size, 0.8))
            request = time.perf_counter() - start
            assert response.status_code == 200 and "done in" in json.dumps(response.get_json()), response.data
            if round_:
                times[size]["stylize"].append(alone)
                times[size]["request"].append(request)
    result = {"threads": 1, "rounds": args.rounds, "generator": GeneratorConfig().to_dict(),
              "sizes": {str(s): {"request_ms": round(1000 * statistics.median(t["request"]), 1),
                                 "stylize_ms": round(1000 * statistics.median(t["stylize"]), 1)}
                        for s, t in times.items()}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
