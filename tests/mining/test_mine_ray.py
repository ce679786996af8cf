"""--backend ray on a local 2-worker Ray cluster equals the local backend exactly."""
from __future__ import annotations


import numpy as np
import torch
from PIL import Image

from vistoolbox import load_model, open_run
from vistoolbox.mining import mine
from vistoolbox.mining.shards import slices


def test_slices_are_cut_on_batch_boundaries():
    assert slices(range(10), 3, 2) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert slices(range(5), 2, 9) == [[0, 1], [2, 3], [4]]
    assert slices(range(4, 12), 4, 1) == [list(range(4, 12))]


def test_ray_backend_equals_local(ray_cluster, tmp_path):
    from skimage import data

    root = tmp_path / "images"
    root.mkdir()
    for i, picture in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera()]):
        for j in range(2):
            Image.fromarray(picture[40 * j:40 * j + 160, :160]).save(root / f"p{i}_{j}.png")
    (root / "broken.png").write_bytes(b"nope")
    model = load_model("alexnet", "random", seed=0, input_size=64)
    kwargs = dict(layers=["conv2", "fc8"], k=3, resize=72, crop=64, batch_size=2, patches=False, quiet=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each Ray task runs one torch thread: compare like with like
    try:
        local = open_run(mine(model, root, tmp_path / "local", **kwargs))
    finally:
        torch.set_num_threads(threads)
    distributed = open_run(mine(model, root, tmp_path / "ray", backend="ray", ray_tasks=2, **kwargs))
    assert ray_cluster.cluster_resources().get("CPU") == 2
    for layer in local.layers:
        for name, reader in (("topk", "topk"), ("stats", "stats")):
            a, b = getattr(local, reader)(layer), getattr(distributed, reader)(layer)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{layer} {name} {key}")
    assert local.manifest == distributed.manifest
    assert distributed.manifest["counts"]["skipped_paths"] == ["broken.png"]
