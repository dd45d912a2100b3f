"""The work behind `streamdn bench` (flags: streamdn.cli.bench): speed of the real file path
(decode -> pack -> forward -> unpack -> encode, the stages overlapped in threads), the same file
through decode + encode alone, the model step alone per dtype and device, a network's MAC/s against
the CPU's peak (streamdn.tools.roofline), and the machine it ran on."""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from streamdn.config import EncodeConfig
from streamdn.denoiser import Denoiser, parse_strength
from streamdn.errors import ConfigError
from streamdn.frames import Frame, FrameFormat, frame_from_bgr
from streamdn.models import FrameModel, ModelInfo, create_model, model_info
from streamdn.data.noise import add_noise_uint8, parse_noise
from streamdn.pipeline import Pipeline, RunStats
from streamdn.io.sinks import FileSink
from streamdn.io.sources import FileSource
from streamdn.data.synthetic import MovingScene, SceneConfig
from streamdn.tools.roofline import PEAK_SIZE, cpu_peaks, roofline

KERNEL_NAMES = {"matmul": "torch.matmul", "conv1x1": "oneDNN 1x1 conv",     # how the text names the peak kernels
                "ort_matmul": "ONNX Runtime int8 matmul", "ort_conv1x1": "ONNX Runtime int8 1x1 conv"}   # how the text names the peak kernels


@dataclass(frozen=True)
class BenchConfig:
    """What `bench` measures.

    Attributes:
        input: a video file to benchmark on, or None for a generated clip.
        synthetic: (width, height) of the generated clip (used when input is None).
        frames: frames to run (and to generate).
        model: the model to time.
        strength: "auto" or a sigma in 8-bit units (as `streamdn denoise --strength`).
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        backend: a recurrent network's CPU backend for the file run: "auto" | "torch" | "int8" (Denoiser).
        noise: noise of the generated clip (streamdn.data.noise.parse_noise name).
        model_seconds: how long to time each model-alone measurement, in seconds.
        peak_seconds: how long to time the CPU's peak (a matrix product per precision, two
            ways: streamdn.tools.roofline.cpu_peaks), in seconds, all together; 0 skips it
            (networks only; the roofline then has no peak or fraction).
    """

    input: str | None = None
    synthetic: tuple[int, int] = (1280, 720)
    frames: int = 90
    model: str = "default"
    strength: str = "auto"
    device: str = "auto"
    backend: str = "auto"
    noise: str = "awgn20"
    model_seconds: float = 2.0
    peak_seconds: float = 0.8


class _Passthrough(FrameModel):
    """Returns every frame unchanged: the pipeline with it is decode + encode alone."""

    info = ModelInfo("passthrough", "classical", "no denoising (decode + encode baseline)")

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> Frame:
        return frame

    def forward(self, packed: Frame) -> Frame:
        return packed

    def unpack(self, result: Frame, frame: Frame) -> Frame:
        return result


def make_clip(path: str, width: int, height: int, frames: int, noise: str = "awgn20", seed: int = 0) -> str:
    """Writes a noisy synthetic clip (MovingScene + noise, 30 fps) with the default encoder
    settings, so that decoding in the benchmark is real. Returns path."""
    spec = parse_noise(noise)
    scene = MovingScene(SceneConfig(width, height, seed=seed))
    rng = np.random.default_rng(seed + 1)
    fmt = FrameFormat(width, height, 8, Fraction(30), Fraction(1, 30))
    with FileSink(path, fmt, EncodeConfig(), overwrite=True) as sink:
        for t in range(frames):
            noisy = add_noise_uint8(scene.render(t), spec, rng)
            sink.write(frame_from_bgr(noisy, index=t, pts=t, time_base=fmt.time_base))
    return path


def run_file(input_path: str, output_path: str, denoiser: Denoiser, frames: int) -> tuple[RunStats, dict[str, Any]]:
    """Decodes, denoises and encodes `frames` frames of input_path the way `streamdn denoise`
    does (threaded stages, default encoder). Returns the stats and the encoder settings."""
    with FileSource(input_path, max_frames=frames) as src:
        with FileSink(output_path, src.format, EncodeConfig(), meta=src.meta, overwrite=True) as sink:
            stats = Pipeline(src, [sink], denoiser=denoiser).run()
            encoder = {"codec": sink.plan.codec, "pix_fmt": sink.plan.pix_fmt, "options": sink.plan.options}
    return stats, encoder


def first_frame(path: str) -> Frame:
    with FileSource(path, max_frames=1) as src:
        return next(iter(src))


def time_forward(model: FrameModel, frame: Frame, sigmas: tuple[float, float, float], seconds: float) -> float:
    """Model steps per second: `forward` alone on one packed frame, repeated for about `seconds`
    after three warm-up steps (CUDA is synchronised before the clock reads)."""
    sync = _cuda_sync(model.device)
    packed = model.pack(frame, sigmas)
    for _ in range(3):
        model.forward(packed)
    sync()
    n, start = 0, time.perf_counter()
    while True:
        model.forward(packed)
        n += 1
        sync()
        elapsed = time.perf_counter() - start
        if (elapsed >= seconds and n >= 3) or n >= 1000:
            return n / elapsed


def _cuda_sync(device: str) -> Any:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def model_speeds(name: str, info: ModelInfo, frame: Frame, sigmas: tuple[float, float, float],
                 devices: list[str], seconds: float, network_only: bool = False) -> dict[str, dict[str, float]]:
    """{device: {dtype: steps/s}}. Networks: fp32 and bf16 on every device, fp16 on CUDA, int8 on
    the CPU where the int8 backend runs the model (ONNX Runtime installed, a recurrent network).
    Classical models run once on the CPU, as "native" (their own integer or float path).
    `network_only`: a network's step without its long average (the canvas mean blended in
    beside the network, models.mosaic), which is not the network's work: what the roofline
    measures."""
    if info.kind != "network":
        model = create_model(name, device="cpu")
        try:
            return {"cpu": {"native": round(time_forward(model, frame, sigmas, seconds), 2)}}
        finally:
            model.close()
    out: dict[str, dict[str, float]] = {}
    for device in devices:
        dtypes = ["fp32", "bf16"] + (["fp16"] if device.startswith("cuda") else [])
        for dtype in dtypes:
            model = _network(create_model(name, device=device, dtype=dtype), network_only)
            try:
                out.setdefault(device, {})[dtype] = round(time_forward(model, frame, sigmas, seconds), 2)
            finally:
                model.close()
        if device == "cpu" and _runs_int8(name):
            model = _network(create_model(name, device="cpu", backend="int8"), network_only)
            try:
                out[device]["int8"] = round(time_forward(model, frame, sigmas, seconds), 2)
            finally:
                model.close()
    return out


def _network(model: FrameModel, network_only: bool) -> FrameModel:
    """`model`, without its long average where `network_only` (NetworkModel.long_average may be
    changed between streams)."""
    if network_only and getattr(model, "long_average", None) is not None:
        model.long_average = None    # type: ignore[attr-defined]
    return model


def has_long_average(model: FrameModel) -> bool:
    """Whether a network model blends a long average into its output (see model_speeds)."""
    return getattr(model, "long_average", None) is not None


def _runs_int8(name: str) -> bool:
    """Whether model `name` can run on the int8 backend here (a recurrent network, ONNX Runtime)."""
    from streamdn.models.int8 import available

    if not available():
        return False
    probe = create_model(name, device="cpu", backend="torch")
    try:
        return getattr(probe, "backend", None) == "torch"   # NetworkModel: the recurrent networks
    finally:
        probe.close()


def backend(model: FrameModel) -> tuple[str | None, str | None]:
    """(inference backend, precision it runs by default: "fp32" | "bf16" | "fp16") of a network
    model as created; (None, None) for a classical filter (each has its own CPU path)."""
    if model.info.kind != "network":
        return None, None
    if getattr(model, "backend", None) == "int8":
        return "ONNX Runtime (int8 convolutions)", "int8"
    dtype = str(getattr(model, "dtype", "float32")).removeprefix("torch.")
    precision = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    engine = "cuDNN" if model.device.startswith("cuda") else "oneDNN"
    return f"torch eager ({engine}, channels_last)", precision


def macs_per_px(model: FrameModel) -> float | None:
    """The model's multiply-accumulates per full-resolution pixel: its registry figure, else
    counted on its network (a weight file without the figure); None for a classical filter."""
    if model.info.kind != "network":
        return None
    if model.info.macs_per_px:
        return float(model.info.macs_per_px)
    net = getattr(model, "net", None)
    if net is None:
        return None
    from streamdn.models.macs import network_macs

    return float(network_macs(net))


def machine() -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(device description, thread counts, other facts) of this machine."""
    import cv2
    import numba
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = f"cpu: {cpu}, {cores} cores"
    if torch.cuda.is_available():
        device += f"; cuda: {torch.cuda.get_device_name(0)}"
    threads = {"cores": cores, "torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(),
               "opencv": cv2.getNumThreads(), "numba": numba.get_num_threads()}
    facts = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "python": platform.python_version(), "load_avg_before": [round(x, 2) for x in os.getloadavg()]}
    return device, threads, facts


def bench(cfg: BenchConfig) -> dict[str, Any]:
    """Runs the whole benchmark and returns the figures (plain data, JSON-ready): end-to-end and
    decode+encode fps, their ratio, model steps/s per device and dtype, the ideal end-to-end fps
    when decoding+encoding and the model take turns (1 / (1/decode+encode + 1/model alone), the
    model at its default precision: "ideal_fps") and the share of it reached ("of_ideal"), for a
    network its backend,
    default precision and, on the CPU, GMAC/s against the peak of the same precision ("roofline",
    None for a classical filter), per-stage ms/frame, latency percentiles (ms), peak RSS (MB) and
    the machine.

    Raises:
        ConfigError: frames < 2, or a strength or noise that is not known.
        ModelNotFoundError: an unknown model.
    """
    if cfg.frames < 2:
        raise ConfigError(f"bench: frames={cfg.frames}: give at least 2 frames.")
    parse_strength(cfg.strength)
    try:
        parse_noise(cfg.noise)
    except ValueError as err:
        raise ConfigError(f"bench: noise: {err}") from err
    info = model_info(cfg.model)
    device, threads, facts = machine()
    with tempfile.TemporaryDirectory(prefix="streamdn-bench-") as tmp:
        if cfg.input is None:
            w, h = cfg.synthetic
            source = make_clip(os.path.join(tmp, "input.mp4"), w, h, cfg.frames, cfg.noise)
            described = f"synthetic {w}x{h}, {cfg.noise}, H.264"
        else:
            source, described = cfg.input, cfg.input
        with Denoiser(cfg.model, strength=cfg.strength, device=cfg.device, backend=cfg.backend) as dn:
            stats, encoder = run_file(source, os.path.join(tmp, "out.mp4"), dn, cfg.frames)
            run_device = dn.device
            engine, precision = backend(dn.model)
            macs = macs_per_px(dn.model)
            frame = first_frame(source)
            sigmas = dn.noise_sigmas(frame)
            long_average = has_long_average(dn.model)
        with Denoiser(_Passthrough(), strength=0) as passthrough:
            base, _ = run_file(source, os.path.join(tmp, "base.mp4"), passthrough, cfg.frames)
        devices = ["cpu"] + ([run_device] if run_device != "cpu" else [])
        speeds = model_speeds(info.name, info, frame, sigmas, devices, cfg.model_seconds)
        # The roofline is the network's: timed again without the long average where there is one.
        network = (model_speeds(info.name, info, frame, sigmas, ["cpu"], cfg.model_seconds, network_only=True)
                   if long_average and macs else {"cpu": speeds["cpu"]})
    main = speeds.get(run_device) or next(iter(speeds.values()))
    # What decoding + encoding and the model allow together when they take turns on the cores:
    # the end-to-end figure as a share of it says how well the stages overlap.
    alone = main.get(precision or "native") or next(iter(main.values()))
    ideal = 1.0 / (1.0 / base.fps + 1.0 / alone) if base.fps > 0 and alone > 0 else None
    # Measured after the model so that both see the same load; torch's thread count is the model's.
    peaks = cpu_peaks(cfg.peak_seconds) if macs else None
    roof = roofline(macs, frame.width, frame.height, network["cpu"], peaks) if macs and peaks else None
    return {
        "size": [frame.width, frame.height],
        "frames": stats.frames,
        "input": described,
        "model": info.name,
        "model_kind": info.kind,
        "fps": round(stats.fps, 2),
        "baseline_fps": round(base.fps, 2),
        "ratio": round(stats.fps / base.fps, 4) if base.fps > 0 else 0.0,
        "ideal_fps": round(ideal, 2) if ideal else None,
        "of_ideal": round(stats.fps / ideal, 4) if ideal else None,
        "model_fps": main,
        "model_fps_by_device": speeds,
        # the network's step alone on the CPU (without the long average: the roofline's figures)
        "network_fps": network["cpu"] if macs else None,
        "long_average": long_average,
        "backend": engine,
        "precision": precision,
        "macs_per_px": macs,
        "roofline": roof,
        "cpu_peak_gmacs": peaks,
        "stages_ms": stats.stages_ms,
        "baseline_stages_ms": base.stages_ms,
        "latency_ms": stats.latency_ms,
        "warmup_s": round(stats.warmup_s, 3),
        "sigmas": [round(s, 2) for s in sigmas],
        "encoder": encoder,
        "device": device,
        "run_device": run_device,
        "threads": threads,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        **facts,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def text(r: dict[str, Any]) -> str:
    """The human-readable summary of a bench result."""
    w, h = r["size"]
    stages = "  ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items())
    base = "  ".join(f"{k} {v:.1f}" for k, v in r["baseline_stages_ms"].items())
    lat = "  ".join(f"{k} {v:.0f}" for k, v in r["latency_ms"].items())
    speeds = "; ".join(f"{dev}: " + ", ".join(f"{dt} {v:.1f}" for dt, v in d.items())
                       for dev, d in r["model_fps_by_device"].items())
    return "\n".join([
        f"streamdn bench: {r['model']} on {r['run_device']}, {w}x{h}, {r['frames']} frames ({r['input']})",
        f"  end to end    {r['fps']:7.1f} fps   (decode -> denoise -> {r['encoder']['codec']} encode)",
        f"  decode+encode {r['baseline_fps']:7.1f} fps   ratio {r['ratio']:.2f}",
        f"  model alone   {speeds} steps/s" + ("  (with the long average)" if r.get("long_average") else ""),
        *([f"  of the ideal  {r['of_ideal']:7.0%}       (1 / (1/decode+encode + 1/model alone) = "
           f"{r['ideal_fps']:.1f} fps)"] if r.get("ideal_fps") else []),
        *_roofline_lines(r),
        f"  stage ms/frame  {stages}",
        f"  baseline ms     {base}",
        f"  latency ms      {lat}   (warm-up {r['warmup_s']:.2f} s, not counted)",
        f"  device          {r['device']}",
        "  threads         " + ", ".join(f"{k} {v}" for k, v in r["threads"].items()),
        f"  peak RSS        {r['peak_rss_mb']:.0f} MB;  load average before/after "
        f"{r['load_avg_before'][0]} / {r['load_avg_after'][0]}",
    ])


def _roofline_lines(r: dict[str, Any]) -> list[str]:
    """The backend line and a line per precision of the CPU roofline; none for a classical filter."""
    if r.get("backend") is None:
        return []
    lines = [f"  backend         {r['backend']}, {r['precision']} by default on {r['run_device']}"
             + (f"; {r['macs_per_px']:,.0f} MAC/px" if r.get("macs_per_px") else "")
             + ("; network alone: its step without the long average" if r.get("long_average") else "")]
    where = "" if r["run_device"] == "cpu" else " (cpu)"    # the roofline is the CPU's
    for precision, x in (r.get("roofline") or {}).items():
        line = f"  network alone{where} {precision:<4} {x['fps']:6.1f} fps  {x['gmacs']:6.1f} GMAC/s"
        if x["peak_gmacs"]:
            kernels = r["cpu_peak_gmacs"][precision]
            how = "; ".join(f"{KERNEL_NAMES[k]} {v:.0f}" for k, v in kernels.items())
            line += f" = {x['fraction']:.0%} of {x['peak_gmacs']:.0f} ({PEAK_SIZE}^3 GEMM: {how})"
            if precision == "int8" and (r["roofline"].get("fp32") or {}).get("fps"):
                line += f"; {x['fps'] / r['roofline']['fp32']['fps']:.2f}x fp32"
        elif precision == "bf16" and (r["roofline"].get("fp32") or {}).get("peak_gmacs"):
            line += "  (no peak: this CPU has no native bf16)"
        elif precision == "int8" and (r["roofline"].get("fp32") or {}).get("fps"):
            line += f"  ({x['fps'] / r['roofline']['fp32']['fps']:.2f}x fp32; int8 peak not measured)"
        else:
            line += "  (peak not measured)"
        lines.append(line)
    return lines
