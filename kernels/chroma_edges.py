"""Chroma edges given back to a network's packed 4:2:0 output (streamdn.models.chroma_edges
says why and what it gains): what the network removed from each chroma plane, regressed on its
output's luma over (2 radius + 1)^2 chroma samples, and the part the luma explains added back.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .chroma import _columns_mean, _row_sums, _window_sums

# Scratch planes on the packed grid: 12 the guide g (each 2x2 luma block's mean); 6-11 the row
# sums of g, g^2, the two chroma differences dU and dV, g dU and g dV; 0-5 their window means;
# then 6-7 the slopes, 8-9 their row sums, 1-2 their window means.
WORK_PLANES = 13


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def restore_chroma_edges(out: np.ndarray, inp: np.ndarray, sigma: np.ndarray, noise_weight: float,
                         floor: float, radius: int, work: np.ndarray, res: np.ndarray, shrink: float = 0.0) -> None:
    """res = out with, in each chroma channel c (4: U, 5: V), box(a_c) * (g - box(g)) added, where
    g is the mean of out's four luma phases, d_c = inp[..., c] - out[..., c] and, over the window
    of n samples, a_c = gain * cov(g, d_c) / (var(g) + noise_weight * sigma_c^2 + floor) with
    gain = max(0, 1 - shrink sigma_c^2 var(g) / (n (cov^2 + floor^2))); the luma channels copied.

    Args:
        out, inp: (H2, W2, 6) float32 packed frames (four luma phases, U, V).
        sigma: (H2, W2, 3) float32 noise map of `inp` (Y, U, V).
        noise_weight, floor: the fit's regulariser, noise_weight * sigma^2 + floor.
        radius: the window is 2 radius + 1 samples square (clipped at the borders).
        work: (WORK_PLANES, H2, W2) float32 scratch.
        res: (H2, W2, 6) float32 result (may not be `out` or `inp`).
        shrink: how far a slope within its own noise is shrunk (0: not at all).
    """
    h2, w2 = out.shape[0], out.shape[1]
    guide, rows = work[12], work[6:12]
    for i in prange(h2):
        src = np.empty((6, w2), np.float32)   # one row of g, g^2, dU, dV, g dU, g dV
        for j in range(w2):
            g = np.float32(0.25) * (out[i, j, 0] + out[i, j, 1] + out[i, j, 2] + out[i, j, 3])
            u = inp[i, j, 4] - out[i, j, 4]
            v = inp[i, j, 5] - out[i, j, 5]
            guide[i, j] = g
            src[0, j] = g
            src[1, j] = g * g
            src[2, j] = u
            src[3, j] = v
            src[4, j] = g * u
            src[5, j] = g * v
        for q in range(6):
            _window_sums(src[q], rows[q, i], radius)
    means = work[0:6]
    _columns_mean(work[6:12], means, radius)
    k = np.float32(noise_weight)
    fl = np.float32(floor)
    slopes = work[6:8]
    n = np.float32((2 * radius + 1) ** 2)
    sh = np.float32(shrink) / n
    for i in prange(h2):
        for j in range(w2):
            mg = means[0, i, j]
            var = max(means[1, i, j] - mg * mg, np.float32(0.0))
            su, sv = sigma[i, j, 1], sigma[i, j, 2]
            cu = means[4, i, j] - mg * means[2, i, j]
            cv = means[5, i, j] - mg * means[3, i, j]
            gu = max(np.float32(1.0) - sh * su * su * var / (cu * cu + fl * fl), np.float32(0.0))
            gv = max(np.float32(1.0) - sh * sv * sv * var / (cv * cv + fl * fl), np.float32(0.0))
            slopes[0, i, j] = gu * cu / (var + k * su * su + fl)
            slopes[1, i, j] = gv * cv / (var + k * sv * sv + fl)
    _row_sums(slopes, work[8:10], radius)
    _columns_mean(work[8:10], work[1:3], radius)
    g, mg, au, av = work[12], work[0], work[1], work[2]
    for i in prange(h2):
        for j in range(w2):
            for c in range(4):
                res[i, j, c] = out[i, j, c]
            e = g[i, j] - mg[i, j]
            res[i, j, 4] = out[i, j, 4] + au[i, j] * e
            res[i, j, 5] = out[i, j, 5] + av[i, j] * e
