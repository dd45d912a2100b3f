"""Numba kernels for every per-pixel step outside the network (installed as streamdn.kernels).

Pure functions: arrays in, arrays out, an optional preallocated `out`; `cache=True` so the JIT
cost is paid once per install. Each has a NumPy reference in tests/.
"""

from .convert import float_to_plane, plane_to_float
from .noise_level import block_noise_stats, estimate_sigma
from .temporal import recursive_filter

__all__ = [
    "block_noise_stats",
    "estimate_sigma",
    "float_to_plane",
    "plane_to_float",
    "recursive_filter",
]
