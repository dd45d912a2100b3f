"""`streamdn demo`: its flags and how it runs (the work itself is streamdn.jobs.demo.run_demo)."""

from __future__ import annotations

import argparse
from typing import Any

from streamdn.cli.args import EXIT_OK, add_common_args, add_encode_args, add_model_args, config_from


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `demo` to the `streamdn` subcommands."""
    p = subparsers.add_parser(
        "demo", help="denoise a synthetic noisy clip and write a side-by-side video",
        description="No camera or input needed: renders a moving scene, adds noise, denoises it, writes "
                    "noisy|clean side by side and prints PSNR before/after and fps.")
    p.add_argument("-o", "--output", default="streamdn-demo.mp4", help="side-by-side video (default %(default)s)")
    p.add_argument("--noise", help="noise type: gaussian, poisson, poisson_gaussian, salt_pepper, speckle")
    p.add_argument("--sigma", type=float, help="noise strength (gaussian sigma in 8-bit units; default 20)")
    p.add_argument("--size", help="WxH of the synthetic scene (default 640x360)")
    add_model_args(p)
    add_encode_args(p)
    add_common_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn demo` and prints PSNR before/after and the speed; returns the exit code."""
    from streamdn.jobs.demo import run_demo

    cfg = config_from(args)
    result = run_demo(cfg, args.output, quiet=args.quiet, handle_signals=True)
    s = result.stats
    print(f"streamdn demo: {s.frames} frames {cfg.source.width}x{cfg.source.height}, noise {cfg.source.noise} "
          f"sigma {cfg.source.sigma:g}, model {s.model} on {s.device}\n"
          f"  PSNR noisy    {result.psnr_noisy:6.2f} dB\n"
          f"  PSNR denoised {result.psnr_denoised:6.2f} dB  ({result.psnr_denoised - result.psnr_noisy:+.2f} dB)\n"
          f"  speed         {s.fps:6.1f} fps (incl. metrics and side-by-side encode)\n"
          f"  side by side (noisy | denoised): {result.output}")
    return EXIT_OK
