"""`streamdn live`: camera (or a paced file) -> Denoiser -> preview window, virtual camera,
recording and network stream at once, holding a target latency by dropping old frames."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

from streamdn.io.camera import CameraSource, PacedSource, parse_device
from streamdn.config import RunConfig, to_dict, parse_size
from streamdn.denoiser import Denoiser
from streamdn.errors import ConfigError, warn
from streamdn.jobs.file import write_stats
from streamdn.pipeline import Pipeline, RunStats
from streamdn.io.preview import Preview, QuitRequested, display_available
from streamdn.io.sinks import FileSink, Sink, StreamSink, VirtualCameraSink, check_output_path
from streamdn.io.sources import FileSource, Source, SyntheticSource


@dataclass
class LiveResult:
    """Attributes: the run's stats (dropped includes frames the camera replaced before the
    pipeline took them), the recording's path, and how the run ended."""

    stats: RunStats
    record: str | None
    ended_by: str   # "end of input" | "quit" | "interrupted"


def open_live_source(cfg: RunConfig, source: str | None, realtime: bool, synthetic: bool = False) -> Source:
    """The camera of cfg.live, a file/URL (paced at its frame rate when `realtime`), or the
    synthetic scene (paced) when `synthetic`."""
    frames = cfg.pipeline.frames
    if synthetic:
        return PacedSource(SyntheticSource(cfg.source, max_frames=frames))
    if source is not None:
        inner = FileSource(source, decode_threads=cfg.pipeline.decode_threads, max_frames=frames)
        return PacedSource(inner) if realtime else inner
    live = cfg.live
    return CameraSource(parse_device(live.camera), size=parse_size(live.size, what="live.size") if live.size else None, fps=live.fps,
                        fourcc=live.fourcc or None, max_frames=frames)


def run_live(cfg: RunConfig, source: Source, *, overwrite: bool = False, quiet: bool = False,
             stats_path: str | None = None, handle_signals: bool = False) -> LiveResult:
    """Runs until the input ends, the preview is closed (q/Esc) or Ctrl-C; every output stays
    valid (the recording is finished and renamed, the stream flushed).

    `handle_signals` is passed to Pipeline.run: command-line programs set it so that Ctrl-C
    stops between two frames; by default the process's SIGINT handler is left alone.

    Raises:
        ConfigError, SinkError, SourceError: with what to do.
    """
    live = cfg.live
    if live.record:
        check_output_path(live.record, input_path=source.path, overwrite=overwrite)
    if stats_path:
        check_output_path(stats_path, overwrite=True)
    preview = live.preview
    if preview == "auto":
        preview = "split" if display_available() else "off"
    elif preview not in ("split", "side", "off"):
        raise ConfigError(f"live.preview '{preview}': use split, side or off.")
    elif preview != "off" and not display_available():
        warn("no display here (DISPLAY is not set), so there is no preview window; set live.preview to 'off'.")
        preview = "off"
    fmt = source.format
    ended_by = "end of input"
    with contextlib.ExitStack() as stack:
        dn = stack.enter_context(Denoiser.from_config(cfg.model))
        sinks: list[Sink] = []
        if live.record:
            sinks.append(stack.enter_context(FileSink(live.record, fmt, cfg.encode, meta=source.meta,
                                                      overwrite=overwrite)))
        if live.stream:
            sinks.append(stack.enter_context(StreamSink(live.stream, fmt, cfg.encode)))
        if live.virtual_camera:
            cam = stack.enter_context(VirtualCameraSink(fmt))
            sinks.append(cam)
            if not quiet:
                print(f"streamdn: virtual camera on {cam.device}", file=sys.stderr)
        view = Preview(dn, preview) if preview != "off" else None
        if view is not None:
            stack.callback(view.close)
        pipe = Pipeline(source, sinks, denoiser=dn, queue_size=1 if source.live else cfg.pipeline.queue_size,
                        max_age=live.target_latency_ms / 1000.0 if source.live else None, on_frame=view)
        try:
            pipe.run(handle_signals=handle_signals)
        except QuitRequested:
            ended_by = "quit"
        except KeyboardInterrupt:
            ended_by = "interrupted"   # a normal way to stop a live run: outputs are finished below
        stats = pipe.stats
        stats.dropped += getattr(source, "dropped", 0)
    record = live.record if live.record and sinks and getattr(sinks[0], "final_path", None) else None
    if stats_path:
        write_stats(stats_path, stats, {"source": source.path, "record": record, "ended_by": ended_by,
                                        "config": to_dict(cfg)})
    return LiveResult(stats, record, ended_by)
