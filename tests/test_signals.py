"""Ctrl-C and the Python API: Pipeline.run leaves the process's SIGINT handler alone unless asked
(handle_signals=True, what the command line uses), and when asked stops between two frames."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from streamdn.config import RunConfig, SourceConfig
from streamdn.frames import Frame
from streamdn.io.sinks import FileSink, Sink
from streamdn.io.sources import SyntheticSource
from streamdn.jobs.file import denoise_file
from streamdn.pipeline import Pipeline
from videos import Spec, make_video, probe


class CountingSink(Sink):
    """Counts the writes begun and the writes finished; sends SIGINT to this process in the
    middle of writing frame `interrupt_at` (a Ctrl-C that lands inside a sink)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.started = 0
        self.interrupt_at = interrupt_at

    def write(self, frame: Frame) -> None:
        self.started += 1
        if frame.index == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        self.written += 1


class Sentinel:
    """A SIGINT handler that only counts the signals it receives."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls += 1


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    handler = Sentinel()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, previous)


def tiny_source(frames: int = 6) -> SyntheticSource:
    return SyntheticSource(SourceConfig(width=32, height=24, frames=frames))


def test_run_leaves_the_sigint_handler_alone_by_default(sentinel: Sentinel) -> None:
    seen: list[object] = []

    def on_frame(noisy: Frame, clean: Frame) -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        if noisy.index == 2:
            os.kill(os.getpid(), signal.SIGINT)      # goes to the caller's handler, not to streamdn

    sink = CountingSink()
    try:
        stats = Pipeline(tiny_source(), [sink], on_frame=on_frame).run()
    except KeyboardInterrupt:
        pytest.fail("Pipeline.run took SIGINT over from the caller's handler")
    assert seen and all(h is sentinel for h in seen)           # during the run
    assert signal.getsignal(signal.SIGINT) is sentinel          # and after it
    assert sentinel.calls == 1
    assert stats.frames == sink.written == 6                    # the run went on to the end


@pytest.fixture
def python_default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_run_raises_keyboard_interrupt_as_usual_by_default(python_default_sigint: None) -> None:
    sink = CountingSink(interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(tiny_source(), [sink]).run()
    assert (sink.started, sink.written) == (2, 1)              # raised where it hit, as in any Python code
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_handle_signals_stops_between_frames_and_restores(python_default_sigint: None) -> None:
    during: list[object] = []
    sink = CountingSink(interrupt_at=2)
    pipe = Pipeline(tiny_source(), [sink], on_frame=lambda n, c: during.append(signal.getsignal(signal.SIGINT)))
    with pytest.raises(KeyboardInterrupt):
        pipe.run(handle_signals=True)
    assert during and all(h is not signal.default_int_handler for h in during)   # streamdn's handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler          # restored afterwards
    assert (sink.started, sink.written, pipe.stats.frames) == (3, 3, 3)   # frame 2 finished, then stop


def test_handle_signals_second_ctrl_c_interrupts_at_once(python_default_sigint: None) -> None:
    class TwiceSink(CountingSink):
        def write(self, frame: Frame) -> None:
            self.started += 1
            if frame.index == 1:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            self.written += 1

    sink = TwiceSink()
    with pytest.raises(KeyboardInterrupt):
        Pipeline(tiny_source(), [sink]).run(handle_signals=True)
    assert (sink.started, sink.written) == (2, 1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_denoise_file_passes_handle_signals(tmp_path: Path, sentinel: Sentinel) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(frames=6))
    out = tmp_path / "out.mp4"
    progress: list[int] = []

    def on_frame(n: int) -> None:
        progress.append(n)
        if len(progress) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt) as stop:
        denoise_file(str(src), str(out), RunConfig(), quiet=True, on_frame=on_frame, handle_signals=True)
    assert signal.getsignal(signal.SIGINT) is sentinel and sentinel.calls == 0
    partial = tmp_path / "out.partial.mp4"
    assert stop.value.result.output == str(partial)          # type: ignore[attr-defined]
    assert probe(partial)["frames"] == 2 and not out.exists()


def test_file_sink_keeps_partial_on_keyboard_interrupt(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    src = tiny_source()
    with pytest.raises(KeyboardInterrupt), FileSink(str(out), src.format) as sink:
        for frame in src:
            sink.write(frame)
            if frame.index == 3:
                raise KeyboardInterrupt
    assert probe(tmp_path / "clip.partial.mp4")["frames"] == 4
    assert sorted(os.listdir(tmp_path)) == ["clip.partial.mp4"]
