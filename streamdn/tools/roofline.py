"""Where a network's speed sits against the CPU, for `streamdn bench`: the CPU's peak
multiply-accumulate rate per precision, measured with a 2048x2048x2048 matrix product, and the
network's achieved rate (its MAC/px times the pixels it denoised per second) as a fraction of it.

fp32 and bf16 run in torch two ways, because they can differ by a factor of two: torch.matmul
(the BLAS torch was built with, MKL on x86, which takes a slower path on some non-Intel CPUs)
and the same product as a 1x1 convolution (oneDNN, the library that runs the networks'
convolutions). int8 (uint8 x int8, int32 sums), where ONNX Runtime is installed, runs in ONNX
Runtime, the int8 backend's library, also two ways: a quantised matrix product and a quantised
1x1 convolution. Per precision the faster way is the peak."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

Key = TypeVar("Key")

PEAK_SIZE = 2048                    # M = N = K of the peak measurement (as docs/backends.md quotes it)
PRECISIONS = ("fp32", "bf16", "int8")
KERNELS = ("matmul", "conv1x1")     # torch.matmul; the same product as a channels_last 1x1 convolution
INT8_KERNELS = ("ort_matmul", "ort_conv1x1")   # ONNX Runtime's QLinearMatMul and QLinearConv


def cpu_has_native_bf16() -> bool:
    """Whether torch's CPU kernels run bf16 natively here (AVX-512 BF16 or AMX through oneDNN):
    the same test the networks use to pick bf16 by default."""
    from streamdn.models.network import _cpu_has_bf16

    return _cpu_has_bf16()


def cpu_peaks(seconds: float = 0.8, *, size: int = PEAK_SIZE,
              threads: int | None = None) -> dict[str, dict[str, float] | None]:
    """The CPU's rate on a (size x size) by (size x size) product per precision and kernel, GMAC/s.

    Each product runs once to warm up; then they take turns for about `seconds` in all (each at
    least once more), and each one's fastest call counts. Taking turns spreads a moment of load from
    other processes over all of them instead of one, and the fastest call is what the CPU can do.

    Args:
        seconds: time for all the products together, after the warm-ups; 0 or less measures
            nothing (every value None).
        size: M = N = K of the product (size**3 MACs per call).
        threads: torch threads to use (restored afterwards); None keeps torch's current count,
            which is what the networks run with.

    Returns:
        {"fp32": {"matmul": GMAC/s, "conv1x1": GMAC/s}, "bf16": the same, or None where the CPU
        has no native bf16 (torch emulates it there, and no network runs it by default), "int8":
        {"ort_matmul": GMAC/s, "ort_conv1x1": GMAC/s}, or None without ONNX Runtime}.
    """
    from streamdn.models.int8 import available as int8_available

    peaks: dict[str, dict[str, float] | None] = {p: None for p in PRECISIONS}
    if seconds <= 0:
        return peaks
    import torch

    kernels = {"fp32": KERNELS, "bf16": KERNELS if cpu_has_native_bf16() else (),
               "int8": INT8_KERNELS if int8_available() else ()}
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        calls = {(p, k): (_ort_gemm(k, size, torch.get_num_threads()) if p == "int8" else _gemm(p, k, size))
                 for p, names in kernels.items() for k in names}
        best = _best_times(calls, seconds)
    finally:
        torch.set_num_threads(before)
    for precision, names in kernels.items():
        if names:
            peaks[precision] = {k: round(size**3 / best[(precision, k)] / 1e9, 1) for k in names}
    return peaks


def _gemm(precision: str, kernel: str, size: int) -> Callable[[], None]:
    """A call computing one (size x size) by (size x size) product: "matmul" with torch.matmul,
    "conv1x1" as a 1x1 convolution of `size` channels to `size` over `size` pixels,
    channels_last (oneDNN's GEMM)."""
    import torch
    import torch.nn.functional as F

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    if kernel == "matmul":
        out = torch.empty(size, size, dtype=dtype)

        def matmul() -> None:
            torch.matmul(a, b, out=out)
        return matmul
    x = a.reshape(1, size, 1, size).contiguous(memory_format=torch.channels_last)
    w = b.reshape(size, size, 1, 1)

    def conv1x1() -> None:
        F.conv2d(x, w)
    return conv1x1


def _ort_gemm(kernel: str, size: int, threads: int) -> Callable[[], None]:
    """A call computing one (size x size) by (size x size) uint8 x int8 product in ONNX Runtime,
    as the int8 backend's session runs (`threads` intra-op threads, no spinning): "ort_matmul"
    a QLinearMatMul, "ort_conv1x1" a QLinearConv of `size` channels to `size` over `size`
    pixels (the QDQ form each fuses into, uint8 in and out)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    conv = kernel == "ort_conv1x1"
    shape = [1, size, 32, size // 32] if conv and size % 32 == 0 else ([1, size, 1, size] if conv else [size, size])
    w = rng.integers(-127, 128, (size, size, 1, 1) if conv else (size, size)).astype(np.int8)
    consts = [numpy_helper.from_array(v, name) for name, v in (
        ("w", w), ("xs", np.array(0.02, np.float32)), ("xz", np.array(128, np.uint8)),
        ("ws", np.array(0.01, np.float32)), ("wz", np.array(0, np.int8)),
        ("ys", np.array(0.5, np.float32)), ("yz", np.array(128, np.uint8)))]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("Conv" if conv else "MatMul", ["xf", "wf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "peak", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], consts)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = rng.integers(0, 256, shape).astype(np.uint8)

    def product() -> None:
        session.run(None, {"x": x})
    return product


def _best_times(calls: dict[Key, Callable[[], None]], seconds: float) -> dict[Key, float]:
    """The fastest of each call's runs, in seconds: one warm-up each, then the calls take turns
    for about `seconds` (each at least once after its warm-up)."""
    import torch

    best = {key: float("inf") for key in calls}
    with torch.inference_mode():
        for call in calls.values():
            call()
        rounds, start = 0, time.perf_counter()
        while rounds < 1 or time.perf_counter() - start < seconds:
            for key, call in calls.items():
                t0 = time.perf_counter()
                call()
                best[key] = min(best[key], time.perf_counter() - t0)
            rounds += 1
    return best


def roofline(macs_per_px: float, width: int, height: int, fps: dict[str, float],
             peaks: dict[str, dict[str, float] | None]) -> dict[str, dict[str, Any]]:
    """The network's achieved rate per precision against the peak of the same precision.

    Args:
        macs_per_px: the network's multiply-accumulates per pixel of the full-resolution frame.
        width, height: the frame the speeds were measured on, in pixels.
        fps: {precision: network steps per second}.
        peaks: cpu_peaks() figures, GMAC/s per kernel (a precision missing or None: no peak).

    Returns:
        {precision: {"fps", "gmacs": achieved GMAC/s, "peak_gmacs": the faster kernel's GMAC/s
        or None, "peak_kernel": "matmul" | "conv1x1" | None, "fraction": gmacs / peak_gmacs or
        None}}.
    """
    out: dict[str, dict[str, Any]] = {}
    for precision, rate in fps.items():
        gmacs = macs_per_px * width * height * rate / 1e9
        by_kernel = peaks.get(precision) or {}
        kernel = max(by_kernel, key=by_kernel.__getitem__) if by_kernel else None
        peak = by_kernel[kernel] if kernel else None
        out[precision] = {"fps": rate, "gmacs": _sig(gmacs), "peak_gmacs": peak, "peak_kernel": kernel,
                          "fraction": _sig(gmacs / peak) if peak else None}
    return out


def _sig(x: float) -> float:
    """x to four significant digits (tiny test frames give tiny rates that must not round to 0)."""
    return float(f"{x:.4g}")
