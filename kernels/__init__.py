"""Numba kernels for every per-pixel step outside the network (installed as streamdn.kernels).

Pure functions: arrays in, arrays out, an optional preallocated `out`; `cache=True` so the JIT
cost is paid once per install. Each has a NumPy reference in tests/.
"""

import os

import numba

# Pipeline stages call parallel kernels from several Python threads at once: only the TBB and
# OpenMP layers allow that (Numba's fallback "workqueue" layer aborts), so ask for one of them.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"

from .canvas import canvas_add, canvas_add_resampled, canvas_read
from .chroma import WORK_PLANES as CHROMA_WORK_PLANES
from .chroma import chroma_from_luma, yuv420_to_bgr_guided
from .chroma_edges import WORK_PLANES as CHROMA_EDGES_WORK_PLANES
from .chroma_edges import restore_chroma_edges
from .convert import float_to_plane, plane_to_float
from .impulse import count_impulses, remove_impulses
from .merge import add_shot, unclip_mean
from .motion import block_match, cross_power, packed_luma, warp, warp_packed
from .noise_level import block_noise_stats, estimate_sigma, percentile_bias, sigma_from_block_stats
from .pack import (CUT_NOISE_FACTOR, fit_noise_curve, frame_difference, is_scene_cut, noise_map, pack_bgr,
                   pack_nv12, pack_yuv420, pack_yuv420_to, unpack_bgr, unpack_nv12, unpack_yuv420)
from .resample import shift_plane
from .step import (step_input, step_input_count, step_tail, step_tail_display, step_tail_display_lut, step_tail_lut,
                   step_tail_raw, tail_tables)
from .temporal import (long_average, match_add, match_weights, mean_input, mean_output, mismatch_map,
                       recursive_filter)

__all__ = [
    "CHROMA_EDGES_WORK_PLANES",
    "CHROMA_WORK_PLANES",
    "CUT_NOISE_FACTOR",
    "add_shot",
    "block_match",
    "block_noise_stats",
    "canvas_add",
    "canvas_add_resampled",
    "canvas_read",
    "chroma_from_luma",
    "cross_power",
    "count_impulses",
    "estimate_sigma",
    "fit_noise_curve",
    "float_to_plane",
    "frame_difference",
    "is_scene_cut",
    "long_average",
    "match_add",
    "match_weights",
    "mean_input",
    "mean_output",
    "mismatch_map",
    "noise_map",
    "pack_bgr",
    "pack_nv12",
    "pack_yuv420",
    "pack_yuv420_to",
    "packed_luma",
    "percentile_bias",
    "plane_to_float",
    "recursive_filter",
    "remove_impulses",
    "restore_chroma_edges",
    "sigma_from_block_stats",
    "shift_plane",
    "step_input",
    "step_input_count",
    "step_tail",
    "step_tail_lut",
    "tail_tables",
    "step_tail_display",
    "step_tail_display_lut",
    "step_tail_raw",
    "unclip_mean",
    "unpack_bgr",
    "unpack_nv12",
    "unpack_yuv420",
    "warp",
    "warp_packed",
    "yuv420_to_bgr_guided",
]
