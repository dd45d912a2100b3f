"""`streamdn bench`: its flags and how it runs (the work itself is streamdn.tools.bench and, for
--kernels, streamdn.tools.kernelbench)."""

from __future__ import annotations

import argparse
import json

from streamdn.cli.args import EXIT_OK
from streamdn.config import parse_size
from streamdn.data.noise import parse_noise
from streamdn.errors import ConfigError
from streamdn.tools.bench import BenchConfig, bench, text
from streamdn.tools.kernelbench import kernel_report, kernel_text

DEFAULT_SIZE = (1280, 720)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn bench` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench", help="measure end-to-end fps, per-stage time, latency and the model alone",
        description="Runs the file path (decode -> denoise -> encode with the default encoder) on a file or a "
                    "generated clip, then the same frames through decode + encode alone, then the model step "
                    "alone per dtype and device. For a network it also reports its inference backend and "
                    "default precision (fp32, bf16, fp16 or int8), and per precision its MAC/s on the CPU against the CPU's peak for "
                    "that precision: the roofline. The peak is a 2048^3 matrix product, timed as torch.matmul and as a "
                    "oneDNN 1x1 convolution, and for int8 in ONNX Runtime where it is installed (about 1.3-2 s; "
                    "--no-peak skips it).",
        epilog="examples: streamdn bench --synthetic 1280x720 --json\n          streamdn bench --kernels\n\n"
               "Other CPU backends (torch.compile, ONNX Runtime, OpenVINO) on the network's trunk:\n"
               "python scripts/backends.py in a checkout (needs onnx, onnxruntime, openvino; docs/backends.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE", help="video file to run on")
    src.add_argument("--synthetic", metavar="WxH", help="generate a noisy H.264 clip of this size (default 1280x720)")
    p.add_argument("--frames", type=int, default=90, metavar="N", help="frames to run (default %(default)s)")
    p.add_argument("--model", default="default", help="model to time (default: the default model)")
    p.add_argument("--strength", default="auto", help="auto (default) or the RGB noise sigma in 8-bit units (as denoise --strength)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "int8"),
                   help="a recurrent network's CPU backend for the file run (default auto, as streamdn denoise; "
                        "docs/backends.md)")
    p.add_argument("--noise", default="awgn20", help="noise of the generated clip (default %(default)s)")
    p.add_argument("--model-seconds", type=float, default=2.0, metavar="S",
                   help="seconds per model-alone measurement (default %(default)s)")
    p.add_argument("--no-peak", action="store_true",
                   help="skip the CPU peak measurement (the roofline then gives GMAC/s without a fraction)")
    p.add_argument("--kernels", action="store_true",
                   help="instead: time each Numba kernel at the --synthetic size and its JIT cost (cold/warm cache)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn bench` from parsed arguments; prints the figures. Returns the exit code."""
    size = parse_size(args.synthetic, what="--synthetic", minimum=16) if args.synthetic else DEFAULT_SIZE
    if args.kernels:
        report = kernel_report(*size)
        print(json.dumps(report, indent=2) if args.json else kernel_text(report))
        return EXIT_OK
    if args.frames < 2:
        raise ConfigError(f"--frames {args.frames}: give at least 2 frames.")
    try:
        parse_noise(args.noise)
    except ValueError as err:
        raise ConfigError(f"--noise: {err}") from err
    cfg = BenchConfig(input=args.input, synthetic=size, frames=args.frames, model=args.model,
                      strength=args.strength, device=args.device, backend=args.backend, noise=args.noise,
                      model_seconds=args.model_seconds,
                      peak_seconds=0.0 if args.no_peak else BenchConfig.peak_seconds)
    result = bench(cfg)
    print(json.dumps(result, indent=2) if args.json else text(result))
    return EXIT_OK
