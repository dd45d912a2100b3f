"""A motion-adaptive recursive (Kalman-style) temporal filter with an edge-preserving spatial
fallback where the picture moves: the classical interim denoiser behind the Denoiser API."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True, fastmath=True)
def recursive_filter(cur: np.ndarray, prev: np.ndarray, count: np.ndarray, sigma: float,
                     max_count: float, radius: int, out: np.ndarray, out_count: np.ndarray) -> None:
    """One step of the filter on one plane.

    Per pixel: a 3x3 mean of (current - previous output) is compared with what noise alone
    would give; where it agrees the pixel joins a running average of up to `max_count` frames,
    where it does not (motion, a cut) the running average restarts from a sigma-filtered
    spatial estimate (mean of the (2r+1)^2 neighbours within 2.5 sigma of the centre).

    Args:
        cur: (H, W) float32 noisy plane.
        prev: (H, W) float32 previous output (or `cur` on the first frame).
        count: (H, W) float32 frames averaged so far per pixel (0 on the first frame).
        sigma: noise standard deviation in the planes' units (> 0).
        max_count: cap on the running average length (larger: smoother, slower to adapt).
        radius: spatial fallback radius in pixels.
        out: (H, W) float32, the denoised plane (may not alias cur or prev).
        out_count: (H, W) float32, the new counts (may alias count).
    """
    h, w = cur.shape
    sig = max(sigma, 1e-3)
    gate = 2.5 * sig
    for i in prange(h):
        for j in range(w):
            c = cur[i, j]
            dsum = 0.0
            for di in range(-1, 2):
                ii = min(max(i + di, 0), h - 1)
                for dj in range(-1, 2):
                    jj = min(max(j + dj, 0), w - 1)
                    dsum += cur[ii, jj] - prev[ii, jj]
            dmean = abs(dsum) / 9.0
            ssum = 0.0
            sw = 0.0
            for di in range(-radius, radius + 1):
                ii = min(max(i + di, 0), h - 1)
                for dj in range(-radius, radius + 1):
                    jj = min(max(j + dj, 0), w - 1)
                    v = cur[ii, jj]
                    if abs(v - c) <= gate:
                        ssum += v
                        sw += 1.0
            spatial = ssum / sw
            k = count[i, j]
            if k < 1.0:
                motion = 1.0
            else:
                # Static: std of the 3x3 mean difference is sigma * sqrt(1 + 1/k) / 3.
                expected = sig * math.sqrt(1.0 + 1.0 / k) / 3.0
                motion = min(max(dmean / (3.0 * expected) - 1.0, 0.0), 1.0)
            kn = min(k + 1.0, max_count)
            p = prev[i, j]
            # The new observation leans on the spatial estimate so that noise drops fast after a reset.
            obs = 0.5 * c + 0.5 * spatial
            temporal = p + (obs - p) / kn
            out[i, j] = (1.0 - motion) * temporal + motion * spatial
            out_count[i, j] = (1.0 - motion) * kn + motion * 1.0


@njit(inline="always")
def _mismatch(a: np.ndarray, b: np.ndarray, sigma: np.ndarray, i: int, j: int, spread: float) -> float:
    """The mean over the 6 packed channels of |a - b| at (i, j) in units of the noise (sigma's
    Y for the four luma phases, U and V for the chroma) times `spread`."""
    m = np.float32(0.0)
    for ch in range(6):
        s = sigma[i, j, 0] if ch < 4 else sigma[i, j, ch - 3]
        m += abs(a[i, j, ch] - b[i, j, ch]) / (s * spread + np.float32(2e-3))
    return m * np.float32(1.0 / 6.0)


@njit(inline="always")
def _trust(mismatch: float, match0: float, match1: float) -> float:
    """1 up to a mismatch of match0, 0 from match1, linear between."""
    return min(max((np.float32(match1) - mismatch) / np.float32(match1 - match0), np.float32(0.0)),
               np.float32(1.0))


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _box_mean(d: np.ndarray, r: int) -> np.ndarray:
    """The mean of (H, W) float32 `d` over (2r + 1)^2 windows clipped at the borders, separably
    (row sums, then sums of those down the columns)."""
    h, w = d.shape
    rows = np.empty((h, w), np.float32)
    for i in prange(h):
        for j in range(w):
            acc = np.float32(0.0)
            for x in range(max(j - r, 0), min(j + r + 1, w)):
                acc += d[i, x]
            rows[i, j] = acc
    out = np.empty((h, w), np.float32)
    for i in prange(h):
        y0, y1 = max(i - r, 0), min(i + r + 1, h)
        for j in range(w):
            acc = np.float32(0.0)
            for y in range(y0, y1):
                acc += rows[y, j]
            out[i, j] = acc / np.float32((y1 - y0) * (min(j + r + 1, w) - max(j - r, 0)))
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def long_average(cur: np.ndarray, sigma: np.ndarray, flow: np.ndarray | None, avg: np.ndarray, count: np.ndarray,
                 out: np.ndarray | None, k: float, ramp0: float, ramp1: float, match0: float, match1: float,
                 box: int, max_count: float) -> None:
    """One step of a long average of the noisy frames kept on still blocks, blended into `out`
    (streamdn.models.network.LongAverage; the torch version there is the reference).

    Args:
        cur: (H, W, 6) float32 packed current frame. sigma: (H, W, 3) its noise map (Y, U, V).
        flow: (H, W, 2) float32 flow of the state's warp: the average is kept where it is exactly
            zero and restarts elsewhere; None: no motion anywhere (the match test alone cuts).
        avg: (H, W, 6) float32 running mean, updated in place. count: (H, W, 1) its frame count,
            updated in place.
        out: (H, W, 6) float32 the network's output, blended in place: out + w (avg - out), w =
            c / (c + k) ramped in from ramp0 to ramp1 frames; None: the average alone.
        match0, match1: the mismatch (mean absolute difference over box x box pixels, in units of
            the noise expected from the count) of full trust and of none.
    """
    h, w = cur.shape[0], cur.shape[1]
    d = np.empty((h, w), np.float32)
    for i in prange(h):
        for j in range(w):
            c = count[i, j, 0]
            if flow is not None and (flow[i, j, 0] != 0.0 or flow[i, j, 1] != 0.0):
                c = np.float32(0.0)
            count[i, j, 0] = c
            d[i, j] = _mismatch(cur, avg, sigma, i, j, np.float32(np.sqrt(1.0 + 1.0 / max(c, np.float32(1.0)))))
    mean = _box_mean(d, box // 2)
    for i in prange(h):
        for j in range(w):
            kept = count[i, j, 0] * _trust(mean[i, j], match0, match1)
            cn = min(kept + np.float32(1.0), np.float32(max_count))
            wt = cn / (cn + np.float32(k)) * min(max((cn - np.float32(ramp0)) / np.float32(ramp1 - ramp0),
                                                     np.float32(0.0)), np.float32(1.0))
            inv = np.float32(1.0) / (kept + np.float32(1.0))
            for ch in range(6):
                a = (kept * avg[i, j, ch] + cur[i, j, ch]) * inv
                avg[i, j, ch] = a
                if out is not None:
                    out[i, j, ch] += wt * (a - out[i, j, ch])
            count[i, j, 0] = cn


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def mean_input(cur: np.ndarray, sigma: np.ndarray, avg: np.ndarray, count: np.ndarray, trust: np.ndarray,
               ramp0: float, ramp1: float, inp: np.ndarray, inp_sigma: np.ndarray, frames: np.ndarray) -> None:
    """A network's input from a long average of the noisy frames (the current frame included):
    the frame where the average holds few frames, the average where it holds many (weight w
    ramped in from `ramp0` to `ramp1` of the frames `trust` gives), and the noise map of that
    input.

    Args:
        cur: (H, W, 6) float32 packed current frame. sigma: (H, W, 3) its noise map.
        avg: (H, W, 6) float32 the average. count: (H, W, 1) how many frames it holds.
        trust: (H, W, 1) the frames the weight goes by (count, or fewer: e.g. the fewest
            around the sample).
        inp: (H, W, 6) float32, written: cur + w (avg - cur).
        inp_sigma: (H, W, 3) float32, written: sigma * sqrt(f), f the share of one frame's noise
            variance left in `inp` (the frame weighs 1 - w + w / c in it, each of the c - 1
            others w / c).
        frames: (H, W, 1) float32, written: 1 / f, the frames `inp` is worth.
    """
    h, w = cur.shape[0], cur.shape[1]
    span = np.float32(max(ramp1 - ramp0, 1e-6))
    for i in prange(h):
        for j in range(w):
            c = max(count[i, j, 0], np.float32(1.0))
            wt = min(max((trust[i, j, 0] - np.float32(ramp0)) / span, np.float32(0.0)), np.float32(1.0))
            own = np.float32(1.0) - wt + wt / c
            f = own * own + wt * wt * (c - np.float32(1.0)) / (c * c)
            for ch in range(6):
                inp[i, j, ch] = cur[i, j, ch] + wt * (avg[i, j, ch] - cur[i, j, ch])
            s = np.float32(np.sqrt(f))
            for ch in range(3):
                inp_sigma[i, j, ch] = sigma[i, j, ch] * s
            frames[i, j, 0] = np.float32(1.0) / f


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def mean_output(out: np.ndarray, inp: np.ndarray, frames: np.ndarray, avg: np.ndarray, count: np.ndarray,
                sigma_y: float, low0: float, low1: float, k: float, ramp0: float, ramp1: float,
                dst: np.ndarray | None = None) -> None:
    """The ends of a network run on mean_input's input, on its output `out` ((H, W, 6) float32),
    written to `dst` (the same shape; None: in place on `out`): the low-noise blend per pixel
    (towards `inp` by the luma noise left in it, sigma_y / sqrt(frames): weight of the output
    clip((level - low0) / (low1 - low0), 0, 1); none where low1 is 0), then the long average
    `avg` of `count` frames blended in with the weight c / (c + k) ramped in from `ramp0` to
    `ramp1` frames (as long_average's)."""
    if dst is None:
        dst = out
    h, w = out.shape[0], out.shape[1]
    span = np.float32(max(low1 - low0, 1e-6))
    rspan = np.float32(max(ramp1 - ramp0, 1e-6))
    for i in prange(h):
        for j in range(w):
            keep = np.float32(1.0)
            if low1 > 0.0:
                level = np.float32(sigma_y) / np.float32(np.sqrt(max(frames[i, j, 0], np.float32(1.0))))
                keep = min(max((level - np.float32(low0)) / span, np.float32(0.0)), np.float32(1.0))
            c = count[i, j, 0]
            wl = c / (c + np.float32(k)) * min(max((c - np.float32(ramp0)) / rspan, np.float32(0.0)), np.float32(1.0))
            for ch in range(6):
                o = inp[i, j, ch] + keep * (out[i, j, ch] - inp[i, j, ch])
                dst[i, j, ch] = o + wl * (avg[i, j, ch] - o)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def mismatch_map(shot: np.ndarray, ref: np.ndarray, sigma: np.ndarray, box: int, out: np.ndarray) -> np.ndarray:
    """The mean absolute difference of a shot already warped onto a reference and the
    reference over box x box pixels, per pixel, in units of the noise of a difference of two
    frames (about 0.8 where they differ by noise alone, as the noise map says it).

    Args:
        shot, ref: (H, W, 6) float32 packed frames. sigma: (H, W, 3) the reference's noise map.
        box: the window's side.
        out: (H, W) float32, written and returned.
    """
    h, w = shot.shape[0], shot.shape[1]
    d = np.empty((h, w), np.float32)
    two = np.float32(np.sqrt(2.0))
    for i in prange(h):
        for j in range(w):
            d[i, j] = _mismatch(shot, ref, sigma, i, j, two)
    out[:, :] = _box_mean(d, box // 2)
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def match_weights(shot: np.ndarray, ref: np.ndarray, sigma: np.ndarray, match0: float, match1: float,
                  box: int, out: np.ndarray) -> np.ndarray:
    """How far a shot already warped onto a reference may be trusted, per pixel: 1 where it
    matches the reference as noise would, 0 where it clearly does not (a burst's mean: the
    reference is the anchor, a shot that does not match it there is left out).

    Args:
        shot, ref: (H, W, 6) float32 packed frames. sigma: (H, W, 3) the reference's noise map.
        match0, match1: the mismatch (mismatch_map) of full trust and of none.
        box: the window's side.
        out: (H, W) float32, written and returned.
    """
    h, w = shot.shape[0], shot.shape[1]
    mean = mismatch_map(shot, ref, sigma, box, np.empty((h, w), np.float32))
    for i in prange(h):
        for j in range(w):
            out[i, j] = _trust(mean[i, j], match0, match1)
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def match_add(shot: np.ndarray, ref: np.ndarray, sigma: np.ndarray, acc: np.ndarray, count: np.ndarray,
              match0: float, match1: float, box: int) -> None:
    """Adds a shot already warped onto a reference to a sum on the reference's grid where it
    matches the reference (see match_weights).

    Args:
        shot, ref: (H, W, 6) float32 packed frames. sigma: (H, W, 3) the reference's noise map.
        acc: (H, W, 6) float32 the sum, updated in place: + trust x shot. count: (H, W, 1) the
            sum of the trusts, updated in place.
        match0, match1, box: as for match_weights.
    """
    h, w = shot.shape[0], shot.shape[1]
    trust = match_weights(shot, ref, sigma, match0, match1, box, np.empty((h, w), np.float32))
    for i in prange(h):
        for j in range(w):
            t = trust[i, j]
            for ch in range(6):
                acc[i, j, ch] += t * shot[i, j, ch]
            count[i, j, 0] += t
