"""Universal style transforms (AdaIN, WCT) against direct NumPy computations of their statistics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vistoolbox import VisUsageError
from vistoolbox.style.universal import adain, feature_stats, wct, wct_apply


def _features(n, c, h, w, seed, scale=1.0):
    """Correlated, non-centred features (a random mixing of channels), like a conv layer's."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g)
    raw = torch.randn(n, c, h * w, generator=g)
    offset = torch.randn(n, c, 1, generator=g) * 3
    return (scale * (mix @ raw + offset)).reshape(n, c, h, w)


def _np_mean_cov(features: torch.Tensor):
    """Per image: channel mean and biased covariance, computed directly in NumPy."""
    f = features.double().numpy().reshape(features.shape[0], features.shape[1], -1)
    means = f.mean(2)
    covs = np.stack([np.cov(x, bias=True) for x in f])
    return means, covs


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_wct_gives_the_style_mean_and_covariance(scale):
    content = _features(2, 6, 9, 11, seed=0, scale=scale)
    style = _features(2, 6, 7, 13, seed=1, scale=scale)   # another size: statistics, not positions
    out = wct(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    got_mean, got_cov = _np_mean_cov(out)
    want_mean, want_cov = _np_mean_cov(style)
    ref = np.abs(want_cov).max()
    assert np.abs(got_mean - want_mean).max() <= 1e-4 * max(1.0, np.abs(want_mean).max())
    assert np.abs(got_cov - want_cov).max() <= 1e-4 * ref


def test_wct_keeps_the_content_structure_and_one_style_serves_a_batch():
    content = _features(3, 5, 8, 8, seed=2)
    style = _features(1, 5, 10, 10, seed=3)
    out = wct(content, style)
    want_mean, want_cov = _np_mean_cov(style)
    for i in range(3):
        got_mean, got_cov = _np_mean_cov(out[i:i + 1])
        assert np.allclose(got_mean, want_mean, atol=1e-4) and np.allclose(got_cov, want_cov, atol=1e-4 * 30)
    # whitening then colouring is a linear map of the centred content: reconstruct it in NumPy
    f = content[0].double().numpy().reshape(5, -1)
    fc = f - f.mean(1, keepdims=True)
    lam, e = np.linalg.eigh(fc @ fc.T / fc.shape[1])
    white = e @ np.diag((lam + 1e-5) ** -0.5) @ e.T @ fc
    s = style[0].double().numpy().reshape(5, -1)
    ls, es = np.linalg.eigh(np.cov(s, bias=True))
    want = es @ np.diag(np.sqrt(np.clip(ls, 0, None))) @ es.T @ white + s.mean(1, keepdims=True)
    assert np.allclose(out[0].double().numpy().reshape(5, -1), want, atol=1e-4)


def test_adain_gives_the_style_mean_and_std():
    content = _features(2, 7, 6, 9, seed=4, scale=10)
    style = _features(2, 7, 12, 5, seed=5, scale=10)
    out = adain(content, style)
    o = out.double().numpy().reshape(2, 7, -1)
    s = style.double().numpy().reshape(2, 7, -1)
    assert np.allclose(o.mean(2), s.mean(2), atol=1e-4)
    assert np.allclose(o.std(2), s.std(2), rtol=1e-4)
    # per channel it is an affine map of the content: correlation 1 with it
    c = content.double().numpy().reshape(2, 7, -1)
    assert np.allclose([np.corrcoef(c[0, k], o[0, k])[0, 1] for k in range(7)], 1.0, atol=1e-9)


@pytest.mark.parametrize("transform", [adain, wct])
def test_alpha_blends_with_the_content(transform):
    content, style = _features(1, 4, 6, 6, seed=6), _features(1, 4, 6, 6, seed=7)
    assert torch.equal(transform(content, style, alpha=0.0), content)
    full = transform(content, style)
    half = transform(content, style, alpha=0.25)
    assert torch.allclose(half, 0.25 * full + 0.75 * content, atol=1e-5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(VisUsageError, match="alpha"):
            transform(content, style, alpha=bad)


def test_statistics_merge_over_tiles_and_masks_select_positions():
    f = _features(1, 4, 10, 12, seed=8)
    whole = feature_stats(f)
    parts = feature_stats(f[..., :5]).merge(feature_stats(f[..., 5:]))
    assert torch.allclose(whole.cov, parts.cov, atol=1e-9) and torch.allclose(whole.mean, parts.mean, atol=1e-12)
    mask = torch.zeros(1, 1, 10, 12)
    mask[..., 3:] = 1
    masked = feature_stats(f, mask)
    _, cov = _np_mean_cov(f[..., 3:])
    assert np.allclose(masked.cov.numpy(), cov, atol=1e-9)
    style = _features(1, 4, 9, 9, seed=9)
    assert torch.allclose(wct_apply(f, whole, feature_stats(style)), wct(f, style))
    with pytest.raises(VisUsageError, match="channels-first"):
        wct(torch.rand(4, 4), style)
