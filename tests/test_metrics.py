"""Metrics: PSNR and SSIM against known values and scikit-image, flicker against its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamdn.metrics import FlickerMeter, flicker, psnr, ssim


def _pair(shape: tuple[int, ...], sigma: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_known_values() -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)   # MSE 1
    assert psnr(a, a + 10) == pytest.approx(20 * math.log10(25.5), abs=1e-9)
    with pytest.raises(ValueError):
        psnr(a, a[:4])


@pytest.mark.parametrize("shape", [(48, 64, 3), (48, 64), (33, 17, 3)])
def test_ssim_matches_scikit_image(shape: tuple[int, ...]) -> None:
    skm = pytest.importorskip("skimage.metrics")
    a, b = _pair(shape)
    ref = skm.structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, channel_axis=-1 if len(shape) == 3 else None)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_ssim_known_values() -> None:
    a, b = _pair((48, 64, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert ssim(a, b) < ssim(a, _pair((48, 64, 3), sigma=5.0)[1]) < 1.0
    with pytest.raises(ValueError):
        ssim(a[:8, :8], b[:8, :8])


def test_flicker_definition() -> None:
    rng = np.random.default_rng(1)
    clean = rng.integers(20, 200, (5, 12, 16, 3)).astype(np.uint8)
    assert flicker(clean, clean) == 0.0
    assert flicker(clean, clean + 7) == 0.0        # a constant offset does not flicker
    d = np.array([3, -3, 3, -3, 3], np.int16)[:, None, None, None]
    assert flicker(clean, (clean + d).astype(np.uint8)) == pytest.approx(6.0)
    test = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    meter = FlickerMeter()
    for c, t in zip(clean, test):
        meter.add(c, t)
    assert meter.value == pytest.approx(flicker(clean, test), rel=1e-6)
