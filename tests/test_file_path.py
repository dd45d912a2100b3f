"""The end-to-end file path: decode -> denoise -> encode keeps frames, timestamps, size,
rotation, bit depth and audio; errors leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamdn.cli import main
from streamdn.config import RunConfig, load_config
from streamdn.jobs.file import denoise_file
from videos import Spec, audio_packets, make_video, probe


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.mark.parametrize("spec,ext,pix_fmt", [
    (Spec(), ".mp4", "yuv420p"),
    (Spec(width=65, height=47, pix_fmt="yuv444p"), ".mp4", "yuv444p"),        # odd size: x264 needs 4:4:4
    (Spec(width=33, height=21, codec="ffv1"), ".mkv", "yuv444p"),
    (Spec(pix_fmt="yuv420p10le"), ".mkv", "yuv420p10le"),                      # 10-bit in, 10-bit out
    (Spec(pix_fmt="yuv422p"), ".mov", "yuv420p"),
    (Spec(pix_fmt="nv12"), ".mp4", "yuv420p"),
    (Spec(pix_fmt="gray", codec="ffv1"), ".mkv", "yuv420p"),
    (Spec(pix_fmt="bgr0", codec="ffv1"), ".mkv", "yuv420p"),
])
def test_keeps_frames_timestamps_size(tmp_path: Path, spec: Spec, ext: str, pix_fmt: str) -> None:
    src = make_video(tmp_path / f"in{ext}", spec)
    out = tmp_path / f"out{ext}"
    assert run_cli("denoise", str(src), "-o", str(out), "-q") == 0
    a, b = probe(src), probe(out)
    assert b["frames"] == a["frames"] == spec.frames
    assert (b["width"], b["height"]) == (spec.width, spec.height)
    assert b["times"] == pytest.approx(a["times"], abs=1e-3)
    assert b["pix_fmt"] == pix_fmt


def test_vfr_rotation_and_audio_copied(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(vfr=True, audio=True, rotation=90, frames=15))
    out = tmp_path / "out.mp4"
    assert run_cli("denoise", str(src), "-o", str(out), "-q") == 0
    a, b = probe(src), probe(out)
    assert b["times"] == pytest.approx(a["times"], abs=1e-3)   # irregular gaps survive
    assert len(set(round(t2 - t1, 3) for t1, t2 in zip(b["times"], b["times"][1:]))) == 3
    assert b["rotation"] == 90
    assert b["types"] == ["video", "audio"]
    assert audio_packets(out) == audio_packets(src)            # packet for packet, not re-encoded


def test_colour_metadata_kept(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(frames=4, bt709_full=True))
    out = tmp_path / "out.mkv"
    assert run_cli("denoise", str(src), "-o", str(out), "-q") == 0
    assert probe(out)["colour"] == probe(src)["colour"] == (1, 1, 1, 2)


def test_frames_limit_trims_audio(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", Spec(audio=True, frames=24))
    out = tmp_path / "out.mkv"
    assert run_cli("denoise", str(src), "-o", str(out), "-q", "--frames", "6") == 0
    assert probe(out)["frames"] == 6
    packets = audio_packets(out)
    assert 0 < len(packets) < len(audio_packets(src))
    assert packets[-1][0] / 48000 < 6 / 24 + 0.05


@pytest.mark.parametrize("ext,codec_args,codec", [
    (".webm", [], "vp9"),
    (".mkv", ["--lossless"], "ffv1"),
    (".mp4", ["--lossless"], "h264"),
    (".mp4", ["--codec", "libx265", "--crf", "30"], "hevc"),
])
def test_containers_and_codecs(tmp_path: Path, ext: str, codec_args: list[str], codec: str) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(frames=6, audio=ext != ".webm"))
    out = tmp_path / f"out{ext}"
    assert run_cli("denoise", str(src), "-o", str(out), "-q", *codec_args) == 0
    p = probe(out)
    assert p["codec"] == codec and p["frames"] == 6


def test_stats_json(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", Spec())
    stats = tmp_path / "stats.json"
    assert run_cli("denoise", str(src), "-o", str(tmp_path / "o.mp4"), "-q", "--stats", str(stats)) == 0
    data = json.loads(stats.read_text())
    assert data["frames"] == 12 and data["fps"] > 0 and data["dropped"] == 0
    assert set(data["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(data["stages_ms"]) == {"decode", "pack", "forward", "unpack", "encode"}
    assert data["model"] == "fast" and data["device"] == "cpu"


def test_config_file_and_flags(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[model]\nname = "classical:median"\nstrength = "20"\n[encode]\ncrf = 30\n')
    src = make_video(tmp_path / "in.mp4", Spec())
    stats = tmp_path / "s.json"
    assert run_cli("denoise", str(src), "-o", str(tmp_path / "o.mp4"), "-q", "--config", str(cfg_file),
                   "--crf", "20", "--stats", str(stats)) == 0
    data = json.loads(stats.read_text())
    assert data["model"] == "classical:median"
    assert data["config"]["encode"]["crf"] == 20          # the flag beats the file
    assert data["config"]["model"]["strength"] == "20"


def test_denoises(tmp_path: Path) -> None:
    """The interim temporal filter removes noise: luma PSNR against the clean clip (luma, since
    4:2:0 chroma caps RGB PSNR on this saturated test pattern)."""
    import cv2
    import numpy as np

    from streamdn.frames import bgr_to_yuv420
    from streamdn.metrics import psnr
    from streamdn.io.sources import FileSource
    from videos import clean_rgb

    spec = Spec(width=96, height=64, frames=16, sigma=15, codec="ffv1")
    src = make_video(tmp_path / "in.mkv", spec)
    out = tmp_path / "out.mkv"
    assert run_cli("denoise", str(src), "-o", str(out), "-q", "--lossless") == 0

    def score(path: Path) -> float:
        with FileSource(str(path)) as s:
            vals = [psnr(bgr_to_yuv420(cv2.cvtColor(clean_rgb(spec, f.index), cv2.COLOR_RGB2BGR))[0], f.y)
                    for f in s]
        return float(np.mean(vals[4:]))

    assert score(out) > score(src) + 2.0


# -- errors: one line, non-zero exit, nothing left behind ---------------------------------------

def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(frames=4))
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    data = src.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 3])
    exists = tmp_path / "exists.mp4"
    exists.write_bytes(b"keep me")
    cases = [
        (["denoise", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")], 1, "does not exist"),
        (["denoise", str(tmp_path / "text.mp4"), "-o", str(tmp_path / "o.mp4")], 1, "not a video"),
        (["denoise", str(tmp_path / "empty.mp4"), "-o", str(tmp_path / "o.mp4")], 1, "empty"),
        (["denoise", str(tmp_path / "trunc.mp4"), "-o", str(tmp_path / "o.mp4")], 1, "truncated"),
        (["denoise", str(tmp_path), "-o", str(tmp_path / "o.mp4")], 1, "is a folder"),
        (["denoise", str(src), "-o", str(exists)], 1, "already exists"),
        (["denoise", str(src), "-o", str(src), "--overwrite"], 1, "is the input"),
        (["denoise", str(src), "-o", str(tmp_path / "no" / "o.mp4")], 1, "does not exist"),
        (["denoise", str(src), "-o", str(tmp_path / "o.mp4"), "--codec", "nope"], 2, "not an encoder"),
        (["denoise", str(src), "-o", str(tmp_path / "o.mp4"), "--model", "nope"], 2, "not registered"),
        (["denoise", str(src), "-o", str(tmp_path / "o.mp4"), "--strength", "x"], 2, "strength 'x'"),
        (["denoise", str(src), "-o", str(tmp_path / "o.mp4"), "--device", "tpu"], 2, "device 'tpu'"),
        (["denoise", str(src), "-o", str(tmp_path / "o.xyz")], 2, "unknown extension"),
        (["denoise", str(src), "-o", str(tmp_path / "o.webm"), "--codec", "libx264"], 2, "cannot be stored"),
        (["denoise", str(src), "-o", str(tmp_path / "o.mp4"), "--set", "model.nme=x"], 2, "valid keys"),
    ]
    before = _listing(tmp_path)
    for argv, code, text in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert text in err, (argv, err)
        assert "Traceback" not in err
        assert err.count("\n") == 1, err
    assert _listing(tmp_path) == before                      # nothing created, nothing lost
    assert exists.read_bytes() == b"keep me"


def test_unwritable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    src = make_video(tmp_path / "in.mp4", Spec(frames=4))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["denoise", str(src), "-o", str(locked / "o.mp4")]) == 1
    assert "not writable" in capsys.readouterr().err


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", Spec(frames=4))
    out = tmp_path / "o.mp4"
    out.write_bytes(b"old")
    assert main(["denoise", str(src), "-o", str(out), "--overwrite", "-q"]) == 0
    assert probe(out)["frames"] == 4
    assert _listing(tmp_path) == ["in.mp4", "o.mp4"]         # no temporary file left


def test_failure_mid_run_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamdn.denoiser import Denoiser

    src = make_video(tmp_path / "in.mp4", Spec(frames=8))
    calls = {"n": 0}
    original = Denoiser.forward

    def failing(self: Denoiser, packed: object) -> object:
        calls["n"] += 1
        if calls["n"] == 5:       # the warm-up call is number 1
            raise RuntimeError("model exploded")
        return original(self, packed)

    monkeypatch.setattr(Denoiser, "forward", failing)
    with pytest.raises(RuntimeError, match="exploded"):
        denoise_file(str(src), str(tmp_path / "o.mp4"), RunConfig(), quiet=True)
    assert _listing(tmp_path) == ["in.mp4"]


def test_ctrl_c_keeps_playable_partial(tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 and the frames done so far in NAME.partial.mp4."""
    src = make_video(tmp_path / "in.mp4", Spec(width=320, height=240, frames=400, sigma=4))
    out = tmp_path / "o.mp4"
    slow = tmp_path / "slow.toml"
    slow.write_text("[pipeline]\nqueue_size = 1\n")
    code = ("import time, sys\n"
            "from streamdn.denoiser import Denoiser\n"
            "orig = Denoiser.forward\n"
            "def slow(self, p):\n"
            "    time.sleep(0.02); return orig(self, p)\n"
            "Denoiser.forward = slow\n"
            "from streamdn.cli import main\n"
            # torch: the byte threshold below is what torch's output reaches early in the run
            # (the int8 backend's smoother output at this faint noise compresses 2.4 times smaller)
            f"sys.exit(main(['denoise', {str(src)!r}, '-o', {str(out)!r}, '-q', '--backend', 'torch']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    # Interrupt once encoded frames reach the temp file (not after a fixed time: on a loaded
    # machine the first frames can take seconds).
    deadline = time.monotonic() + 60

    def written() -> int:
        return sum(os.path.getsize(tmp_path / n) for n in os.listdir(tmp_path) if n.startswith(".o.mp4"))

    while time.monotonic() < deadline and written() < 20_000:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    partial = tmp_path / "o.partial.mp4"
    assert not out.exists() and partial.exists()
    frames = probe(partial)["frames"]
    assert 0 < frames < 400
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_load_config_presets() -> None:
    root = Path(__file__).resolve().parent.parent / "configs"
    for name in ("file", "archive", "demo", "live"):   # the RunConfig presets (train-*, eval have their own)
        assert isinstance(load_config(root / f"{name}.toml"), RunConfig)


@pytest.mark.parametrize("width,height,bit_depth", [(320, 240, 8), (17, 9, 10), (2, 2, 8)])
def test_warmup_frames_pan_with_noise(width: int, height: int, bit_depth: int) -> None:
    """The pipeline's warm-up frames: the format asked for, noise, and a camera moving by
    WARMUP_PAN pixels a frame, so that a long average's tracking paths run before the clock."""
    import cv2
    import numpy as np

    from streamdn.frames import WARMUP_PAN, FrameFormat, warmup_frames

    frames = warmup_frames(FrameFormat(width, height, bit_depth), 4)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for f in frames:
        assert f.y.shape == (height, width) and f.u.shape == f.v.shape == ((height + 1) // 2, (width + 1) // 2)
        assert f.bit_depth == bit_depth and f.y.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    if width >= 64:
        y0, y3 = (cv2.GaussianBlur(f.y.astype(np.float32), (0, 0), 1.5) for f in (frames[0], frames[3]))

        def error(dx: float, dy: float) -> float:   # frame 0 moved by (dx, dy) against frame 3, inside
            moved = cv2.warpAffine(y0, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height))
            return float(np.sqrt(np.mean((moved - y3)[16:-16, 16:-16] ** 2)))

        px, py = 3 * WARMUP_PAN[0], 3 * WARMUP_PAN[1]
        assert error(-px, -py) < 0.5 * min(error(0, 0), error(px, py), error(-px + 1, -py), error(-px - 1, -py))
        y = frames[0].y.astype(np.float32)
        assert np.std(y - cv2.GaussianBlur(y, (0, 0), 2.0)) > 3.0        # noisy, so the estimate is not zero


def test_pipeline_warmup_runs_small_moving_frames_then_one_of_the_stream_size() -> None:
    """The warm-up compiles on small frames (the kernels do not depend on the size) and runs one
    frame of the stream's size for its buffers; the denoiser is reset after each part."""
    from streamdn.config import SourceConfig
    from streamdn.frames import FrameFormat
    from streamdn.io.sinks import NullSink
    from streamdn.io.sources import SyntheticSource
    from streamdn.pipeline import WARMUP_FRAMES, WARMUP_SIZE, Pipeline

    seen: list[tuple[int, ...]] = []
    resets = []

    class Recorder:
        name, device, lookahead = "recorder", "cpu", 0

        def __call__(self, frame):  # type: ignore[no-untyped-def]
            seen.append(frame.y.shape)
            return frame

        def reset(self) -> None:
            resets.append(len(seen))

    src = SyntheticSource(SourceConfig(width=64, height=48, frames=2, fps=25.0))
    pipe = Pipeline(src, [NullSink()], denoiser=Recorder())  # type: ignore[arg-type]
    pipe.warmup(FrameFormat(1280, 720))
    assert seen == [(WARMUP_SIZE[1], WARMUP_SIZE[0])] * WARMUP_FRAMES + [(720, 1280)]
    assert resets == [WARMUP_FRAMES, WARMUP_FRAMES + 1]
    seen.clear()
    pipe.warmup(FrameFormat(33, 17))          # smaller than WARMUP_SIZE: its own size throughout
    assert seen == [(17, 33)] * (WARMUP_FRAMES + 1)
