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


# A scene cut: the luma changes by more than this many times its noise sigma plus a threshold.
CUT_NOISE_FACTOR = 1.2


def is_scene_cut(score: float, sigma_y: float, threshold: float) -> bool:
    """The scene-cut decision of the temporal models: whether a luma change means a new scene.

    Noise alone changes a still picture by about 1.13 sigma per pixel (|difference| of two
    noisy samples), so the score is compared with CUT_NOISE_FACTOR * sigma_y plus `threshold`.
    Both the numpy path and the torch tensor path decide with this rule.

    Args:
        score: mean |difference| of this frame's luma and the previous one's, 8-bit units
            (frame_difference on a sparse grid).
        sigma_y: the frame's luma noise sigma, 8-bit units.
        threshold: the change above the noise that counts as a cut, 8-bit units.
    """
    return bool(score > CUT_NOISE_FACTOR * sigma_y + threshold)


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


# -- other layouts and output types ------------------------------------------------------------

@njit(inline="always", nogil=True)
def _half_bits(b: np.uint32, mode: int) -> np.uint16:
    """float32 bits -> IEEE half bits (mode 1) or bfloat16 bits (mode 2), round to nearest even.
    Finite inputs; halves keep subnormals and saturate to infinity."""
    if mode == 2:
        return np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    sign = (b >> np.uint32(16)) & np.uint32(0x8000)
    e = np.int32((b >> np.uint32(23)) & np.uint32(0xFF)) - 127 + 15
    m = b & np.uint32(0x7FFFFF)
    if e >= 31:
        return np.uint16(sign | np.uint32(0x7C00))
    if e <= 0:                                    # subnormal half (units of 2^-24) or zero
        if e < -10:
            return np.uint16(sign)
        m = m | np.uint32(0x800000)
        shift = np.uint32(14 - e)                 # 14..24
        q = m >> shift
        rest = m & ((np.uint32(1) << shift) - np.uint32(1))
        halfway = np.uint32(1) << (shift - np.uint32(1))
        if rest > halfway or (rest == halfway and (q & np.uint32(1))):
            q += np.uint32(1)                     # 1024 is the least normal: still correct
        return np.uint16(sign | q)
    q = (np.uint32(e) << np.uint32(10)) | (m >> np.uint32(13))
    rest = m & np.uint32(0x1FFF)
    if rest > np.uint32(0x1000) or (rest == np.uint32(0x1000) and (q & np.uint32(1))):
        q += np.uint32(1)                         # may carry into the exponent: still correct
    return np.uint16(sign | q)


@njit(parallel=True, cache=True, nogil=True)
def pack_yuv420_to(y: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float, out: np.ndarray,
                   mode: int) -> np.ndarray:
    """pack_yuv420 into float32 (mode 0) or into the uint16 bits of float16 (1) / bfloat16 (2),
    e.g. to upload half the bytes to a GPU (torch views the array as float16/bfloat16 with no
    copy). out: (ceil(H/2), ceil(W/2), 6) float32 for mode 0, uint16 otherwise."""
    h, w = y.shape
    h2, w2 = out.shape[0], out.shape[1]
    s = np.float32(scale)
    for i in prange(h2):
        r0 = 2 * i
        r1 = min(2 * i + 1, h - 1)
        row = np.empty(w2 * 6, np.float32)        # one float32 row, then converted bit-wise
        for j in range(w2):
            c0 = 2 * j
            c1 = min(2 * j + 1, w - 1)
            row[6 * j] = np.float32(y[r0, c0]) * s
            row[6 * j + 1] = np.float32(y[r0, c1]) * s
            row[6 * j + 2] = np.float32(y[r1, c0]) * s
            row[6 * j + 3] = np.float32(y[r1, c1]) * s
            row[6 * j + 4] = np.float32(u[i, j]) * s
            row[6 * j + 5] = np.float32(v[i, j]) * s
        if mode == 0:
            for j in range(w2):
                for c in range(6):
                    out[i, j, c] = row[6 * j + c]
        else:
            bits = row.view(np.uint32)
            for j in range(w2):
                for c in range(6):
                    out[i, j, c] = _half_bits(bits[6 * j + c], mode)
    return out


def pack_nv12(y: np.ndarray, uv: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
    """Packs NV12 (or P010/P016 as uint16) planes: luma (H, W) and interleaved chroma
    (ceil(H/2), ceil(W/2), 2) with U first (the (ceil(H/2), 2*ceil(W/2)) plane reshaped, no copy).
    Same output as pack_yuv420, which reads the two strided chroma views directly."""
    return pack_yuv420(y, uv[..., 0], uv[..., 1], scale, out)


def unpack_nv12(src: np.ndarray, max_value: int, y: np.ndarray, uv: np.ndarray) -> None:
    """The inverse of pack_nv12 (scale, round, clamp, crop odd sizes) into y and the interleaved
    uv (ceil(H/2), ceil(W/2), 2), written through strided views by unpack_yuv420."""
    unpack_yuv420(src, max_value, y, uv[..., 0], uv[..., 1])


@njit(parallel=True, cache=True, nogil=True)
def pack_bgr(bgr: np.ndarray, matrix: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Converts an 8-bit BGR image to YUV 4:2:0 and packs it, in one pass and without the
    intermediate rounding of a uint8 YUV image.

    Args:
        bgr: (H, W, 3) uint8.
        matrix: (3, 4) float32 BGR -> YUV in 8-bit units (coefficients of B, G, R and an offset),
            e.g. streamdn.frames' BT.601 limited-range matrix.
        out: (ceil(H/2), ceil(W/2), 6) float32, written and returned: luma phases and the mean
            chroma of each 2x2 block, / 255. Odd sizes repeat the last row/column.
    """
    h, w = bgr.shape[0], bgr.shape[1]
    h2, w2 = out.shape[0], out.shape[1]
    s = np.float32(1.0 / 255.0)
    for i in prange(h2):
        for j in range(w2):
            su = np.float32(0.0)
            sv = np.float32(0.0)
            for p in range(4):
                r = min(2 * i + (p >> 1), h - 1)
                c = min(2 * j + (p & 1), w - 1)
                b = np.float32(bgr[r, c, 0])
                g = np.float32(bgr[r, c, 1])
                rr = np.float32(bgr[r, c, 2])
                yv = matrix[0, 0] * b + matrix[0, 1] * g + matrix[0, 2] * rr + matrix[0, 3]
                su += matrix[1, 0] * b + matrix[1, 1] * g + matrix[1, 2] * rr + matrix[1, 3]
                sv += matrix[2, 0] * b + matrix[2, 1] * g + matrix[2, 2] * rr + matrix[2, 3]
                out[i, j, p] = min(max(yv, np.float32(0.0)), np.float32(255.0)) * s
            out[i, j, 4] = min(max(su * np.float32(0.25), np.float32(0.0)), np.float32(255.0)) * s
            out[i, j, 5] = min(max(sv * np.float32(0.25), np.float32(0.0)), np.float32(255.0)) * s
    return out


@njit(parallel=True, cache=True, nogil=True)
def unpack_bgr(src: np.ndarray, matrix: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Packed frame -> (H, W, 3) uint8 BGR: chroma upsampled bilinearly (sample centres of
    4:2:0, as cv2.resize INTER_LINEAR does at 2x), converted, rounded and clamped.

    Args:
        src: (ceil(H/2), ceil(W/2), 6) float32, [0, 1].
        matrix: (3, 4) float32 YUV -> BGR in 8-bit units (coefficients of Y, U, V and an offset).
        out: (H, W, 3) uint8, written and returned.
    """
    h, w = out.shape[0], out.shape[1]
    h2, w2 = src.shape[0], src.shape[1]
    k = np.float32(255.0)
    for r in prange(h):
        i = r >> 1
        fy = np.float32(0.25) if r & 1 else np.float32(-0.25)
        i2 = min(max(i + (1 if r & 1 else -1), 0), h2 - 1)
        wy = abs(fy)
        for c in range(w):
            j = c >> 1
            j2 = min(max(j + (1 if c & 1 else -1), 0), w2 - 1)
            wx = np.float32(0.25)
            yv = src[i, j, (r & 1) * 2 + (c & 1)] * k
            cu = ((1 - wy) * ((1 - wx) * src[i, j, 4] + wx * src[i, j2, 4])
                  + wy * ((1 - wx) * src[i2, j, 4] + wx * src[i2, j2, 4])) * k
            cv = ((1 - wy) * ((1 - wx) * src[i, j, 5] + wx * src[i, j2, 5])
                  + wy * ((1 - wx) * src[i2, j, 5] + wx * src[i2, j2, 5])) * k
            for ch in range(3):
                val = matrix[ch, 0] * yv + matrix[ch, 1] * cu + matrix[ch, 2] * cv + matrix[ch, 3] + np.float32(0.5)
                out[r, c, ch] = np.uint8(min(max(val, np.float32(0.0)), np.float32(255.0)))
    return out
