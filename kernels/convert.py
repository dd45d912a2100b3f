"""Integer planes <-> float32 working planes (normalise on the way in; clamp and round out)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def plane_to_float(src: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
    """out = src * scale.

    Args:
        src: (H, W) uint8 or uint16 plane.
        scale: e.g. 1/255 for [0, 1], or 255/1023 to bring 10-bit values to 8-bit units.
        out: (H, W) float32, written and returned.
    """
    h, w = src.shape
    for i in prange(h):
        for j in range(w):
            out[i, j] = np.float32(src[i, j]) * np.float32(scale)
    return out


@njit(parallel=True, cache=True, nogil=True)
def float_to_plane(src: np.ndarray, scale: float, max_value: int, out: np.ndarray) -> np.ndarray:
    """out = clamp(round(src * scale), 0, max_value).

    Args:
        src: (H, W) float32 plane.
        scale: inverse of the scale used by plane_to_float.
        max_value: 255 for 8-bit, 1023 for 10-bit, ...
        out: (H, W) uint8 or uint16, written and returned.
    """
    h, w = src.shape
    for i in prange(h):
        for j in range(w):
            v = src[i, j] * np.float32(scale) + np.float32(0.5)
            if v < 0:
                v = 0
            elif v > max_value:
                v = max_value
            out[i, j] = int(v)
    return out
