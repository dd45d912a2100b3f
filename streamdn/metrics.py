"""Quality metrics on 8-bit images against a clean reference: PSNR, SSIM and a temporal-flicker
figure (the evaluation's three numbers)."""

from __future__ import annotations

import cv2
import numpy as np

# Wang et al. 2004 constants, with the 11x11 Gaussian window of sigma 1.5 that scikit-image
# uses for gaussian_weights=True (truncate 3.5 -> radius 5).
_SSIM_K1, _SSIM_K2, _SSIM_SIGMA, _SSIM_RADIUS = 0.01, 0.03, 1.5, 5


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB.

    Args:
        reference, test: same-shape arrays (e.g. (H, W, 3) uint8 BGR), values in [0, peak].
        peak: the white level.

    Returns:
        10 log10(peak^2 / MSE); inf for identical inputs.
    """
    if reference.shape != test.shape:
        raise ValueError(f"psnr: shapes differ: {reference.shape} vs {test.shape}")
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(peak * peak / mse))


def _blur(x: np.ndarray) -> np.ndarray:
    k = 2 * _SSIM_RADIUS + 1
    return cv2.GaussianBlur(x, (k, k), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004), averaged over pixels and channels.

    Matches scikit-image's `structural_similarity(reference, test, data_range=peak,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)`: an 11x11
    Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, and the mean taken over the pixels at
    least 5 from the border.

    Args:
        reference, test: same-shape (H, W) or (H, W, C) arrays, values in [0, peak]; H, W >= 11.
        peak: the white level (data range).

    Returns:
        SSIM in [-1, 1]; 1 for identical inputs.

    Raises:
        ValueError: shapes differ or the image is smaller than the 11x11 window.
    """
    if reference.shape != test.shape:
        raise ValueError(f"ssim: shapes differ: {reference.shape} vs {test.shape}")
    h, w = reference.shape[:2]
    if min(h, w) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"ssim: images of {w}x{h} are smaller than the 11x11 window.")
    x = reference.astype(np.float64)
    y = test.astype(np.float64)
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    mx, my = _blur(x), _blur(y)
    vx = _blur(x * x) - mx * mx
    vy = _blur(y * y) - my * my
    cxy = _blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    r = _SSIM_RADIUS
    return float(np.mean((num / den)[r:h - r, r:w - r]))


def flicker(clean: np.ndarray, test: np.ndarray) -> float:
    """Temporal flicker: mean |(test_t - test_t-1) - (clean_t - clean_t-1)| in 8-bit units.

    Zero when the output changes from frame to frame exactly as the clean video does; noise
    left in, or averaging that lags behind motion, both raise it.

    Args:
        clean, test: (T, H, W, C) or (T, H, W) arrays of the same shape, T >= 2, 8-bit values.

    Returns:
        The mean over frames 1..T-1, pixels and channels.
    """
    if clean.shape != test.shape:
        raise ValueError(f"flicker: shapes differ: {clean.shape} vs {test.shape}")
    if clean.shape[0] < 2:
        raise ValueError("flicker: needs at least two frames.")
    total = 0.0
    for t in range(1, clean.shape[0]):
        d = (test[t].astype(np.float32) - test[t - 1]) - (clean[t].astype(np.float32) - clean[t - 1])
        total += float(np.mean(np.abs(d)))
    return total / (clean.shape[0] - 1)


class FlickerMeter:
    """Streaming `flicker`: feed frames one at a time instead of holding the whole clip.

    Example:
        >>> meter = FlickerMeter()
        >>> for c, o in zip(clean_frames, outputs):
        ...     meter.add(c, o)
        >>> meter.value
    """

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._sum = 0.0
        self._count = 0

    def add(self, clean: np.ndarray, test: np.ndarray) -> None:
        """clean, test: one frame each, same shape, 8-bit values."""
        c, t = clean.astype(np.float32), test.astype(np.float32)
        if self._prev is not None:
            pc, pt = self._prev
            self._sum += float(np.mean(np.abs((t - pt) - (c - pc))))
            self._count += 1
        self._prev = (c, t)

    @property
    def value(self) -> float:
        """The mean so far (nan before the second frame)."""
        return self._sum / self._count if self._count else float("nan")
