"""Motion compensation of the carried state: a luma plane from the packed frame, motion
estimation by hierarchical block matching, and warping of the state along the motion (bilinear or
bicubic, with a validity mask), including a warp of the packed YUV 4:2:0 frame that interpolates
luma at full resolution.

Flow convention (that of OpenCV's DIS, `dis.calc(cur, prev, None)`): `flow[i, j] = (dx, dy)` says
that the content at pixel (x=j, y=i) of the current frame was at (j + dx, i + dy) in the previous
one, in pixels of the flow's own grid; so `warp(prev_state, flow)` lines the previous state up
with the current frame.

The block matcher is the tile alignment of burst photography and of encoders' motion-compensated
temporal filters, made robust to noise and to repetitive patterns:
1. a 2x2-mean pyramid of both planes;
2. on the coarsest level, an exhaustive integer search (mean absolute difference over each
   tile) that prefers short vectors and keeps the zero vector unless another is clearly better;
3. on each finer level, the vector predicted from the coarser level, replaced by the zero vector
   or one of the four nearest coarser vectors only where that is clearly better (by `margin`),
   then a descent to the best neighbouring vector;
4. on every level, a pass that lets neighbouring tiles agree: a tile takes the median of its
   3x3 neighbourhood's vectors unless its own is clearly better, or a neighbour's vector that
   is clearly better than its own;
5. the sub-pixel part: at the finest level a few Lucas-Kanade steps on the tile (mean squared
   difference there), on coarser levels a parabola through the cost of the neighbouring vectors;
6. the tile vectors interpolated bilinearly between tile centres into one vector per pixel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# "No match" cost: finite, because fastmath lets LLVM assume there are no infinities.
_BIG = np.float32(1e30)
# Steps of the descent per level: the coarser level's vector is already within a pixel or two of
# the answer, so a few steps suffice; the cap bounds the cost of a bad tile.
_MAX_STEPS = 4
# Relative cost per pixel of vector length in the exhaustive search on the coarsest level.
_LENGTH_PENALTY = 0.1
# Keys' cubic convolution parameter: -0.5 is Catmull-Rom, the one that reproduces quadratics.
# (OpenCV's INTER_CUBIC uses -0.75, which sharpens more and rings more.)
_A = -0.5


@njit(inline="always")
def _cubic_weights(t: float) -> tuple[float, float, float, float]:
    """Keys weights of the taps at offsets -1, 0, 1, 2 for a fractional position t in [0, 1]."""
    a = np.float32(_A)
    t2 = t * t
    t3 = t2 * t
    w0 = a * (t3 - np.float32(2.0) * t2 + t)
    w1 = (a + np.float32(2.0)) * t3 - (a + np.float32(3.0)) * t2 + np.float32(1.0)
    w2 = -(a + np.float32(2.0)) * t3 + (np.float32(2.0) * a + np.float32(3.0)) * t2 - a * t
    w3 = a * (t2 - t3)
    return w0, w1, w2, w3


# ---------------------------------------------------------------------------------------------
# The luma plane motion is estimated on.


@njit(parallel=True, cache=True, nogil=True)
def _packed_luma_kernel(src: np.ndarray, factor: int, scale: float, offset: float, lo: float, hi: float,
                        out: np.ndarray) -> None:
    """out = clamp(mean of the factor x factor blocks of the luma phases' mean * scale + offset)."""
    h, w = src.shape[0], src.shape[1]
    ho, wo = out.shape
    for i in prange(ho):
        for j in range(wo):
            acc = np.float32(0.0)
            for di in range(factor):
                r = min(i * factor + di, h - 1)
                for dj in range(factor):
                    c = min(j * factor + dj, w - 1)
                    acc += src[r, c, 0] + src[r, c, 1] + src[r, c, 2] + src[r, c, 3]
            v = acc * np.float32(scale / (4.0 * factor * factor)) + np.float32(offset)
            out[i, j] = min(max(v, np.float32(lo)), np.float32(hi))


def packed_luma(src: np.ndarray, *, factor: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """The luma plane of a packed frame at half (factor 1) or quarter (factor 2) resolution.

    Each value is the mean of the 2 factor x 2 factor full-resolution luma samples it covers
    (which also divides Gaussian noise's sigma by 2 factor).

    Args:
        src: (H, W, 6) float32 packed YUV 4:2:0 frame (pack.py layout), [0, 1], any strides.
        factor: 1, 2 or 4: the plane is (ceil(H/factor), ceil(W/factor)); the last row/column of
            an odd size repeats the border.
        out: float32 buffer for values in [0, 1] (unclamped), or uint8 for values rounded and
            clamped to [0, 255] (what OpenCV's DIS wants); the shape above. float32 when None.

    Returns:
        out.

    Raises:
        ValueError: a shape, dtype or factor that does not fit.
    """
    if src.ndim != 3 or src.shape[2] != 6 or src.dtype != np.float32:
        raise ValueError(f"src must be a float32 (H, W, 6) packed frame, got {src.dtype} {src.shape}")
    if factor not in (1, 2, 4):
        raise ValueError(f"factor must be 1, 2 or 4, got {factor}")
    shape = (-(-src.shape[0] // factor), -(-src.shape[1] // factor))
    if out is None:
        out = np.empty(shape, np.float32)
    if out.shape != shape or out.dtype not in (np.float32, np.uint8):
        raise ValueError(f"out must be float32 or uint8 {shape}, got {out.dtype} {out.shape}")
    if out.dtype == np.uint8:
        # +0.5 then truncation on the store rounds to nearest.
        _packed_luma_kernel(src, factor, 255.0, 0.5, 0.0, 255.5, out)
    else:
        _packed_luma_kernel(src, factor, 1.0, 0.0, -3.0e38, 3.0e38, out)
    return out


# ---------------------------------------------------------------------------------------------
# Block matching (the steps are listed in the module docstring).


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _downsample2(src: np.ndarray, out: np.ndarray) -> None:
    """out ((H+1)//2, (W+1)//2) = the mean of each 2x2 block of src (H, W), the border repeated."""
    h, w = src.shape
    for i in prange(out.shape[0]):
        r0 = 2 * i
        r1 = min(2 * i + 1, h - 1)
        for j in range(out.shape[1]):
            c0 = 2 * j
            c1 = min(2 * j + 1, w - 1)
            out[i, j] = np.float32(0.25) * (src[r0, c0] + src[r0, c1] + src[r1, c0] + src[r1, c1])


@njit(inline="always")
def _grid(n: int, tile: int, stride: int) -> tuple[int, int]:
    """(tile size, number of tiles) along an axis of n pixels; the last tile is pushed inside."""
    t = min(tile, n)
    nb = 1 if n <= t else (n - t + stride - 1) // stride + 1
    return t, nb


@njit(inline="always")
def _start(b: int, n: int, t: int, stride: int) -> int:
    return min(b * stride, n - t)


@njit(cache=True, nogil=True, fastmath=True)
def _cost(cur: np.ndarray, prev: np.ndarray, y0: int, x0: int, th: int, tw: int, dy: int, dx: int,
          squared: bool) -> float:
    """Mean absolute or squared difference between a tile of cur and prev moved by (dy, dx),
    over the part of the tile whose match lies inside prev (_BIG when that is under half)."""
    h, w = prev.shape
    ra = max(y0, -dy)
    rb = min(y0 + th, h - dy)
    ca = max(x0, -dx)
    cb = min(x0 + tw, w - dx)
    if rb <= ra or cb <= ca:
        return _BIG
    n = (rb - ra) * (cb - ca)
    if 2 * n < th * tw:
        return _BIG
    s = np.float32(0.0)
    m = cb - ca
    # Row slices and a 0-based inner index let LLVM vectorize the loop (no negative-index checks).
    if squared:
        for r in range(ra, rb):
            a = cur[r, ca:cb]
            b = prev[r + dy, ca + dx:cb + dx]
            for k in range(m):
                d = a[k] - b[k]
                s += d * d
    else:
        for r in range(ra, rb):
            a = cur[r, ca:cb]
            b = prev[r + dy, ca + dx:cb + dx]
            for k in range(m):
                s += abs(a[k] - b[k])
    return s / np.float32(n)


@njit(inline="always")
def _parabola(cm: float, c0: float, cp: float) -> float:
    """Sub-pixel offset of the minimum of the parabola through (-1, cm), (0, c0), (1, cp)."""
    den = cm - 2.0 * c0 + cp
    if not (den > 0.0) or cm >= _BIG or cp >= _BIG:
        return 0.0
    return min(max(0.5 * (cm - cp) / den, -0.5), 0.5)


@njit(cache=True, nogil=True, fastmath=True)
def _full_search(cur: np.ndarray, prev: np.ndarray, y0: int, x0: int, th: int, tw: int, radius: int,
                 squared: bool, keep: float) -> tuple[float, int, int]:
    """(cost, dy, dx) of the best integer vector within +-radius, or of the zero vector unless
    the best costs less than `keep` times as much (ties and noise keep a flat tile still).
    Longer vectors must also cost _LENGTH_PENALTY per pixel less, so that on a repetitive
    pattern the nearest of its look-alike matches wins."""
    zero = _cost(cur, prev, y0, x0, th, tw, 0, 0, squared)
    best = zero
    score = zero
    bdy = 0
    bdx = 0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            c = _cost(cur, prev, y0, x0, th, tw, dy, dx, squared)
            sc = c * (np.float32(1.0) + np.float32(_LENGTH_PENALTY) * (abs(dy) + abs(dx)))
            if sc < score:
                score = sc
                best = c
                bdy = dy
                bdx = dx
    if score < keep * zero:
        return best, bdy, bdx
    return zero, 0, 0


@njit(cache=True, nogil=True, fastmath=True)
def _best_candidate(cur: np.ndarray, prev: np.ndarray, y0: int, x0: int, th: int, tw: int, stride: int,
                    coarse: np.ndarray, cth: int, ctw: int, squared: bool, keep: float) -> tuple[float, int, int]:
    """(cost, dy, dx) of the vector predicted from the coarser level (twice its bilinear
    interpolation at the tile centre), replaced by the zero vector or twice one of the four
    nearest coarser vectors only where that costs less than `keep` times as much."""
    cnby, cnbx = coarse.shape[0], coarse.shape[1]
    # The tile centre in the coarser level's pixels, as a position on the coarse tile grid.
    fy = min(max(((y0 + 0.5 * th) * 0.5 - 0.5 * cth) / stride, 0.0), cnby - 1.0)
    fx = min(max(((x0 + 0.5 * tw) * 0.5 - 0.5 * ctw) / stride, 0.0), cnbx - 1.0)
    ky = min(int(fy), cnby - 1)
    kx = min(int(fx), cnbx - 1)
    ky1 = min(ky + 1, cnby - 1)
    kx1 = min(kx + 1, cnbx - 1)
    ay = fy - ky
    ax = fx - kx
    py = 0.0
    px = 0.0
    for k in range(4):
        qy = ky1 if k >> 1 else ky
        qx = kx1 if k & 1 else kx
        wgt = (ay if k >> 1 else 1.0 - ay) * (ax if k & 1 else 1.0 - ax)
        py += wgt * coarse[qy, qx, 1]
        px += wgt * coarse[qy, qx, 0]
    bdy = int(round(2.0 * py))
    bdx = int(round(2.0 * px))
    best = _cost(cur, prev, y0, x0, th, tw, bdy, bdx, squared)
    bar = keep * best
    for k in range(5):
        if k == 4:
            dy = 0
            dx = 0
        else:
            dy = int(round(2.0 * coarse[ky1 if k >> 1 else ky, kx1 if k & 1 else kx, 1]))
            dx = int(round(2.0 * coarse[ky1 if k >> 1 else ky, kx1 if k & 1 else kx, 0]))
        if dy == bdy and dx == bdx:
            continue
        c = _cost(cur, prev, y0, x0, th, tw, dy, dx, squared)
        if c < bar and c < best:
            best = c
            bdy = dy
            bdx = dx
    return best, bdy, bdx


@njit(cache=True, nogil=True, fastmath=True)
def _descend(cur: np.ndarray, prev: np.ndarray, y0: int, x0: int, th: int, tw: int, best: float, bdy: int,
             bdx: int, squared: bool, keep: float, memo: np.ndarray) -> tuple[float, int, int]:
    """Moves to the best neighbouring vector while it costs less than `keep` times as much as the
    current one: among 8 neighbours on coarse levels (a cross alone stalls in diagonal valleys),
    among 4 with the squared cost of the finest level (its Lucas-Kanade steps reach a pixel
    further). Returns (cost, dy, dx).

    memo: (2 _MAX_STEPS + 3)^2 float32 scratch, so each step only pays for its new neighbours.
    """
    k = _MAX_STEPS + 1
    memo[:] = -1.0
    memo[k, k] = best
    sy = bdy
    sx = bdx
    for _ in range(_MAX_STEPS + 1):
        m = best
        my = 0
        mx = 0
        for ny in range(-1, 2):
            for nx in range(-1, 2):
                if squared and ny != 0 and nx != 0:
                    continue
                iy = bdy + ny - sy + k
                ix = bdx + nx - sx + k
                c = memo[iy, ix]
                if c < 0.0:
                    c = _cost(cur, prev, y0, x0, th, tw, bdy + ny, bdx + nx, squared)
                    memo[iy, ix] = c
                if c < m:
                    m = c
                    my = ny
                    mx = nx
        if (my == 0 and mx == 0) or not (m < keep * best):
            break
        best = m
        bdy += my
        bdx += mx
        if abs(bdy - sy) >= k or abs(bdx - sx) >= k:
            break
    return best, bdy, bdx


@njit(cache=True, nogil=True, fastmath=True)
def _lucas_kanade(cur: np.ndarray, prev: np.ndarray, y0: int, x0: int, th: int, tw: int, dy: int, dx: int,
                  iters: int) -> tuple[float, float, bool]:
    """Sub-pixel offset (ox, oy) of the match at integer vector (dy, dx) by Gauss-Newton steps.

    The residual cur - prev(moved by the offset so far; Keys bicubic, since bilinear would blur
    prev and bias the answer) is explained by the mean of the two images' gradients at the
    integer match, kept fixed (the symmetric gradient converges in fewer steps than prev's
    alone). Returns (ox, oy, ok); not ok on a tile without the texture to tell, too close to the
    border, or whose answer left (-1, 1).
    """
    h, w = prev.shape
    # Margins: one pixel for the gradients, and bicubic taps at offsets in (-1, 1) reach rows
    # r + dy - 2 .. r + dy + 3.
    ra = max(y0, 2 - dy, 1)
    rb = min(y0 + th, h - 3 - dy, h - 1)
    ca = max(x0, 2 - dx, 1)
    cb = min(x0 + tw, w - 3 - dx, w - 1)
    if rb - ra < 2 or cb - ca < 2:
        return 0.0, 0.0, False
    m = cb - ca
    half = np.float32(0.25)
    axx = np.float32(0.0)
    axy = np.float32(0.0)
    ayy = np.float32(0.0)
    bx = np.float32(0.0)
    by = np.float32(0.0)
    # The normal equations and the first step's right-hand side in one pass.
    for r in range(ra, rb):
        pu = prev[r + dy - 1, ca + dx:cb + dx]
        pm = prev[r + dy, ca + dx - 1:cb + dx + 1]
        pd = prev[r + dy + 1, ca + dx:cb + dx]
        cu = cur[r - 1, ca:cb]
        cm = cur[r, ca - 1:cb + 1]
        cd = cur[r + 1, ca:cb]
        for k in range(m):
            gx = half * (pm[k + 2] - pm[k] + cm[k + 2] - cm[k])
            gy = half * (pd[k] - pu[k] + cd[k] - cu[k])
            e = cm[k + 1] - pm[k + 1]
            axx += gx * gx
            axy += gx * gy
            ayy += gy * gy
            bx += gx * e
            by += gy * e
    # A light Tikhonov term keeps edges (one strong gradient direction) and flat tiles stable.
    reg = np.float32(0.01) * (axx + ayy) + np.float32(1e-12)
    axx += reg
    ayy += reg
    det = axx * ayy - axy * axy
    if not (det > 0.0):
        return 0.0, 0.0, False
    ox = min(max((ayy * bx - axy * by) / det, np.float32(-1.0)), np.float32(1.0))
    oy = min(max((axx * by - axy * bx) / det, np.float32(-1.0)), np.float32(1.0))
    for _ in range(iters - 1):
        fy = math.floor(oy)
        fx = math.floor(ox)
        iy = int(fy)
        ix = int(fx)
        wx0, wx1, wx2, wx3 = _cubic_weights(np.float32(ox - fx))
        wy0, wy1, wy2, wy3 = _cubic_weights(np.float32(oy - fy))
        bx = np.float32(0.0)
        by = np.float32(0.0)
        for r in range(ra, rb):
            pu = prev[r + dy - 1, ca + dx:cb + dx]
            pm = prev[r + dy, ca + dx - 1:cb + dx + 1]
            pd = prev[r + dy + 1, ca + dx:cb + dx]
            cu = cur[r - 1, ca:cb]
            cm = cur[r, ca - 1:cb + 1]
            cd = cur[r + 1, ca:cb]
            r0 = r + dy + iy
            c0 = ca + dx + ix - 1
            q0 = prev[r0 - 1, c0:c0 + m + 3]
            q1 = prev[r0, c0:c0 + m + 3]
            q2 = prev[r0 + 1, c0:c0 + m + 3]
            q3 = prev[r0 + 2, c0:c0 + m + 3]
            for k in range(m):
                gx = half * (pm[k + 2] - pm[k] + cm[k + 2] - cm[k])
                gy = half * (pd[k] - pu[k] + cd[k] - cu[k])
                h0 = wx0 * q0[k] + wx1 * q0[k + 1] + wx2 * q0[k + 2] + wx3 * q0[k + 3]
                h1 = wx0 * q1[k] + wx1 * q1[k + 1] + wx2 * q1[k + 2] + wx3 * q1[k + 3]
                h2 = wx0 * q2[k] + wx1 * q2[k + 1] + wx2 * q2[k + 2] + wx3 * q2[k + 3]
                h3 = wx0 * q3[k] + wx1 * q3[k + 1] + wx2 * q3[k + 2] + wx3 * q3[k + 3]
                e = cm[k + 1] - (wy0 * h0 + wy1 * h1 + wy2 * h2 + wy3 * h3)
                bx += gx * e
                by += gy * e
        ox = min(max(ox + (ayy * bx - axy * by) / det, np.float32(-1.0)), np.float32(1.0))
        oy = min(max(oy + (axx * by - axy * bx) / det, np.float32(-1.0)), np.float32(1.0))
    if abs(ox) >= 1.0 or abs(oy) >= 1.0:
        return 0.0, 0.0, False
    return ox, oy, True


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _search_level(cur: np.ndarray, prev: np.ndarray, tile: int, stride: int, radius: int, coarse: np.ndarray,
                  ch: int, cw: int, squared: bool, keep: float, ivec: np.ndarray, cost: np.ndarray) -> None:
    """Integer tile vectors of one pyramid level.

    coarse: (cnby, cnbx, 2) float32 vectors of the next coarser level (of size (ch, cw)), or
        (0, 0, 2) on the coarsest level, which searches every vector within +-radius instead.
    squared: squared differences (the finest level) or absolute differences.
    keep: a vector replaces the current one only where it costs less than keep times as much.
    ivec: (nby, nbx, 2) int32 output (dx, dy); cost: (nby, nbx) float32 output, its cost.
    """
    h, w = cur.shape
    th, nby = _grid(h, tile, stride)
    tw, nbx = _grid(w, tile, stride)
    cth = min(tile, ch)
    ctw = min(tile, cw)
    for by in prange(nby):
        y0 = _start(by, h, th, stride)
        memo = np.empty((2 * _MAX_STEPS + 3, 2 * _MAX_STEPS + 3), np.float32)
        for bx in range(nbx):
            x0 = _start(bx, w, tw, stride)
            if coarse.shape[0] == 0:
                best, bdy, bdx = _full_search(cur, prev, y0, x0, th, tw, radius, squared, keep)
            else:
                best, bdy, bdx = _best_candidate(cur, prev, y0, x0, th, tw, stride, coarse, cth, ctw, squared,
                                                  keep)
            best, bdy, bdx = _descend(cur, prev, y0, x0, th, tw, best, bdy, bdx, squared, keep, memo)
            ivec[by, bx, 0] = bdx
            ivec[by, bx, 1] = bdy
            cost[by, bx] = best


@njit(inline="always")
def _median3(a: np.ndarray, n: int) -> int:
    """Median of the first n (odd or even; the lower middle) values of a small int array."""
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v
    return a[(n - 1) // 2]


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _propagate(cur: np.ndarray, prev: np.ndarray, tile: int, stride: int, squared: bool, keep: float,
               ivec: np.ndarray, cost: np.ndarray, ivec_out: np.ndarray, cost_out: np.ndarray) -> None:
    """Lets neighbouring tiles agree. Each tile takes the median of its 3x3 neighbourhood's
    vectors unless its own costs less than keep times as much (an outlier in a repetitive or flat
    region has no such lead; a tile on the edge of a moving object has), then any neighbour's
    vector that costs less than keep times its own (a tile stuck in a local minimum)."""
    h, w = cur.shape
    th, nby = _grid(h, tile, stride)
    tw, nbx = _grid(w, tile, stride)
    for by in prange(nby):
        y0 = _start(by, h, th, stride)
        mx = np.empty(9, np.int32)
        my = np.empty(9, np.int32)
        for bx in range(nbx):
            x0 = _start(bx, w, tw, stride)
            bdx = ivec[by, bx, 0]
            bdy = ivec[by, bx, 1]
            best = cost[by, bx]
            n = 0
            for ny in range(max(by - 1, 0), min(by + 2, nby)):
                for nx in range(max(bx - 1, 0), min(bx + 2, nbx)):
                    mx[n] = ivec[ny, nx, 0]
                    my[n] = ivec[ny, nx, 1]
                    n += 1
            qx = _median3(mx, n)
            qy = _median3(my, n)
            if qx != bdx or qy != bdy:
                c = _cost(cur, prev, y0, x0, th, tw, qy, qx, squared)
                if keep * c <= best:
                    best = c
                    bdx = qx
                    bdy = qy
            for ny in range(max(by - 1, 0), min(by + 2, nby)):
                for nx in range(max(bx - 1, 0), min(bx + 2, nbx)):
                    dx = ivec[ny, nx, 0]
                    dy = ivec[ny, nx, 1]
                    if dx == bdx and dy == bdy:
                        continue
                    c = _cost(cur, prev, y0, x0, th, tw, dy, dx, squared)
                    if c < keep * best:
                        best = c
                        bdx = dx
                        bdy = dy
            ivec_out[by, bx, 0] = bdx
            ivec_out[by, bx, 1] = bdy
            cost_out[by, bx] = best


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _subpixel(cur: np.ndarray, prev: np.ndarray, tile: int, stride: int, squared: bool, refine: int,
              ivec: np.ndarray, cost: np.ndarray, vec: np.ndarray) -> None:
    """vec (nby, nbx, 2) float32 = the integer vectors plus their sub-pixel part: `refine`
    Lucas-Kanade steps, or (refine 0, or a tile without texture) a parabola through the cost and
    the cost of the four neighbouring vectors."""
    h, w = cur.shape
    th, nby = _grid(h, tile, stride)
    tw, nbx = _grid(w, tile, stride)
    for by in prange(nby):
        y0 = _start(by, h, th, stride)
        for bx in range(nbx):
            x0 = _start(bx, w, tw, stride)
            dx = ivec[by, bx, 0]
            dy = ivec[by, bx, 1]
            ok = False
            ox = 0.0
            oy = 0.0
            if refine > 0:
                ox, oy, ok = _lucas_kanade(cur, prev, y0, x0, th, tw, dy, dx, refine)
            if not ok:
                c0 = cost[by, bx]
                ox = _parabola(_cost(cur, prev, y0, x0, th, tw, dy, dx - 1, squared), c0,
                               _cost(cur, prev, y0, x0, th, tw, dy, dx + 1, squared))
                oy = _parabola(_cost(cur, prev, y0, x0, th, tw, dy - 1, dx, squared), c0,
                               _cost(cur, prev, y0, x0, th, tw, dy + 1, dx, squared))
            vec[by, bx, 0] = dx + ox
            vec[by, bx, 1] = dy + oy


@njit(cache=True, nogil=True)
def _tile_weights(n_out: int, n: int, tile: int, stride: int, idx: np.ndarray, wt: np.ndarray) -> None:
    """For each output position along an axis: the first of the two tiles whose centres bracket
    it (idx) and the weight of the second (wt), with output pixels spread over n input pixels."""
    t, nb = _grid(n, tile, stride)
    s = n_out / n
    for i in range(n_out):
        p = (i + 0.5) / s - 0.5
        if nb == 1:
            idx[i] = 0
            wt[i] = 0.0
            continue
        k = min(max(int(math.floor((p - 0.5 * t + 0.5) / stride)), 0), nb - 2)
        c0 = _start(k, n, t, stride) + 0.5 * t - 0.5
        c1 = _start(k + 1, n, t, stride) + 0.5 * t - 0.5
        idx[i] = k
        wt[i] = min(max((p - c0) / (c1 - c0), 0.0), 1.0)


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _dense_field(vec: np.ndarray, h: int, w: int, tile: int, stride: int, out: np.ndarray) -> None:
    """Bilinear interpolation of tile vectors (nby, nbx, 2) between tile centres into out
    (Ho, Wo, 2), vectors scaled from the (h, w) grid they were measured on to out's grid."""
    ho, wo = out.shape[0], out.shape[1]
    ky = np.empty(ho, np.int64)
    ty = np.empty(ho, np.float32)
    kx = np.empty(wo, np.int64)
    tx = np.empty(wo, np.float32)
    _tile_weights(ho, h, tile, stride, ky, ty)
    _tile_weights(wo, w, tile, stride, kx, tx)
    nby, nbx = vec.shape[0], vec.shape[1]
    sx = np.float32(wo / w)
    sy = np.float32(ho / h)
    for i in prange(ho):
        a0 = ky[i]
        a1 = min(a0 + 1, nby - 1)
        ta = ty[i]
        for j in range(wo):
            b0 = kx[j]
            b1 = min(b0 + 1, nbx - 1)
            tb = tx[j]
            top = vec[a0, b0, 0] + tb * (vec[a0, b1, 0] - vec[a0, b0, 0])
            bot = vec[a1, b0, 0] + tb * (vec[a1, b1, 0] - vec[a1, b0, 0])
            out[i, j, 0] = (top + ta * (bot - top)) * sx
            top = vec[a0, b0, 1] + tb * (vec[a0, b1, 1] - vec[a0, b0, 1])
            bot = vec[a1, b0, 1] + tb * (vec[a1, b1, 1] - vec[a1, b0, 1])
            out[i, j, 1] = (top + ta * (bot - top)) * sy


def _tiles(n: int, tile: int, stride: int) -> int:
    """Python twin of _grid: the number of tiles along an axis of n pixels."""
    return 1 if n <= tile else (n - tile + stride - 1) // stride + 1


def block_match(cur: np.ndarray, prev: np.ndarray, *, tile: int = 16, stride: int | None = None, levels: int = 3,
                radius: int = 4, refine: int = 2, margin: float = 0.2,
                out: np.ndarray | None = None) -> np.ndarray:
    """Dense flow from `cur` to `prev` by hierarchical block matching.

    Reach: radius * 2**(levels-1) pixels of the input, plus a few pixels of descent per level
    (the defaults: +-16 px at the input's resolution, +-32 px of a 720p frame for a half-resolution
    luma). Accuracy is that of a tile: each tile gets one vector, so motion that changes within a
    tile (object edges, rotation) is smoothed over about a tile.

    Args:
        cur: (H, W) float32 luma of the current frame (any scale, e.g. [0, 1]; noisy is fine).
        prev: (H, W) float32 luma of the previous frame or output, the same scale.
        tile: tile side in pixels at every level (8-32).
        stride: distance between tiles; tile // 2 (half-overlapping tiles) when None.
        levels: pyramid levels including the input (1 = no pyramid).
        radius: exhaustive search radius on the coarsest level, in that level's pixels.
        refine: Lucas-Kanade steps for the sub-pixel part at the finest level (0: a parabola
            through the cost of the best integer vector and of its neighbours instead).
        margin: a tile leaves the vector it inherits (zero on the coarsest level, the coarser
            level's otherwise) only for one that costs at least this fraction less, so that
            noise does not pull flat tiles around (0 <= margin < 1).
        out: (Ho, Wo, 2) float32 flow buffer (dx, dy); when its size differs from (H, W) the field
            is resampled to it and its vectors scaled to its pixels (e.g. match at quarter
            resolution, get a half-resolution flow). (H, W, 2) allocated when None.

    Returns:
        out, in pixels of out's grid.

    Raises:
        ValueError: a shape, dtype or parameter out of range.
    """
    if cur.ndim != 2 or cur.dtype != np.float32 or prev.shape != cur.shape or prev.dtype != np.float32:
        raise ValueError(f"cur and prev must be float32 (H, W) planes of one size, got {cur.dtype} {cur.shape} "
                         f"and {prev.dtype} {prev.shape}")
    stride = tile // 2 if stride is None else stride
    if not (2 <= tile and 1 <= stride <= tile and levels >= 1 and radius >= 0 and refine >= 0 and 0 <= margin < 1):
        raise ValueError(f"need tile >= 2, 1 <= stride <= tile, levels >= 1, radius >= 0, refine >= 0 and "
                         f"0 <= margin < 1; got tile={tile}, stride={stride}, levels={levels}, radius={radius}, "
                         f"refine={refine}, margin={margin}")
    if out is None:
        out = np.empty((*cur.shape, 2), np.float32)
    elif out.ndim != 3 or out.shape[2] != 2 or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 (Ho, Wo, 2) flow, got {out.dtype} {out.shape}")
    pyr_c = [np.ascontiguousarray(cur)]
    pyr_p = [np.ascontiguousarray(prev)]
    for _ in range(levels - 1):
        h, w = pyr_c[-1].shape
        if min(h, w) < 2 * tile:
            break
        size = ((h + 1) // 2, (w + 1) // 2)
        pyr_c.append(np.empty(size, np.float32))
        pyr_p.append(np.empty(size, np.float32))
        _downsample2(pyr_c[-2], pyr_c[-1])
        _downsample2(pyr_p[-2], pyr_p[-1])
    coarse = np.zeros((0, 0, 2), np.float32)
    ch = cw = 1
    keep = 1.0 - margin
    for lev in range(len(pyr_c) - 1, -1, -1):
        c, p = pyr_c[lev], pyr_p[lev]
        h, w = c.shape
        shape = (_tiles(h, tile, stride), _tiles(w, tile, stride))
        squared = lev == 0
        ivec = np.empty((*shape, 2), np.int32)
        cost = np.empty(shape, np.float32)
        ivec2 = np.empty_like(ivec)
        cost2 = np.empty_like(cost)
        vec = np.empty((*shape, 2), np.float32)
        _search_level(c, p, tile, stride, radius, coarse, ch, cw, squared, keep, ivec, cost)
        _propagate(c, p, tile, stride, squared, keep, ivec, cost, ivec2, cost2)
        # The sub-pixel part also on coarse levels (a parabola), so that the finer level starts
        # from twice a better estimate than twice an integer.
        _subpixel(c, p, tile, stride, squared, refine if lev == 0 else 0, ivec2, cost2, vec)
        coarse, ch, cw = vec, h, w
    _dense_field(coarse, cur.shape[0], cur.shape[1], tile, stride, out)
    return out


# ---------------------------------------------------------------------------------------------
# Warping. Pixels sit at integer coordinates; a position outside the array is first clamped to
# its border, so what lies outside repeats the border (for bilinear this is exactly
# cv2.BORDER_REPLICATE). `warp_packed` interpolates the four luma phases of the packed frame (see
# pack.py) as the one full-resolution plane they are, not as four aliased half-resolution planes,
# which keeps sub-pixel pans sharp when the state is warped again every frame.


@njit(inline="always")
def _clamp(v: int, hi: int) -> int:
    return 0 if v < 0 else (hi if v > hi else v)


@njit(inline="always")
def _locate(p: float, n: int) -> tuple[int, float]:
    """Clamps position p to [0, n-1] (outside samples take the border's value) and splits it
    into the left tap (at most n-2, so that tap + 1 exists) and the fraction in [0, 1]."""
    p = min(max(p, np.float32(0.0)), np.float32(n - 1))
    k = min(int(p), max(n - 2, 0))
    return k, p - np.float32(k)


@njit(inline="always")
def _inside(sx: float, sy: float, w: int, h: int) -> np.float32:
    ok = sx >= 0.0 and sx <= w - 1 and sy >= 0.0 and sy <= h - 1
    return np.float32(1.0) if ok else np.float32(0.0)


@njit(inline="always")
def _bilinear(src: np.ndarray, y0: int, x0: int, ty: float, tx: float, c: int) -> float:
    y1 = min(y0 + 1, src.shape[0] - 1)
    x1 = min(x0 + 1, src.shape[1] - 1)
    a = src[y0, x0, c]
    b = src[y0, x1, c]
    top = a + tx * (b - a)
    d = src[y1, x0, c]
    bot = d + tx * (src[y1, x1, c] - d)
    return top + ty * (bot - top)


@njit(inline="always")
def _bicubic(src: np.ndarray, y0: int, x0: int, wy: tuple[float, float, float, float],
             wx: tuple[float, float, float, float], c: int) -> float:
    h, w = src.shape[0], src.shape[1]
    acc = np.float32(0.0)
    for k in range(4):
        r = _clamp(y0 - 1 + k, h - 1)
        row = (wx[0] * src[r, _clamp(x0 - 1, w - 1), c] + wx[1] * src[r, x0, c]
               + wx[2] * src[r, _clamp(x0 + 1, w - 1), c] + wx[3] * src[r, _clamp(x0 + 2, w - 1), c])
        acc += wy[k] * row
    return acc


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _warp_kernel(src: np.ndarray, flow: np.ndarray, cubic: bool, out: np.ndarray, valid: np.ndarray) -> None:
    h, w, nc = src.shape
    for i in prange(h):
        for j in range(w):
            sx = np.float32(j) + flow[i, j, 0]
            sy = np.float32(i) + flow[i, j, 1]
            valid[i, j] = _inside(sx, sy, w, h)
            x0, tx = _locate(sx, w)
            y0, ty = _locate(sy, h)
            if cubic:
                wx = _cubic_weights(tx)
                wy = _cubic_weights(ty)
                if 1 <= x0 and x0 + 2 < w and 1 <= y0 and y0 + 2 < h:
                    # Interior: no clamping, the 4x4 taps read as 4 rows of 4.
                    for c in range(nc):
                        acc = np.float32(0.0)
                        for k in range(4):
                            r = y0 - 1 + k
                            acc += wy[k] * (wx[0] * src[r, x0 - 1, c] + wx[1] * src[r, x0, c]
                                            + wx[2] * src[r, x0 + 1, c] + wx[3] * src[r, x0 + 2, c])
                        out[i, j, c] = acc
                else:
                    for c in range(nc):
                        out[i, j, c] = _bicubic(src, y0, x0, wy, wx, c)
            else:
                for c in range(nc):
                    out[i, j, c] = _bilinear(src, y0, x0, ty, tx, c)


@njit(inline="always")
def _luma(src: np.ndarray, r: int, c: int) -> float:
    """Full-resolution luma sample (r, c), border repeated, read from the packed phases."""
    r = _clamp(r, 2 * src.shape[0] - 1)
    c = _clamp(c, 2 * src.shape[1] - 1)
    return src[r >> 1, c >> 1, 2 * (r & 1) + (c & 1)]


@njit(cache=True, nogil=True, fastmath=True)
def _luma_phase(src: np.ndarray, ly: float, lx: float, cubic: bool) -> float:
    """One luma sample at full-resolution position (ly, lx), read from the packed phases; the
    general case, used near the border."""
    hh, ww = 2 * src.shape[0], 2 * src.shape[1]
    r0, fy = _locate(ly, hh)
    c0, fx = _locate(lx, ww)
    if cubic:
        ux = _cubic_weights(fx)
        uy = _cubic_weights(fy)
        acc = np.float32(0.0)
        for k in range(4):
            r = r0 - 1 + k
            acc += uy[k] * (ux[0] * _luma(src, r, c0 - 1) + ux[1] * _luma(src, r, c0)
                            + ux[2] * _luma(src, r, c0 + 1) + ux[3] * _luma(src, r, c0 + 2))
        return acc
    a = _luma(src, r0, c0)
    top = a + fx * (_luma(src, r0, c0 + 1) - a)
    d = _luma(src, r0 + 1, c0)
    bot = d + fx * (_luma(src, r0 + 1, c0 + 1) - d)
    return top + fy * (bot - top)


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _warp_packed_kernel(src: np.ndarray, flow: np.ndarray, cubic: bool, out: np.ndarray, valid: np.ndarray) -> None:
    h, w = src.shape[0], src.shape[1]
    hh, ww = 2 * h, 2 * w
    for i in prange(h):
        # The full-resolution luma neighbourhood shared by the four phases of one output pixel:
        # 5x5 taps for bicubic (each phase uses a 4x4 window of it), 3x3 for bilinear.
        taps = np.empty((5, 5), np.float32)
        for j in range(w):
            u = flow[i, j, 0]
            v = flow[i, j, 1]
            # Chroma (channels 4, 5) and the mask: an ordinary half-resolution sample.
            sx = np.float32(j) + u
            sy = np.float32(i) + v
            valid[i, j] = _inside(sx, sy, w, h)
            x0, tx = _locate(sx, w)
            y0, ty = _locate(sy, h)
            if cubic:
                wx = _cubic_weights(tx)
                wy = _cubic_weights(ty)
                for c in range(4, 6):
                    out[i, j, c] = _bicubic(src, y0, x0, wy, wx, c)
            else:
                for c in range(4, 6):
                    out[i, j, c] = _bilinear(src, y0, x0, ty, tx, c)
            # Luma: phase p sits at full-resolution (2i + p // 2, 2j + p % 2) and moves by (2v, 2u).
            ly = np.float32(2 * i) + np.float32(2.0) * v
            lx = np.float32(2 * j) + np.float32(2.0) * u
            n = 5 if cubic else 3
            lo = 1 if cubic else 0
            if not (lo <= ly and ly + 1 + n - lo < hh and lo <= lx and lx + 1 + n - lo < ww):
                for p in range(4):
                    out[i, j, p] = _luma_phase(src, ly + np.float32(p >> 1), lx + np.float32(p & 1), cubic)
                continue
            r0 = int(ly)
            c0 = int(lx)
            fy = ly - np.float32(r0)
            fx = lx - np.float32(c0)
            for a in range(n):
                r = r0 - lo + a
                rs = r >> 1
                rp = 2 * (r & 1)
                for b in range(n):
                    c = c0 - lo + b
                    taps[a, b] = src[rs, c >> 1, rp + (c & 1)]
            if cubic:
                ux = _cubic_weights(fx)
                uy = _cubic_weights(fy)
                for p in range(4):
                    pr = p >> 1
                    pc = p & 1
                    acc = np.float32(0.0)
                    for k in range(4):
                        acc += uy[k] * (ux[0] * taps[pr + k, pc] + ux[1] * taps[pr + k, pc + 1]
                                        + ux[2] * taps[pr + k, pc + 2] + ux[3] * taps[pr + k, pc + 3])
                    out[i, j, p] = acc
            else:
                for p in range(4):
                    pr = p >> 1
                    pc = p & 1
                    top = taps[pr, pc] + fx * (taps[pr, pc + 1] - taps[pr, pc])
                    bot = taps[pr + 1, pc] + fx * (taps[pr + 1, pc + 1] - taps[pr + 1, pc])
                    out[i, j, p] = top + fy * (bot - top)


def _check(src: np.ndarray, flow: np.ndarray, out: np.ndarray | None, valid: np.ndarray | None,
           channels: int | None) -> tuple[np.ndarray, np.ndarray]:
    if src.ndim != 3 or src.dtype != np.float32:
        raise ValueError(f"src must be a float32 (H, W, C) array, got {src.dtype} {src.shape}; "
                         "add a channel axis with src[..., None] for one plane")
    if channels is not None and src.shape[2] != channels:
        raise ValueError(f"src must have {channels} channels (packed YUV 4:2:0), got {src.shape[2]}")
    h, w = src.shape[:2]
    if flow.shape != (h, w, 2) or flow.dtype != np.float32:
        raise ValueError(f"flow must be float32 ({h}, {w}, 2) to match src, got {flow.dtype} {flow.shape}")
    if out is None:
        out = np.empty_like(src)
    elif out.shape != src.shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {src.shape}, got {out.dtype} {out.shape}")
    elif np.shares_memory(out, src):
        raise ValueError("out must not overlap src: warp into a second buffer and swap")
    if valid is None:
        valid = np.empty((h, w), np.float32)
    elif valid.shape != (h, w) or valid.dtype != np.float32:
        raise ValueError(f"valid must be float32 ({h}, {w}), got {valid.dtype} {valid.shape}")
    return out, valid


def warp(src: np.ndarray, flow: np.ndarray, *, cubic: bool = True, out: np.ndarray | None = None,
         valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warps every channel of an array along a dense flow field.

    `out[i, j, c] = src(i + flow[i, j, 1], j + flow[i, j, 0], c)`, interpolated.

    Args:
        src: (H, W, C) float32, any values (state, hidden features, confidence), any strides.
        flow: (H, W, 2) float32 (dx, dy) in pixels of src, finite.
        cubic: True for bicubic (Keys a = -0.5, 4x4 taps; sharper, may overshoot the input range
            by a few percent at edges), False for bilinear (2x2 taps; never overshoots, blurs).
        out: (H, W, C) float32 result buffer, must not overlap src; allocated when None.
        valid: (H, W) float32 buffer for the mask; allocated when None.

    Returns:
        (out, valid): the warped array, and 1.0 where the source position lies inside the grid of
        pixel centres [0, W-1] x [0, H-1], 0.0 where it fell outside (the border was repeated).

    Raises:
        ValueError: a shape or dtype that does not match.
    """
    out, valid = _check(src, flow, out, valid, None)
    _warp_kernel(src, flow, cubic, out, valid)
    return out, valid


def warp_packed(src: np.ndarray, flow: np.ndarray, *, cubic: bool = True, out: np.ndarray | None = None,
                valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warps a packed YUV 4:2:0 frame, interpolating luma at full resolution.

    Channels 0-3 (the 2x2 luma phases) are read as one (2H, 2W) plane and each output phase is
    sampled at its own full-resolution position moved by (2 dx, 2 dy); channels 4-5 (U, V) are
    warped like `warp` does. For the same number of taps as `warp`, a pan by a whole number of
    full-resolution pixels moves luma exactly and other pans blur it less.

    Args:
        src: (H, W, 6) float32 packed frame (pack.py layout), [0, 1], any strides.
        flow: (H, W, 2) float32 (dx, dy) in half-resolution (packed) pixels, finite.
        cubic: bicubic (Keys a = -0.5) when True, bilinear when False.
        out: (H, W, 6) float32 result buffer, must not overlap src; allocated when None.
        valid: (H, W) float32 buffer for the mask; allocated when None.

    Returns:
        (out, valid) as for `warp`; the mask is tested at the half-resolution position.

    Raises:
        ValueError: a shape or dtype that does not match.
    """
    out, valid = _check(src, flow, out, valid, 6)
    _warp_packed_kernel(src, flow, cubic, out, valid)
    return out, valid


@njit(parallel=True, cache=True, nogil=True)
def luma_plane(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The full-resolution luma of a packed frame: (H2, W2, >= 4) float32 (phases 0..3 = rows
    2i/2i+1 x columns 2j/2j+1) -> out (2 H2, 2 W2) float32, written and returned."""
    h2, w2 = src.shape[0], src.shape[1]
    for i in prange(h2):
        for j in range(w2):
            out[2 * i, 2 * j] = src[i, j, 0]
            out[2 * i, 2 * j + 1] = src[i, j, 1]
            out[2 * i + 1, 2 * j] = src[i, j, 2]
            out[2 * i + 1, 2 * j + 1] = src[i, j, 3]
    return out


@njit(parallel=True, cache=True, nogil=True)
def repack_luma(luma: np.ndarray, chroma: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The inverse of luma_plane, with the chroma: luma (2 H2, 2 W2) and chroma (H2, W2, 2)
    float32 -> out (H2, W2, 6) float32 packed, written and returned."""
    h2, w2 = out.shape[0], out.shape[1]
    for i in prange(h2):
        for j in range(w2):
            out[i, j, 0] = luma[2 * i, 2 * j]
            out[i, j, 1] = luma[2 * i, 2 * j + 1]
            out[i, j, 2] = luma[2 * i + 1, 2 * j]
            out[i, j, 3] = luma[2 * i + 1, 2 * j + 1]
            out[i, j, 4] = chroma[i, j, 0]
            out[i, j, 5] = chroma[i, j, 1]
    return out


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def flow_maps(flow: np.ndarray, scale: int, gx: np.ndarray, gy: np.ndarray) -> None:
    """Absolute sampling maps for cv2.remap at `scale` (1 or 2) times the flow's grid: the flow
    resized bilinearly (pixel centres aligned, clamped at the borders, as cv2.resize with
    INTER_LINEAR) and times `scale`, plus each pixel's own position.

    Args:
        flow: (H, W, 2) float32 (dx, dy) in pixels of its own grid.
        gx, gy: (scale H, scale W) float32, written.
    """
    h, w = flow.shape[0], flow.shape[1]
    s = np.float32(scale)
    inv = np.float32(1.0 / scale)
    for yy in prange(h * scale):
        py = min(max((np.float32(yy) + np.float32(0.5)) * inv - np.float32(0.5), np.float32(0.0)), np.float32(h - 1))
        y0 = min(int(py), h - 1)
        y1 = min(y0 + 1, h - 1)
        ty = py - np.float32(y0)
        for xx in range(w * scale):
            px = min(max((np.float32(xx) + np.float32(0.5)) * inv - np.float32(0.5), np.float32(0.0)),
                     np.float32(w - 1))
            x0 = min(int(px), w - 1)
            x1 = min(x0 + 1, w - 1)
            tx = px - np.float32(x0)
            for c in range(2):
                a = flow[y0, x0, c] + tx * (flow[y0, x1, c] - flow[y0, x0, c])
                b = flow[y1, x0, c] + tx * (flow[y1, x1, c] - flow[y1, x0, c])
                v = (a + ty * (b - a)) * s
                if c == 0:
                    gx[yy, xx] = np.float32(xx) + v
                else:
                    gy[yy, xx] = np.float32(yy) + v


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def keep_still_blocks(cur: np.ndarray, prev: np.ndarray, flow: np.ndarray, block: int, rel: float,
                      margin: float, small: float, still: np.ndarray) -> int:
    """Sets the flow of a block to exactly zero where zero motion matches as well: a dense
    flow between two noisy frames of a still scene is small noise, not zero, and a state
    re-interpolated along it at every frame is softened step after step, so a still part
    of the picture must not move at all.

    A block keeps zero motion when its sum of absolute differences against `prev` at zero
    motion is at most (1 + rel) times the one along the flow (bilinear samples of `prev`) plus
    `margin` per pixel, and (unless it was still at the previous frame) its mean flow is under
    `small` pixels in length; blocks that moved match clearly better along the flow, or move
    further, and keep it. The hysteresis lets a still block stay still through the larger
    flow noise of a noisy frame, while a slow pan, which matches almost as well at zero motion
    on one frame but drifts away over several, keeps its motion.

    Args:
        cur, prev: (H, W) uint8 lumas (the flow's grid).
        flow: (H, W, 2) float32 (dx, dy) from `cur` to `prev`, edited in place.
        block: block side in pixels. rel: relative tolerance. margin: tolerance in luma levels
            per pixel (about the noise's mean absolute difference times a small factor).
        small: the longest mean flow of a block that may become still, in pixels.
        still: (blocks_y, blocks_x) uint8, 1 where the block was still at the previous frame
            (zeros for a new stream); updated in place.

    Returns:
        How many blocks were set still.
    """
    h, w = cur.shape
    by, bx = (h + block - 1) // block, (w + block - 1) // block
    flat = still.reshape(-1)
    for b in prange(by * bx):
        y0 = (b // bx) * block
        x0 = (b % bx) * block
        y1, x1 = min(y0 + block, h), min(x0 + block, w)
        s0 = np.float32(0.0)
        sf = np.float32(0.0)
        mx = np.float32(0.0)
        my = np.float32(0.0)
        for y in range(y0, y1):
            for x in range(x0, x1):
                c = np.float32(cur[y, x])
                s0 += abs(c - np.float32(prev[y, x]))
                mx += flow[y, x, 0]
                my += flow[y, x, 1]
                px = min(max(np.float32(x) + flow[y, x, 0], np.float32(0.0)), np.float32(w - 1))
                py = min(max(np.float32(y) + flow[y, x, 1], np.float32(0.0)), np.float32(h - 1))
                ix, iy = min(int(px), w - 2), min(int(py), h - 2)
                ix, iy = max(ix, 0), max(iy, 0)
                tx, ty = px - np.float32(ix), py - np.float32(iy)
                a = np.float32(prev[iy, ix]) + tx * (np.float32(prev[iy, ix + 1]) - np.float32(prev[iy, ix]))
                d = np.float32(prev[iy + 1, ix]) + tx * (np.float32(prev[iy + 1, ix + 1]) - np.float32(prev[iy + 1, ix]))
                sf += abs(c - (a + ty * (d - a)))
        n = np.float32((y1 - y0) * (x1 - x0))
        slow = flat[b] == 1 or mx * mx + my * my <= np.float32(small * small) * n * n
        flat[b] = 0
        if slow and s0 <= sf * np.float32(1.0 + rel) + np.float32(margin) * n:
            flat[b] = 1
            for y in range(y0, y1):
                for x in range(x0, x1):
                    flow[y, x, 0] = np.float32(0.0)
                    flow[y, x, 1] = np.float32(0.0)
    return int(flat.sum())


LANCZOS_STEPS = 1024   # sample positions are rounded to 1/1024 px (cv2.remap: 1/32)


def lanczos_table(a: int) -> np.ndarray:
    """(LANCZOS_STEPS + 1, 2a) float32: row k holds the 2a Lanczos-a weights (normalised to sum
    1) of taps at offsets -a+1 .. a from the left neighbour, for a sample k / LANCZOS_STEPS
    past it."""
    f = np.arange(LANCZOS_STEPS + 1, dtype=np.float64)[:, None] / LANCZOS_STEPS
    x = np.arange(-a + 1, a + 1, dtype=np.float64)[None, :] - f
    wts = np.sinc(x) * np.sinc(x / a) * (np.abs(x) < a)
    return (wts / wts.sum(axis=1, keepdims=True)).astype(np.float32)


@njit(inline="always")
def _lanczos_sample6(plane: np.ndarray, y0: int, x0: int, wy: np.ndarray, wx: np.ndarray) -> float:
    """Separable sum over the 6x6 window of `plane` from (y0, x0), clamped at the border (the
    window size is a literal, so the loops unroll: twice as fast as a variable size)."""
    h, w = plane.shape
    acc = np.float32(0.0)
    if y0 >= 0 and y0 + 6 <= h and x0 >= 0 and x0 + 6 <= w:
        for p in range(6):
            s = np.float32(0.0)
            for q in range(6):
                s += wx[q] * plane[y0 + p, x0 + q]
            acc += wy[p] * s
    else:
        for p in range(6):
            r = min(max(y0 + p, 0), h - 1)
            s = np.float32(0.0)
            for q in range(6):
                s += wx[q] * plane[r, min(max(x0 + q, 0), w - 1)]
            acc += wy[p] * s
    return acc


@njit(inline="always")
def _lanczos_sample8(plane: np.ndarray, y0: int, x0: int, wy: np.ndarray, wx: np.ndarray) -> float:
    """Separable sum over the 8x8 window of `plane` from (y0, x0), clamped at the border (the
    window size is a literal, so the loops unroll: twice as fast as a variable size)."""
    h, w = plane.shape
    acc = np.float32(0.0)
    if y0 >= 0 and y0 + 8 <= h and x0 >= 0 and x0 + 8 <= w:
        for p in range(8):
            s = np.float32(0.0)
            for q in range(8):
                s += wx[q] * plane[y0 + p, x0 + q]
            acc += wy[p] * s
    else:
        for p in range(8):
            r = min(max(y0 + p, 0), h - 1)
            s = np.float32(0.0)
            for q in range(8):
                s += wx[q] * plane[r, min(max(x0 + q, 0), w - 1)]
            acc += wy[p] * s
    return acc


@njit(inline="always")
def _lanczos_phases6(luma: np.ndarray, r0: int, c0: int, wy: np.ndarray, wx: np.ndarray, out: np.ndarray,
                     i: int, j: int) -> None:
    """The four luma phases of packed pixel (i, j) from one 7x7 window of the full-resolution
    luma at (r0, c0) (inside it): the phases share the weights and their 6x6 windows are one
    pixel apart, so each row is filtered once per column phase (7 x 12 products) and then each
    phase down the column (4 x 6), against 4 x 36 for the phases one by one."""
    o00 = np.float32(0.0)
    o01 = np.float32(0.0)
    o10 = np.float32(0.0)
    o11 = np.float32(0.0)
    for p in range(7):
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        for q in range(6):
            s0 += wx[q] * luma[r0 + p, c0 + q]
            s1 += wx[q] * luma[r0 + p, c0 + 1 + q]
        if p < 6:
            o00 += wy[p] * s0
            o01 += wy[p] * s1
        if p > 0:
            o10 += wy[p - 1] * s0
            o11 += wy[p - 1] * s1
    out[i, j, 0] = o00
    out[i, j, 1] = o01
    out[i, j, 2] = o10
    out[i, j, 3] = o11


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _warp_lanczos_kernel(src: np.ndarray, luma: np.ndarray, uv: np.ndarray, flow: np.ndarray, a: int,
                         table: np.ndarray, out: np.ndarray) -> None:
    h, w = src.shape[0], src.shape[1]
    lh, lw = luma.shape
    steps = np.float32(table.shape[0] - 1)
    for i in prange(h):
        for j in range(w):
            u = flow[i, j, 0]
            v = flow[i, j, 1]
            if u == 0.0 and v == 0.0:
                for c in range(6):
                    out[i, j, c] = src[i, j, c]
                continue
            # Luma: phase (pr, pc) sits at (2i + pr, 2j + pc) and samples (2i + pr + 2v, 2j + pc + 2u):
            # the four phases share the fraction, so the weights, and their windows are one apart.
            ly = np.float32(2 * i) + np.float32(2.0) * v
            lx = np.float32(2 * j) + np.float32(2.0) * u
            ry = np.floor(ly)
            rx = np.floor(lx)
            wy = table[int((ly - ry) * steps + np.float32(0.5))]
            wx = table[int((lx - rx) * steps + np.float32(0.5))]
            r0 = int(ry) - a + 1
            c0 = int(rx) - a + 1
            if a == 3 and r0 >= 0 and r0 + 7 <= lh and c0 >= 0 and c0 + 7 <= lw:
                _lanczos_phases6(luma, r0, c0, wy, wx, out, i, j)
            else:
                for ph in range(4):
                    if a == 3:
                        out[i, j, ph] = _lanczos_sample6(luma, r0 + (ph >> 1), c0 + (ph & 1), wy, wx)
                    else:
                        out[i, j, ph] = _lanczos_sample8(luma, r0 + (ph >> 1), c0 + (ph & 1), wy, wx)
            # Chroma: half-resolution samples at (i + v, j + u).
            cy = np.float32(i) + v
            cx = np.float32(j) + u
            fy = np.floor(cy)
            fx = np.floor(cx)
            wy = table[int((cy - fy) * steps + np.float32(0.5))]
            wx = table[int((cx - fx) * steps + np.float32(0.5))]
            y0 = int(fy) - a + 1
            x0 = int(fx) - a + 1
            if a == 3:
                out[i, j, 4] = _lanczos_sample6(uv[0], y0, x0, wy, wx)
                out[i, j, 5] = _lanczos_sample6(uv[1], y0, x0, wy, wx)
            else:
                out[i, j, 4] = _lanczos_sample8(uv[0], y0, x0, wy, wx)
                out[i, j, 5] = _lanczos_sample8(uv[1], y0, x0, wy, wx)


@njit(parallel=True, cache=True, nogil=True)
def _chroma_planes(src: np.ndarray, out: np.ndarray) -> None:
    for i in prange(src.shape[0]):
        for j in range(src.shape[1]):
            out[0, i, j] = src[i, j, 4]
            out[1, i, j] = src[i, j, 5]


_TABLES: dict[int, np.ndarray] = {}


def warp_packed_lanczos(src: np.ndarray, flow: np.ndarray, a: int = 4, out: np.ndarray | None = None) -> np.ndarray:
    """Warps a packed YUV 4:2:0 frame with a Lanczos kernel.

    The luma is interpolated as the one full-resolution plane its four phases are (each phase
    at its own full-resolution position moved by (2 dx, 2 dy); the four share the fractional
    part, so one separable pass over a (2a + 1)-square window serves all of them), the chroma as
    half-resolution planes. Sample positions are exact to 1/1024 px (cv2.remap rounds to 1/32,
    which drifts visibly when a state is warped again at every frame). A pixel whose flow is
    exactly zero is copied, not interpolated: a still part of the picture costs nothing and is
    never softened. Outside the frame the border repeats (as cv2.BORDER_REPLICATE).

    Args:
        src: (H, W, 6) float32 packed frame.
        flow: (H, W, 2) float32 (dx, dy) in half-resolution pixels: output pixel (i, j) takes
            the content at (j + dx, i + dy) of `src`; finite.
        a: the Lanczos order: 3 (6x6 taps) or 4 (8x8 taps, as cv2.INTER_LANCZOS4).
        out: (H, W, 6) float32 to write (allocated when None).

    Returns:
        `out`.

    Raises:
        ValueError: a shape, dtype or order that does not fit.
    """
    if a not in (3, 4):
        raise ValueError(f"Lanczos order {a}: use 3 or 4")
    out, _ = _check(src, flow, out, None, 6)
    table = _TABLES.get(a)
    if table is None:
        table = _TABLES[a] = lanczos_table(a)
    h, w = src.shape[:2]
    luma = luma_plane(src, np.empty((2 * h, 2 * w), np.float32))
    uv = np.empty((2, h, w), np.float32)
    _chroma_planes(src, uv)
    _warp_lanczos_kernel(src, luma, uv, flow, a, table, out)
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def cross_power(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The normalised cross-power spectrum of two images' spectra, the heart of phase
    correlation: a * conj(b) / |a * conj(b)| (0 where that is 0).

    Args:
        a, b: (H, W, 2) float32 spectra (real, imaginary), as cv2.dft's DFT_COMPLEX_OUTPUT.
        out: (H, W, 2) float32, written and returned (may be `a`).
    """
    h, w = a.shape[0], a.shape[1]
    for i in prange(h):
        for j in range(w):
            ar, ai, br, bi = a[i, j, 0], a[i, j, 1], b[i, j, 0], b[i, j, 1]
            re = ar * br + ai * bi
            im = ai * br - ar * bi
            mag = np.sqrt(re * re + im * im)
            inv = np.float32(1.0) / mag if mag > np.float32(1e-20) else np.float32(0.0)
            out[i, j, 0] = re * inv
            out[i, j, 1] = im * inv
    return out
