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


@njit(inline="always")
def _bilinear(a: np.ndarray, y: float, x: float) -> float:
    """a (H, W) at the real position (y, x), its border repeated outside."""
    h, w = a.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ty, tx = np.float32(y - y0), np.float32(x - x0)
    ya, yb = min(max(y0, 0), h - 1), min(max(y0 + 1, 0), h - 1)
    xa, xb = min(max(x0, 0), w - 1), min(max(x0 + 1, 0), w - 1)
    top = a[ya, xa] + tx * (a[ya, xb] - a[ya, xa])
    bottom = a[yb, xa] + tx * (a[yb, xb] - a[yb, xa])
    return top + ty * (bottom - top)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def canvas_add_resampled(y_res: np.ndarray, u_res: np.ndarray, v_res: np.ndarray, count: np.ndarray,
                         weight: np.ndarray, r0: int, c0: int, cy: float, cx: float, y: np.ndarray, u: np.ndarray,
                         v: np.ndarray, canvas_count: np.ndarray) -> None:
    """Adds a frame to the canvas at any place: canvas_add's rule where the frame's samples,
    already resampled onto the canvas's grid, are given (y_res (2 Hp, 2 Wp), u_res, v_res
    (Hp, Wp) for the canvas's chroma samples r0.., c0..), and the count and the weight
    (1 / max(count, 1)) are read bilinearly from the frame's grid ((H2, W2) each), where the
    frame's chroma sample (0, 0) lies at canvas (cy, cx). A canvas sample takes the frame where
    that read lies wholly inside the frame."""
    hp, wp = u_res.shape
    h2, w2 = count.shape
    for k in prange(hp):
        ci = r0 + k
        fy = ci - cy
        rows_in = 0.0 <= fy <= h2 - 1
        for m in range(wp):
            cj = c0 + m
            fx = cj - cx
            if rows_in and 0.0 <= fx <= w2 - 1:
                wt = _bilinear(weight, fy, fx)
                canvas_count[ci, cj] = _bilinear(count, fy, fx)
            elif canvas_count[ci, cj] <= 0.0:
                wt = np.float32(1.0)
            else:
                continue
            u[ci, cj] += wt * (u_res[k, m] - u[ci, cj])
            v[ci, cj] += wt * (v_res[k, m] - v[ci, cj])
            for a in range(2):
                for b in range(2):
                    y[2 * ci + a, 2 * cj + b] += wt * (y_res[2 * k + a, 2 * m + b] - y[2 * ci + a, 2 * cj + b])


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def canvas_read(y_res: np.ndarray, u_res: np.ndarray, v_res: np.ndarray, canvas_count: np.ndarray, cy: float,
                cx: float, out: np.ndarray, count: np.ndarray) -> None:
    """The canvas's mean read onto a frame whose chroma sample (0, 0) lies at canvas (cy, cx):
    its planes, already resampled onto the frame's grid (y_res (2 H2, 2 W2), u_res, v_res
    (H2, W2)), packed into `out` ((H2, W2, 6) float32, written), and the count read bilinearly
    into `count` ((H2, W2, 1) float32, written): 0 where the read reaches a canvas sample that
    holds nothing (the canvas's edge: there the average restarts)."""
    h2, w2 = u_res.shape
    hc, wc = canvas_count.shape
    for i in prange(h2):
        fy = cy + i
        y0 = int(np.floor(fy))
        ty = np.float32(fy - y0)
        ya, yb = min(max(y0, 0), hc - 1), min(max(y0 + 1, 0), hc - 1)
        for j in range(w2):
            for a in range(2):
                for b in range(2):
                    out[i, j, 2 * a + b] = y_res[2 * i + a, 2 * j + b]
            out[i, j, 4] = u_res[i, j]
            out[i, j, 5] = v_res[i, j]
            fx = cx + j
            x0 = int(np.floor(fx))
            tx = np.float32(fx - x0)
            xa, xb = min(max(x0, 0), wc - 1), min(max(x0 + 1, 0), wc - 1)
            c00, c01, c10, c11 = canvas_count[ya, xa], canvas_count[ya, xb], canvas_count[yb, xa], canvas_count[yb, xb]
            h00 = np.float32(1.0) if c00 > 0.0 else np.float32(0.0)
            h01 = np.float32(1.0) if c01 > 0.0 else np.float32(0.0)
            h10 = np.float32(1.0) if c10 > 0.0 else np.float32(0.0)
            h11 = np.float32(1.0) if c11 > 0.0 else np.float32(0.0)
            top, bottom = h00 + tx * (h01 - h00), h10 + tx * (h11 - h10)
            if top + ty * (bottom - top) > 0.999:
                top, bottom = c00 + tx * (c01 - c00), c10 + tx * (c11 - c10)
                count[i, j, 0] = top + ty * (bottom - top)
            else:
                count[i, j, 0] = 0.0
