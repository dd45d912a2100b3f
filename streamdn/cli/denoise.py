"""`streamdn denoise INPUT -o OUTPUT`: its flags and how it runs (the work itself is
streamdn.jobs.file.denoise_file)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from streamdn.cli.args import (EXIT_INTERRUPTED, EXIT_OK, add_common_args, add_encode_args, add_model_args,
                               check_run_options, config_from, refuse_existing)
from streamdn.signals import signal_name, signum_of, stop_on_signals

EXAMPLES = """examples:
  streamdn denoise noisy.mp4 -o clean.mp4         # blind, default model, x264 crf 18
  streamdn denoise in.mov -o out.mkv --lossless   # FFV1, every bit kept
  streamdn denoise in.mp4 -o out.mp4 --strength 15 --model classical:median
  streamdn denoise photo.jpg -o clean.png         # a photograph (JPEG, PNG, TIFF, WebP)
  streamdn denoise IMG_0042.CR2 -o IMG_0042.tif   # a camera raw file, 16-bit TIFF out
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `denoise` to the `streamdn` subcommands."""
    p = subparsers.add_parser(
        "denoise", help="denoise a video file", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("Denoise INPUT into OUTPUT. Frames, timestamps, size, rotation and colour metadata "
                                  "are kept and audio is copied unchanged. OUTPUT appears only when complete; Ctrl-C, "
                                  "SIGTERM or SIGHUP keep the frames done so far as OUTPUT-NAME.partial.EXT "
                                  "(exit code 130). -o /dev/null encodes and discards the frames.", break_on_hyphens=False))
    p.add_argument("input", help="video file or URL, or a photograph or camera raw file")
    p.add_argument("-o", "--output", required=True, help="output file; the extension picks the container "
                                                         "(.mp4 .mkv .mov .webm) or, for a picture, the format "
                                                         "(.jpg .png .tif .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--stats", metavar="FILE.json", help="write frames, fps, latency and per-stage times as JSON")
    add_model_args(p)
    add_encode_args(p)
    add_common_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn denoise`; returns the exit code. The first stop signal (Ctrl-C, SIGTERM,
    SIGHUP) stops between two frames and keeps the frames done as the .partial output; a second
    one stops at once. Either way no temporary file is left and the exit code is 130.

    Raises:
        StreamdnError: bad flags, unreadable input, unwritable output (main() prints it).
    """
    from streamdn.io.stills import is_still

    if is_still(args.input):
        return _run_still(args)
    with stop_on_signals():
        from streamdn.jobs.file import denoise_file

        cfg = config_from(args)
        refuse_existing(args.output, args.overwrite)
        if args.stats:
            refuse_existing(args.stats, True)
        check_run_options(cfg, [args.output])
        try:
            result = denoise_file(args.input, args.output, cfg, overwrite=args.overwrite, quiet=args.quiet,
                                  stats_path=args.stats, handle_signals=True)
        except KeyboardInterrupt as stop:
            partial = getattr(stop, "result", None)
            where = ""
            if partial is not None and partial.output:
                where = f"; the {partial.stats.frames} frames done are in '{partial.output}'"
            print(f"streamdn: interrupted by {signal_name(signum_of(stop))}{where}.", file=sys.stderr)
            return EXIT_INTERRUPTED
    if not args.quiet:
        s = result.stats
        print(f"wrote {result.output}: {s.frames} frames in {s.seconds:.1f} s ({s.fps:.1f} fps), "
              f"model {s.model} on {s.device}, latency p50 {s.latency_ms['p50']:.0f} ms", file=sys.stderr)
    return EXIT_OK


def _run_still(args: argparse.Namespace) -> int:
    """A photograph or raw file: one frame, written whole (streamdn.jobs.still.denoise_still)."""
    from streamdn.jobs.still import denoise_still

    cfg = config_from(args)
    m = cfg.model
    result = denoise_still(args.input, args.output, model=m.name, strength=m.strength, device=m.device,
                           impulses=m.impulses, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {result.output}: {result.width}x{result.height}, {result.bit_depth}-bit, noise sigma "
              f"{result.sigmas[0]:.1f} (luma, 8-bit units), {result.seconds:.1f} s", file=sys.stderr)
    return EXIT_OK
