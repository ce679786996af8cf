"""Average Drop, Increase in Confidence and ROAD against hand computations on a tiny model whose
probabilities are written out here; the imputation against linear systems solved by hand."""
from __future__ import annotations

import math

import pytest
import torch

from vistoolbox import cam, load_model
from vistoolbox.attribution import metrics

from tests.attribution.tiny_models import FILE

#: A model whose logits are the mean of each colour channel: p(class c) = softmax(mean R, mean G, mean B)[c].
def mean_colour_probability(x: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.mean((2, 3)), 1)[torch.arange(x.shape[0]), torch.zeros(x.shape[0], dtype=torch.long)]


def by_hand(pixels: list[list[float]]) -> float:
    """p(class 0) for an image whose channel means are given, with exp written out."""
    means = [sum(channel) / len(channel) for channel in pixels]
    return math.exp(means[0]) / sum(math.exp(m) for m in means)


def test_average_drop_and_increase_by_hand():
    # one 1x2 image: R = (2, 0), G = (0, 1), B = (0, 0); the map keeps pixel 0 fully and pixel 1 not at all
    x = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    saliency = torch.tensor([[[5.0, 1.0]]])  # min-max: (1, 0)
    got = metrics.average_drop(mean_colour_probability, x, saliency)
    base = by_hand([[2, 0], [0, 1], [0, 0]])
    masked = by_hand([[2, 0], [0, 0], [0, 0]])
    assert masked > base  # removing green raised red's probability
    assert got["drop"] == pytest.approx([max(base - masked, 0) / (base + 1e-7)]) and got["increase"] == [1.0]
    flipped = metrics.average_drop(mean_colour_probability, x, torch.tensor([[[1.0, 5.0]]]))  # keeps pixel 1
    masked = by_hand([[0, 0], [0, 1], [0, 0]])
    assert flipped["drop"] == pytest.approx([(base - masked) / (base + 1e-7)]) and flipped["increase"] == [0.0]


def test_imputation_one_pixel_is_the_weighted_mean_of_its_neighbours():
    image = torch.arange(9, dtype=torch.float64).reshape(1, 3, 3) ** 2
    removed = torch.zeros(3, 3, dtype=torch.bool)
    removed[1, 1] = True
    got = metrics.impute(image, removed, noise=0)
    v = image[0]
    orth = v[0, 1] + v[1, 0] + v[1, 2] + v[2, 1]
    diag = v[0, 0] + v[0, 2] + v[2, 0] + v[2, 2]
    expected = (orth / 6 + diag / 12) / (4 / 6 + 4 / 12)
    assert float(got[0, 1, 1]) == pytest.approx(float(expected))
    assert torch.equal(got[0][~removed], image[0][~removed])


def test_imputation_two_neighbours_solve_together():
    # a 1x3 strip, the middle and right pixel removed: m = (a/6 + r/6)/(2/6), r = m (its only neighbour)
    # → m = (a + r)/2 and r = m → m = r = a
    image = torch.tensor([[[4.0, 100.0, -7.0]]], dtype=torch.float64)
    removed = torch.tensor([[False, True, True]])
    got = metrics.impute(image, removed, noise=0)
    assert got[0, 0].tolist() == pytest.approx([4.0, 4.0, 4.0])
    # a 1x4 strip with both ends known: the two inside pixels interpolate linearly
    image = torch.tensor([[[0.0, 50.0, 50.0, 3.0]]], dtype=torch.float64)
    got = metrics.impute(image, torch.tensor([[False, True, True, False]]), noise=0)
    assert got[0, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_road_removes_the_ranked_pixels_and_measures_each():
    x = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    saliency = torch.arange(20.0).reshape(1, 4, 5)
    got = metrics.road(mean_colour_probability, x, saliency, percents=(10, 50), seed=0)
    # by hand: MoRF removes the highest-ranked pixels (the last ones), LeRF the first ones
    generator = torch.Generator().manual_seed(0)
    for name in ("morf", "lerf"):
        expected = []
        for q in (10, 50):
            count = round(20 * q / 100)
            removed = torch.zeros(20, dtype=torch.bool)
            removed[(range(20 - count, 20) if name == "morf" else range(count))] = True
            expected.append(float(mean_colour_probability(
                metrics.impute(x[0], removed.view(4, 5), generator=generator)[None], None)[0]))
        assert got[name][0] == pytest.approx(expected)
    assert got["road_gap"][0] == pytest.approx(sum(got["lerf"][0]) / 2 - sum(got["morf"][0]) / 2)


def test_cam_metrics_use_the_softmax_of_the_target_class():
    model = load_model(f"{FILE}:cnn", "random", seed=2, input_size=32)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    result = cam(model, images, "features.5", target="class:3", metrics=True)
    x = model.preprocessing.normalize(images)
    up = result.upsampled
    low, high = up.flatten(1).min(1).values, up.flatten(1).max(1).values
    masked = x * ((up - low[:, None, None]) / (high - low)[:, None, None])[:, None]
    with torch.no_grad():
        base = torch.softmax(model.module(x), 1)[:, 3]
        after = torch.softmax(model.module(masked), 1)[:, 3]
    for i, row in enumerate(result.record["images"]):
        assert row["metrics"]["drop"] == pytest.approx(float((base[i] - after[i]).clamp_min(0) / (base[i] + 1e-7)),
                                                       rel=1e-4, abs=1e-6)
        assert row["metrics"]["increase"] == float(after[i] > base[i])
        assert len(row["metrics"]["road_morf_curve"]) == 9
    summary = result.record["metrics"]
    assert summary["average_drop"] == pytest.approx(sum(r["metrics"]["drop"] for r in result.record["images"]) / 2)
    again = cam(model, images, "features.5", target="class:3", metrics=True)
    assert again.record["metrics"] == summary  # ROAD's noise is seeded
