"""Metrics: PSNR and SSIM against known values and scikit-image, flicker against its definition,
and the per-frame scores every report uses (eval, training validation, targets)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamdn.metrics import FlickerMeter, flicker, frame_scores, psnr, ssim


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The independent reference: scikit-image with the Wang et al. 2004 settings."""
    skm = pytest.importorskip("skimage.metrics")
    return float(skm.structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False,
                                           channel_axis=-1 if a.ndim == 3 else None))


def _structured(shape: tuple[int, int], seed: int) -> np.ndarray:
    """(H, W, 3) uint8: a colour ramp, a sharp-edged square, a sine grating and a little noise."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([40 + 150 * xx / w, 60 + 120 * yy / h, 128 + 80 * np.sin(xx / 3.0 + yy / 5.0)], -1)
    img[h // 4: h // 2, w // 3: 2 * w // 3] = (230, 20, 200)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


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


@pytest.mark.parametrize("shape", [(48, 64, 3), (48, 64), (33, 17, 3), (11, 11, 3)])
def test_ssim_matches_scikit_image_on_random_images(shape: tuple[int, ...]) -> None:
    a, b = _pair(shape)
    assert ssim(a, b) == pytest.approx(_skimage_ssim(a, b), abs=1e-9)


def _blurred(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (5, 5), 1.2)


def _shifted(img: np.ndarray) -> np.ndarray:
    return np.roll(img, (1, 2), axis=(0, 1))


def _darker(img: np.ndarray) -> np.ndarray:
    return (img * 0.7).astype(np.uint8)


def _noisy(img: np.ndarray) -> np.ndarray:
    return np.clip(img + np.random.default_rng(7).normal(0, 15, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("change", [_blurred, _shifted, _darker, _noisy])
@pytest.mark.parametrize("shape", [(40, 56), (37, 61)])
def test_ssim_matches_scikit_image_on_structured_images(shape: tuple[int, int], change) -> None:
    """Edges, ramps and textures under blur, a shift, a gain change and noise: the border pixels
    and the per-channel means must match the reference, not only the average of random pixels."""
    a = _structured(shape, seed=shape[0])
    b = change(a)
    want = _skimage_ssim(a, b)
    assert ssim(a, b) == pytest.approx(want, abs=1e-9)
    assert ssim(a, b) < 0.999       # the change is visible to the measure


def test_frame_scores_use_the_standard_ssim_and_flicker() -> None:
    """The per-frame figures behind training validation and the targets report are the same
    SSIM (scikit-image's Wang et al. settings) and flicker as `streamdn eval`."""
    clean = np.stack([_structured((40, 56), seed=s) for s in range(4)])
    out = np.stack([_noisy(c) for c in clean])
    got = frame_scores(list(clean), list(out))
    assert got["ssim"] == pytest.approx([_skimage_ssim(c, o) for c, o in zip(clean, out)], abs=1e-9)
    assert got["psnr"] == pytest.approx([psnr(c, o) for c, o in zip(clean, out)])
    assert math.isnan(got["flicker"][0])
    assert float(np.mean(got["flicker"][1:])) == pytest.approx(flicker(clean, out), rel=1e-6)
    by_hand = np.mean(np.abs((out[2].astype(float) - out[1]) - (clean[2].astype(float) - clean[1])))
    assert got["flicker"][2] == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match="3 outputs"):
        frame_scores(list(clean), list(out[:3]))


def test_training_validation_scores_with_the_same_metrics() -> None:
    from streamdn.data.clips import ValClip
    from streamdn.tools.train import score_clip

    clean = np.stack([_structured((40, 56), seed=s) for s in range(3)])
    out = [_blurred(c) for c in clean]
    got = score_clip(ValClip("c", clean, clean, "awgn20"), out)
    assert got["ssim"] == pytest.approx([_skimage_ssim(c, o) for c, o in zip(clean, out)], abs=1e-9)


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


def test_flicker_meter_keeps_its_own_copy_of_the_previous_frame() -> None:
    """A caller that reuses one buffer for every frame still gets the right figure."""
    rng = np.random.default_rng(2)
    clean = rng.integers(20, 200, (4, 12, 16, 3)).astype(np.uint8)
    test = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    meter, c_buf, t_buf = FlickerMeter(), np.empty_like(clean[0]), np.empty_like(test[0])
    for c, t in zip(clean, test):
        c_buf[:], t_buf[:] = c, t
        meter.add(c_buf, t_buf)
    assert meter.value == pytest.approx(flicker(clean, test), rel=1e-6) and meter.value > 1.0
