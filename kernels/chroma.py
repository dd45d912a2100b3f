"""Full-resolution chroma from 4:2:0 planes, guided by the luma.

Bilinear upsampling leaves every colour edge two pixels soft: on synthetic scenes with saturated
colours the plain 4:2:0 round trip of a clean picture stops at 35-36 dB RGB PSNR. Within a small
window colour is close to a linear function of the luma (a red edge on grey, a shaded
surface), so the missing half of the chroma resolution can be taken from the luma: a guided
filter on the chroma grid fits chroma = a * luma + b in each window (with a regulariser `eps`
on the luma's variance, so where luma varies little or not with the colour the fit falls back
to the window's mean), the coefficients are averaged over the windows that cover a pixel,
upsampled bilinearly and applied to the full-resolution luma. A last back-projection adds back,
upsampled, what each 2x2 block's mean misses of the chroma sample it came from, so the planes'
own colour is kept (a grey picture stays exactly grey, a block's mean stays near its sample).

On the validation clips' clean frames the 4:2:0 round trip gives 35.4 / 35.9 / 45.2 / 47.4 dB
RGB PSNR with bilinear chroma and 40.5 / 42.6 / 48.0 / 50.4 dB with this (docs/figures.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _rows_at(planes: np.ndarray, r: int, rows: np.ndarray) -> None:
    """rows[k] = planes[k] (chroma grid) interpolated down the columns to full-resolution row r:
    the vertical half of sampling the chroma grid bilinearly at a full-resolution pixel, 4:2:0
    centre sited (cv2.resize INTER_LINEAR at 2x), the border repeated; done once per row."""
    h2 = planes.shape[1]
    i = r >> 1
    i2 = min(max(i + (1 if r & 1 else -1), 0), h2 - 1)
    q, p = np.float32(0.75), np.float32(0.25)
    for k in range(planes.shape[0]):
        for j in range(planes.shape[2]):
            rows[k, j] = q * planes[k, i, j] + p * planes[k, i2, j]


@njit(inline="always")
def _across(row: np.ndarray, c: int) -> np.float32:
    """A row of _rows_at sampled at full-resolution column c: the horizontal half."""
    w2 = row.shape[0]
    j = c >> 1
    j2 = min(max(j + (1 if c & 1 else -1), 0), w2 - 1)
    return np.float32(0.75) * row[j] + np.float32(0.25) * row[j2]


# The scratch planes on the chroma grid: 0 the luma, 6-11 row sums, 0-5 window means of luma,
# luma^2, U, V, luma U and luma V; then 6-9 the coefficients (a_U, b_U, a_V, b_V, the
# back-projection's residuals added to the b), 0-3 their row sums, 0-1 the residuals.
WORK_PLANES = 12


@njit(inline="always")
def _window_sums(src: np.ndarray, dst: np.ndarray, radius: int) -> None:
    """dst[j] = the sum of src over the columns within `radius` of j (clipped at the ends); one
    contiguous pass per offset, which the compiler vectorises."""
    w = src.shape[0]
    for j in range(w):
        dst[j] = src[j]
    for d in range(1, radius + 1):
        for j in range(w - d):
            dst[j] += src[j + d]
        for j in range(d, w):
            dst[j] += src[j - d]


@njit(parallel=True, cache=True, nogil=True)
def _row_sums(planes: np.ndarray, rows: np.ndarray, radius: int) -> None:
    """rows[q, i] = the window sums of planes[q, i] along the row (_window_sums)."""
    for i in prange(planes.shape[1]):
        for q in range(planes.shape[0]):
            _window_sums(planes[q, i], rows[q, i], radius)


@njit(parallel=True, cache=True, nogil=True)
def _columns_mean(sums: np.ndarray, out: np.ndarray, radius: int) -> None:
    """out[q] = the window mean of a plane whose rows already hold their window sums (sums[q]):
    summed down the columns over the (2 radius + 1) rows around each, clipped at the borders,
    and divided by the window's size."""
    n, h2, w2 = sums.shape
    # 1 / the window's width at each column (clipped at the borders)
    across = np.empty(w2, np.float32)
    for j in range(w2):
        across[j] = np.float32(1.0) / np.float32(min(j + radius + 1, w2) - max(j - radius, 0))
    for i in prange(h2):
        i0, i1 = max(i - radius, 0), min(i + radius + 1, h2)
        down = np.float32(1.0) / np.float32(i1 - i0)
        for q in range(n):
            row = out[q, i]
            row[:] = sums[q, i0]
            for ii in range(i0 + 1, i1):
                row += sums[q, ii]
            for j in range(w2):
                row[j] *= down * across[j]


@njit(parallel=True, cache=True, nogil=True)
def _fit(y: np.ndarray, u: np.ndarray, v: np.ndarray, eps: float, radius: int, work: np.ndarray) -> None:
    """The guided fit (see the module): work[6:10] the coefficients on the chroma grid (a_U,
    b_U, a_V, b_V), the back-projection's residuals included in the b."""
    h, w = y.shape
    h2, w2 = u.shape
    # The luma on the chroma grid: each 2x2 block's mean (the last row/column repeated).
    yl = work[0]
    for i in prange(h2):
        r0, r1 = 2 * i, min(2 * i + 1, h - 1)
        for j in range(w2):
            c0, c1 = 2 * j, min(2 * j + 1, w - 1)
            yl[i, j] = np.float32(0.25) * (np.float32(y[r0, c0]) + np.float32(y[r0, c1])
                                           + np.float32(y[r1, c0]) + np.float32(y[r1, c1]))
    # The window means of luma, luma^2, U, V, luma U and luma V: their sums along rows (the
    # products taken on the way), then down columns.
    rows = work[6:12]
    for i in prange(h2):
        src = np.empty((6, w2), np.float32)   # one row of luma, luma^2, U, V, luma U, luma V
        for j in range(w2):
            a = yl[i, j]
            cu = np.float32(u[i, j])
            cv = np.float32(v[i, j])
            src[0, j] = a
            src[1, j] = a * a
            src[2, j] = cu
            src[3, j] = cv
            src[4, j] = a * cu
            src[5, j] = a * cv
        for q in range(6):
            _window_sums(src[q], rows[q, i], radius)
    means = work[0:6]
    _columns_mean(rows, means, radius)
    # Per window: chroma = a * luma + b, least squares with eps on the luma's variance.
    coef = work[6:10]
    e = np.float32(eps)
    for i in prange(h2):
        for j in range(w2):
            my, mu, mv = means[0, i, j], means[2, i, j], means[3, i, j]
            inv = np.float32(1.0) / (max(means[1, i, j] - my * my, np.float32(0.0)) + e)
            au = (means[4, i, j] - my * mu) * inv
            av = (means[5, i, j] - my * mv) * inv
            coef[0, i, j] = au
            coef[1, i, j] = mu - au * my
            coef[2, i, j] = av
            coef[3, i, j] = mv - av * my
    # Each sample's coefficients: the mean over the windows that hold it.
    sums = work[0:4]
    _row_sums(coef, sums, radius)
    _columns_mean(sums, coef, radius)
    # Back-projection: what each 2x2 block's mean misses of its chroma sample.
    q = np.float32(0.25)
    for i in prange(h2):
        r0, r1 = 2 * i, min(2 * i + 1, h - 1)
        rows0, rows1 = np.empty((4, w2), np.float32), np.empty((4, w2), np.float32)
        _rows_at(coef, r0, rows0)
        _rows_at(coef, r1, rows1)
        for j in range(w2):
            c0, c1 = 2 * j, min(2 * j + 1, w - 1)
            su = np.float32(0.0)
            sv = np.float32(0.0)
            for r, rows in ((r0, rows0), (r1, rows1)):
                for c in (c0, c1):
                    yv = np.float32(y[r, c])
                    su += _across(rows[0], c) * yv + _across(rows[1], c)
                    sv += _across(rows[2], c) * yv + _across(rows[3], c)
            work[0, i, j] = np.float32(u[i, j]) - q * su
            work[1, i, j] = np.float32(v[i, j]) - q * sv
    # The residuals join the offsets b (both upsampled bilinearly, so their sum is the same).
    for i in prange(h2):
        for j in range(w2):
            coef[1, i, j] += work[0, i, j]
            coef[3, i, j] += work[1, i, j]


@njit(inline="always")
def _chroma_in_row(rows: np.ndarray, yv: np.float32, c: int) -> tuple[np.float32, np.float32]:
    """Full-resolution (U, V) at column c of luma yv, from _fit's coefficient planes brought to
    the pixel's row by _rows_at."""
    return (_across(rows[0], c) * yv + _across(rows[1], c), _across(rows[2], c) * yv + _across(rows[3], c))


@njit(parallel=True, cache=True, nogil=True)
def chroma_from_luma(y: np.ndarray, u: np.ndarray, v: np.ndarray, eps: float, radius: int,
                     work: np.ndarray, out_u: np.ndarray, out_v: np.ndarray) -> None:
    """Full-resolution U and V from 4:2:0 planes, guided by the luma (see the module).

    Args:
        y: (H, W) luma, any numeric type.
        u, v: (ceil(H/2), ceil(W/2)) chroma in the same units.
        eps: the regulariser on the luma's variance in a window, in the planes' units squared
            (6.5 for 8-bit planes: 1e-4 in [0, 1] units); larger keeps more of the bilinear.
        radius: the windows are (2 radius + 1)^2 samples of the chroma grid.
        work: (WORK_PLANES, ceil(H/2), ceil(W/2)) float32 scratch (its content is not used).
        out_u, out_v: (H, W) float32, written.
    """
    _fit(y, u, v, eps, radius, work)
    h, w = y.shape
    for r in prange(h):
        rows = np.empty((4, u.shape[1]), np.float32)
        _rows_at(work[6:10], r, rows)
        for c in range(w):
            out_u[r, c], out_v[r, c] = _chroma_in_row(rows, np.float32(y[r, c]), c)


@njit(parallel=True, cache=True, nogil=True)
def yuv420_to_bgr_guided(y: np.ndarray, u: np.ndarray, v: np.ndarray, eps: float, radius: int,
                         matrix: np.ndarray, work: np.ndarray, out: np.ndarray) -> np.ndarray:
    """8-bit Y, U, V 4:2:0 planes -> (H, W, 3) uint8, the chroma brought to full resolution as
    by chroma_from_luma, converted, rounded and clamped.

    Args:
        y, u, v: uint8 planes, (H, W) and (ceil(H/2), ceil(W/2)).
        eps, radius, work: as chroma_from_luma (eps in 8-bit units squared).
        matrix: (3, 4) float32 YUV -> BGR (or RGB) in 8-bit units (coefficients of Y, U, V
            and an offset).
        out: (H, W, 3) uint8, written and returned.
    """
    _fit(y, u, v, eps, radius, work)
    h, w = y.shape
    for r in prange(h):
        rows = np.empty((4, u.shape[1]), np.float32)
        _rows_at(work[6:10], r, rows)
        for c in range(w):
            yv = np.float32(y[r, c])
            cu, cv = _chroma_in_row(rows, yv, c)
            for ch in range(3):
                val = matrix[ch, 0] * yv + matrix[ch, 1] * cu + matrix[ch, 2] * cv + matrix[ch, 3] + np.float32(0.5)
                out[r, c, ch] = np.uint8(min(max(val, np.float32(0.0)), np.float32(255.0)))
    return out
