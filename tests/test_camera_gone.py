"""A camera that disappears mid-stream: `live` keeps running and says so, resumes within 2 s of
the camera's return with the denoiser's state reset, and ends with a playable recording when the
camera does not come back; stop signals end `live` like Ctrl-C."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamdn import Denoiser, SyntheticSource
from streamdn.cli import main
from streamdn.config import RunConfig, SourceConfig, load_config
from streamdn.frames import Frame
from streamdn.io.camera import SEGMENT_KEY, CameraSource, PacedSource
from streamdn.jobs import live as live_job
from streamdn.signals import active
from videos import probe

RESUME_LIMIT_S = 2.0


class Outage:
    """The world of a fake camera: present until `away` seconds after its first read, then gone
    for `length` seconds (None: for good). "unplugged" reads fail and reopening fails meanwhile;
    "frozen" reads block until it is back (a stalled driver)."""

    def __init__(self, away: float, length: float | None, mode: str) -> None:
        self.away, self.length, self.mode = away, length, mode
        self.start: float | None = None

    @property
    def back_at(self) -> float | None:
        """When the camera returned (monotonic), or None."""
        if self.start is None or self.length is None:
            return None
        return self.start + self.away + self.length

    def present(self) -> bool:
        if self.start is None:
            return True
        t = time.monotonic() - self.start
        return t < self.away or (self.length is not None and t >= self.away + self.length)


class GoneCamera:
    """Stands in for cv2.VideoCapture: 64×48 frames at about 50 fps, following an Outage. The
    picture after the outage is another scene (bright instead of dark)."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage
        self.opened = outage.present() or outage.mode == "frozen"

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48, cv2.CAP_PROP_FPS: 50}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        out = self.outage
        if out.start is None:
            out.start = time.monotonic()
        time.sleep(0.02)
        if not out.present():
            if out.mode == "unplugged":
                return False, None
            deadline = time.monotonic() + 10.0   # a stuck driver's read times out in the end
            while not out.present():
                if time.monotonic() > deadline:
                    return False, None
                time.sleep(0.005)
        rng = np.random.default_rng()
        base = 200 if out.back_at is not None and time.monotonic() >= out.back_at else 60
        return True, np.clip(base + rng.normal(0, 15, (48, 64, 3)), 0, 255).astype(np.uint8)

    def release(self) -> None:
        self.opened = False


def camera(outage: Outage, **kw: Any) -> CameraSource:
    return CameraSource(0, retry_delay=0.05, capture_factory=lambda d: GoneCamera(outage), **kw)


class FakePreview:
    """Records what the preview would show: each frame pair (with the time) and each idle status."""

    last: FakePreview | None = None

    def __init__(self, denoiser: Any, mode: str = "split", screenshot_dir: str = ".",
                 size: tuple[int, int] | None = None) -> None:
        self.shown: list[tuple[float, Frame]] = []
        self.statuses: list[str] = []
        FakePreview.last = self

    def __call__(self, noisy: Frame, clean: Frame) -> None:
        self.shown.append((time.monotonic(), noisy))

    def idle(self, status: str | None = None) -> None:
        if status is not None and (not self.statuses or self.statuses[-1] != status):
            self.statuses.append(status)

    def close(self) -> None:
        pass


class SpyReset(live_job.ResetAtGaps):
    last: SpyReset | None = None

    def __init__(self, denoiser: Denoiser) -> None:
        super().__init__(denoiser)
        SpyReset.last = self


@pytest.fixture
def with_fake_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_job, "Preview", FakePreview)
    monkeypatch.setattr(live_job, "display_available", lambda: True)
    monkeypatch.setattr(live_job, "ResetAtGaps", SpyReset)


def live_config(**live: Any) -> RunConfig:
    return load_config(None, [], {"live": live, "source": {"width": 64, "height": 48, "fps": 50.0}})


@pytest.mark.parametrize("mode", ["unplugged", "frozen"])
def test_camera_returns_and_live_resumes_within_2s(mode: str, tmp_path: Path, with_fake_preview: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "rec.mp4"
    outage = Outage(away=0.6, length=1.5, mode=mode)
    with camera(outage, max_frames=90, give_up_after=5.0) as src:
        result = live_job.run_live(live_config(record=str(rec), preview="split"), src)
    assert result.ended_by == "end of input"
    view = FakePreview.last
    assert view is not None and any(s.startswith("camera lost") for s in view.statuses)
    # The time from the camera's return to the first frame after the gap shown is the resume
    # time, reset of the denoiser included.
    assert [f.extra[SEGMENT_KEY] for _, f in view.shown] == sorted(f.extra[SEGMENT_KEY] for _, f in view.shown)
    after = [(t, f) for t, f in view.shown if f.extra[SEGMENT_KEY] == 1]
    assert after and len(result.gaps_s) == 1 and 1.2 <= result.gaps_s[0] <= 2.5
    assert outage.back_at is not None
    resume = after[0][0] - outage.back_at
    with capsys.disabled():
        print(f"\n[{mode}] camera back -> first denoised frame shown: {resume * 1000:.0f} ms "
              f"(gap {result.gaps_s[0]:.2f} s)")
    assert 0 <= resume < RESUME_LIMIT_S
    assert SpyReset.last is not None and SpyReset.last.resets == 1
    err = capsys.readouterr().err
    assert "stopped delivering" in err and "is back" in err
    info = probe(rec)   # playable, every frame written, the gap kept in the timestamps
    assert info["frames"] == result.stats.frames
    times = info["times"]
    assert max(np.diff(times)) >= 1.2   # type: ignore[arg-type]


def test_camera_that_never_returns_ends_the_run_with_the_recording(tmp_path: Path, with_fake_preview: None) -> None:
    rec = tmp_path / "rec.mp4"
    outage = Outage(away=0.5, length=None, mode="unplugged")
    start = time.monotonic()
    with camera(outage, give_up_after=0.8) as src:
        result = live_job.run_live(live_config(record=str(rec), preview="split"), src)
    assert time.monotonic() - start < 0.5 + 0.8 + 8.0   # model load and warm-up included
    assert result.ended_by == "camera lost"
    assert result.message is not None and "did not come back within 0.8 s" in result.message
    assert result.record == str(rec) and probe(rec)["frames"] == result.stats.frames > 0
    assert FakePreview.last is not None and any("camera lost" in s for s in FakePreview.last.statuses)


def test_live_cli_camera_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    outage = Outage(away=0.4, length=None, mode="frozen")
    monkeypatch.setattr(live_job, "CameraSource",
                        functools.partial(CameraSource, capture_factory=lambda d: GoneCamera(outage)))
    rec, stats = tmp_path / "rec.mp4", tmp_path / "live.json"
    code = main(["live", "--camera-timeout", "1.5", "--record", str(rec), "--stats", str(stats), "--preview", "off"])
    err = capsys.readouterr().err
    assert code == 1
    assert "did not come back within 1.5 s" in err and f"The recording {rec} is complete" in err
    assert probe(rec)["frames"] > 0
    assert json.loads(stats.read_text())["ended_by"] == "camera lost"
    assert main(["live", "--camera-timeout", "-1", "--preview", "off"]) == 2
    assert "--camera-timeout '-1" in capsys.readouterr().err
    # The same from a config file ([live] camera_timeout); the flag wins over the file.
    cfg = tmp_path / "live.toml"
    cfg.write_text("[live]\ncamera_timeout = 1.2\n")
    code = main(["live", "--config", str(cfg), "--record", str(tmp_path / "rec2.mp4"), "--preview", "off"])
    assert code == 1 and "giving up after 1.2 s" in capsys.readouterr().err
    cfg.write_text("[live]\ncamera_timeout = -3\n")
    assert main(["live", "--config", str(cfg), "--preview", "off"]) == 2
    assert "camera_timeout" in capsys.readouterr().err


def test_end_of_a_file_is_a_normal_end(video: Any, tmp_path: Path) -> None:
    clip = video("in.mp4", frames=6)
    stats = tmp_path / "live.json"
    code = main(["live", "--source", str(clip), "--realtime", "--preview", "off", "--stats", str(stats), "-q"])
    assert code == 0 and json.loads(stats.read_text())["ended_by"] == "end of input"


def test_reset_at_gaps_starts_the_state_afresh() -> None:
    frames = list(SyntheticSource(SourceConfig(width=64, height=48, frames=5, sigma=25.0)))
    dn = live_job.ResetAtGaps(Denoiser(strength=25))

    def step(frame: Frame) -> np.ndarray:
        return dn.unpack(dn.forward(dn.pack(frame)), frame).to_bgr()

    for f in frames[:4]:
        step(f)
    with_past = step(frames[4])
    fresh = Denoiser(strength=25)(frames[4]).to_bgr()
    assert not np.array_equal(with_past, fresh)        # the recursion uses the past
    for f in frames[:4]:
        f.extra[SEGMENT_KEY] = 0
        step(f)
    frames[4].extra[SEGMENT_KEY] = 1   # (the frame that carried GAP_KEY may have been dropped)
    assert np.array_equal(step(frames[4]), fresh)      # after a gap: as a new stream
    assert dn.resets == 1
    step(frames[4])
    assert dn.resets == 1                              # once per gap


def test_reset_at_gaps_estimates_the_noise_afresh() -> None:
    """A blind run: after a gap the noise level comes from the new frames alone (a camera that
    comes back may have a new gain), so the first frame after it is denoised as a new stream's."""
    noisy = list(SyntheticSource(SourceConfig(width=64, height=48, frames=4, sigma=40.0)))
    quiet = list(SyntheticSource(SourceConfig(width=64, height=48, frames=1, sigma=5.0)))[0]
    dn = live_job.ResetAtGaps(Denoiser())
    for f in noisy:
        f.extra[SEGMENT_KEY] = 0
        dn.unpack(dn.forward(dn.pack(f)), f)
    quiet.extra[SEGMENT_KEY] = 1
    after = dn.unpack(dn.forward(dn.pack(quiet)), quiet).to_bgr()
    assert np.array_equal(after, Denoiser()(quiet).to_bgr())


class CountingSource(PacedSource):
    """A paced synthetic scene that counts the frames it released."""

    def __init__(self) -> None:
        super().__init__(SyntheticSource(SourceConfig(width=64, height=48, fps=50.0, frames=100_000)))
        self.released = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            self.released += 1
            yield frame


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_ends_live_like_ctrl_c(signum: int, tmp_path: Path) -> None:
    rec = tmp_path / "rec.mp4"
    before = signal.getsignal(signum)
    src = CountingSource()

    def send() -> None:
        deadline = time.monotonic() + 30
        while (active() is None or src.released < 10) and time.monotonic() < deadline:
            time.sleep(0.01)
        if active() is not None:   # never the default handler: it would end the test process
            os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    result = live_job.run_live(live_config(record=str(rec), preview="off"), src, handle_signals=True)
    sender.join()
    assert result.ended_by == "interrupted"
    assert result.record == str(rec) and probe(rec)["frames"] == result.stats.frames > 0
    assert signal.getsignal(signum) is before


def test_stop_signal_while_the_camera_is_lost(tmp_path: Path, with_fake_preview: None) -> None:
    rec = tmp_path / "rec.mp4"
    outage = Outage(away=0.5, length=None, mode="frozen")
    sent: list[float] = []

    def send() -> None:
        deadline = time.monotonic() + 30
        while (active() is None or outage.start is None or time.monotonic() < outage.start + 2.0) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        if active() is not None:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with camera(outage, give_up_after=30.0) as src:
        result = live_job.run_live(live_config(record=str(rec), preview="split"), src, handle_signals=True)
        ended = time.monotonic()
    sender.join()
    assert sent and ended - sent[0] < 2.0          # no waiting for the camera's timeout
    assert result.ended_by == "interrupted"
    assert probe(rec)["frames"] == result.stats.frames > 0


def test_sigterm_to_the_command(tmp_path: Path) -> None:
    rec, stats = tmp_path / "rec.mp4", tmp_path / "live.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamdn", "live", "--synthetic", "--set", "source.width=64", "--set",
         "source.height=48", "--frames", "100000", "--record", str(rec), "--stats", str(stats), "--preview", "off"],
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60   # until frames reach the (temporary) recording
        while (not any(p.stat().st_size > 0 for p in tmp_path.glob(".rec.mp4.*"))
               and time.monotonic() < deadline and proc.poll() is None):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "(interrupted)" in err and "recorded" in err
    assert probe(rec)["frames"] > 0
    assert json.loads(stats.read_text())["ended_by"] == "interrupted"
    assert not list(tmp_path.glob(".rec.mp4.*"))   # no temporary file left
