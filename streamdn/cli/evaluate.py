"""`streamdn eval`: its flags and how it runs (the work itself is streamdn.tools.evaluate)."""

from __future__ import annotations

import argparse

from streamdn.cli.args import EXIT_OK
from streamdn.config import parse_size
from streamdn.errors import ConfigError
from streamdn.tools.evaluate import check_out_dir, evaluate, load_eval_config, write_results
from streamdn.tools.report import check_report_dependencies


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn eval` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "eval", help="compare denoisers: PSNR, SSIM, flicker and fps on clean clips with synthetic noise",
        description="Adds noise (fixed seeds) to clean clips, denoises them with every method through the "
                    "same Denoiser the product uses, and writes results.json, results.md and report.html "
                    "(table, quality-vs-speed plot, side-by-side crops) to --out.",
        epilog="example: streamdn eval --synthetic 3 --noise awgn20,pg_lowlight "
               "--methods tfilter,classical:bilateral,ffmpeg:nlmeans --out eval-out")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--clips", nargs="+", metavar="FILE", help="clean video files")
    src.add_argument("--synthetic", type=int, metavar="N", help="generate N clean synthetic clips instead")
    p.add_argument("--noise", help="comma-separated noise names: awgn20, awgn30, pg_lowlight, sp5, speckle20, "
                                   "poisson30, camera_lowlight (default awgn20,pg_lowlight)")
    p.add_argument("--methods", help="comma-separated models (see `streamdn models`), e.g. "
                                     "tfilter,classical:nlm-temporal,ffmpeg:atadenoise")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--frames", type=int, metavar="N", help="frames per clip (default 30)")
    p.add_argument("--size", metavar="WxH", help="synthetic clip size, or resize clips to it (default 640x360)")
    p.add_argument("--strength", help="auto (blind, default), oracle (true per-plane sigma) or the RGB "
                                      "noise sigma in 8-bit units (as denoise --strength)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N, for networks")
    p.add_argument("--seed", type=int, help="base noise seed (default 0)")
    p.add_argument("--config", metavar="FILE.toml", help="an [eval] table, e.g. configs/eval.toml; flags override")
    p.add_argument("--no-report", action="store_true", help="skip report.html, the plot and the crops")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    return p


def _split(text: str | None) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None stays None."""
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn eval` from parsed arguments; prints the summary table. Returns the exit code."""
    check_out_dir(args.out)   # before any work
    cfg = load_eval_config(
        args.config, clips=tuple(args.clips) if args.clips else None, synthetic=args.synthetic,
        noise=_split(args.noise), methods=_split(args.methods), frames=args.frames,
        size=parse_size(args.size, what="--size", minimum=16) if args.size else None, strength=args.strength,
        device=args.device, seed=args.seed, report=False if args.no_report else None)
    if cfg.report:
        try:
            check_report_dependencies()
        except ConfigError as err:
            raise ConfigError("the eval report needs matplotlib: pip install 'streamdn[eval]', or pass "
                              "--no-report for results.json and results.md only.") from err
    results, crops = evaluate(cfg, quiet=args.quiet)
    written = write_results(results, crops, args.out, report=cfg.report)
    if not args.quiet:
        with open(written[1], encoding="utf-8") as fh:
            print(fh.read())
        print("wrote " + ", ".join(written[:3]) + (f" and {len(written) - 3} images" if len(written) > 3 else ""))
    return EXIT_OK
