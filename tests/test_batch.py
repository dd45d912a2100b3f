"""`streamdn batch`: many small files and long files cut into segments, locally and on a local Ray
instance, against `streamdn denoise` run file by file; resume, failures and Ray retries."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamdn.batch import scheduler as batch
from streamdn.batch.executors import InlineExecutor
from streamdn.batch.segments import plan_segments, read_keyframes
from streamdn.batch.tasks import SEGMENT, Options, Task, execute, plan_file
from streamdn.cli import batch as batch_cli
from streamdn.cli import main
from streamdn.config import RunConfig, load_config
from streamdn.errors import ConfigError
from streamdn.jobs.file import denoise_file
from videos import Spec, audio_packets, make_video, probe


def run_cli(*argv: str) -> int:
    """`streamdn batch ARGV...`, exit code and all."""
    return main(["batch", *argv])


def make_gop_video(path: Path, gop: int, **spec: object) -> Path:
    """A tiny clip (tests/videos.py) re-encoded with a keyframe every `gop` frames, audio copied."""
    src = make_video(path.with_name(f"src-{path.name}"), Spec(**spec))  # type: ignore[arg-type]
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        vin = inp.streams.video[0]
        video = out.add_stream("libx264", rate=vin.average_rate)
        video.width, video.height, video.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        video.codec_context.time_base = vin.time_base
        video.options = {"preset": "ultrafast", "crf": "10", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        audio = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
        for packet in inp.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "audio":
                packet.stream = audio[packet.stream.index]
                out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pict_type = av.video.frame.PictureType.NONE
                for p in video.encode(frame):
                    out.mux(p)
        for p in video.encode(None):
            out.mux(p)
    src.unlink()
    return path


def planes(path: Path) -> list[np.ndarray]:
    """Every frame as a (H*3/2, W) float64 yuv420p array."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").astype(np.float64) for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def assert_same_video(got: Path, want: Path, min_psnr: float = 50.0) -> None:
    a, b = planes(got), planes(want)
    assert len(a) == len(b)
    scores = [round(psnr(x, y), 1) for x, y in zip(a, b)]
    assert min(scores) >= min_psnr, f"{got} vs {want}: PSNR per frame {scores}"


@pytest.fixture
def footage(tmp_path: Path) -> Path:
    """in/a.mp4, in/b.mp4, in/sub/c.mkv (with audio) and in/sub/bad.mp4 (corrupt)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    make_video(root / "a.mp4", Spec(frames=24, seed=1))
    make_video(root / "b.mp4", Spec(frames=16, seed=2, width=48, height=32))
    make_video(root / "sub" / "c.mkv", Spec(frames=20, seed=3, audio=True))
    (root / "sub" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    return root


GOOD = ("a.mp4", "b.mp4", "sub/c.mkv")


# Outputs are compared losslessly: x264 with its default threads is not bit-exact from run to
# run (about 1 encode in 10 of the same frames differs, ~40 dB), so lossy encodes of identical
# denoised frames cannot be compared at 50 dB. Timestamps are compared on lossy encodes too.
LOSSLESS = ("--lossless",)


def reference(footage: Path, tmp_path: Path) -> Path:
    """`streamdn denoise --lossless` run file by file (the default model)."""
    ref = tmp_path / "ref"
    for rel in GOOD:
        (ref / rel).parent.mkdir(parents=True, exist_ok=True)
        denoise_file(str(footage / rel), str(ref / rel), lossless(), quiet=True)
    return ref


def lossless() -> RunConfig:
    return load_config(values={"encode": {"lossless": True}})


def test_batch_matches_denoise_file_by_file(footage: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    assert run_cli(str(footage), "-o", str(out), "--stats", str(stats), "--quiet", *LOSSLESS) == 1   # bad.mp4
    ref = reference(footage, tmp_path)
    for rel in GOOD:
        assert_same_video(out / rel, ref / rel)
    assert audio_packets(out / "sub/c.mkv") == audio_packets(footage / "sub/c.mkv")
    data = json.loads(stats.read_text())
    assert (data["done"], data["failed"], data["frames"]) == (3, 1, 24 + 16 + 20)
    bad = next(f for f in data["files"] if f["status"] == "failed")
    assert bad["input"].endswith("bad.mp4") and "corrupt" in bad["reason"]
    assert not (out / "sub" / "bad.mp4").exists()


def test_local_worker_processes_give_the_same_outputs(footage: Path, tmp_path: Path) -> None:
    (footage / "sub" / "bad.mp4").unlink()
    out = tmp_path / "out"
    assert run_cli(str(footage), "-o", str(out), "--workers", "2", "-q", *LOSSLESS) == 0
    ref = reference(footage, tmp_path)
    for rel in GOOD:
        assert_same_video(out / rel, ref / rel)


def test_resume_skips_done_outputs_and_cleans_leftovers(footage: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (footage / "sub" / "bad.mp4").unlink()
    assert run_cli(str(footage), "-o", str(out), "-q") == 0
    done = (out / "a.mp4").stat().st_mtime_ns
    (out / "b.mp4").unlink()                                         # killed before b was finished:
    (out / ".b.mp4.k1ll3d.tmp.mp4").write_bytes(b"half a video")      # its temporary file is left
    stats = tmp_path / "stats.json"
    assert run_cli(str(footage), "-o", str(out), "-q", "--stats", str(stats)) == 0
    data = json.loads(stats.read_text())
    assert (data["done"], data["skipped"]) == (1, 2)
    assert (out / "a.mp4").stat().st_mtime_ns == done
    assert probe(out / "b.mp4")["frames"] == 16
    assert not [p for p in out.rglob(".*")]


def test_inputs_globs_and_ext(footage: Path, tmp_path: Path) -> None:
    items, missing = batch.find_inputs([str(footage / "**" / "*.mkv"), str(footage / "a.mp4"),
                                        str(footage / "nope.mp4")], str(tmp_path / "o"), ext="mkv")
    assert sorted(Path(i.output).relative_to(tmp_path / "o").as_posix() for i in items) == ["a.mkv", "sub/c.mkv"]
    assert len(missing) == 1 and "does not exist" in (missing[0].reason or "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no video found"):
        batch.find_inputs([str(tmp_path / "empty")], str(tmp_path / "x"))


@pytest.fixture
def long_clip(tmp_path: Path) -> Path:
    """72 frames with a keyframe every 8 and an audio track."""
    return make_gop_video(tmp_path / "long.mp4", 8, frames=72, audio=True, seed=5)


@pytest.mark.parametrize("container, ext", [("mp4", ".mp4"), ("mkv", ".mkv"), ("mov", ".mp4")])
def test_segments_join_with_original_timestamps_and_audio(tmp_path: Path, container: str, ext: str) -> None:
    long_clip = make_gop_video(tmp_path / f"long.{container}", 8, frames=72, audio=True, seed=5)
    whole = tmp_path / f"whole{ext}"
    denoise_file(str(long_clip), str(whole), load_config(), quiet=True)   # x264 with B-frames
    assert run_cli(str(long_clip), "-o", str(tmp_path / "out"), "--ext", ext, "--segments", "4", "-q") == 0
    joined = tmp_path / "out" / f"long{ext}"
    a, b = probe(whole), probe(joined)
    assert b["frames"] == a["frames"] == 72
    assert b["times"] == a["times"]
    assert audio_packets(joined) == audio_packets(whole)
    assert not list((tmp_path / "out").glob(".*"))   # parts folder and temporary files are gone


def seam_psnr(long_clip: Path, tmp_path: Path, warmup: int) -> float:
    """Lowest PSNR, over the 8 frames after each cut, of the joined output vs the unsplit one."""
    out = tmp_path / f"w{warmup}"
    assert run_cli(str(long_clip), "-o", str(out), "--segments", "3", "--warmup-frames", str(warmup),
                   "--lossless", "-q") == 0
    cuts = [s.start_pts for s in plan_segments(read_keyframes(str(long_clip)), count=3)][1:]
    pts = list(read_keyframes(str(long_clip)).frame_pts)
    whole, joined = planes(tmp_path / "whole.mp4"), planes(out / "long.mp4")
    assert len(whole) == len(joined)
    seams = [i for c in cuts for i in range(pts.index(c), pts.index(c) + 8)]
    return min(psnr(whole[i], joined[i]) for i in seams)


def test_seams_match_the_unsplit_run_after_warmup(long_clip: Path, tmp_path: Path) -> None:
    denoise_file(str(long_clip), str(tmp_path / "whole.mp4"), lossless(), quiet=True)
    warm, cold = seam_psnr(long_clip, tmp_path, 16), seam_psnr(long_clip, tmp_path, 0)
    print(f"seam PSNR vs unsplit: {warm:.1f} dB with 16 warm-up frames, {cold:.1f} dB without")
    assert warm >= 45.0
    assert warm > cold + 5.0


def test_resume_reuses_finished_segments(long_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    opts = Options(segments=3, warmup=8)
    item = batch.Item(str(long_clip), str(out / "long.mp4"))
    tasks, _ = plan_file(item.input, item.output, load_config(), opts)
    assert execute(tasks[0]).ok                  # the run was killed after segment 0 was written
    import streamdn.batch.tasks as dist

    ran: list[int] = []
    real = dist.denoise_segment
    monkeypatch.setattr(dist, "denoise_segment", lambda *a, **k: ran.append(a[1].number) or real(*a, **k))
    report = batch.run_batch([item], load_config(), InlineExecutor(), opts, quiet=True)
    assert report.count("done") == 1 and ran == [1, 2]
    assert probe(out / "long.mp4")["frames"] == 72


def test_ray_flag_before_inputs_and_no_ray_import(footage: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    batch_cli.add_parser(parser.add_subparsers(dest="command"))
    for inputs in ([str(footage / "a.mp4"), str(footage / "b.mp4")], [str(footage)]):
        args = parser.parse_args(["batch", "--ray", *inputs, "-o", "x"])
        batch_cli.check_args(args)
        assert args.ray == "local" and args.input == inputs
    code = ("import sys; from streamdn.cli import main;"
            f"r = main(['batch', {str(footage / 'b.mp4')!r}, '-o', {str(tmp_path / 'o')!r}, '-q']);"
            "assert r == 0 and 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert probe(tmp_path / "o" / "b.mp4")["frames"] == 16


# -- on a local Ray instance -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_batch_matches_local(footage: Path, tmp_path: Path, ray_instance: object) -> None:
    out = tmp_path / "out"
    assert run_cli(str(footage), "-o", str(out), "--ray", "-q", *LOSSLESS) == 1   # bad.mp4 failed, the rest done
    ref = reference(footage, tmp_path)
    for rel in GOOD:
        assert_same_video(out / rel, ref / rel)
    from streamdn.batch.executors import RayExecutor

    ex = RayExecutor(None)
    clip = make_gop_video(tmp_path / "gop.mp4", 8, frames=24, seed=1)   # keyframes to cut at
    tasks, _ = plan_file(str(clip), str(tmp_path / "seg" / "gop.mp4"), load_config(), Options(segments=3))
    segments = [t for t in tasks if t.kind == SEGMENT]
    assert len(segments) == 3
    results = [ex.wait([h])[0][1] for h in [ex.submit(t) for t in segments]]
    assert all(r.ok for r in results)
    assert len({r.worker for r in results}) < len(results)   # a worker process ran more than one task...
    assert all(r.model_loads == 1 for r in results)          # ...and built the model only once


@pytest.mark.parametrize("failure", ["raise", "die"])
def test_ray_retries_a_failed_task(footage: Path, tmp_path: Path, ray_instance: object, failure: str) -> None:
    from streamdn.batch.executors import RayExecutor

    marker = tmp_path / "failed-once"

    def flaky(task: Task) -> object:
        if not marker.exists():
            marker.touch()
            folder, name = os.path.split(task.output)   # what a worker dying mid-write leaves behind
            Path(folder, f".{name}.d1ed.tmp.mp4").write_bytes(b"half a video")
            if failure == "die":
                os._exit(1)
            raise RuntimeError("transient failure")
        return execute(task)

    out = tmp_path / "out"
    items = [batch.Item(str(footage / "a.mp4"), str(out / "a.mp4"))]
    report = batch.run_batch(items, lossless(), RayExecutor(None, max_retries=2, fn=flaky), Options(),
                             quiet=True)
    assert marker.exists() and report.count("done") == 1
    assert_same_video(out / "a.mp4", reference(footage, tmp_path) / "a.mp4")
    assert not list(out.glob(".*"))


def test_batch_denoisers_follow_the_whole_model_config() -> None:
    """Every [model] key reaches a batch task's Denoiser (impulses was once dropped), and two
    configs that differ in any key never share one."""
    from streamdn.batch import tasks
    from streamdn.config import ModelConfig

    try:
        off = tasks.cached_denoiser(ModelConfig(name="tfilter", impulses="off"))
        on = tasks.cached_denoiser(ModelConfig(name="tfilter", impulses="on"))
        assert (off.impulses, on.impulses) == ("off", "on")
        assert off is not on
        assert tasks.cached_denoiser(ModelConfig(name="tfilter", impulses="off")) is off
    finally:
        tasks.close_cached()
