"""Whole jobs built from the stages: denoise one file into another (used by `streamdn denoise`,
and by batch work), with the progress bar, statistics and the interruption policy."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from streamdn.atomic import write_json
from streamdn.config import RunConfig, to_dict
from streamdn.denoiser import Denoiser
from streamdn.errors import SinkError
from streamdn.pipeline import Pipeline, RunStats
from streamdn.io.sinks import FileSink, check_output_path
from streamdn.io.sources import FileSource


@dataclass
class JobResult:
    """Attributes:
        output: the path written (the final name, or the .partial name after Ctrl-C).
        stats: what the run measured.
        interrupted: True when Ctrl-C stopped the run.
    """

    output: str | None
    stats: RunStats
    interrupted: bool = False


def progress_bar(total: int | None, desc: str, quiet: bool) -> tqdm:
    """A frames progress bar on stderr with fps and ETA; silent when quiet or not a terminal."""
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, leave=False,
                disable=quiet or not sys.stderr.isatty(), file=sys.stderr)


def write_stats(path: str, stats: RunStats, extra: dict[str, object]) -> None:
    """Writes the stats JSON atomically (a hidden temporary file beside `path`, then a rename)."""
    write_json(path, {**stats.as_dict(), **extra})


def denoise_file(input_path: str, output_path: str, cfg: RunConfig, *, overwrite: bool = False,
                 quiet: bool = False, stats_path: str | None = None,
                 denoiser: Denoiser | None = None, on_frame: Callable[[int], None] | None = None,
                 handle_signals: bool = False) -> JobResult:
    """Denoises `input_path` into `output_path`.

    Frames, frame rate, timestamps, size, rotation and colour properties are kept; audio and
    subtitle streams are copied packet for packet. The output appears under its name only when
    complete. On Ctrl-C the frames done so far are kept, playable, as NAME.partial.EXT and
    KeyboardInterrupt propagates after the result is recorded in the exception's `result`.
    `on_frame(n)` is called with 1 after each frame is written (e.g. a batch's progress bar).
    `handle_signals` is passed to Pipeline.run: command-line programs set it so that Ctrl-C
    stops between two frames; by default the process's SIGINT handler is left alone.

    Raises:
        SourceError, SinkError, ConfigError, ModelNotFoundError, DeviceError: with messages
            saying what to do.
    """
    own = denoiser is None
    dn = denoiser or Denoiser.from_config(cfg.model)
    try:
        with FileSource(input_path, decode_threads=cfg.pipeline.decode_threads,
                        max_frames=cfg.pipeline.frames) as src:
            check_output_path(output_path, input_path=input_path, overwrite=overwrite)
            if stats_path is not None:
                check_output_path(stats_path, overwrite=True)
            bar = progress_bar(src.total_frames, os.path.basename(input_path), quiet)

            def progress(_noisy: object, _clean: object) -> None:
                bar.update(1)
                if on_frame is not None:
                    on_frame(1)

            sink: FileSink | None = None
            pipe: Pipeline | None = None
            try:
                # Entered as soon as it exists: however the run ends, the temporary file goes.
                with FileSink(output_path, src.format, cfg.encode, meta=src.meta,
                              copy_streams_from=input_path if src.audio_streams else None,
                              trim_copied_streams=cfg.pipeline.frames is not None, overwrite=overwrite) as sink:
                    pipe = Pipeline(src, [sink], denoiser=dn, queue_size=cfg.pipeline.queue_size,
                                    on_frame=progress)
                    stats = pipe.run(handle_signals=handle_signals)
            except KeyboardInterrupt as stop:
                bar.close()
                if sink is None or pipe is None:   # stopped before the run began
                    raise
                result = JobResult(sink.final_path, pipe.stats, interrupted=True)
                stop.result = result  # type: ignore[attr-defined]
                _save_stats(stats_path, pipe.stats, input_path, sink.final_path, cfg, sink)
                raise
            finally:
                bar.close()
    finally:
        if own:
            dn.close()
    assert sink is not None
    if sink.final_path is None:
        raise SinkError(f"'{output_path}' was not written.")
    _save_stats(stats_path, stats, input_path, sink.final_path, cfg, sink)
    return JobResult(sink.final_path, stats)


def _save_stats(path: str | None, stats: RunStats, input_path: str, output: str | None, cfg: RunConfig,
                sink: FileSink) -> None:
    if path is None:
        return
    write_stats(path, stats, {
        "input": input_path, "output": output, "codec": sink.plan.codec, "pix_fmt": sink.plan.pix_fmt,
        "config": to_dict(cfg),
    })
