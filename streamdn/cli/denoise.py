"""`streamdn denoise INPUT -o OUTPUT`: its flags and how it runs (the work itself is
streamdn.jobs.file.denoise_file)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from streamdn.cli.args import (EXIT_INTERRUPTED, EXIT_OK, add_common_args, add_encode_args, add_model_args,
                               check_run_options, config_from, refuse_existing)
from streamdn.errors import ConfigError
from streamdn.signals import signal_name, signum_of, stop_on_signals

EXAMPLES = """examples:
  streamdn denoise noisy.mp4 -o clean.mp4         # blind, default model, x264 crf 18
  streamdn denoise in.mov -o out.mkv --lossless   # FFV1, every bit kept
  streamdn denoise in.mp4 -o out.mp4 --strength 15 --model classical:median
  streamdn denoise photo.jpg -o clean.png         # a photograph (JPEG, PNG, TIFF, WebP)
  streamdn denoise IMG_0042.CR2 -o IMG_0042.tif   # a camera raw file, 16-bit TIFF out
  streamdn denoise s1.jpg s2.jpg -o merged.tif    # a hand-held burst, aligned to s1
  streamdn denoise shots/ --burst -o merged.tif   # a burst: the pictures in shots/, by name
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `denoise` to the `streamdn` subcommands."""
    p = subparsers.add_parser(
        "denoise", help="denoise a video file", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("Denoise INPUT into OUTPUT. Frames, timestamps, size, rotation and colour metadata "
                                  "are kept and audio is copied unchanged. OUTPUT appears only when complete; Ctrl-C, "
                                  "SIGTERM or SIGHUP keep the frames done so far as OUTPUT-NAME.partial.EXT "
                                  "(exit code 130). -o /dev/null encodes and discards the frames.", break_on_hyphens=False))
    p.add_argument("input", nargs="+", help="video file or URL, or a photograph or camera raw file; several "
                                            "photographs of one scene are merged into one (a burst)")
    p.add_argument("-o", "--output", required=True, help="output file; the extension picks the container "
                                                         "(.mp4 .mkv .mov .webm) or, for a picture, the format "
                                                         "(.jpg .png .tif .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--stats", metavar="FILE.json", help="write frames, fps, latency and per-stage times as JSON")
    g = p.add_argument_group("bursts (several shots of one scene merged into one picture)")
    g.add_argument("--burst", action="store_true", help="merge the pictures of INPUT, a folder (sorted by "
                                                         "name), or of several folders and files, as one burst")
    g.add_argument("--reference", type=int, metavar="N", help="the shot the result is aligned to and takes its "
                                                              "metadata from (1 = the first given, the default)")
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

    if args.burst or len(args.input) > 1:
        return _run_burst(args)
    if args.reference is not None:
        raise ConfigError("--reference chooses a burst's reference shot; give several shots (or --burst).")
    args.input = args.input[0]
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
              f"model {s.model} on {s.device}{' (int8)' if s.backend == 'int8' else ''}, "
              f"latency p50 {s.latency_ms['p50']:.0f} ms", file=sys.stderr)
    return EXIT_OK


def _run_still(args: argparse.Namespace) -> int:
    """A photograph or raw file: one frame, written whole (streamdn.jobs.still.denoise_still)."""
    from streamdn.jobs.still import denoise_still

    cfg = config_from(args)
    m = cfg.model
    result = denoise_still(args.input, args.output, model=m.name, strength=m.strength, device=m.device,
                           impulses=m.impulses, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {result.output}: {result.width}x{result.height}, {result.bit_depth}-bit, model {result.model}, "
              f"noise sigma {result.sigmas[0]:.1f} (luma, 8-bit units), {result.seconds:.1f} s", file=sys.stderr)
    return EXIT_OK


def _run_burst(args: argparse.Namespace) -> int:
    """Several shots of one scene merged into one picture (streamdn.jobs.burst.merge_burst); with
    --burst, folders among the inputs stand for their pictures, sorted by name."""
    from pathlib import Path

    from streamdn.io.stills import is_still
    from streamdn.jobs.burst import burst_files, burst_model, merge_burst

    shots: list[Path] = []
    for item in args.input:
        path = Path(item)
        if path.is_dir():
            if not args.burst:
                raise ConfigError(f"'{item}' is a folder; pass --burst to merge its pictures as one burst.")
            shots += burst_files(path, exclude=[args.output])
        elif not is_still(path):
            raise ConfigError(f"'{item}' is not a picture: several inputs make a burst of photographs (JPEG, "
                              f"PNG, TIFF, WebP, camera raw); denoise videos one at a time.")
        else:
            shots.append(path)
    reference = 1 if args.reference is None else args.reference
    if not 1 <= reference <= len(shots):
        raise ConfigError(f"--reference {reference}: the burst has shots 1..{len(shots)}.")
    cfg = config_from(args)
    m = cfg.model
    model = burst_model() if args.model is None and m.name == "default" else m.name
    result = merge_burst(shots, args.output, reference=reference - 1, model=model, strength=m.strength,
                         device=m.device, impulses=m.impulses, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {result.output}: {result.shots} shots merged onto {result.reference}, {result.width}x"
              f"{result.height}, {result.bit_depth}-bit, model {result.model}, noise sigma {result.sigmas[0]:.1f} "
              f"(luma, 8-bit units), {result.seconds:.1f} s", file=sys.stderr)
    return EXIT_OK
