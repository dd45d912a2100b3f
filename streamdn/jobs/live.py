"""`streamdn live`: camera (or a paced file) -> Denoiser -> preview window, virtual camera,
recording and network stream at once, holding a target latency by dropping old frames.

Unless a model is named, the denoiser is a quality ladder (streamdn.jobs.ladder): the best of
[live] rungs the machine keeps up with, timed on the stream's first frames, changed while running
rather than falling behind.

The pipeline runs in a worker thread; the calling thread (the main one, for a command) shows the
preview, also while no frame comes (a lost camera is shown as such), and takes the stop requests:
the preview's q, a stop signal, Ctrl-C. A camera that stops delivering is waited for: frames
resume as soon as it is back, the denoiser starting afresh (the picture may have changed
completely), and after `camera_timeout` seconds the run ends as if the input had ended, every
output finished."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, cast

from streamdn.config import RunConfig, parse_size, to_dict
from streamdn.denoiser import Denoiser
from streamdn.errors import ConfigError, warn
from streamdn.frames import Frame
from streamdn.io.camera import SEGMENT_KEY, CameraLost, CameraSource, PacedSource, parse_device
from streamdn.io.preview import Preview, QuitRequested, display_available
from streamdn.io.sinks import FileSink, Sink, StreamSink, VirtualCameraSink, check_output_path
from streamdn.io.sources import FileSource, Source, SyntheticSource
from streamdn.jobs.file import write_stats
from streamdn.jobs.ladder import (AUTO_MODELS, Ladder, LadderPolicy, build_rung, make_ladder, parse_rungs,
                                  usable_rungs)
from streamdn.pipeline import Pipeline, RunStats
from streamdn.signals import StopRequest, stop_on_signals

CAMERA_TIMEOUT = 10.0   # seconds a lost camera is waited for before the run ends


@dataclass
class LiveResult:
    """Attributes: the run's stats (dropped includes frames the camera replaced before the
    pipeline took them), the recording's path, how the run ended, the message that says why
    when the camera was lost, the length in seconds of each gap the camera came back from, and
    the rungs of the quality ladder: which were used, when and why it switched."""

    stats: RunStats
    record: str | None
    ended_by: str   # "end of input" | "quit" | "interrupted" | "camera lost"
    message: str | None = None
    gaps_s: list[float] = field(default_factory=list)
    ladder: dict[str, object] = field(default_factory=dict)   # Ladder.summary(): rungs, switches, usage


def open_live_source(cfg: RunConfig, source: str | None, realtime: bool, synthetic: bool = False,
                     camera_timeout: float | None = CAMERA_TIMEOUT) -> Source:
    """The camera of cfg.live (given up after `camera_timeout` seconds without a frame; None
    waits as long as the run lasts), a file/URL (paced at its frame rate when `realtime`), or
    the synthetic scene (paced) when `synthetic`."""
    frames = cfg.pipeline.frames
    if synthetic:
        return PacedSource(SyntheticSource(cfg.source, max_frames=frames))
    if source is not None:
        inner = FileSource(source, decode_threads=cfg.pipeline.decode_threads, max_frames=frames)
        return PacedSource(inner) if realtime else inner
    live = cfg.live
    return CameraSource(parse_device(live.camera), size=parse_size(live.size, what="live.size") if live.size else None,
                        fps=live.fps, fourcc=live.fourcc or None, max_frames=frames, give_up_after=camera_timeout)


class ResetAtGaps:
    """The live run's denoiser as the pipeline drives it: a Ladder (or one Denoiser, a ladder of
    one rung) whose first frame after a gap in the camera's frames (a new frame.extra[SEGMENT_KEY])
    starts the temporal state afresh, as a scene cut does, since the past no longer matches what
    the camera sees. The running noise estimate restarts at that frame, in the pack stage, and the
    model's state in the forward stage, in stream order, so frames still in flight keep their
    past. `resets` counts the gaps."""

    def __init__(self, denoiser: Denoiser | Ladder) -> None:
        self.denoiser = denoiser
        self.ladder = denoiser if isinstance(denoiser, Ladder) else Ladder.pinned(denoiser)
        self.resets = 0
        self._segment: object = None   # the segment of the last frame packed

    @property
    def name(self) -> str:
        return self.ladder.name

    @property
    def device(self) -> str:
        return self.ladder.device

    def __call__(self, frame: Frame) -> Frame:
        return self.ladder(frame)

    def reset(self) -> None:
        self.ladder.reset()

    def pack(self, frame: Frame) -> object:
        segment, self._segment = self._segment, frame.extra.get(SEGMENT_KEY)
        gap = segment is not None and self._segment != segment
        # A camera that comes back may have a new exposure and gain: the noise is estimated afresh
        # from this frame on, and the model starts afresh at the same frame.
        self.resets += gap
        return self.ladder.pack(frame, restart=gap)

    def forward(self, packed: object) -> object:
        return self.ladder.forward(cast(Any, packed))

    def unpack(self, result: object, frame: Frame) -> Frame:
        return self.ladder.unpack(cast(Any, result), frame)


class _Quit(Exception):
    """Raised in the pipeline's thread (from on_frame) to end the run between two frames."""


class _LiveRun:
    """The pipeline in a worker thread and the preview in the calling thread."""

    def __init__(self, source: Source, sinks: list[Sink], denoiser: Denoiser | Ladder, cfg: RunConfig,
                 view: Preview | None, stop: StopRequest) -> None:
        self.source = source
        self.view = view
        self.stop = stop
        self.denoiser = ResetAtGaps(denoiser)
        live = source.live
        self.pipe = Pipeline(source, sinks, denoiser=cast(Denoiser, self.denoiser),
                             queue_size=1 if live else cfg.pipeline.queue_size,
                             max_age=cfg.live.target_latency_ms / 1000.0 if live else None, on_frame=self._on_frame)
        self.warmup_s = 0.0                    # the ladder's warm-up of every rung
        self.reason: str | None = None        # why a stop was asked for ("quit", "interrupted")
        self.ended_by = "end of input"
        self.message: str | None = None
        self._error: BaseException | None = None
        self._shown: queue.Queue[tuple[Frame, Frame]] = queue.Queue(maxsize=1)
        self._quit = threading.Event()
        self._started = False                  # a frame was shown
        self._thread = threading.Thread(target=self._work, name="live", daemon=True)

    # -- the worker thread ---------------------------------------------------------------------

    def _on_frame(self, noisy: Frame, clean: Frame) -> None:
        if self.view is not None:
            while True:   # the newest pair replaces one the preview has not shown yet
                try:
                    self._shown.put_nowait((noisy, clean))
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        self._shown.get_nowait()
        if self._quit.is_set():
            raise _Quit

    def _work(self) -> None:
        try:
            ladder = self.denoiser.ladder
            if ladder.controller is not None:   # every rung before the clock starts (the preview shows "starting")
                self.warmup_s = ladder.warmup(self.source.format)
            # Inside run_live's stop_on_signals block the pipeline honours its request itself.
            self.pipe.run()
        except _Quit:
            pass
        except KeyboardInterrupt:
            self.reason = self.reason or "interrupted"
        except CameraLost as err:
            self.ended_by, self.message = "camera lost", str(err)
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            self._error = err
        if self.reason is not None and self.ended_by == "end of input":
            self.ended_by = self.reason

    # -- the calling thread --------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ends the run between two frames, or at once while no frame comes."""
        if self.reason is None:
            self.reason = reason
        self._quit.set()
        stop_source = getattr(self.source, "stop", None)
        if stop_source is not None:
            stop_source()

    def wait(self) -> None:
        """Runs the pipeline to its end, showing the preview meanwhile.

        Raises:
            Whatever the pipeline raised (SinkError, SourceError, ...); KeyboardInterrupt for a
            second stop signal or Ctrl-C (the first one ends the run normally).
        """
        self._thread.start()
        while self._thread.is_alive():
            try:
                self._step()
            except QuitRequested:
                self.request_stop("quit")
            except KeyboardInterrupt:
                if self.reason is not None or self.stop.requested:
                    raise   # the second one: at once
                self.request_stop("interrupted")
        if self._error is not None:
            raise self._error

    def _step(self) -> None:
        if self.stop.requested:
            self.request_stop("interrupted")
        if self.view is None or self.reason is not None:
            self._thread.join(0.05)
            return
        try:
            noisy, clean = self._shown.get(timeout=0.02)
        except queue.Empty:
            self.view.idle(self._status())
            return
        self._started = True
        self.view(noisy, clean)

    def _status(self) -> str | None:
        lost = getattr(self.source, "lost_for", None)
        if lost is None:
            return None if self._started else "starting\u2026"
        timeout = getattr(self.source, "give_up_after", None)
        limit = f" (up to {timeout:g} s)" if timeout is not None else ""
        return f"camera lost \u2014 waiting\u2026 {lost:.0f} s{limit}"

    def finish(self) -> None:
        """Stops the worker (if it still runs) and waits for it, before the outputs are closed."""
        if self._thread.is_alive():
            self.request_stop(self.reason or "interrupted")
            self._thread.join(timeout=10.0)


def live_denoiser(cfg: RunConfig, source: Source, policy: LadderPolicy | None = None) -> Ladder:
    """The denoiser of a live run: the ladder of [live] rungs (calibrated on the stream, adapted
    while running) when the model is "auto", or "default" with [live] ladder on, and the source
    is live; else the one model (a named model is pinned; "auto" on a file that is not paced
    is the best rung).

    Raises:
        ConfigError, ModelNotFoundError: a bad rung list or model name.
        DeviceError: CUDA asked for and absent.
    """
    name = cfg.model.name.strip().lower()
    if name not in AUTO_MODELS or (name == "default" and not (cfg.live.ladder and source.live)):
        dn = Denoiser.from_config(cfg.model)
        if dn.lookahead and source.live:
            warn(f"model {dn.name} merges frames after the current one, which a camera does not have yet: "
                 f"live it merges the frames before alone, and it is slow (about a second per 720p frame "
                 f"on two CPU cores); it is meant for files (streamdn denoise).")
        return Ladder.pinned(dn)
    rungs = usable_rungs(parse_rungs(cfg.live.rungs))
    if not source.live or len(rungs) == 1:
        return Ladder.pinned(build_rung(rungs[0], cfg.model))
    fps = float(source.format.fps) if source.format.fps else None
    return make_ladder(rungs, cfg.model, fps=fps, latency_s=cfg.live.target_latency_ms / 1000.0, policy=policy)


def run_live(cfg: RunConfig, source: Source, *, overwrite: bool = False, quiet: bool = False,
             stats_path: str | None = None, handle_signals: bool = False,
             denoiser: Denoiser | Ladder | None = None) -> LiveResult:
    """Runs until the input ends, the preview is closed (q/Esc), a stop signal or Ctrl-C comes,
    or the camera is lost for longer than its source's give_up_after; every output stays valid
    (the recording is finished and renamed, the stream flushed). A camera that comes back within
    that time resumes the run, the denoiser's temporal state reset.

    `handle_signals`: command-line programs set it so that Ctrl-C, SIGTERM and SIGHUP end the run
    between two frames (streamdn.signals.stop_on_signals); by default the process's handlers are
    left alone, and a KeyboardInterrupt ends the run the same way.

    `denoiser`: the caller's Denoiser or Ladder (the caller closes it); by default live_denoiser's.

    Raises:
        ConfigError, SinkError, SourceError: with what to do.
        KeyboardInterrupt: a second stop while the run was ending.
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
    with stop_on_signals(handle_signals) as stop, contextlib.ExitStack() as stack:
        if denoiser is None:
            denoiser = live_denoiser(cfg, source)
            stack.callback(denoiser.close)
        ladder = denoiser if isinstance(denoiser, Ladder) else Ladder.pinned(denoiser)
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
        view = Preview(ladder, preview, size=(fmt.width, fmt.height)) if preview != "off" else None
        if view is not None:
            stack.callback(view.close)
        run = _LiveRun(source, sinks, ladder, cfg, view, stop)
        stack.callback(run.finish)   # the worker ends before the outputs close
        run.wait()
        stats = run.pipe.stats
        stats.warmup_s += run.warmup_s
        used = ladder.usage()
        if used:
            stats.model = max(used, key=lambda k: used[k]["frames"])   # the rung most frames had
        stats.dropped += getattr(source, "dropped", 0)
        gaps = list(getattr(source, "gaps", []))
    record = live.record if live.record and sinks and getattr(sinks[0], "final_path", None) else None
    if stats_path:
        write_stats(stats_path, stats, {"source": source.path, "record": record, "ended_by": run.ended_by,
                                        "camera_gaps_s": gaps, "ladder": ladder.summary(), "config": to_dict(cfg)})
    return LiveResult(stats, record, run.ended_by, run.message, gaps, ladder.summary())
