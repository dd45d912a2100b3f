"""Live sources: a camera through OpenCV (producer thread, one-frame buffer, reconnects with
back-off when the camera disappears) and any source paced at its native frame rate (a file
standing in for a camera)."""

from __future__ import annotations

import glob
import queue
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from streamdn.errors import SourceError, warn
from streamdn.frames import Frame, FrameFormat, frame_from_bgr
from streamdn.io.sources import Source, VideoMeta

MS = Fraction(1, 1000)   # live frames carry capture-time pts in milliseconds


def _quiet_capture(device: int | str) -> Any:
    """cv2.VideoCapture without OpenCV's multi-line log for each backend that finds no camera
    (streamdn says so itself, in one line)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(device)
    finally:
        cv2.utils.logging.setLogLevel(level)


def list_cameras(max_index: int = 10) -> list[tuple[str, int, int, float]]:
    """Cameras OpenCV can open: (index or device path, width, height, fps) each."""
    found = []
    candidates: list[int | str] = list(range(max_index))
    candidates += [p for p in sorted(glob.glob("/dev/video*")) if not p[len("/dev/video"):].isdigit()]
    for cand in candidates:
        cap = _quiet_capture(cand)
        try:
            if cap.isOpened():
                found.append((str(cand), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                              int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), float(cap.get(cv2.CAP_PROP_FPS))))
        finally:
            cap.release()
    return found


def parse_device(text: str) -> int | str:
    """'0' -> 0 (an index); '/dev/video2' or a URL stays a string."""
    return int(text) if text.isdigit() else text


class CameraSource(Source):
    """Frames from a camera, newest first.

    A producer thread reads the camera into a one-frame slot; when the pipeline is slower than
    the camera the older frame is replaced (counted in `dropped`). When the camera stops
    delivering (unplugged, driver reset) it is reopened with back-off (0.25 s doubling to 4 s)
    and frames resume at the original size; `reconnects` counts the returns.
    """

    live = True

    def __init__(self, device: int | str = 0, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 fourcc: str | None = "MJPG", max_frames: int | None = None, give_up_after: float | None = None,
                 retry_delay: float = 0.25, capture_factory: Callable[[int | str], Any] = _quiet_capture) -> None:
        """Args:
            device: camera index or device path.
            size: requested (width, height); the camera may pick the nearest it has.
            fps: requested frame rate.
            fourcc: requested compression (MJPG allows higher rates over USB); None keeps the default.
            max_frames: stop after this many frames.
            give_up_after: seconds to keep retrying a lost camera (None: until stopped).
            retry_delay: first back-off delay in seconds (doubles up to 4 s).
            capture_factory: opens a capture (tests pass a fake camera).

        Raises:
            SourceError: no camera at `device`.
        """
        self.device = device
        self.path = str(device)
        self.requested = (size, fps, fourcc)
        self.max_frames = max_frames
        self.give_up_after = give_up_after
        self.retry_delay = retry_delay
        self._factory = capture_factory
        self.dropped = 0
        self.reconnects = 0
        self._cap = self._open()
        if self._cap is None:
            raise SourceError(f"no camera at {device!r}; check that it is plugged in and not used by another "
                              f"program, or see which cameras exist with streamdn.io.camera.list_cameras().")
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        rate = float(self._cap.get(cv2.CAP_PROP_FPS)) or (fps or 30.0)
        self.format = FrameFormat(w, h, 8, Fraction(rate).limit_denominator(1001), MS, "bgr24")
        self.meta = VideoMeta(color_range=1)
        self.total_frames = max_frames
        self._slot: queue.Queue[Frame | None] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._gave_up = False

    def _open(self) -> Any | None:
        cap = self._factory(self.device)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        size, fps, fourcc = self.requested
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # the newest frame, not a backlog
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        if size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    def _offer(self, frame: Frame | None) -> None:
        """Puts a frame in the slot, replacing one the consumer has not taken yet."""
        while True:
            try:
                self._slot.put_nowait(frame)
                return
            except queue.Full:
                try:
                    if self._slot.get_nowait() is not None:
                        self.dropped += 1
                except queue.Empty:
                    pass

    def _reconnect(self) -> bool:
        warn(f"camera {self.device!r} stopped delivering frames; retrying.")
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        delay, started = self.retry_delay, time.monotonic()
        while not self._stop.is_set():
            if self.give_up_after is not None and time.monotonic() - started > self.give_up_after:
                return False
            self._stop.wait(delay)
            self._cap = self._open()
            if self._cap is not None:
                self.reconnects += 1
                warn(f"camera {self.device!r} is back after {time.monotonic() - started:.1f} s; resuming.")
                return True
            delay = min(delay * 2, 4.0)
        return False

    def _produce(self) -> None:
        start = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read() if self._cap is not None else (False, None)
                captured = time.monotonic()
                if not ok or bgr is None:
                    if not self._reconnect():
                        self._gave_up = not self._stop.is_set()
                        break
                    continue
                if bgr.shape[1] != self.format.width or bgr.shape[0] != self.format.height:
                    bgr = cv2.resize(bgr, (self.format.width, self.format.height), interpolation=cv2.INTER_AREA)
                elif bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                pts = int(round((captured - start) * 1000))
                self._offer(frame_from_bgr(np.ascontiguousarray(bgr), index, pts, MS, captured))
                index += 1
                if self.max_frames is not None and index >= self.max_frames:
                    break
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer's thread
            self._error = err
        finally:
            # The end marker waits for the last frame to be taken rather than replace it.
            while not self._stop.is_set():
                try:
                    self._slot.put(None, timeout=0.05)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="camera", daemon=True)
            self._thread.start()
        last_pts = -1
        while True:
            frame = self._slot.get()
            if frame is None:
                if self._error is not None:
                    raise SourceError(f"camera {self.device!r} failed: {self._error}") from self._error
                if self._gave_up:
                    raise SourceError(f"camera {self.device!r} did not come back within "
                                      f"{self.give_up_after:g} s; check the connection.")
                return
            if frame.pts is not None and frame.pts <= last_pts:   # two frames in one millisecond
                frame.pts = last_pts + 1
            last_pts = frame.pts if frame.pts is not None else last_pts
            yield frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PacedSource(Source):
    """Replays another source at its native frame rate, as a camera would deliver it.

    Each frame is released at its own timestamp (relative to the first) and stamped with the
    release time as its capture time, so latency is measured as for a camera.
    """

    live = True

    def __init__(self, inner: Source, speed: float = 1.0) -> None:
        self.inner = inner
        self.speed = speed
        self.format = inner.format
        self.meta = inner.meta
        self.total_frames = inner.total_frames
        self.path = inner.path

    def __iter__(self) -> Iterator[Frame]:
        start: float | None = None
        t0: float | None = None
        step = 1.0 / float(self.format.fps or 30)
        for i, frame in enumerate(self.inner):
            t = frame.time if frame.time is not None else i * step
            if start is None:
                start, t0 = time.monotonic(), t
            due = start + (t - t0) / self.speed  # type: ignore[operator]
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame.captured = time.monotonic()
            yield frame

    def close(self) -> None:
        self.inner.close()
