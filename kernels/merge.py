"""Merging a burst of pictures in full-resolution RGB: the sum of the shots that match the
reference, and the mean of clipped noisy samples taken back to the value they measure."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def add_shot(acc: np.ndarray, count: np.ndarray, shot: np.ndarray, scale: float, trust: np.ndarray) -> None:
    """Adds a shot, already warped onto the reference, to a full-resolution sum with a trust
    given at half resolution (each trust covers a 2x2 block of pixels).

    Args:
        acc: (H, W, C) float32 the sum, updated in place: + trust x scale x shot.
        count: (H, W) float32 the sum of the trusts, updated in place.
        shot: (H, W, C) any numeric dtype (uint8, uint16 pictures; float32).
        scale: the shot's values times this are the sum's units (1 / 255 for 8-bit pictures).
        trust: ((H + 1) // 2, (W + 1) // 2) float32 in [0, 1] (streamdn.kernels.match_weights).
    """
    h, w, c = shot.shape
    k = np.float32(scale)
    for i in prange(h):
        for j in range(w):
            t = trust[i // 2, j // 2]
            if t > np.float32(0.0):
                tk = t * k
                for ch in range(c):
                    acc[i, j, ch] += tk * np.float32(shot[i, j, ch])
                count[i, j] += t


@njit(inline="always")
def _phi(t: float) -> float:
    return math.exp(-0.5 * t * t) * 0.3989422804014327


@njit(inline="always")
def _cdf(t: float) -> float:
    return 0.5 * math.erfc(-t * 0.7071067811865476)


@njit(inline="always")
def _clip_bias(t: float) -> float:
    """How far the mean of max(t + n, 0), n standard normal, lies above t (for t >= 0 or not)."""
    return _phi(t) - t * _cdf(-t)


@njit(parallel=True, cache=True, nogil=True)
def unclip_mean(mean: np.ndarray, count: np.ndarray, sigma: float, curve_a: float, curve_b: float,
                curve_ref: float, iterations: int, out: np.ndarray) -> np.ndarray:
    """The values whose noisy samples, clipped to [0, 1], have the mean `mean`: near black and
    white, clipping the noise of every sample biases a plain mean (the noise below 0 or above 1
    is cut off, the rest kept), by up to 0.4 sigma at the clip level itself.

    Each sample is taken as x + n, n Gaussian of sigma s(x) = sigma sqrt((a + b x) / (a + b
    L_ref)) (the signal-dependent noise curve of streamdn.kernels.fit_noise_curve, flat when
    b = 0); the mean of its clipped value is x + s h(x / s) - s h((1 - x) / s), h(t) = phi(t)
    - t Phi(-t), solved for x by Newton's method (a few steps). Where the mean lies more than 4
    sigma from both ends, x is the mean; where fewer than one sample was averaged (count < 1) too.

    Args:
        mean: (H, W, C) float32 in [0, 1].
        count: (H, W) float32 samples averaged per pixel (the bias does not depend on it; pixels
            with count < 1 hold no mean and are copied).
        sigma: one sample's noise sigma at level curve_ref, [0, 1] units.
        curve_a, curve_b, curve_ref: the noise variance a + b * level and its reference level.
        iterations: Newton steps at most (it stops once a step moves x by under 1e-6).
        out: (H, W, C) float32, written and returned (may be `mean`).
    """
    h, w, c = mean.shape
    ref = max(curve_a + curve_b * curve_ref, 1e-12)
    for i in prange(h):
        for j in range(w):
            for ch in range(c):
                m = mean[i, j, ch]
                s = sigma * math.sqrt(max(curve_a + curve_b * min(max(m, 0.0), 1.0), 0.0) / ref)
                if count[i, j] < 1.0 or s <= 1e-6 or (4.0 * s < m < 1.0 - 4.0 * s):
                    out[i, j, ch] = m
                    continue
                x = float(m)
                for _ in range(iterations):
                    s = max(sigma * math.sqrt(max(curve_a + curve_b * min(max(x, 0.0), 1.0), 0.0) / ref), 1e-6)
                    g = x + s * _clip_bias(x / s) - s * _clip_bias((1.0 - x) / s)
                    d = max(_cdf(x / s) + _cdf((1.0 - x) / s) - 1.0, 0.05)
                    step = (g - m) / d
                    x = min(max(x - step, -0.5), 1.5)
                    if abs(step) < 1e-6:
                        break
                out[i, j, ch] = x
    return out
