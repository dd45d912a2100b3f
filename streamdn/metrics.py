"""Quality metrics on 8-bit images against a clean reference: PSNR, SSIM and a temporal-flicker
figure (the three numbers of `streamdn eval`, training validation and the targets report), and the
frame rate that counts as real time."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Frames per second a denoiser must reach to count as real time (the plots and the targets report).
REALTIME_FPS = 30.0

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


def frame_flicker(clean_prev: np.ndarray, clean: np.ndarray, test_prev: np.ndarray, test: np.ndarray) -> float:
    """Temporal error of one frame: mean |(test - test_prev) - (clean - clean_prev)| in 8-bit units.

    Args:
        clean_prev, clean: the previous and current clean frames; test_prev, test: the outputs
            for them. All the same shape ((H, W, C) or (H, W)), 8-bit values.

    Returns:
        The mean over pixels and channels; 0 when the output changes exactly as the clean video.
    """
    d = (test.astype(np.float32) - test_prev) - (clean.astype(np.float32) - clean_prev)
    return float(np.mean(np.abs(d)))


def flicker(clean: np.ndarray, test: np.ndarray) -> float:
    """Temporal flicker: mean |(test_t - test_t-1) - (clean_t - clean_t-1)| in 8-bit units.

    Zero when the output changes from frame to frame exactly as the clean video does; noise
    left in, or averaging that lags behind motion, both raise it.

    Args:
        clean, test: (T, H, W, C) or (T, H, W) arrays of the same shape, T >= 2, 8-bit values.

    Returns:
        The mean of frame_flicker over frames 1..T-1.

    Raises:
        ValueError: shapes differ or T < 2.
    """
    if clean.shape != test.shape:
        raise ValueError(f"flicker: shapes differ: {clean.shape} vs {test.shape}")
    if clean.shape[0] < 2:
        raise ValueError("flicker: needs at least two frames.")
    values = [frame_flicker(clean[t - 1], clean[t], test[t - 1], test[t]) for t in range(1, clean.shape[0])]
    return float(np.mean(values))


def frame_scores(clean: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> dict[str, list[float]]:
    """Per-frame PSNR (dB), SSIM and flicker (8-bit units; NaN on the first frame, which has no
    previous one) of a clip's outputs against its clean frames.

    Args:
        clean, outputs: frames in order, each (H, W, 3) uint8 (the same channel order in both).

    Returns:
        {"psnr": [...], "ssim": [...], "flicker": [...]}, one value per frame each.

    Raises:
        ValueError: the two sequences differ in length, or frames differ in shape.
    """
    if len(clean) != len(outputs):
        raise ValueError(f"frame_scores: {len(clean)} clean frames but {len(outputs)} outputs")
    res: dict[str, list[float]] = {"psnr": [], "ssim": [], "flicker": []}
    for t, (c, o) in enumerate(zip(clean, outputs)):
        res["psnr"].append(psnr(c, o))
        res["ssim"].append(ssim(c, o))
        res["flicker"].append(float("nan") if t == 0 else frame_flicker(clean[t - 1], c, outputs[t - 1], o))
    return res


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
        if self._prev is not None:
            self._sum += frame_flicker(self._prev[0], clean, self._prev[1], test)
            self._count += 1
        self._prev = (clean.copy(), test.copy())   # the caller may reuse its buffers

    @property
    def value(self) -> float:
        """The mean so far (nan before the second frame)."""
        return self._sum / self._count if self._count else float("nan")
