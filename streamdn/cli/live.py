"""`streamdn live`: its flags and how it runs (the work itself is streamdn.jobs.live.run_live)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamdn.cli.args import EXIT_FAILED, EXIT_OK, add_common_args, add_model_args, config_from, refuse_existing
from streamdn.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `live` to the `streamdn` subcommands."""
    p = subparsers.add_parser(
        "live", help="denoise a camera (or a paced file) in real time",
        description="Camera -> denoiser -> preview window / virtual camera / recording / stream, dropping the "
                    "oldest frames rather than falling behind. Without --model, the model and its processing size "
                    "are chosen from a ladder ([live] rungs) by timing the first frames, and changed while running "
                    "so that the stream keeps up; --model NAME pins one. A camera that stops delivering is waited for "
                    "(--camera-timeout) and resumes where it left off. Stop with q, Esc, Ctrl-C, SIGTERM or "
                    "SIGHUP: recordings are finished and kept.")
    src = p.add_argument_group("input (default: camera 0)")
    src.add_argument("--camera", metavar="INDEX|DEVICE", help="camera index (0, 1, ...) or device path (/dev/video2)")
    src.add_argument("--source", metavar="FILE|URL", help="a video file or stream instead of a camera")
    src.add_argument("--realtime", action="store_true", help="pace --source at its native frame rate, like a camera")
    src.add_argument("--synthetic", action="store_true", help="a paced synthetic noisy scene instead of a camera")
    src.add_argument("--size", metavar="WxH", help="requested camera size, e.g. 1280x720")
    src.add_argument("--fps", type=float, help="requested camera frame rate")
    src.add_argument("--camera-timeout", type=float, metavar="SECONDS", dest="camera_timeout",
                     help="how long to wait for a camera that stops delivering frames (unplugged, driver reset) "
                          "before ending the run, outputs finished (default 10; 0 waits until stopped; "
                          "config: [live] camera_timeout)")
    src.add_argument("--list-cameras", action="store_true", help="list the cameras found and exit")
    out = p.add_argument_group("outputs")
    out.add_argument("--target-latency", type=float, metavar="MS", dest="target_latency",
                     help="drop frames older than this when a newer one waits (default 100)")
    out.add_argument("--preview", choices=["split", "side", "off", "auto"],
                     help="before/after window: split wipe, side by side, or off (default: split if a display exists)")
    out.add_argument("--virtual-camera", action="store_true", default=None, dest="virtual_camera",
                     help="send the clean picture to a virtual camera (pip install 'streamdn[live]'; see README)")
    out.add_argument("--record", metavar="FILE", help="also record the clean video to FILE")
    out.add_argument("--stream", metavar="URL",
                     help="also stream it: udp://host:port, srt://..., rtsp://..., rtmp://...")
    out.add_argument("--stats", metavar="FILE.json", help="write fps, dropped, latency and per-stage times as JSON")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --record file")
    add_model_args(p)
    add_common_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn live` (or lists the cameras); returns the exit code: 0 when the input ended or
    the run was stopped (q, Esc, Ctrl-C, SIGTERM, SIGHUP), 1 when no camera is found or the camera
    was lost for longer than --camera-timeout (the recording is finished and kept).

    Raises:
        ConfigError: --realtime without --source, or other bad flags (main() prints it and exits 2).
    """
    from streamdn.io.camera import list_cameras
    from streamdn.jobs.ladder import usage_text
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
    cfg = config_from(args)   # checks --camera-timeout / [live] camera_timeout (seconds >= 0)
    timeout = cfg.live.camera_timeout
    refuse_existing(cfg.live.record, args.overwrite)
    with open_live_source(cfg, args.source, args.realtime, args.synthetic, camera_timeout=timeout or None) as source:
        result = run_live(cfg, source, overwrite=args.overwrite, quiet=args.quiet, stats_path=args.stats,
                          handle_signals=True)
    if not args.quiet:
        s = result.stats
        total = s.frames + s.dropped
        lat = s.latency_ms
        print(f"streamdn live: {s.frames} frames at {s.fps:.1f} fps, dropped {s.dropped} "
              f"({100 * s.dropped / max(total, 1):.1f} %), latency p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / "
              f"p99 {lat['p99']:.0f} ms, model {s.model} on {s.device} ({result.ended_by})"
              + (f"; recorded {result.record}" if result.record else ""), file=sys.stderr)
        usage = result.ladder.get("usage")
        if isinstance(usage, dict) and not result.ladder.get("pinned") and usage:
            switches = result.ladder.get("switches")
            n = len(switches) if isinstance(switches, list) else 0
            print(f"streamdn live: rungs used: {usage_text(usage)}; {n} switch{'es' if n != 1 else ''}",
                  file=sys.stderr)
    if result.ended_by == "camera lost":
        kept = f" The recording {result.record} is complete." if result.record else ""
        print(f"streamdn: error: {result.message}{kept}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
