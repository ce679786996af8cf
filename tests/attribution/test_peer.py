"""The maps against pytorch-grad-cam (the `grad-cam` package, a bench extra) where the method is the
same maths: correlation ≥ 0.999 on a small CNN, a small ViT and a channels-last model (their
reshape_transforms written here)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vistoolbox import cam, load_model

from tests.attribution.tiny_models import FILE

gradcam_lib = pytest.importorskip("pytorch_grad_cam", reason="grad-cam (pytorch-grad-cam) is not installed: "
                                                           "pip install grad-cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

PEERS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
         "layercam": "LayerCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}
CASES = {"cnn": "features.5", "vit": "encoder.layers.encoder_layer_1.ln_1", "hwc": "mix"}


def vit_reshape(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[:, 1:, :].reshape(tensor.shape[0], 4, 4, tensor.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("method", sorted(PEERS))
def test_same_maths_same_map(kind, method):
    if method == "ablationcam" and kind != "cnn":
        pytest.skip("not the same maths: pytorch-grad-cam sets an ablated unit that can be negative (a LayerNorm "
                    "or Linear output) to min - 1e7, not to 0 as the paper and vistoolbox do; after a ReLU (the CNN) both agree")
    model = load_model(f"{FILE}:{kind}", "random", seed=1, input_size=32)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ours = cam(model, images, CASES[kind], target="class:2", method=method).upsampled.numpy()
    module = copy.deepcopy(model.module).requires_grad_(True)  # as a user hands it its model
    extra = {"vit": {"reshape_transform": vit_reshape},
             "hwc": {"reshape_transform": lambda t: t.permute(0, 3, 1, 2)}}.get(kind, {})
    peer = getattr(gradcam_lib, PEERS[method])(model=module, target_layers=[module.get_submodule(CASES[kind])],
                                               **extra)
    theirs = peer(input_tensor=model.preprocessing.normalize(images), targets=[ClassifierOutputTarget(2)] * 2)
    for a, b in zip(ours, theirs):
        assert a.std() > 0 and b.std() > 0
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.999
