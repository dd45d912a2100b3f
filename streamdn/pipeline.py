"""The pipeline: source -> pack -> forward -> unpack -> sinks, each stage in its own thread joined by
bounded queues. File sources never drop; live sources drop the oldest frame rather than fall
behind. Records per-stage time, fps and capture-to-output latency."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from streamdn.denoiser import Denoiser
from streamdn.frames import Frame, FrameFormat, warmup_frames, with_lookahead
from streamdn.io.sinks import Sink
from streamdn.signals import StopRequest, stop_on_signals

_END = object()   # internal end-of-stream marker between stages (never seen by callers)
STAGES = ("decode", "pack", "forward", "unpack", "encode")
# Warm-up frames before the clock starts: a moving stream's paths are first taken at frames 1
# and 3 (a long average's first camera measure and its first agreeing guess). They run at most
# WARMUP_SIZE (the compiled kernels do not depend on the size), then one frame at the stream's
# own size (the network's kernels and buffers for it): a slow model (`window`: seconds a frame)
# pays for one full-size frame, as with the grey frame this replaced.
WARMUP_FRAMES = 4
WARMUP_SIZE = (320, 240)


@dataclass
class RunStats:
    """What a run measured. Times in milliseconds unless the name says otherwise.

    Attributes:
        frames: frames written. dropped: frames a live source skipped to hold the latency.
        seconds: wall time from the first frame requested to the last written.
        fps: frames / seconds.
        latency_ms: capture-to-output percentiles {"p50", "p95", "p99"}.
        stages_ms: mean time per frame spent in each stage (busy time, not waiting).
        warmup_s: time spent warming up (JIT, first model call) before the clock started.
        backend: what ran a network's convolutions on the CPU ("torch" or "int8"); None for a
            filter (and for a live ladder, whose rungs may differ).
    """

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""
    device: str = "cpu"
    warmup_s: float = 0.0
    backend: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames, "dropped": self.dropped, "seconds": round(self.seconds, 4),
            "fps": round(self.fps, 3), "latency_ms": self.latency_ms, "stages_ms": self.stages_ms,
            "model": self.model, "device": self.device, "warmup_s": round(self.warmup_s, 4),
            "backend": self.backend,
        }


class _Stop(Exception):
    pass


def _deferred_interrupt(enabled: bool) -> contextlib.AbstractContextManager[StopRequest]:
    """The stop-signal handling of Pipeline.run(handle_signals=True): streamdn.signals.stop_on_signals
    (SIGINT, SIGTERM and SIGHUP; the first stops between two frames, a second at once)."""
    return stop_on_signals(enabled)


class Pipeline:
    """Runs a Denoiser over a stream of Frames with the stages overlapped in threads.

    Example:
        >>> with open_source("in.mp4") as src, FileSink("out.mp4", src.format) as sink:
        ...     stats = Pipeline(src, [sink]).run()
    """

    def __init__(self, source: Iterable[Frame], sinks: Sequence[Sink] = (), *, denoiser: Denoiser | None = None,
                 queue_size: int = 4, drop_oldest: bool | None = None, max_age: float | None = None,
                 on_frame: Callable[[Frame, Frame], None] | None = None) -> None:
        """Args:
            source: a Source (or any iterable of Frames, in stream order).
            sinks: each gets every denoised frame, in order, from the calling thread.
            denoiser: the model and its stream state (default: Denoiser(), the default model).
            queue_size: frames in flight between two stages (memory is bounded by this).
            drop_oldest: when the stages fall behind, drop the oldest waiting frame instead of
                waiting (default: True for live sources, False for files).
            max_age: live mode: seconds; a frame older than this when denoising would start is
                dropped if a newer one is already waiting (holds the target latency).
            on_frame: called as on_frame(noisy, clean) after the sinks got each frame; an
                exception it raises stops the run (and propagates).
        """
        self.source = source
        self.sinks = list(sinks)
        self.denoiser = denoiser = denoiser if denoiser is not None else Denoiser()
        self.queue_size = max(1, queue_size)
        self.drop_oldest = bool(getattr(source, "live", False)) if drop_oldest is None else drop_oldest
        self.max_age = max_age
        self.on_frame = on_frame
        self._busy = {s: 0.0 for s in STAGES}
        self._dropped = 0
        self._latencies: list[float] = []
        self._written = 0
        self._started: float | None = None
        self._stop = threading.Event()
        self._interrupt = StopRequest()   # set by a deferred stop signal (see run)
        self._errors: list[BaseException] = []
        self.stats = RunStats(model=denoiser.name, device=denoiser.device,
                              backend=getattr(getattr(denoiser, "model", None), "backend", None))

    def warmup(self, fmt: FrameFormat) -> float:
        """Runs the denoiser on WARMUP_FRAMES small frames with noise and a panning camera
        (streamdn.frames.warmup_frames: JIT compilation of every path a moving stream takes),
        then on one such frame of `fmt` (allocations, the network's kernels for this size),
        resetting it after each. Returns the seconds it took."""
        start = time.perf_counter()
        small = replace(fmt, width=min(fmt.width, WARMUP_SIZE[0]), height=min(fmt.height, WARMUP_SIZE[1]))
        for frames in (warmup_frames(small, WARMUP_FRAMES), warmup_frames(fmt, 1)):
            for frame in frames:
                self.denoiser(frame)
            self.denoiser.reset()
        return time.perf_counter() - start

    # -- the stage threads -------------------------------------------------------------------

    def _put(self, q: queue.Queue, item: object, droppable: bool = False) -> None:
        if droppable and self.drop_oldest:
            # A live source never waits: the newest frame goes in, the oldest waiting one goes.
            while True:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self._dropped += 1
                    except queue.Empty:
                        pass
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
        raise _Stop

    def _get(self, q: queue.Queue, interrupt: StopRequest | None = None) -> object:
        while not self._stop.is_set():
            if interrupt is not None:
                interrupt.check()   # a stop signal while no frame arrives (e.g. a lost camera)
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        raise _Stop

    def _guard(self, body: Callable[[], None], out: queue.Queue) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except _Stop:
                return
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                self._errors.append(err)
                self._stop.set()
                return
            try:
                self._put(out, _END)
            except _Stop:
                pass
        return run

    def _decode(self, source: Iterable[Frame], out: queue.Queue) -> None:
        it = iter(source)
        while True:
            t0 = time.perf_counter()
            frame = next(it, None)
            self._busy["decode"] += time.perf_counter() - t0
            if frame is None:
                return
            self._put(out, frame, droppable=True)

    def _stage(self, name: str, fn: Callable[[object], object], inq: queue.Queue, out: queue.Queue) -> None:
        while True:
            item = self._get(inq)
            if item is _END:
                return
            if (self.max_age is not None and isinstance(item, Frame) and not inq.empty()
                    and time.monotonic() - item.captured > self.max_age):
                self._dropped += 1      # too old, and a newer frame is waiting: skip ahead
                continue
            t0 = time.perf_counter()
            result = fn(item)
            self._busy[name] += time.perf_counter() - t0
            self._put(out, result)

    # -- running -----------------------------------------------------------------------------

    def frames(self) -> Iterator[tuple[Frame, Frame]]:
        """Yields (noisy, denoised) pairs in stream order while the stages run in threads (the
        sinks are not written: `run` does that)."""
        source = self.source
        fmt: FrameFormat | None = getattr(source, "format", None)
        if fmt is not None:
            self.stats.warmup_s = self.warmup(fmt)
        dn = self.denoiser
        ahead = int(getattr(dn, "lookahead", 0))   # (a live ladder, say, has none)
        if ahead and not self.drop_oldest:
            # A model that merges the frames after the current one: read that many ahead (a
            # live source, which drops frames to keep up, gives it the past alone).
            source = with_lookahead(source, ahead)
        q = [queue.Queue(self.queue_size) for _ in range(4)]
        threads = [
            threading.Thread(target=self._guard(lambda: self._decode(source, q[0]), q[0]), name="decode"),
            threading.Thread(target=self._guard(lambda: self._stage("pack", lambda f: (f, dn.pack(f)), q[0], q[1]), q[1]),
                             name="pack"),
            threading.Thread(target=self._guard(lambda: self._stage("forward", lambda fp: (fp[0], dn.forward(fp[1])),
                                                                    q[1], q[2]), q[2]), name="forward"),
            threading.Thread(target=self._guard(lambda: self._stage("unpack", lambda fr: (fr[0], dn.unpack(fr[1], fr[0])),
                                                                    q[2], q[3]), q[3]), name="unpack"),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        try:
            while True:
                try:
                    item = self._get(q[3], self._interrupt)
                except _Stop:
                    break
                if item is _END:
                    break
                yield item  # type: ignore[misc]
        finally:
            self._stop.set()
            for t in threads:
                t.join(timeout=5.0)
        if self._errors:
            raise self._errors[0]

    def run(self, *, handle_signals: bool = False) -> RunStats:
        """Denoises every frame of the source into the sinks and returns the measured RunStats.

        Raises whatever a stage raised (in this thread); KeyboardInterrupt stops the stages
        cleanly and propagates, leaving the sinks to their owner's `with` block.

        Args:
            handle_signals: install handlers for SIGINT, SIGTERM and SIGHUP for the run (main
                thread only; the previous ones are restored afterwards; see streamdn.signals) so
                that the first stop signal stops between two frames, never inside a sink's
                write, and a second one interrupts at once; both raise
                streamdn.signals.Interrupted, a KeyboardInterrupt. For command-line programs; by
                default the process's handlers are left untouched (Ctrl-C raises
                KeyboardInterrupt wherever it hits, as usual in Python), unless the caller runs
                inside streamdn.signals.stop_on_signals, whose request is then honoured.
        """
        with _deferred_interrupt(handle_signals) as interrupted:
            self._interrupt = interrupted
            try:
                interrupted.check()   # a stop requested before the run began
                self._loop(interrupted)
            finally:
                self._finish_stats(self._written, self._started)
        return self.stats

    def _loop(self, interrupted: StopRequest) -> None:
        for noisy, clean in self.frames():
            if self._started is None:
                self._started = time.perf_counter() - self._busy["decode"]
            t0 = time.perf_counter()
            for sink in self.sinks:
                sink.write(clean)
            self._busy["encode"] += time.perf_counter() - t0
            self._latencies.append(time.monotonic() - noisy.captured)
            self._written += 1
            if self.on_frame is not None:
                self.on_frame(noisy, clean)
            interrupted.check()

    def _finish_stats(self, n: int, start: float | None) -> None:
        s = self.stats
        s.frames = n
        s.dropped = self._dropped
        s.seconds = (time.perf_counter() - start) if start is not None else 0.0
        s.fps = n / s.seconds if s.seconds > 0 else 0.0
        lat = np.array(self._latencies) * 1000.0
        s.latency_ms = ({f"p{p}": round(float(np.percentile(lat, p)), 3) for p in (50, 95, 99)}
                        if lat.size else {"p50": 0.0, "p95": 0.0, "p99": 0.0})
        s.stages_ms = {k: round(v * 1000.0 / max(n, 1), 3) for k, v in self._busy.items()}
