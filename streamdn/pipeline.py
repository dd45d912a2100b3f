"""The pipeline: source -> pre -> model -> post -> sinks, each stage in its own thread joined by
bounded queues. File sources never drop; live sources drop the oldest frame rather than fall
behind. Records per-stage time, fps and capture-to-output latency."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .denoiser import Denoiser
from .frames import Frame, FrameFormat
from .sinks import Sink

_END = object()   # internal end-of-stream marker between stages (never seen by callers)
STAGES = ("decode", "pre", "model", "post", "encode")


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

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames, "dropped": self.dropped, "seconds": round(self.seconds, 4),
            "fps": round(self.fps, 3), "latency_ms": self.latency_ms, "stages_ms": self.stages_ms,
            "model": self.model, "device": self.device, "warmup_s": round(self.warmup_s, 4),
        }


class _Stop(Exception):
    pass


class Pipeline:
    """Runs a Denoiser over a stream of Frames with the stages overlapped in threads.

    Example:
        >>> with open_source("in.mp4") as src, FileSink("out.mp4", src.format) as sink:
        ...     stats = Pipeline(Denoiser()).run(src, [sink])
    """

    def __init__(self, denoiser: Denoiser, *, queue_size: int = 4, drop_oldest: bool = False,
                 max_age: float | None = None, on_frame: Callable[[Frame, Frame], None] | None = None) -> None:
        """Args:
            denoiser: the model and its stream state.
            queue_size: frames in flight between two stages (memory is bounded by this).
            drop_oldest: live mode: when the stages fall behind, drop the oldest waiting frame.
            max_age: live mode: seconds; a frame older than this when denoising would start is
                dropped if a newer one is already waiting (holds the target latency).
            on_frame: called as on_frame(noisy, clean) after the sinks got each frame.
        """
        self.denoiser = denoiser
        self.queue_size = max(1, queue_size)
        self.drop_oldest = drop_oldest
        self.max_age = max_age
        self.on_frame = on_frame
        self._busy = {s: 0.0 for s in STAGES}
        self._dropped = 0
        self._latencies: list[float] = []
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.stats = RunStats(model=denoiser.name, device=denoiser.device)

    def warmup(self, fmt: FrameFormat) -> float:
        """Runs the denoiser once on a grey frame of `fmt` (JIT compile, allocations), then resets
        it. Returns the seconds it took."""
        start = time.perf_counter()
        mid = 1 << (fmt.bit_depth - 1)
        cw, ch = (fmt.width + 1) // 2, (fmt.height + 1) // 2
        grey = Frame(y=np.full((fmt.height, fmt.width), mid, fmt.dtype), u=np.full((ch, cw), mid, fmt.dtype),
                     v=np.full((ch, cw), mid, fmt.dtype), bit_depth=fmt.bit_depth)
        self.denoiser(grey)
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

    def _get(self, q: queue.Queue) -> object:
        while not self._stop.is_set():
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

    def frames(self, source: Iterable[Frame], fmt: FrameFormat | None = None) -> Iterator[tuple[Frame, Frame]]:
        """Yields (noisy, denoised) pairs in stream order while the stages run in threads."""
        fmt = fmt or getattr(source, "format", None)
        if fmt is not None:
            self.stats.warmup_s = self.warmup(fmt)
        dn = self.denoiser
        q = [queue.Queue(self.queue_size) for _ in range(4)]
        threads = [
            threading.Thread(target=self._guard(lambda: self._decode(source, q[0]), q[0]), name="decode"),
            threading.Thread(target=self._guard(lambda: self._stage("pre", lambda f: (f, dn.pre(f)), q[0], q[1]), q[1]),
                             name="pre"),
            threading.Thread(target=self._guard(lambda: self._stage("model", lambda fp: (fp[0], dn.infer(fp[1])),
                                                                    q[1], q[2]), q[2]), name="model"),
            threading.Thread(target=self._guard(lambda: self._stage("post", lambda fr: (fr[0], dn.post(fr[1], fr[0])),
                                                                    q[2], q[3]), q[3]), name="post"),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        try:
            while True:
                try:
                    item = self._get(q[3])
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

    def run(self, source: Iterable[Frame], sinks: Sequence[Sink] = ()) -> RunStats:
        """Denoises every frame of `source` into `sinks` and returns the measured RunStats.

        Raises whatever a stage raised (in this thread); KeyboardInterrupt stops the stages
        cleanly and propagates, leaving the sinks to their owner's `with` block.
        """
        start: float | None = None
        n = 0
        try:
            for noisy, clean in self.frames(source):
                if start is None:
                    start = time.perf_counter() - self._busy["decode"]
                t0 = time.perf_counter()
                for sink in sinks:
                    sink.write(clean)
                self._busy["encode"] += time.perf_counter() - t0
                self._latencies.append(time.monotonic() - noisy.captured)
                n += 1
                if self.on_frame is not None:
                    self.on_frame(noisy, clean)
        finally:
            self._finish_stats(n, start)
        return self.stats

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
