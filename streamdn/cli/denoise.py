"""`streamdn denoise INPUT -o OUTPUT`: its flags and how it runs (the work itself is
streamdn.jobs.file.denoise_file)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from streamdn.cli.args import EXIT_INTERRUPTED, EXIT_OK, add_common_args, add_encode_args, add_model_args, config_from, refuse_existing

EXAMPLES = """examples:
  streamdn denoise noisy.mp4 -o clean.mp4         # blind, default model, x264 crf 18
  streamdn denoise in.mov -o out.mkv --lossless   # FFV1, every bit kept
  streamdn denoise in.mp4 -o out.mp4 --strength 15 --model classical:median
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `denoise` to the `streamdn` subcommands."""
    p = subparsers.add_parser(
        "denoise", help="denoise a video file", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("Denoise INPUT into OUTPUT. Frames, timestamps, size, rotation and colour metadata "
                                  "are kept and audio is copied unchanged. OUTPUT appears only when complete; Ctrl-C "
                                  "keeps the frames done so far as OUTPUT-NAME.partial.EXT.", break_on_hyphens=False))
    p.add_argument("input", help="video file or URL")
    p.add_argument("-o", "--output", required=True, help="output file; the extension picks the container "
                                                         "(.mp4 .mkv .mov .webm)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--stats", metavar="FILE.json", help="write frames, fps, latency and per-stage times as JSON")
    add_model_args(p)
    add_encode_args(p)
    add_common_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn denoise`; returns the exit code. The first Ctrl-C stops between two frames
    and keeps the frames done as the .partial output (exit code 130).

    Raises:
        StreamdnError: bad flags, unreadable input, unwritable output (main() prints it).
    """
    from streamdn.jobs.file import denoise_file

    cfg = config_from(args)
    refuse_existing(args.output, args.overwrite)
    try:
        result = denoise_file(args.input, args.output, cfg, overwrite=args.overwrite, quiet=args.quiet,
                              stats_path=args.stats, handle_signals=True)
    except KeyboardInterrupt as stop:
        partial = getattr(stop, "result", None)
        where = ""
        if partial is not None and partial.output:
            where = f"; the {partial.stats.frames} frames done are in '{partial.output}'"
        print(f"streamdn: interrupted{where}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        s = result.stats
        print(f"wrote {result.output}: {s.frames} frames in {s.seconds:.1f} s ({s.fps:.1f} fps), "
              f"model {s.model} on {s.device}, latency p50 {s.latency_ms['p50']:.0f} ms", file=sys.stderr)
    return EXIT_OK
