"""Quality metrics on 8-bit images: PSNR (and, for evaluation, SSIM) against a clean reference."""

from __future__ import annotations

import numpy as np


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
