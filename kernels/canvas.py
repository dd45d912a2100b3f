"""The long average's canvas (streamdn.models.mosaic): adding a frame placed at whole pixels."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def canvas_add(cur: np.ndarray, count: np.ndarray, oy: int, ox: int, margin: int, y: np.ndarray, u: np.ndarray,
               v: np.ndarray, canvas_count: np.ndarray) -> None:
    """Adds a frame to the canvas where it lies at whole chroma pixels (a still camera): the
    canvas's samples under the frame move towards it by 1 / count (the count the long average
    gave each sample, which the canvas takes), and around it, up to `margin` samples out, those
    the canvas holds nothing at (count <= 0) take the frame's nearest border sample.

    Args:
        cur: (H2, W2, 6) float32 the frame packed (luma phases 0..3, then U, V).
        count: (H2, W2) float32 the frames each sample's average holds with this one.
        oy, ox: the canvas's chroma sample under the frame's sample (0, 0).
        margin: how far around the frame (chroma samples) empty canvas takes its border.
        y: (2 Hc, 2 Wc) float32 the canvas's luma; u, v, canvas_count: (Hc, Wc) float32. All
            updated in place.
    """
    h2, w2 = cur.shape[0], cur.shape[1]
    hc, wc = canvas_count.shape
    r0, r1 = max(0, oy - margin), min(hc, oy + h2 + margin)
    c0, c1 = max(0, ox - margin), min(wc, ox + w2 + margin)
    for ci in prange(r0, r1):
        i = ci - oy
        for cj in range(c0, c1):
            j = cj - ox
            if 0 <= i < h2 and 0 <= j < w2:
                c = count[i, j]
                wt = np.float32(1.0) / max(c, np.float32(1.0))
                canvas_count[ci, cj] = c
                u[ci, cj] += wt * (cur[i, j, 4] - u[ci, cj])
                v[ci, cj] += wt * (cur[i, j, 5] - v[ci, cj])
                for a in range(2):
                    for b in range(2):
                        y[2 * ci + a, 2 * cj + b] += wt * (cur[i, j, 2 * a + b] - y[2 * ci + a, 2 * cj + b])
            elif canvas_count[ci, cj] <= 0.0:
                ii, jj = min(max(i, 0), h2 - 1), min(max(j, 0), w2 - 1)
                u[ci, cj] = cur[ii, jj, 4]
                v[ci, cj] = cur[ii, jj, 5]
                for a in range(2):
                    fr = min(max(2 * i + a, 0), 2 * h2 - 1)
                    for b in range(2):
                        fc = min(max(2 * j + b, 0), 2 * w2 - 1)
                        y[2 * ci + a, 2 * cj + b] = cur[fr // 2, fc // 2, 2 * (fr % 2) + fc % 2]
