"""Micro-benchmarks of the Numba kernels (`streamdn bench --kernels`): time per call at a frame
size, and the JIT cost of first use with an empty cache (cold) and with the cache written by a
previous process (warm), each measured in a fresh Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np


def _cases(width: int, height: int) -> dict[str, Callable[[], object]]:
    """One closure per kernel, on realistic inputs of a width x height 8-bit frame."""
    from streamdn import kernels as k
    from streamdn.frames import _BGR_TO_YUV_F32, _YUV_TO_BGR_F32

    rng = np.random.default_rng(0)
    h, w = height, width
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    y = rng.integers(0, 256, (h, w)).astype(np.uint8)
    u = rng.integers(0, 256, (h2, w2)).astype(np.uint8)
    v = rng.integers(0, 256, (h2, w2)).astype(np.uint8)
    y16 = (y.astype(np.uint16) << 2)
    uv = np.ascontiguousarray(np.stack([u, v], -1))
    bgr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    packed = k.pack_yuv420(y, u, v, 1 / 255, np.empty((h2, w2, 6), np.float32))
    f32 = np.empty((h2, w2, 6), np.float32)
    u16 = np.empty((h2, w2, 6), np.uint16)
    smap = np.full((h2, w2, 3), 0.05, np.float32)
    hidden = np.zeros((h2, w2, 4), np.float32)
    head = rng.standard_normal((h2, w2, 16)).astype(np.float32)
    ones16, zeros16 = np.ones(16, np.float32), np.zeros(16, np.float32)
    head_q = rng.integers(0, 256, (h2, w2, 16)).astype(np.uint8)
    table16 = k.tail_tables(np.full(16, 0.04, np.float32), np.full(16, -5.0, np.float32))
    x27 = np.empty((h2, w2, 20), np.float32)
    x27q = np.empty((h2, w2, 20), np.uint8)
    out6, hid4 = np.empty((h2, w2, 6), np.float32), np.empty((h2, w2, 4), np.float32)
    yo, uo, vo = np.empty_like(y), np.empty_like(u), np.empty_like(v)
    stats = np.empty((h // 16, w // 16, 2), np.float32)
    curve = np.array([0.2, 1.0, 0.5])
    sig3 = np.array([0.05, 0.02, 0.02], np.float32)
    plane = y.astype(np.float32)
    prev, count = plane.copy(), np.zeros_like(plane)
    tout, tcount = np.empty_like(plane), np.empty_like(plane)
    bgr_out = np.empty((h, w, 3), np.uint8)
    # The motion recursion (fast_mc): a smooth scene and the same moved by (1.3, 0.4) pixels, so
    # that the flow, the warp and the still-block test see a real pan.
    import cv2

    from streamdn.kernels.motion import warp_packed_lanczos
    from streamdn.models.motion import StateWarper

    scene = cv2.GaussianBlur(rng.random((h + 8, w + 8)).astype(np.float32), (0, 0), 2.0)
    scene = (scene - scene.min()) / max(float(np.ptp(scene)), 1e-6)
    moved = cv2.warpAffine(scene, np.float32([[1, 0, 1.3], [0, 1, 0.4]]), scene.shape[::-1])
    def packed_of(img: np.ndarray) -> np.ndarray:
        y8 = np.clip(img[4:4 + h, 4:4 + w] * 255 + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)
        return k.pack_yuv420(y8, u, v, 1 / 255, np.empty((h2, w2, 6), np.float32))
    state, cur = packed_of(scene), packed_of(moved)
    warper = StateWarper()
    flow = warper.estimate(cur, state)
    count1 = np.full((h2, w2, 1), 5.0, np.float32)
    head22 = rng.standard_normal((h2, w2, 18 + 4)).astype(np.float32)
    ones22, zeros22 = np.ones(22, np.float32), np.zeros(22, np.float32)
    head22_q = rng.integers(0, 256, (h2, w2, 22)).astype(np.uint8)
    table22 = k.tail_tables(np.full(22, 0.04, np.float32), np.full(22, -5.0, np.float32), display=True)
    x21 = np.empty((h2, w2, 21), np.float32)
    state6, count_out = np.empty((h2, w2, 6), np.float32), np.empty((h2, w2, 1), np.float32)
    avg, avg_count = packed.copy(), np.full((h2, w2, 1), 5.0, np.float32)
    zero = np.zeros((h2, w2, 2), np.float32)
    work = np.empty((k.CHROMA_WORK_PLANES, h2, w2), np.float32)
    # The long average's canvas (models/mosaic.py): the frame plus an eighth each side; a
    # still camera's frame at whole pixels, a moving one at (0.3, 0.6) chroma samples.
    my, mx = max(8, h2 // 8), max(8, w2 // 8)
    cy_u = rng.random((h2 + 2 * my, w2 + 2 * mx)).astype(np.float32)
    cy_y = rng.random((2 * cy_u.shape[0], 2 * cy_u.shape[1])).astype(np.float32)
    cy_v, cy_count = cy_u.copy(), np.full(cy_u.shape, 5.0, np.float32)
    hp, wp = h2 + 7, w2 + 7
    res_y, res_u = rng.random((2 * hp, 2 * wp)).astype(np.float32), rng.random((hp, wp)).astype(np.float32)
    count2 = np.full((h2, w2), 6.0, np.float32)
    weight2 = 1.0 / count2
    mean_in, sig_in, frames1 = np.empty_like(packed), np.empty_like(smap), np.empty((h2, w2, 1), np.float32)
    read_count = np.empty((h2, w2, 1), np.float32)
    lanczos6 = np.array([-0.02, 0.11, 0.86, 0.08, -0.04, 0.01], np.float32)
    shifted_y, read_y = np.empty((2 * hp, 2 * wp), np.float32), np.empty((2 * h2, 2 * w2), np.float32)
    return {
        "pack_yuv420 (8-bit)": lambda: k.pack_yuv420(y, u, v, 1 / 255, f32),
        "pack_yuv420 (10-bit)": lambda: k.pack_yuv420(y16, u.astype(np.uint16), v.astype(np.uint16), 1 / 1023, f32),
        "pack_yuv420_to fp16": lambda: k.pack_yuv420_to(y, u, v, 1 / 255, u16, 1),
        "pack_yuv420_to bf16": lambda: k.pack_yuv420_to(y, u, v, 1 / 255, u16, 2),
        "pack_nv12": lambda: k.pack_nv12(y, uv, 1 / 255, f32),
        "pack_bgr": lambda: k.pack_bgr(bgr, _BGR_TO_YUV_F32, f32),
        "unpack_yuv420": lambda: k.unpack_yuv420(packed, 255, yo, uo, vo),
        "unpack_bgr": lambda: k.unpack_bgr(packed, _YUV_TO_BGR_F32, bgr_out),
        "yuv420_to_bgr_guided (chroma from luma)": lambda: k.yuv420_to_bgr_guided(y, u, v, 6.5, 1, _YUV_TO_BGR_F32, work,
                                                                                  bgr_out),
        "noise_map": lambda: k.noise_map(packed, sig3, curve, smap),
        "block_noise_stats": lambda: k.block_noise_stats(y, 16, stats),
        "estimate_sigma": lambda: k.estimate_sigma(y, 255.0),
        "frame_difference (scene cut)": lambda: k.frame_difference(y, y, 4),
        "step_input": lambda: k.step_input(packed, packed, smap, hidden, x27),
        "step_input (uint8, for the int8 backend)": lambda: k.step_input(packed, packed, smap, hidden, x27q, 137.0, 66.0),
        "step_tail": lambda: k.step_tail(head, ones16, zeros16, packed, packed, 1.0, out6, hid4),
        "step_tail_lut (uint8 head, int8 backend)": lambda: k.step_tail_lut(head_q, table16, packed, packed, 1.0, out6,
                                                                            hid4),
        "recursive_filter": lambda: k.recursive_filter(plane, prev, count, 10.0, 8.0, 1, tout, tcount),
        "motion: flow (DIS + still blocks)": lambda: warper.estimate(cur, state),
        "motion: Lanczos warp of the state": lambda: warp_packed_lanczos(state, flow, 3, out6),
        "motion: step_input_count": lambda: k.step_input_count(cur, state, smap, count1, hidden, False, x21),
        "motion: step_tail_display": lambda: k.step_tail_display(head22, ones22, zeros22, cur, state, count1, 1.0, 1000.0, out6,
                                                                 state6, count_out, hid4),
        "motion: step_tail_display_lut (uint8 head)": lambda: k.step_tail_display_lut(head22_q, table22, cur, state, count1,
                                                                                      1.0, 1000.0, out6, state6,
                                                                                      count_out, hid4),
        "motion: long_average": lambda: k.long_average(cur, smap, zero, avg, avg_count, out6, 8.0, 10.0, 30.0,
                                                       0.9, 1.15, 5, 1000.0),
        "long average: mean_input": lambda: k.mean_input(cur, smap, avg, avg_count, avg_count, 4.0, 8.0, mean_in,
                                                         sig_in, frames1),
        "long average: mean_output": lambda: k.mean_output(out6, mean_in, frames1, avg, avg_count, 20.0, 0.5, 3.0,
                                                           8.0, 5.0, 20.0),
        "canvas: canvas_read": lambda: k.canvas_read(res_y[:2 * h2, :2 * w2], res_u[:h2, :w2], res_u[:h2, :w2],
                                                     cy_count, my + 0.3, mx + 0.6, out6, read_count),
        "canvas: shift_plane (luma read, 6x6 Lanczos)": lambda: k.shift_plane(cy_y, 2 * my - 2, 2 * mx - 2, lanczos6,
                                                                              lanczos6, read_y),
        "canvas: shift_plane (packed frame's luma, border)": lambda: k.shift_plane(cur, -5, -5, lanczos6, lanczos6,
                                                                                   shifted_y),
        "canvas: canvas_add (still camera)": lambda: k.canvas_add(cur, count2, my, mx, 3, cy_y, cy_u, cy_v, cy_count),
        "canvas: canvas_add_resampled (moving)": lambda: k.canvas_add_resampled(res_y, res_u, res_u, count2, weight2,
                                                                                my - 3, mx - 3, my + 0.3, mx + 0.6,
                                                                                cy_y, cy_u, cy_v, cy_count),
    }


def time_kernels(width: int = 1280, height: int = 720, seconds: float = 0.3) -> dict[str, float]:
    """Median milliseconds per call of each kernel (after a warm-up call), at width x height."""
    res = {}
    for name, call in _cases(width, height).items():
        call()
        times: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(times) < 5:
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        res[name] = round(1000 * float(np.median(times)), 3)
    return res


_FIRST_USE = """
import json, time
t0 = time.perf_counter()
from streamdn.tools.kernelbench import _cases
cases = _cases(64, 48)
t1 = time.perf_counter()
for call in cases.values():
    call()
print(json.dumps({"import_s": t1 - t0, "first_calls_s": time.perf_counter() - t1}))
"""


def jit_times() -> dict[str, float]:
    """Seconds for the first call of every kernel in a fresh process: with an empty Numba cache
    (cold: compiles everything) and again with the cache that run wrote (warm: loads it)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="streamdn-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            run = subprocess.run([sys.executable, "-c", _FIRST_USE], env=env, capture_output=True, text=True,
                                 check=True)
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            out[f"{label}_first_calls_s"] = round(figures["first_calls_s"], 3)
    return out


def kernel_report(width: int, height: int, with_jit: bool = True) -> dict[str, object]:
    """The `streamdn bench --kernels` figures."""
    res: dict[str, object] = {"size": [width, height], "ms_per_call": time_kernels(width, height)}
    if with_jit:
        res["jit"] = jit_times()
    return res


def kernel_text(r: dict[str, object]) -> str:
    w, h = r["size"]  # type: ignore[misc]
    lines = [f"Numba kernels at {w}x{h} (median ms per call)"]
    names = r["ms_per_call"]  # type: ignore[union-attr]
    width = max([36] + [len(n) for n in names])  # type: ignore[union-attr]
    for name, ms in names.items():  # type: ignore[union-attr]
        lines.append(f"  {name:{width}} {ms:8.3f}")
    if "jit" in r:
        j = r["jit"]
        lines.append(f"  first use of all kernels: cold cache {j['cold_first_calls_s']:.2f} s, "  # type: ignore[index]
                     f"warm cache {j['warm_first_calls_s']:.2f} s")  # type: ignore[index]
    return "\n".join(lines)
