"""Blind noise-level estimation (Immerkaer's Laplacian-difference operator, per block)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numba import njit, prange

# For pure Gaussian noise, sum |N * I| / count * sqrt(pi/2) / 6 estimates sigma, where N is the
# 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (Immerkaer 1996, "Fast noise variance estimation").
_IMMERKAER = math.sqrt(math.pi / 2.0) / 6.0


@njit(parallel=True, cache=True, nogil=True)
def block_noise_stats(plane: np.ndarray, block: int, out: np.ndarray) -> np.ndarray:
    """Per-block noise sigma and mean level.

    Args:
        plane: (H, W) uint8, uint16 or float32 plane.
        block: block size in pixels (16 is a good default).
        out: (H // block, W // block, 2) float32: [..., 0] sigma, [..., 1] mean, in plane units.

    Returns:
        out. Blocks at the border use interior pixels only.
    """
    by, bx = out.shape[0], out.shape[1]
    h, w = plane.shape
    for b in prange(by * bx):
        bi = b // bx
        bj = b % bx
        y0 = max(bi * block, 1)
        y1 = min((bi + 1) * block, h - 1)
        x0 = max(bj * block, 1)
        x1 = min((bj + 1) * block, w - 1)
        acc = 0.0
        mean = 0.0
        n = 0
        width = max(x1 - x0, 0)
        # The mask is the outer product of [1, -2, 1] with itself: each row's second difference
        # along it, once, then the second difference of three rows' (exact: integer planes stay
        # integers in float32 up to 16 bits).
        second = np.empty((3, width), np.float32)
        for r in range(y0 - 1, min(y1 + 1, h)):
            row = second[r % 3]
            for j in range(width):
                row[j] = (np.float32(plane[r, x0 + j - 1]) - np.float32(2.0) * np.float32(plane[r, x0 + j])
                          + np.float32(plane[r, x0 + j + 1]))
            i = r - 1
            if i < y0:
                continue
            above, mid = second[(r - 2) % 3], second[(r - 1) % 3]
            # float32 per row, float64 per block.
            row_acc = np.float32(0.0)
            row_mean = np.float32(0.0)
            for j in range(width):
                row_acc += abs(above[j] - np.float32(2.0) * mid[j] + row[j])
                row_mean += np.float32(plane[i, x0 + j])
            acc += np.float64(row_acc)
            mean += np.float64(row_mean)
            n += width
        if n > 0:
            out[bi, bj, 0] = acc / n * _IMMERKAER
            out[bi, bj, 1] = mean / n
        else:
            out[bi, bj, 0] = np.nan
            out[bi, bj, 1] = np.nan
    return out


def estimate_sigma(plane: np.ndarray, max_value: float = 255.0, block: int = 16,
                   percentile: float = 15.0) -> float:
    """Blind estimate of the noise standard deviation of one plane, in the plane's units:
    block_noise_stats, then sigma_from_block_stats.

    Args:
        plane: (H, W) uint8, uint16 or float32.
        max_value: the plane's white level (255 for 8-bit).
        block: block size in pixels.
        percentile: which low percentile of block estimates to use, in (0, 100).
    """
    h, w = plane.shape
    if h < 3 or w < 3:
        return 0.0
    block = max(4, min(block, h, w))
    stats = block_noise_stats(plane, block, np.empty((h // block, w // block, 2), np.float32))
    return sigma_from_block_stats(stats, max_value, block, percentile)


def sigma_from_block_stats(stats: np.ndarray, max_value: float = 255.0, block: int = 16,
                           percentile: float = 15.0) -> float:
    """The noise gate: a plane's noise sigma from its per-block statistics.

    Texture and edges inflate a block's estimate, flat blocks do not, so a low percentile over
    blocks is taken and divided by the bias that percentile has on pure Gaussian noise.
    Blocks near black or white are skipped where at least 8 others remain (clipping hides
    noise there); blocks without a value (NaN) are skipped. Both the numpy path
    (estimate_sigma) and the torch tensor path (streamdn.tensors) go through this rule.

    Args:
        stats: (By, Bx, 2) float: [..., 0] block sigma, [..., 1] block mean, in plane units
            (block_noise_stats).
        max_value: the plane's white level (255 for 8-bit).
        block: the block size the statistics were taken with, in pixels.
        percentile: which low percentile of block estimates to use, in (0, 100).

    Returns:
        the sigma in plane units; 0.0 when there are no blocks.

    Raises:
        ValueError: percentile outside (0, 100).
    """
    sig = stats[..., 0].ravel()
    lvl = stats[..., 1].ravel()
    ok = np.isfinite(sig)
    mid = ok & (lvl > 0.06 * max_value) & (lvl < 0.94 * max_value)
    use = sig[mid] if mid.sum() >= 8 else sig[ok]
    if use.size == 0:
        return 0.0
    return float(np.percentile(use, percentile) / percentile_bias(percentile, block))


def percentile_bias(percentile: float, block: int = 16) -> float:
    """The ratio of the `percentile`-th percentile of block sigmas to the true sigma on pure
    Gaussian noise, for blocks of block x block pixels (at least 0.5).

    Raises:
        ValueError: percentile outside (0, 100).
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile {percentile}: must be between 0 and 100 (exclusive).")
    # Relative spread of one block's estimate on pure noise: sqrt((pi/2 - 1) / n) for independent
    # samples, times 1.63 measured on Gaussian noise (neighbouring Laplacian responses correlate).
    # z: the standard normal quantile of the percentile, to 4 decimals as tables quote it.
    n = max(1, (block - 1) * (block - 1))
    z = round(-NormalDist().inv_cdf(percentile / 100.0), 4)
    return max(0.5, 1.0 - z * 1.63 * math.sqrt((math.pi / 2 - 1) / n))
