"""Impulse ("salt and pepper") noise: detection and a switching median.

Dead and hot pixels and bit errors replace single pixels with extreme values. A pixel that lies
further than `thresh` outside the range of its 8 neighbours is an impulse: nothing in a real
image makes one pixel alone that much brighter or darker than all around it, except such noise
(and, rarely, a star in a night sky: hence the frame-level gate in streamdn.denoiser). Only the
impulses are replaced, by the median of their neighbours, so detail elsewhere is untouched,
unlike a plain median filter. In 4:2:0 an impulse also leaks a quarter of its value into the
chroma sample of its 2x2 block; those chroma samples are replaced by their neighbours' median.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always", nogil=True)
def _outside(p: np.ndarray, i: int, j: int, h: int, w: int, thresh: float, low: float, high: float) -> int:
    """+1 if p[i, j] is at least `high` and above all its 8 neighbours but one by more than
    thresh, -1 if at most `low` and below all but one by more than thresh, else 0. ("All but
    one": at 5 % density a fifth of the impulses have a twin next to them.)"""
    c = np.float32(p[i, j])
    if c > low and c < high:
        return 0
    lo1 = np.float32(3.4e38)
    lo2 = np.float32(3.4e38)
    hi1 = np.float32(-3.4e38)
    hi2 = np.float32(-3.4e38)
    for di in range(-1, 2):
        ii = min(max(i + di, 0), h - 1)
        for dj in range(-1, 2):
            if di == 0 and dj == 0:
                continue
            v = np.float32(p[ii, min(max(j + dj, 0), w - 1)])
            if v > hi1:
                hi2 = hi1
                hi1 = v
            elif v > hi2:
                hi2 = v
            if v < lo1:
                lo2 = lo1
                lo1 = v
            elif v < lo2:
                lo2 = v
    if c >= high and c > hi2 + thresh:
        return 1
    if c <= low and c < lo2 - thresh:
        return -1
    return 0


@njit(parallel=True, cache=True, nogil=True)
def count_impulses(y: np.ndarray, thresh: float, low: float, high: float) -> int:
    """Luma pixels that are impulses (see the module): at an extreme level (<= low or >= high)
    and beyond their neighbours by more than thresh. The frame-level evidence of impulse noise."""
    h, w = y.shape
    rows = np.zeros(h, np.int64)
    for i in prange(h):
        n = 0
        for j in range(w):
            if _outside(y, i, j, h, w, thresh, low, high) != 0:
                n += 1
        rows[i] = n
    return int(rows.sum())


@njit(nogil=True)
def _median8(p: np.ndarray, i: int, j: int, h: int, w: int) -> np.float32:
    vals = np.empty(8, np.float32)
    k = 0
    for di in range(-1, 2):
        ii = min(max(i + di, 0), h - 1)
        for dj in range(-1, 2):
            if di == 0 and dj == 0:
                continue
            vals[k] = np.float32(p[ii, min(max(j + dj, 0), w - 1)])
            k += 1
    vals.sort()
    return np.float32(0.5) * (vals[3] + vals[4])


@njit(parallel=True, cache=True, nogil=True)
def remove_impulses(y: np.ndarray, u: np.ndarray, v: np.ndarray, thresh: float, low: float, high: float,
                    y_out: np.ndarray, u_out: np.ndarray, v_out: np.ndarray) -> int:
    """Replaces luma impulses and the chroma samples they leaked into by neighbour medians.

    Args:
        y, u, v: 4:2:0 planes (uint8 or uint16), chroma (ceil(H/2), ceil(W/2)).
        thresh: how far outside its neighbours' range a pixel must be, in plane units.
        low, high: levels at or beyond which a pixel can be an impulse (dead/hot pixels and
            salt and pepper are black or white).
        y_out, u_out, v_out: outputs, same shapes and dtypes (copies of the inputs elsewhere).

    Returns:
        the number of luma pixels replaced.
    """
    h, w = y.shape
    ch, cw = u.shape
    hit = np.zeros((ch, cw), np.uint8)
    rows = np.zeros(h, np.int64)
    for i in prange(h):
        n = 0
        for j in range(w):
            if _outside(y, i, j, h, w, thresh, low, high) != 0:
                y_out[i, j] = np.float32(0.5) + _median8(y, i, j, h, w)
                hit[i // 2, j // 2] = 1
                n += 1
            else:
                y_out[i, j] = y[i, j]
        rows[i] = n
    for i in prange(ch):
        for j in range(cw):
            if hit[i, j]:
                u_out[i, j] = np.float32(0.5) + _median8(u, i, j, ch, cw)
                v_out[i, j] = np.float32(0.5) + _median8(v, i, j, ch, cw)
            else:
                u_out[i, j] = u[i, j]
                v_out[i, j] = v[i, j]
    return int(rows.sum())
