"""Live mode without a camera: a fake camera that disconnects and returns, paced sources,
latency and drops, the network stream, the preview's keys, and the array API."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamdn import Denoiser, ListSink, Pipeline, SyntheticSource
from streamdn.io.camera import CameraSource, PacedSource
from streamdn.cli import main
from streamdn.config import SourceConfig
from streamdn.errors import ConfigError, SourceError
from conftest import slow_denoiser
from videos import probe


class FakeCamera:
    """Stands in for cv2.VideoCapture: 32×24 frames; `script` says per read whether it fails."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.opened = plan["opens"].pop(0) if plan["opens"] else True
        self.props: dict[int, float] = {cv2.CAP_PROP_FRAME_WIDTH: 32, cv2.CAP_PROP_FRAME_HEIGHT: 24,
                                        cv2.CAP_PROP_FPS: 100}

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.002)
        n = self.plan["reads"]
        self.plan["reads"] += 1
        if n in self.plan["fail_at"]:
            return False, None
        img = np.full((24, 32, 3), n % 256, np.uint8)
        return True, img

    def release(self) -> None:
        self.opened = False


def test_camera_disconnect_and_return(capsys: pytest.CaptureFixture[str]) -> None:
    plan = {"reads": 0, "fail_at": {5}, "opens": [True, False, False, True]}
    src = CameraSource(0, max_frames=12, retry_delay=0.01, capture_factory=lambda d: FakeCamera(plan))
    with src:
        frames = list(src)
    # A live source replaces a frame the consumer has not taken yet (counted as dropped), which
    # can happen on a busy machine; every captured frame is either delivered or counted.
    assert len(frames) + src.dropped == 12
    assert frames[-1].index == 11                                 # the stream went on after the return
    assert src.reconnects == 1
    err = capsys.readouterr().err
    assert "stopped delivering" in err and "is back" in err
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)      # still valid for a recording


def test_camera_gives_up_with_clear_error() -> None:
    plan = {"reads": 0, "fail_at": set(range(3, 100)), "opens": [True] + [False] * 100}
    src = CameraSource(0, give_up_after=0.1, retry_delay=0.01, capture_factory=lambda d: FakeCamera(plan))
    with src, pytest.raises(SourceError, match="did not come back"):
        list(src)


def test_no_camera_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="no camera"):
        CameraSource(0, capture_factory=lambda d: FakeCamera({"reads": 0, "fail_at": set(), "opens": [False]}))


def test_paced_source_holds_the_frame_rate() -> None:
    inner = SyntheticSource(SourceConfig(width=32, height=24, frames=10, fps=100.0))
    start = time.monotonic()
    frames = list(PacedSource(inner))
    assert len(frames) == 10 and time.monotonic() - start >= 0.085
    # Never released before its timestamp (a late frame may be followed at once by the next one,
    # which is due already: the schedule is the clip's, not the gaps since the last release).
    assert all(f.captured - frames[0].captured >= i * 0.01 - 1e-3 for i, f in enumerate(frames))


def test_target_latency_drops_old_frames() -> None:
    dn = slow_denoiser(0.02)
    src = PacedSource(SyntheticSource(SourceConfig(width=48, height=32, frames=60, fps=200.0)))
    stats = Pipeline(src, [ListSink()], denoiser=dn, queue_size=1, max_age=0.03).run()
    assert stats.dropped > 10
    assert stats.frames + stats.dropped == 60
    assert stats.latency_ms["p50"] >= 20.0          # the model's 20 ms is counted


def test_live_cli_records_and_writes_stats(tmp_path: Path) -> None:
    rec, stats = tmp_path / "rec.mp4", tmp_path / "live.json"
    code = main(["live", "--synthetic", "--size", "64x48", "--frames", "20", "--record", str(rec),
                 "--stats", str(stats), "--preview", "off", "-q"])
    assert code == 0
    assert 0 < probe(rec)["frames"] <= 20
    data = json.loads(stats.read_text())
    assert {"frames", "fps", "dropped", "latency_ms", "stages_ms", "model", "device"} <= set(data)
    assert data["ended_by"] == "end of input"


def test_live_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["live", "--realtime"]) == 2
    assert "--realtime paces" in capsys.readouterr().err
    assert main(["live", "--synthetic", "--stream", "http://x", "--frames", "2", "--preview", "off"]) == 2
    assert "udp://" in capsys.readouterr().err


def test_stream_sink_over_udp_loopback(tmp_path: Path) -> None:
    import socket

    import av

    from streamdn.io.sinks import StreamSink

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    received: list[int] = []

    def receive() -> None:
        try:
            with av.open(f"udp://127.0.0.1:{port}?timeout=2000000", format="mpegts",
                         options={"analyzeduration": "200000", "probesize": "32768"}) as c:
                for f in c.decode(video=0):
                    received.append(f.width)
        except av.error.OSError:
            pass   # the read times out once the sender has finished

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    time.sleep(0.3)
    src = SyntheticSource(SourceConfig(width=64, height=48, frames=40, fps=50.0))
    with StreamSink(f"udp://127.0.0.1:{port}?pkt_size=1316", src.format) as sink:
        for frame in PacedSource(src):
            sink.write(frame)
    t.join(timeout=10)
    assert len(received) > 10 and set(received) == {64}


def test_preview_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamdn.io import preview

    keys = iter([ord(" "), ord(" "), ord("+"), ord("-"), ord("-"), ord("q")])
    shown: list[np.ndarray] = []
    monkeypatch.setattr(preview.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(preview.cv2, "resizeWindow", lambda *a: None)
    monkeypatch.setattr(preview.cv2, "imshow", lambda name, img: shown.append(img))
    monkeypatch.setattr(preview.cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(preview.cv2, "getWindowProperty", lambda *a: 1.0)
    dn = Denoiser()
    view = preview.Preview(dn, "side")
    frame = next(iter(SyntheticSource(SourceConfig(width=64, height=48, frames=1))))
    view(frame, frame)
    assert dn.enabled is False
    view(frame, frame)
    assert dn.enabled is True
    view(frame, frame)
    assert dn.gain == pytest.approx(1.25)
    view(frame, frame)
    view(frame, frame)
    assert dn.gain == pytest.approx(0.8)
    with pytest.raises(preview.QuitRequested):
        view(frame, frame)
    assert shown[0].shape == (48, 128, 3)             # side by side


def test_bypass_passes_frames_untouched() -> None:
    frames = list(SyntheticSource(SourceConfig(width=48, height=32, frames=3)))
    dn = Denoiser()
    dn.enabled = False
    assert all(dn(f) is f for f in frames)


# -- the array API ----------------------------------------------------------------------------

def _noisy(h: int = 33, w: int = 47) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx * 4, yy * 6, 128 + 0 * xx], axis=-1).astype(np.float64)
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    return clean.astype(np.uint8), noisy


def test_numpy_bgr_and_rgb() -> None:
    clean, noisy = _noisy()
    out_bgr = Denoiser(strength=15)(noisy)
    assert out_bgr.shape == noisy.shape and out_bgr.dtype == np.uint8
    out_rgb = Denoiser(strength=15, channel_order="rgb")(noisy[..., ::-1].copy())
    assert np.abs(out_rgb[..., ::-1].astype(int) - out_bgr).max() <= 1     # the same picture
    err = lambda x: float(np.abs(x.astype(float) - clean).mean())  # noqa: E731
    assert err(out_bgr) < err(noisy)


def test_i420_planes() -> None:
    y = np.full((33, 47), 100, np.uint8)
    u = np.full((17, 24), 128, np.uint8)
    out = Denoiser()((y, u, u.copy()))
    assert isinstance(out, tuple) and [p.shape for p in out] == [(33, 47), (17, 24), (17, 24)]
    with pytest.raises(ConfigError, match="U and V"):
        Denoiser()((y, u[:5], u))


def test_torch_layouts() -> None:
    torch = pytest.importorskip("torch")
    _, noisy = _noisy(32, 48)
    dn = Denoiser(strength=10, channel_order="rgb")
    t8 = torch.from_numpy(noisy)
    out8 = dn(t8)
    assert out8.shape == t8.shape and out8.dtype == torch.uint8 and out8.device == t8.device
    chw = t8.permute(2, 0, 1).float() / 255
    assert dn(chw).shape == (3, 32, 48)
    batch = torch.stack([chw, chw])
    out = dn(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype and 0 <= float(out.min()) <= float(out.max()) <= 1
    with pytest.raises(ConfigError, match="unsupported tensor"):
        dn(torch.zeros(4, 8, 8))


def test_denoisers_in_threads_are_independent() -> None:
    frames = [f.to_bgr() for f in SyntheticSource(SourceConfig(width=64, height=48, frames=6))]
    expected = [o.copy() for o in map(Denoiser(), frames)]
    results: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        dn = Denoiser()
        results[k] = [dn(f) for f in frames]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for outs in results.values():
        assert all(np.array_equal(a, b) for a, b in zip(outs, expected))
