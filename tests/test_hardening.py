"""Damaged input, bad options and signals: each ends with one line saying what is wrong and an
exit code (0 done, 1 the input or output failed, 2 a bad option, 130 stopped), never a
traceback, and never leaves a temporary file or touches an existing file it was not asked to
replace."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from streamdn.cli import main
from streamdn.config import PipelineConfig, load_config
from streamdn.errors import ConfigError, SourceError
from streamdn.io.sources import FileSource
from streamdn.signals import Interrupted, protected, stop_on_signals
from videos import Spec, make_video, probe


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("streamdn: error:")]


def _unknown_codec(path: Path) -> Path:
    """An MP4 whose video codec tag FFmpeg does not know ('avc1' replaced by 'zzzz')."""
    good = make_video(path.with_name("good-" + path.name), Spec(frames=4))
    path.write_bytes(good.read_bytes().replace(b"avc1", b"zzzz"))
    good.unlink()
    return path


# -- 1. a codec FFmpeg does not know --------------------------------------------------------


def test_unknown_codec_is_a_source_error(tmp_path: Path) -> None:
    bad = _unknown_codec(tmp_path / "zzzz.mp4")
    with pytest.raises(SourceError, match="cannot decode"):
        FileSource(str(bad))


def test_unknown_codec_denoise_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _unknown_codec(tmp_path / "zzzz.mp4")
    assert main(["denoise", str(bad), "-o", str(tmp_path / "o.mp4"), "-q"]) == 1
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "codec" in err
    assert sorted(os.listdir(tmp_path)) == ["zzzz.mp4"]


def test_unknown_codec_batch_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_video(folder / "a.mp4", Spec(frames=4))
    _unknown_codec(folder / "b.mp4")
    make_video(folder / "c.mp4", Spec(frames=4))
    out = tmp_path / "out"
    assert main(["batch", str(folder), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "b.mp4" in err and "2 done" in err and "1 failed" in err
    assert sorted(os.listdir(out)) == ["a.mp4", "c.mp4"]


# -- 2, 3. eval -----------------------------------------------------------------------------


def test_eval_tiny_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_video(tmp_path / "tiny.mp4", Spec(width=8, height=8, frames=3, codec="ffv1"))
    code = main(["eval", "--clips", str(clip), "--methods", "classical:gaussian", "--noise", "awgn20",
                 "--frames", "3", "--no-report", "-q", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert code == 2 and len(_error_lines(err)) == 1 and "8x8" in err and "--size" in err


def test_eval_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    out.write_text("keep me")
    code = main(["eval", "--synthetic", "1", "--size", "32x32", "--frames", "2", "--methods", "classical:gaussian",
                 "--noise", "awgn20", "--no-report", "-q", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(_error_lines(err)) == 1 and "not a folder" in err
    assert out.read_text() == "keep me"


# -- 4. Ctrl-C while the command line starts ------------------------------------------------

_HOOK = """
import sys
class Stop:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Stop())
{entry}
"""


@pytest.mark.parametrize("module", ["numpy", "av", "streamdn.cli.app"])
@pytest.mark.parametrize("entry", [
    "from streamdn.cli import main\nsys.exit(main(['models']))",     # what the console script does
    "import runpy\nrunpy.run_module('streamdn', run_name='__main__')",   # python -m streamdn
])
def test_ctrl_c_during_imports(module: str, entry: str) -> None:
    code = _HOOK.format(module=module, entry=entry)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "streamdn: interrupted." and "Traceback" not in proc.stderr


def test_import_streamdn_is_light() -> None:
    code = "import sys, streamdn.cli; print(sorted(m for m in ('numpy', 'av', 'torch', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


# -- 5. the API: images with no pixels ------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 8, 3), (8, 0, 3)])
def test_denoiser_empty_image(shape: tuple[int, int, int]) -> None:
    from streamdn import Denoiser

    with Denoiser("classical:gaussian") as dn, pytest.raises(ConfigError, match="no pixels"):
        dn(np.zeros(shape, np.uint8))


# -- 6, 7, 8, 9. bad option values, checked before anything is touched ------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "in.mp4", Spec(frames=4))


@pytest.mark.parametrize("flags, text", [
    (["--crf", "99"], "--crf"), (["--crf", "-1"], "--crf"), (["--crf", "60"], "libx264"),
    (["--preset", "bogus"], "veryfast"), (["--set", "pipeline.queue_size=-3"], "queue_size"),
    (["--strength", "nan"], "--strength"), (["--set", "pipeline.decode_threads=-1"], "decode_threads"),
])
def test_bad_option_leaves_output_untouched(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            flags: list[str], text: str) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    before = _digest(out)
    assert main(["denoise", str(clip), "-o", str(out), "--overwrite", "-q", *flags]) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and text in err, err
    assert _digest(out) == before and sorted(os.listdir(tmp_path)) == ["out.mp4"]


@pytest.mark.parametrize("override", ["pipeline.queue_size=-3", "pipeline.queue_size=0", "pipeline.frames=0",
                                      "source.fps=nan", "source.sigma=-1", "encode.threads=-2",
                                      "live.target_latency_ms=0", "model.impulses='maybe'", "model.device='gpu'"])
def test_config_values_are_checked(override: str) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        load_config(None, [override])


def test_config_dataclass_checks_values() -> None:
    with pytest.raises(ConfigError, match="queue_size"):
        PipelineConfig(queue_size=-3)


def test_batch_bad_option_creates_nothing(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    for flags in (["--strength", "nan"], ["--preset", "bogus"], ["--crf", "99"]):
        assert main(["batch", str(clip), "-o", str(out), "-q", *flags]) == 2, flags
        assert len(_error_lines(capsys.readouterr().err)) == 1
        assert not out.exists()


def test_device_cuda_without_cuda_is_usage(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["denoise", str(clip), "-o", str(tmp_path / "o.mp4"), "--device", "cuda", "-q"]) == 2
    assert "CUDA" in capsys.readouterr().err and not os.listdir(tmp_path)


# -- 11, 12. files that are not regular files ------------------------------------------------


def test_input_fifo_and_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        assert main(["denoise", str(path), "-o", str(tmp_path / "o.mp4"), "-q"]) == 1
        err = capsys.readouterr().err
        assert len(_error_lines(err)) == 1 and "not a regular file" in err and kind in err, err
        assert "0 bytes" not in err
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


def test_output_dev_null(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ([], ["--overwrite"]):
        assert main(["denoise", str(clip), "-o", os.devnull, "-q", *extra]) == 0, capsys.readouterr().err
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]


def test_output_not_regular_is_refused(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    targets = [fifo]
    node = tmp_path / "zero.mp4"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 5))   # a copy of /dev/zero's node
        targets.append(node)
    except (PermissionError, OSError):
        pass
    for target in targets:
        kind = os.stat(target).st_mode
        for extra in ([], ["--overwrite"]):
            assert main(["denoise", str(clip), "-o", str(target), "-q", *extra]) == 2
            err = capsys.readouterr().err
            assert len(_error_lines(err)) == 1 and "not a regular file" in err, err
            assert os.stat(target).st_mode == kind   # left as it was
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


# -- arguable points: said once, not silently -----------------------------------------------


def test_size_change_mid_stream_is_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_video(tmp_path / "a.ts", Spec(frames=4, width=64, height=48))
    b = make_video(tmp_path / "b.ts", Spec(frames=4, width=48, height=32))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    out = tmp_path / "o.mkv"
    assert main(["denoise", str(joined), "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "size changes" in err
    info = probe(out)
    assert info["frames"] == 8


def test_alpha_is_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "alpha.mov", Spec(frames=3, codec="qtrle", pix_fmt="argb"))
    assert main(["denoise", str(src), "-o", str(tmp_path / "o.mkv"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "alpha" in err


# -- 10. SIGTERM and SIGHUP ------------------------------------------------------------------


def test_stop_on_signals_first_requests_second_raises() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as err:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.5)
        assert isinstance(err.value, KeyboardInterrupt) and err.value.signum == signal.SIGHUP
        with pytest.raises(Interrupted):
            with protected():          # raised only when the protected section ends
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
                reached = True
        assert reached
    assert {s: signal.getsignal(s) for s in before} == before


_SLOW = ("import time, sys\n"
         "from streamdn.denoiser import Denoiser\n"
         "orig = Denoiser.forward\n"
         "calls = [0]\n"
         "def slow(self, p):\n"
         "    calls[0] += 1\n"
         "    if calls[0] == 20:\n"
         "        open({marker!r}, 'w').close()\n"
         "    time.sleep(0.03); return orig(self, p)\n"
         "Denoiser.forward = slow\n"
         "from streamdn.cli import main\n"
         "sys.exit(main({argv!r}))\n")


def _run_and_signal(argv: list[str], marker: Path, signals: list[int]) -> tuple[int, str]:
    """Runs the command line in a subprocess with a slowed-down model (300 frames take about
    9 s), sends `signals` once the model has seen 20 frames (the subprocess creates `marker`),
    and returns (exit code, stderr)."""
    code = _SLOW.format(argv=argv, marker=str(marker))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not marker.exists() and proc.poll() is None:
            time.sleep(0.02)
        for s in signals:
            proc.send_signal(s)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("long") / "in.mp4", Spec(width=64, height=48, frames=300))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_denoise_signal_keeps_partial(long_clip: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "o.mp4"
    code, err = _run_and_signal(["denoise", str(long_clip), "-o", str(out), "-q"], long_clip.parent / f"m{sig}",
                                [sig])
    assert code == 130, err
    assert "Traceback" not in err and signal.Signals(sig).name in err
    partial = tmp_path / "o.partial.mp4"
    assert os.listdir(tmp_path) == ["o.partial.mp4"]
    assert 0 < probe(partial)["frames"] < 300


def test_denoise_second_signal_leaves_no_temp_file(long_clip: Path, tmp_path: Path) -> None:
    code, err = _run_and_signal(["denoise", str(long_clip), "-o", str(tmp_path / "o.mp4"), "-q"],
                                long_clip.parent / "m-twice", [signal.SIGTERM, signal.SIGTERM])
    assert code == 130 and "Traceback" not in err, err
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    assert set(os.listdir(tmp_path)) <= {"o.partial.mp4"}


def test_batch_sigterm_leaves_nothing_unfinished(long_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, err = _run_and_signal(["batch", str(long_clip), "-o", str(out), "-q"], long_clip.parent / "m-batch",
                                [signal.SIGTERM])
    assert code == 130 and "Traceback" not in err, err
    assert "interrupted" in err
    assert not [p for p in out.rglob("*") if p.is_file()]   # no temporary file, no .partial


def test_train_sighup_is_a_stop() -> None:
    from streamdn.cli.train import _stop_on_sighup

    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(KeyboardInterrupt), _stop_on_sighup():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.5)
    assert signal.getsignal(signal.SIGHUP) == before


# -- soak: the memory of a long run -------------------------------------------------------------


def test_soak_script_reports(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"
    report = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(script), "--frames", "300", "--size", "64x48", "--every", "100",
                           "--warmup", "50", "--model", "classical:gaussian", "--json", str(report), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "soak: 300 frames" in proc.stdout and "growth" in proc.stdout
    import json

    data = json.loads(report.read_text())
    assert data["frames"] == 300 and data["rss_start_mb"] > 0 and len(data["samples"]) >= 3
