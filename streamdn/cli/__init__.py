"""`streamdn denoise|demo|live|models|batch|eval|bench|train`: thin wrappers over the modules. A user's mistake gets one
line saying what is wrong and what to do, and a non-zero exit code, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from streamdn import __version__
from streamdn.config import RunConfig, load_config
from streamdn.cli.args import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, add_common_args,
                               add_encode_args, add_model_args, config_from)
from streamdn.errors import ConfigError, ModelNotFoundError, StreamdnError


EXAMPLES = """examples:
  streamdn demo                                   # synthetic noisy clip -> streamdn-demo.mp4
  streamdn denoise noisy.mp4 -o clean.mp4         # blind, default model, x264 crf 18
  streamdn denoise in.mov -o out.mkv --lossless   # FFV1, every bit kept
  streamdn denoise in.mp4 -o out.mp4 --strength 15 --model classical:median
  streamdn models                                 # what --model accepts
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdn", description="Real-time video denoiser.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"streamdn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("denoise", help="denoise a video file", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Denoise INPUT into OUTPUT. Frames, timestamps, size, rotation and colour "
                                   "metadata are kept and audio is copied unchanged. OUTPUT appears only when "
                                   "complete; Ctrl-C keeps the frames done so far as OUTPUT-NAME.partial.EXT.")
    d.add_argument("input", help="video file or URL")
    d.add_argument("-o", "--output", required=True, help="output file; the extension picks the container "
                                                         "(.mp4 .mkv .mov .webm)")
    d.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    d.add_argument("--stats", metavar="FILE.json", help="write frames, fps, latency and per-stage times as JSON")
    add_model_args(d)
    add_encode_args(d)
    add_common_args(d)

    m = sub.add_parser("demo", help="denoise a synthetic noisy clip and write a side-by-side video",
                       description="No camera or input needed: renders a moving scene, adds noise, denoises it, "
                                   "writes noisy|clean side by side and prints PSNR before/after and fps.")
    m.add_argument("-o", "--output", default="streamdn-demo.mp4", help="side-by-side video (default %(default)s)")
    m.add_argument("--noise", help="noise type: gaussian, poisson, poisson_gaussian, salt_pepper, speckle")
    m.add_argument("--sigma", type=float, help="noise strength (gaussian sigma in 8-bit units; default 20)")
    m.add_argument("--size", help="WxH of the synthetic scene (default 640x360)")
    add_model_args(m)
    add_encode_args(m)
    add_common_args(m)

    lv = sub.add_parser("live", help="denoise a camera (or a paced file) in real time",
                        description="Camera -> denoiser -> preview window / virtual camera / recording / stream, "
                                    "dropping the oldest frames rather than falling behind. Stop with q, Esc or "
                                    "Ctrl-C: recordings are finished and kept.")
    src = lv.add_argument_group("input (default: camera 0)")
    src.add_argument("--camera", metavar="INDEX|DEVICE", help="camera index (0, 1, ...) or device path (/dev/video2)")
    src.add_argument("--source", metavar="FILE|URL", help="a video file or stream instead of a camera")
    src.add_argument("--realtime", action="store_true", help="pace --source at its native frame rate, like a camera")
    src.add_argument("--synthetic", action="store_true", help="a paced synthetic noisy scene instead of a camera")
    src.add_argument("--size", metavar="WxH", help="requested camera size, e.g. 1280x720")
    src.add_argument("--fps", type=float, help="requested camera frame rate")
    src.add_argument("--list-cameras", action="store_true", help="list the cameras found and exit")
    out = lv.add_argument_group("outputs")
    out.add_argument("--target-latency", type=float, metavar="MS", dest="target_latency",
                     help="drop frames older than this when a newer one waits (default 100)")
    out.add_argument("--preview", choices=["split", "side", "off", "auto"],
                     help="before/after window: split wipe, side by side, or off (default: split if a display exists)")
    out.add_argument("--virtual-camera", action="store_true", default=None, dest="virtual_camera",
                     help="send the clean picture to a virtual camera (pip install 'streamdn[live]'; see README)")
    out.add_argument("--record", metavar="FILE", help="also record the clean video to FILE")
    out.add_argument("--stream", metavar="URL", help="also stream it: udp://host:port, srt://..., rtsp://..., rtmp://...")
    out.add_argument("--stats", metavar="FILE.json", help="write fps, dropped, latency and per-stage times as JSON")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --record file")
    add_model_args(lv)
    add_common_args(lv)

    ls = sub.add_parser("models", help="list the models --model accepts")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(handler=_cmd_denoise)
    m.set_defaults(handler=_cmd_demo)
    lv.set_defaults(handler=_cmd_live)
    ls.set_defaults(handler=_cmd_models)
    for module in _plugin_modules():
        module.add_parser(sub).set_defaults(handler=module.run)
    return parser


def _plugin_modules() -> list[Any]:
    """Commands that live in their own module: each has add_parser(subparsers) and run(args)."""
    from streamdn.batch import scheduler as batch
    from streamdn.cli import bench, evaluate, train

    return [batch, evaluate, bench, train]


def _cmd_denoise(args: argparse.Namespace) -> int:
    from streamdn.jobs.file import denoise_file

    cfg = config_from(args)
    try:
        result = denoise_file(args.input, args.output, cfg, overwrite=args.overwrite, quiet=args.quiet,
                              stats_path=args.stats)
    except KeyboardInterrupt as stop:
        partial = getattr(stop, "result", None)
        where = f"; the {partial.stats.frames} frames done are in '{partial.output}'" if partial and partial.output else ""
        print(f"streamdn: interrupted{where}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        s = result.stats
        print(f"wrote {result.output}: {s.frames} frames in {s.seconds:.1f} s ({s.fps:.1f} fps), "
              f"model {s.model} on {s.device}, latency p50 {s.latency_ms['p50']:.0f} ms", file=sys.stderr)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from streamdn.jobs.demo import run_demo

    cfg = config_from(args)
    result = run_demo(cfg, args.output, quiet=args.quiet)
    s = result.stats
    print(f"streamdn demo: {s.frames} frames {cfg.source.width}x{cfg.source.height}, noise {cfg.source.noise} "
          f"sigma {cfg.source.sigma:g}, model {s.model} on {s.device}\n"
          f"  PSNR noisy    {result.psnr_noisy:6.2f} dB\n"
          f"  PSNR denoised {result.psnr_denoised:6.2f} dB  ({result.psnr_denoised - result.psnr_noisy:+.2f} dB)\n"
          f"  speed         {s.fps:6.1f} fps (incl. metrics and side-by-side encode)\n"
          f"  side by side (noisy | denoised): {result.output}")
    return EXIT_OK


def _cmd_live(args: argparse.Namespace) -> int:
    from streamdn.io.camera import list_cameras
    from streamdn.jobs.live import open_live_source, run_live

    if args.list_cameras:
        cams = list_cameras()
        for dev, w, h, fps in cams:
            print(f"{dev:12} {w}x{h} @ {fps:g} fps")
        if not cams:
            print("no camera found", file=sys.stderr)
        return EXIT_OK if cams else EXIT_FAILED
    if args.realtime and not args.source:
        raise ConfigError("--realtime paces a --source FILE; give one, or drop --realtime for the camera.")
    cfg = config_from(args)
    with open_live_source(cfg, args.source, args.realtime, args.synthetic) as source:
        result = run_live(cfg, source, overwrite=args.overwrite, quiet=args.quiet, stats_path=args.stats)
    if not args.quiet:
        s = result.stats
        total = s.frames + s.dropped
        lat = s.latency_ms
        print(f"streamdn live: {s.frames} frames at {s.fps:.1f} fps, dropped {s.dropped} "
              f"({100 * s.dropped / max(total, 1):.1f} %), latency p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / "
              f"p99 {lat['p99']:.0f} ms, model {s.model} on {s.device} ({result.ended_by})"
              + (f"; recorded {result.record}" if result.record else ""), file=sys.stderr)
    return EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from streamdn.models import DEFAULT_MODEL, list_models

    infos = list_models()
    if args.json:
        print(json.dumps([i.__dict__ for i in infos], indent=2))
        return EXIT_OK
    print(f"{'name':22} {'kind':10} {'MAC/px':>8} {'params':>8} {'val PSNR':>8}  summary")
    for i in infos:
        mark = " (default)" if i.name == DEFAULT_MODEL else ""
        macs = f"{i.macs_per_px:,.0f}" if i.macs_per_px else "-"
        params = f"{i.params:,}" if i.params else "-"
        vp = f"{i.val_psnr:.2f}" if i.val_psnr else "-"
        print(f"{i.name:22} {i.kind:10} {macs:>8} {params:>8} {vp:>8}  {i.summary}{mark}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except (ConfigError, ModelNotFoundError) as err:
        print(f"streamdn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StreamdnError as err:
        print(f"streamdn: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("streamdn: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
