"""Resampling a plane by a constant sub-pixel shift (the long average's canvas, models/mosaic.py)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always", fastmath=True, cache=True, nogil=True)
def _filter_line(line: np.ndarray, kx: np.ndarray, dst: np.ndarray) -> None:
    """dst[j] = sum_n kx[n] line[j + n], tap by tap over the whole line (so that it vectorises)."""
    wo = dst.shape[0]
    for j in range(wo):
        dst[j] = kx[0] * line[j]
    for n in range(1, kx.shape[0]):
        k = kx[n]
        for j in range(wo):
            dst[j] += k * line[j + n]


@njit(inline="always", cache=True, nogil=True)
def _plane_line(src: np.ndarray, r: int, x0: int, span: int) -> np.ndarray:
    """Samples x0 .. x0 + span - 1 of row r of the plane, its border repeated."""
    w = src.shape[1]
    line = np.empty(span, np.float32)
    for j in range(span):
        line[j] = src[r, min(max(j + x0, 0), w - 1)]
    return line


@njit(inline="always", cache=True, nogil=True)
def _luma_line(src: np.ndarray, r: int, x0: int, span: int) -> np.ndarray:
    """_plane_line of the full-resolution luma of a packed frame ((H2, W2, 6): luma sample
    (r, c) is src[r >> 1, c >> 1, 2 (r & 1) + (c & 1)])."""
    w = 2 * src.shape[1]
    line = np.empty(span, np.float32)
    i, a = r >> 1, (r & 1) << 1
    for j in range(span):
        c = min(max(j + x0, 0), w - 1)
        line[j] = src[i, c >> 1, a | (c & 1)]
    return line


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _rows_plane(src: np.ndarray, y0: int, x0: int, kx: np.ndarray, tmp: np.ndarray) -> None:
    """tmp[r, j] = sum_n kx[n] src[clamp(r + y0), clamp(j + x0 + n)]."""
    for r in prange(tmp.shape[0]):
        sr = min(max(r + y0, 0), src.shape[0] - 1)
        _filter_line(_plane_line(src, sr, x0, tmp.shape[1] + kx.shape[0] - 1), kx, tmp[r])


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _rows_luma(src: np.ndarray, y0: int, x0: int, kx: np.ndarray, tmp: np.ndarray) -> None:
    """_rows_plane of the full-resolution luma of a packed frame `src`."""
    for r in prange(tmp.shape[0]):
        sr = min(max(r + y0, 0), 2 * src.shape[0] - 1)
        _filter_line(_luma_line(src, sr, x0, tmp.shape[1] + kx.shape[0] - 1), kx, tmp[r])


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _filter_columns(tmp: np.ndarray, ky: np.ndarray, out: np.ndarray) -> None:
    ho, wo = out.shape
    ny = ky.shape[0]
    for i in prange(ho):
        for j in range(wo):
            out[i, j] = ky[0] * tmp[i, j]
        for m in range(1, ny):
            k = ky[m]
            for j in range(wo):
                out[i, j] += k * tmp[i + m, j]


def shift_plane(src: np.ndarray, y0: int, x0: int, ky: np.ndarray, kx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A separable resampling of a plane, its border repeated:
    out[i, j] = sum_m sum_n ky[m] kx[n] src[clamp(i + y0 + m), clamp(j + x0 + n)].

    Args:
        src: (H, W) float32 plane (any strides), or an (H2, W2, 6) float32 packed frame, whose
            full-resolution luma (2 H2 x 2 W2) is then the plane.
        y0, x0: the first tap's offset (whole samples).
        ky, kx: float32 taps (vertical, horizontal).
        out: (Ho, Wo) float32, written and returned.
    """
    tmp = np.empty((out.shape[0] + len(ky) - 1, out.shape[1]), np.float32)
    ky, kx = np.ascontiguousarray(ky, np.float32), np.ascontiguousarray(kx, np.float32)
    (_rows_luma if src.ndim == 3 else _rows_plane)(src, int(y0), int(x0), kx, tmp)
    _filter_columns(tmp, ky, out)
    return out
