"""Live sources: a camera through OpenCV (producer thread, one-frame buffer; a camera that stops
delivering is reopened until it is back, and given up after a timeout) and any source paced at its
native frame rate (a file standing in for a camera)."""

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
GAP_KEY = "gap_s"        # frame.extra key of the first frame after a gap: the seconds without frames
SEGMENT_KEY = "segment"  # frame.extra key of every camera frame: 0, then one more after each gap
MAX_RETRY_DELAY = 0.5    # a lost camera is reopened at least this often (seconds), so it resumes quickly
FIRST_FRAME_GRACE = 5.0  # seconds a camera may take to deliver its first frame before it counts as lost


class CameraLost(SourceError):
    """The camera delivered no frame for the source's `give_up_after` seconds."""


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
    the camera the older frame is replaced (counted in `dropped`).

    A camera can disappear mid-stream: reads fail (unplugged, driver reset) or simply stop
    returning (a stalled driver, a network camera). Then `lost_for` tells for how long; a camera
    whose reads fail is reopened with back-off (`retry_delay` doubling up to 0.5 s), so frames
    resume within about half a second of its return, at the original size. Every frame carries
    the number of gaps before it in `frame.extra[SEGMENT_KEY]` (the picture may have changed
    completely: a temporal denoiser should start afresh when it changes, even if the first frame
    after the gap was dropped), the first one after a gap also the gap's length in
    `frame.extra[GAP_KEY]`; `gaps` lists the lengths in seconds and `reconnects` counts the
    reopenings. After `give_up_after` seconds without a frame the iteration raises CameraLost.
    """

    live = True

    def __init__(self, device: int | str = 0, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 fourcc: str | None = "MJPG", max_frames: int | None = None, give_up_after: float | None = None,
                 retry_delay: float = 0.25, stall_after: float | None = None,
                 capture_factory: Callable[[int | str], Any] = _quiet_capture) -> None:
        """Args:
            device: camera index or device path.
            size: requested (width, height); the camera may pick the nearest it has.
            fps: requested frame rate.
            fourcc: requested compression (MJPG allows higher rates over USB); None keeps the default.
            max_frames: stop after this many frames.
            give_up_after: seconds without a frame after which the camera is given up
                (CameraLost); None waits for it as long as the iteration runs.
            retry_delay: first delay in seconds before reopening a camera whose reads fail
                (doubles up to 0.5 s).
            stall_after: seconds without a frame after which the camera counts as lost even
                though no read failed (default: 1 s, or 5 frame intervals when longer).
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
        self.gaps: list[float] = []
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
        self.stall_after = stall_after if stall_after is not None else max(1.0, 5.0 / rate)
        self._slot: queue.Queue[Frame | None] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last_frame_at = time.monotonic()   # when the last frame (or the start) was
        self._delivered = False                  # whether any frame came yet
        self._failing = False                    # reads fail and the camera is being reopened
        self._gap_reported = False               # the current gap was announced

    @property
    def lost_for(self) -> float | None:
        """Seconds since the camera's last frame while it counts as lost (reads fail, or no frame
        came for `stall_after` seconds); None while frames arrive."""
        if self._thread is None:
            return None
        since = time.monotonic() - self._last_frame_at
        limit = self.stall_after if self._delivered else max(self.stall_after, FIRST_FRAME_GRACE)
        return since if self._failing or since > limit else None

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

    def _announce_gap(self) -> None:
        if not self._gap_reported:
            self._gap_reported = True
            wait = f"giving up after {self.give_up_after:g} s" if self.give_up_after is not None else "until stopped"
            warn(f"camera {self.device!r} stopped delivering frames; waiting for it ({wait}).")

    def _reconnect(self) -> bool:
        """Reopens the camera until it opens or the source is stopped; False when stopped."""
        self._failing = True
        self._announce_gap()
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        delay = self.retry_delay
        while not self._stop.wait(delay):
            self._cap = self._open()
            if self._cap is not None:
                self.reconnects += 1
                return True
            delay = min(delay * 2, MAX_RETRY_DELAY)
        return False

    def _produce(self) -> None:
        start = self._last_frame_at = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read() if self._cap is not None else (False, None)
                captured = time.monotonic()
                if not ok or bgr is None:
                    if not self._reconnect():
                        break
                    continue
                if bgr.shape[1] != self.format.width or bgr.shape[0] != self.format.height:
                    bgr = cv2.resize(bgr, (self.format.width, self.format.height), interpolation=cv2.INTER_AREA)
                elif bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                pts = int(round((captured - start) * 1000))
                frame = frame_from_bgr(np.ascontiguousarray(bgr), index, pts, MS, captured)
                gap = captured - self._last_frame_at
                if self._delivered and (self._failing or gap > self.stall_after):
                    frame.extra[GAP_KEY] = round(gap, 3)
                    self.gaps.append(round(gap, 3))
                    warn(f"camera {self.device!r} is back after {gap:.1f} s; resuming.")
                frame.extra[SEGMENT_KEY] = len(self.gaps)
                self._last_frame_at, self._delivered = captured, True
                self._failing = self._gap_reported = False
                self._offer(frame)
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
        while not self._stop.is_set():
            try:
                frame = self._slot.get(timeout=0.05)
            except queue.Empty:
                self._check_lost()
                continue
            if frame is None:
                if self._error is not None:
                    raise SourceError(f"camera {self.device!r} failed: {self._error}") from self._error
                return
            if frame.pts is not None and frame.pts <= last_pts:   # two frames in one millisecond
                frame.pts = last_pts + 1
            last_pts = frame.pts if frame.pts is not None else last_pts
            yield frame

    def _check_lost(self) -> None:
        """While no frame comes: announces a stalled camera, and gives it up after give_up_after.

        Raises:
            CameraLost: no frame for give_up_after seconds.
        """
        lost = self.lost_for
        if lost is None:
            return
        self._announce_gap()
        if self.give_up_after is not None and lost > self.give_up_after:
            self._stop.set()
            raise CameraLost(f"camera {self.device!r} stopped delivering frames and did not come back within "
                             f"{self.give_up_after:g} s; check its connection (and that no other program took it).")

    def stop(self) -> None:
        """Ends the iteration (from any thread) within 50 ms, even while the camera is lost."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                return   # stuck inside the driver's read: releasing the capture under it is unsafe
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
        self._stop = threading.Event()

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
            if self._stop.wait(delay) if delay > 0 else self._stop.is_set():
                return
            frame.captured = time.monotonic()
            yield frame

    def stop(self) -> None:
        """Ends the iteration (from any thread) before the next frame."""
        self._stop.set()

    def close(self) -> None:
        self.inner.close()
