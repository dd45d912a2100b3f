"""The network's convolution trunk on every CPU inference backend, side by side: speed at 720p
and 480p, and how far each backend's output is from torch fp32.

Backends: torch eager (channels_last, oneDNN) in fp32 and bf16 (autocast), torch.compile
(inductor) in fp32 and bf16, ONNX Runtime fp32 and int8 (static QDQ quantisation of every
convolution, calibrated on the step inputs of training clips), OpenVINO fp32, bf16 (where the CPU
has it) and the same int8 model, and streamdn's own int8 backend (streamdn.models.int8: ONNX
Runtime, every convolution int8, uint8 channels-last input and output, timed as the network
step runs it). The trunk is the whole network but for the element-wise ends
(streamdn.kernels.step), which run in Numba whatever the backend.

Usage:
    python scripts/backends.py [--model fast] [--sizes 1280x720,640x480] [--seconds 3]
                               [--skip compile,ov-int8] [--json PATH]
    python scripts/backends.py --validate [--model fast] [--noises awgn20,pg_lowlight] [--json PATH]

--validate instead scores the registry model on the fixed validation clips (streamdn train
--validate's, blind; --noises picks them) with its trunk on torch fp32, on streamdn's int8
backend, and on OpenVINO running the same int8 model: the parity check of int8 (within 0.15 dB
of fp32).

Needs `pip install onnx onnxruntime openvino` (optional: a missing one is skipped with a line
saying so). Run on a quiet machine: other processes inflate the times (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamdn.models.fast import IN_CH, SIGMA_CH
from streamdn.models.macs import network_macs

Run = Callable[[np.ndarray], np.ndarray]


class Trunk(torch.nn.Module):
    """The network's trunk as a module of its own (what the backends export)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.trunk(x)


def calibration_inputs(net: torch.nn.Module, n: int, size: int = 128) -> list[np.ndarray]:
    """Step inputs (1, C, size/2, size/2) float32 of `n` training clips (training seeds only),
    taken from the network's own recursion at frames 0 and 3 (what its first convolution
    receives; no motion warp: calibration only)."""
    from streamdn.data.clips import training_batch

    seen: list[torch.Tensor] = []
    hook = net.enc.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    out: list[np.ndarray] = []
    try:
        for step in range(n):
            b = {k: torch.from_numpy(v) for k, v in training_batch(step, 1000, 1, size, frames=4).items()}
            prev, hidden = net.init_state(b["noisy"][:, 0])
            count = net.zero_count(b["noisy"][:, 0]) if net.cfg.motion else None
            with torch.no_grad():
                for t in range(4):
                    seen.clear()
                    s = net(b["noisy"][:, t], b["sigma"][:, t], prev, hidden, 1.0 if t else 0.0, count)
                    if t in (0, 3):
                        out.append(seen[0].numpy())
                    prev, hidden, count = s.state, s.hidden, s.count
    finally:
        hook.remove()
    return out


class Int8Run:
    """streamdn's int8 trunk (streamdn.models.int8.Int8Trunk) as a Run on (1, C, H, W) input,
    timed as the network step runs it (`fast`: its uint8 channels-last input made once per input
    array, as the step's kernel writes it, and its uint8 output left for the step's tail to
    dequantise); called, it returns the float output for the comparison with torch."""

    def __init__(self, trunk: Any) -> None:
        self.trunk = trunk
        self.last: list[np.ndarray] = []

    def _input(self, x: np.ndarray) -> np.ndarray:
        from streamdn.models.int8 import _quantise

        if not self.last or self.last[0] is not x:
            q = _quantise(np.ascontiguousarray(x[0].transpose(1, 2, 0)), self.trunk.input_scale, self.trunk.input_zero)
            self.last[:] = [x, q]
        return self.last[1]

    def fast(self, x: np.ndarray) -> np.ndarray:
        return self.trunk.head(self._input(x))[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q, scale, offset = self.trunk.head(self._input(x))
        return (q * scale + offset).transpose(2, 0, 1)[None]


def timed(run: Run, x: np.ndarray, seconds: float) -> float:
    """Calls per second of run(x) after two warm-up calls, over about `seconds`."""
    for _ in range(2):
        run(x)
    n, start = 0, time.perf_counter()
    while True:
        run(x)
        n += 1
        el = time.perf_counter() - start
        if (el >= seconds and n >= 3) or n >= 500:
            return n / el


def torch_runner(module: torch.nn.Module, bf16: bool) -> Run:
    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return module(t).float().numpy()
    return run


def export_onnx(module: torch.nn.Module, c: int, path: Path) -> None:
    x = torch.zeros(1, c, 64, 64)
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}, dynamo=False)


def ort_runner(path: Path, threads: int) -> Run:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {"x": np.ascontiguousarray(x)})[0]
    return run


def ov_runner(path: Path, precision: str, threads: int) -> Run:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                     "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                     "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        req.infer({0: np.ascontiguousarray(x)})
        return req.get_output_tensor(0).data.copy()
    return run


def validate_int8(model: str, noises: tuple[str, ...], json_path: str | None) -> int:
    """Validation PSNR/SSIM of `model` with its trunk on torch fp32, on streamdn's int8 backend
    (streamdn.models.int8: ONNX Runtime) and on OpenVINO running the same int8 model."""
    from streamdn.data.clips import validation_clips
    from streamdn.models.int8 import Int8Trunk, load_or_build
    from streamdn.models.registry import create_model
    from streamdn.tools.train import validate

    clips = validation_clips(noises=noises)
    table: dict[str, dict[str, dict[str, float]]] = {
        "torch fp32": validate(create_model(model, device="cpu", backend="torch"), clips),
        "int8 (ONNX Runtime)": validate(create_model(model, device="cpu", backend="int8"), clips)}
    try:
        import openvino  # noqa: F401

        m = create_model(model, device="cpu", backend="int8")
        source = m._int8_net or m.net          # the weights the int8 backend runs
        path = Path(tempfile.mkdtemp(prefix="streamdn-int8-")) / "trunk-int8.onnx"
        path.write_bytes(load_or_build(source))
        run = ov_runner(path, "f32", 2)
        meta = Int8Trunk(source, threads=1, log=None)   # the head's scale and offset

        class OnOpenVINO:
            input_scale, input_zero, tail_table = meta.input_scale, meta.input_zero, meta.tail_table

            def head(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                return run(x[None])[0], meta.scale, meta.offset

        m._int8 = OnOpenVINO()
        table["the same int8 model on OpenVINO"] = validate(m, clips)
    except ImportError:
        print("openvino not installed: skipped", flush=True)
    base = table["torch fp32"]
    for name, r in table.items():
        print(f"{name:32} " + "  ".join(f"{k} {v['psnr']:.2f}/{v['ssim']:.4f} ({v['psnr'] - base[k]['psnr']:+.2f})"
                                        for k, v in r.items()), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps({"model": model, "machine": platform.processor() or platform.machine(),
                                               "validation": table}, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fast", help="registry name or .safetensors (default fast)")
    ap.add_argument("--sizes", default="1280x720,640x480", help="frame sizes (the trunk runs at half of each)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per backend and size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of backends to skip: compile, ort, ort-int8, ov, ov-int8, int8 (streamdn's)")
    ap.add_argument("--calib", type=int, default=24, help="training clips for int8 calibration")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--validate", action="store_true",
                    help="instead: validation PSNR/SSIM with the trunk on torch fp32 and on int8 (ONNX Runtime, "
                         "as streamdn runs it, and OpenVINO)")
    ap.add_argument("--noises", default="awgn20,pg_lowlight", help="--validate's noises (default awgn20,pg_lowlight)")
    args = ap.parse_args()
    if args.validate:
        torch.set_num_threads(args.threads)
        return validate_int8(args.model, tuple(args.noises.split(",")), args.json)
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(args.threads)
    from streamdn.models.network import WEIGHTS_DIR, load_weights

    path = Path(args.model) if args.model.endswith(".safetensors") else WEIGHTS_DIR / f"{args.model}.safetensors"
    net, _ = load_weights(path)
    net.eval()
    trunk = Trunk(net).eval().to(memory_format=torch.channels_last)
    c = 2 * IN_CH + SIGMA_CH + 1 + int(net.cfg.motion) + net.cfg.hidden
    macs = network_macs(net)
    flags = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    cpu = {"machine": platform.processor() or platform.machine(), "amx": "amx_bf16" in flags,
           "avx512_bf16": "avx512_bf16" in flags, "avx2": "avx2" in flags, "load": os.getloadavg()}
    print(f"model {args.model}: {macs:.0f} MAC/px, trunk input {c} channels; CPU {cpu}", flush=True)

    runners: dict[str, Run] = {"torch-fp32": torch_runner(trunk, False), "torch-bf16": torch_runner(trunk, True)}
    tmp = Path(tempfile.mkdtemp(prefix="streamdn-backends-"))
    if "compile" not in skip:
        comp = torch.compile(trunk, dynamic=False)
        runners["compile-fp32"] = torch_runner(comp, False)
        runners["compile-bf16"] = torch_runner(comp, True)
    onnx_path = tmp / "trunk.onnx"
    try:
        export_onnx(Trunk(net).eval(), c, onnx_path)
    except Exception as err:   # an exporter that cannot take the model: report and go on
        print(f"ONNX export failed ({err}); ONNX Runtime and OpenVINO skipped", flush=True)
        skip |= {"ort", "ort-int8", "ov", "ov-int8"}
    int8_path = tmp / "trunk-int8.onnx"
    if not {"ort-int8", "ov-int8"} <= skip:
        try:
            from streamdn.models.int8 import quantize_file

            quantize_file(onnx_path, int8_path, calibration_inputs(net, args.calib))
        except Exception as err:
            print(f"int8 quantisation failed ({err})", flush=True)
            skip |= {"ort-int8", "ov-int8"}
    try:
        import onnxruntime  # noqa: F401
        if "ort" not in skip:
            runners["ort-fp32"] = ort_runner(onnx_path, args.threads)
        if "ort-int8" not in skip:
            runners["ort-int8"] = ort_runner(int8_path, args.threads)
    except ImportError:
        print("onnxruntime not installed: skipped", flush=True)
    try:
        import openvino  # noqa: F401
        if "ov" not in skip:
            runners["ov-fp32"] = ov_runner(onnx_path, "f32", args.threads)
            if cpu["avx512_bf16"] or cpu["amx"]:
                runners["ov-bf16"] = ov_runner(onnx_path, "bf16", args.threads)
        if "ov-int8" not in skip:
            runners["ov-int8"] = ov_runner(int8_path, "f32", args.threads)
    except ImportError:
        print("openvino not installed: skipped", flush=True)
    if "int8" not in skip:
        import streamdn.denoiser  # noqa: F401  (sets the int8 backend's calibration)
        from streamdn.models.int8 import Int8Trunk, available

        if available():
            runners["streamdn-int8"] = Int8Run(Int8Trunk(net, threads=args.threads))
        else:
            print("streamdn's int8 backend needs onnxruntime and onnx: skipped", flush=True)

    results: dict[str, dict[str, dict[str, float]]] = {}
    rng = np.random.default_rng(0)
    calib = calibration_inputs(net, 2, size=256)   # realistic values for the parity check
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        x = np.ascontiguousarray(np.tile(calib[-1], (1, 1, (h // 2 + 127) // 128, (w // 2 + 127) // 128))
                                 [:, :, : h // 2, : w // 2]) + rng.normal(0, 1e-3, (1, c, h // 2, w // 2)).astype(np.float32)
        x = x.astype(np.float32)
        ref = runners["torch-fp32"](x)
        for name, run in runners.items():
            try:
                fps = timed(getattr(run, "fast", run), x, args.seconds)
                y = run(x)
            except Exception as err:
                print(f"{size:>9} {name:13} failed: {err}", flush=True)
                continue
            err_max = float(np.abs(y - ref).max())
            err_rms = float(np.sqrt(((y[:, :IN_CH] - ref[:, :IN_CH]) ** 2).mean()))
            gmac = macs * w * h * fps / 1e9
            results.setdefault(size, {})[name] = {"fps": round(fps, 2), "gmac_s": round(gmac, 1),
                                                  "max_abs_diff": err_max, "residual_rms_diff": err_rms}
            print(f"{size:>9} {name:13} {fps:7.2f} fps  {gmac:6.1f} GMAC/s  residual rms diff {err_rms:.2e} "
                  f"(max {err_max:.2e})  load {os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "cpu": cpu, "macs_per_px": macs,
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
