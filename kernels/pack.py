"""Packing YUV 4:2:0 planes into the network's 6-channel half-resolution tensor and back, the
per-pixel noise map the network is given, and a cheap scene-cut score.

Layout of a packed frame: (H2, W2, 6) float32 with H2 = ceil(H/2), W2 = ceil(W/2), i.e. the
channels-last (NHWC) memory order of an NCHW tensor, so torch views it without a copy. Channels:
0..3 the luma phases of each 2x2 block (top-left, top-right, bottom-left, bottom-right), 4 U, 5 V;
values in [0, 1] (integer value / max_value). Odd sizes are padded by repeating the last luma
row/column and cropped back on unpack.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def pack_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
    """Packs three 4:2:0 planes into one half-resolution 6-channel array.

    Args:
        y: (H, W) uint8 or uint16 luma.
        u, v: (ceil(H/2), ceil(W/2)) chroma, same dtype as y.
        scale: 1 / max_value (1/255 for 8-bit, 1/1023 for 10-bit) so values land in [0, 1].
        out: (ceil(H/2), ceil(W/2), 6) float32 (any strides), written and returned.
    """
    h, w = y.shape
    h2, w2 = out.shape[0], out.shape[1]
    s = np.float32(scale)
    for i in prange(h2):
        r0 = 2 * i
        r1 = min(2 * i + 1, h - 1)
        for j in range(w2):
            c0 = 2 * j
            c1 = min(2 * j + 1, w - 1)
            out[i, j, 0] = np.float32(y[r0, c0]) * s
            out[i, j, 1] = np.float32(y[r0, c1]) * s
            out[i, j, 2] = np.float32(y[r1, c0]) * s
            out[i, j, 3] = np.float32(y[r1, c1]) * s
            out[i, j, 4] = np.float32(u[i, j]) * s
            out[i, j, 5] = np.float32(v[i, j]) * s
    return out


@njit(parallel=True, cache=True, nogil=True)
def unpack_yuv420(src: np.ndarray, max_value: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """The inverse of pack_yuv420: scales by max_value, rounds, clamps to [0, max_value] and
    drops the padding of odd sizes.

    Args:
        src: (ceil(H/2), ceil(W/2), 6) float32 (any strides), values nominally in [0, 1].
        max_value: 255 for 8-bit, 1023 for 10-bit, ...
        y: (H, W) uint8 or uint16 output luma.
        u, v: (ceil(H/2), ceil(W/2)) outputs, y's dtype.
    """
    h, w = y.shape
    h2, w2 = src.shape[0], src.shape[1]
    m = np.float32(max_value)
    for i in prange(h2):
        for j in range(w2):
            for c in range(6):
                val = src[i, j, c] * m + np.float32(0.5)
                if val < 0:
                    val = 0
                elif val > m:
                    val = m
                q = int(val)
                if c == 4:
                    u[i, j] = q
                elif c == 5:
                    v[i, j] = q
                else:
                    r = 2 * i + (c >> 1)
                    col = 2 * j + (c & 1)
                    if r < h and col < w:
                        y[r, col] = q


@njit(parallel=True, cache=True, nogil=True)
def noise_map(packed: np.ndarray, sigmas: np.ndarray, curve: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The per-pixel noise map given to the network: each plane's sigma times a relative,
    signal-dependent factor read from the local luma level.

    factor(L) = sqrt(max(curve[0] + curve[1] * L, 0) / max(curve[0] + curve[1] * curve[2], 1e-12)),
    where L is the 3x3-smoothed mean of the four luma phases (in [0, 1]) and curve[2] the level
    at which `sigmas` hold (so factor = 1 there). curve = (1, 0, 0) gives a flat map.

    Args:
        packed: (H2, W2, 6) float32 packed frame (see pack_yuv420).
        sigmas: (3,) float32 noise sigma of Y, U, V in [0, 1] units (8-bit sigma / 255).
        curve: (3,) float64 (a, b, L_ref): noise variance a + b * L, up to a common scale.
        out: (H2, W2, 3) float32, written and returned: sigma of Y, U, V per packed pixel, [0, 1] units.
    """
    h2, w2 = packed.shape[0], packed.shape[1]
    a = curve[0]
    b = curve[1]
    ref = max(a + b * curve[2], 1e-12)
    flat = b == 0.0
    for i in prange(h2):
        for j in range(w2):
            f = 1.0
            if not flat:
                acc = 0.0
                for di in range(-1, 2):
                    ii = min(max(i + di, 0), h2 - 1)
                    for dj in range(-1, 2):
                        jj = min(max(j + dj, 0), w2 - 1)
                        acc += packed[ii, jj, 0] + packed[ii, jj, 1] + packed[ii, jj, 2] + packed[ii, jj, 3]
                level = acc / 36.0
                f = math.sqrt(max(a + b * level, 0.0) / ref)
            out[i, j, 0] = sigmas[0] * f
            out[i, j, 1] = sigmas[1] * f
            out[i, j, 2] = sigmas[2] * f
    return out


@njit(parallel=True, cache=True, nogil=True)
def frame_difference(a: np.ndarray, b: np.ndarray, step: int) -> float:
    """Mean absolute difference of two same-shape planes on a grid of every `step`-th pixel
    (the scene-cut score: compare it with the noise level).

    Args:
        a, b: (H, W) uint8, uint16 or float32 planes.
        step: grid spacing in pixels (4 reads 1/16 of the pixels).

    Returns:
        the mean |a - b| in plane units.
    """
    h, w = a.shape
    rows = (h + step - 1) // step
    cols = (w + step - 1) // step
    sums = np.zeros(rows, np.float64)
    for r in prange(rows):
        i = r * step
        acc = 0.0
        for j in range(0, w, step):
            acc += abs(np.float64(a[i, j]) - np.float64(b[i, j]))
        sums[r] = acc
    return sums.sum() / (rows * cols)


def fit_noise_curve(block_stats: np.ndarray, max_value: float, bins: int = 6,
                    percentile: float = 15.0) -> np.ndarray:
    """Fits noise variance = a + b * level to per-block luma noise statistics.

    Blocks are split into `bins` groups by mean level; in each, a low percentile of the block
    sigmas stands for the noise (texture only raises a block's estimate). A non-negative least
    squares line through (level, sigma^2) of the groups gives a and b.

    Args:
        block_stats: (By, Bx, 2) float32 from streamdn.kernels.block_noise_stats: sigma, mean level.
        max_value: the plane's white level (255 for 8-bit); levels are scaled to [0, 1].
        bins: number of level groups.
        percentile: the low percentile taken within a group.

    Returns:
        (3,) float64: a, b and the reference level L_ref (median block level, [0, 1]) for
        streamdn.kernels.noise_map; (1, 0, 0) when there is too little to fit.
    """
    sig = block_stats[..., 0].ravel().astype(np.float64) / max_value
    lvl = block_stats[..., 1].ravel().astype(np.float64) / max_value
    ok = np.isfinite(sig) & (lvl > 0.02) & (lvl < 0.98)
    sig, lvl = sig[ok], lvl[ok]
    flat = np.array([1.0, 0.0, 0.0])
    if sig.size < 4 * bins:
        return flat
    order = np.argsort(lvl)
    xs, ys = [], []
    for part in np.array_split(order, bins):
        xs.append(float(np.mean(lvl[part])))
        ys.append(float(np.percentile(sig[part], percentile)) ** 2)
    x, yv = np.asarray(xs), np.asarray(ys)
    xm, ym = x.mean(), yv.mean()
    var_x = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (yv - ym)) / var_x) if var_x > 1e-9 else 0.0
    a = ym - b * xm
    if b <= 0.0:
        a, b = max(ym, 1e-12), 0.0
    elif a < 0.0:  # the line would be negative in the dark: refit through the origin
        a, b = 0.0, float(np.sum(x * yv) / np.sum(x * x))
    if a <= 0.0 and b <= 0.0:
        return flat
    return np.array([a, b, float(np.median(lvl))])
