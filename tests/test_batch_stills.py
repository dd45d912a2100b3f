"""`streamdn batch` over photographs and camera raw files, alone and mixed with videos: one task
per picture through denoise_still with the batch's model settings, output names and formats,
resume, overwrite, failures, the report, --dry-run and local worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from streamdn.batch import scheduler as batch
from streamdn.cli import main
from streamdn.errors import ConfigError
from streamdn.io.stills import Still, read_still, write_still
from streamdn.jobs.still import denoise_still
from stills_helpers import noisy_scene, write_dng
from videos import Spec, make_video, probe

Image = pytest.importorskip("PIL.Image")
tifffile = pytest.importorskip("tifffile")
Rational = pytest.importorskip("PIL.TiffImagePlugin").IFDRational
HAVE_RAW = True
try:
    import rawpy  # noqa: F401
except ImportError:
    HAVE_RAW = False


def camera_exif() -> bytes:
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010F] = "TestMake"
    ex[0x8769] = {0x829A: Rational(1, 250), 0x8827: 800}   # ExposureTime, ISO
    return ex.tobytes()


def exposure_and_iso(path: Path) -> tuple[float, int]:
    with Image.open(path) as im:
        sub = im.getexif().get_ifd(0x8769)
        return float(sub[0x829A]), int(sub[0x8827])


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """in/clip.mp4 (6 frames), in/p.jpg (EXIF with exposure and ISO), in/w.webp, in/sub/q.png
    (16-bit), in/sub/t.tif (8-bit, EXIF), in/sub/r.dng (raw, when rawpy is there), in/bad.jpg
    (damaged) and in/notes.txt (not a picture)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    make_video(root / "clip.mp4", Spec(frames=6))
    _, n8 = noisy_scene(40, 56, 15, seed=1)
    _, n16 = noisy_scene(40, 56, 15, np.uint16, seed=2)
    Image.fromarray(n8).save(root / "p.jpg", quality=95, exif=camera_exif())
    Image.fromarray(n8).save(root / "w.webp", lossless=True)
    write_still(Still(n16), root / "sub" / "q.png")
    write_still(Still(n8, exif=camera_exif()), root / "sub" / "t.tif")
    if HAVE_RAW:
        write_dng(root / "sub" / "r.dng", 48, 64, noise=0.05)
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a picture")
    (root / "notes.txt").write_text("not a picture")
    return root


PICTURES = {"p.jpg": "p.jpg", "w.webp": "w.webp", "sub/q.png": "sub/q.png", "sub/t.tif": "sub/t.tif",
            **({"sub/r.dng": "sub/r.tif"} if HAVE_RAW else {})}


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def test_mixed_folder_pictures_match_denoise_still(mixed: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    assert main(["batch", str(mixed), "-o", str(out), "--stats", str(stats), "-q"]) == 1   # bad.jpg failed
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted(["clip.mp4", *PICTURES.values()])
    assert probe(out / "clip.mp4")["frames"] == 6
    ref = tmp_path / "ref"
    ref.mkdir()
    for src, dst in PICTURES.items():   # the default model, as `streamdn denoise` runs it
        denoise_still(mixed / src, ref / Path(dst).name)
        got, want = read_still(out / dst), read_still(ref / Path(dst).name)
        assert got.rgb.dtype == want.rgb.dtype and np.array_equal(got.rgb, want.rgb), dst
    assert read_still(out / "sub/q.png").rgb.dtype == np.uint16
    if HAVE_RAW:
        assert tifffile.imread(out / "sub/r.tif").dtype == np.uint16
    assert exposure_and_iso(out / "p.jpg") == exposure_and_iso(out / "sub/t.tif") == (pytest.approx(1 / 250), 800)
    data = json.loads(stats.read_text())
    assert (data["done"], data["failed"], data["frames"], data["pictures"]) == (
        1 + len(PICTURES), 1, 6, len(PICTURES))
    kinds = {Path(f["input"]).name: (f["kind"], f["status"], f["frames"]) for f in data["files"]}
    assert kinds["clip.mp4"] == ("video", "done", 6) and kinds["p.jpg"] == ("picture", "done", 1)
    assert kinds["bad.jpg"][:2] == ("picture", "failed") and "notes.txt" not in kinds
    bad = next(f for f in data["files"] if f["status"] == "failed")
    assert "could not be read as JPEG" in bad["reason"]
    assert not hidden(out)


def test_model_settings_reach_the_pictures(tmp_path: Path) -> None:
    _, noisy = noisy_scene(32, 48, 20, seed=3)
    Image.fromarray(noisy).save(tmp_path / "a.png")
    assert main(["batch", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", "classical:median",
                 "--strength", "12", "-q"]) == 0
    denoise_still(tmp_path / "a.png", tmp_path / "ref.png", model="classical:median", strength=12)
    assert np.array_equal(read_still(tmp_path / "o" / "a.png").rgb, read_still(tmp_path / "ref.png").rgb)


def test_still_format_and_quality(mixed: Path, tmp_path: Path) -> None:
    (mixed / "bad.jpg").unlink()
    assert main(["batch", str(mixed), "-o", str(tmp_path / "png"), "--still-format", "png", "-q"]) == 0
    pngs = sorted(p.relative_to(tmp_path / "png").as_posix() for p in (tmp_path / "png").rglob("*.png"))
    assert pngs == sorted(os.path.splitext(p)[0] + ".png" for p in PICTURES)
    assert (tmp_path / "png" / "clip.mp4").exists()   # videos keep their container
    if HAVE_RAW:
        assert read_still(tmp_path / "png" / "sub" / "r.png").rgb.dtype == np.uint16   # raw: 16 bits kept
    sizes = {}
    for q in (40, 95):
        out = tmp_path / f"q{q}"
        assert main(["batch", str(mixed / "w.webp"), "-o", str(out), "--still-format", "JPEG",
                     "--still-quality", str(q), "-q"]) == 0
        sizes[q] = (out / "w.jpg").stat().st_size
    assert sizes[40] < sizes[95]


def test_resume_skips_done_pictures_cleans_leftovers_and_overwrite_redoes(mixed: Path, tmp_path: Path) -> None:
    (mixed / "bad.jpg").unlink()
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    assert main(["batch", str(mixed), "-o", str(out), "-q"]) == 0
    kept = (out / "p.jpg").stat().st_mtime_ns
    (out / "sub" / "q.png").unlink()                                       # killed while writing q.png:
    (out / "sub" / ".q.png.k1ll3d.tmp.png").write_bytes(b"half a picture")   # its temporary file is left
    assert main(["batch", str(mixed), "-o", str(out), "-q", "--stats", str(stats)]) == 0
    data = json.loads(stats.read_text())
    assert (data["done"], data["skipped"], data["pictures"]) == (1, len(PICTURES), 1)
    assert (out / "p.jpg").stat().st_mtime_ns == kept
    assert read_still(out / "sub" / "q.png").rgb.dtype == np.uint16
    assert not hidden(out)
    assert main(["batch", str(mixed / "p.jpg"), "-o", str(out), "-q", "--overwrite", "--stats", str(stats)]) == 0
    assert json.loads(stats.read_text())["done"] == 1
    assert (out / "p.jpg").stat().st_mtime_ns != kept


def test_names_formats_clashes_and_inputs_as_outputs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.JPG", "b.jpeg", "c.tiff", "d.webp", "e.png", "f.CR2", "g.dng", "h.mov", "i.wmv"):
        (root / name).write_bytes(b"")
    out = tmp_path / "out"

    def names(**kw: object) -> list[str]:
        items, missing = batch.find_inputs([str(root)], str(out), **kw)  # type: ignore[arg-type]
        assert missing == []
        return sorted(Path(i.output).name for i in items)

    videos = ["h.mov", "i.mkv"]   # streamdn cannot write .wmv: .mkv
    assert names() == sorted(["a.JPG", "b.jpeg", "c.tiff", "d.webp", "e.png", "f.tif", "g.tif", *videos])
    assert names(still_format="jpg", ext=".mp4") == sorted([f"{c}.jpg" for c in "abcdefg"] + ["h.mp4", "i.mp4"])
    assert names(still_format="tiff") == sorted([f"{c}.tif" for c in "abcdefg"] + videos)
    assert names(still_format="webp")[:7] == [f"{c}.webp" for c in "abcdefg"]
    (root / "a.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"a\.(png|JPG)' and .* would both be written to .*a\.png"):
        batch.find_inputs([str(root)], str(out), still_format="png")
    with pytest.raises(ConfigError, match=r"ext='\.png' is a picture format"):
        batch.find_inputs([str(root)], str(out), ext=".png")
    with pytest.raises(ConfigError, match=r"still_format='bmp'"):
        batch.find_inputs([str(root)], str(out), still_format="bmp")
    items, missing = batch.find_inputs([str(root)], str(root))   # OUTDIR is the input folder
    assert sorted(Path(m.input).name for m in missing) == ["a.JPG", "a.png", "b.jpeg", "c.tiff", "d.webp",
                                                           "e.png", "h.mov"]
    assert all("itself" in (m.reason or "") for m in missing)
    assert sorted(Path(i.output).name for i in items) == ["f.tif", "g.tif", "i.mkv"]


def test_cli_refuses_a_picture_ext_and_bad_quality(mixed: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(mixed), "-o", str(tmp_path / "o"), "--ext", ".png"]) == 2
    assert "--still-format" in capsys.readouterr().err
    assert main(["batch", str(mixed), "-o", str(tmp_path / "o"), "--still-quality", "0"]) == 2
    assert "--still-quality 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dry_run_lists_and_writes_nothing(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["batch", str(mixed), str(tmp_path / "missing.jpg"), "-o", str(out), "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert not out.exists()
    assert f"{mixed / 'p.jpg'} -> {out / 'p.jpg'} (picture, write)" in lines
    assert f"{mixed / 'clip.mp4'} -> {out / 'clip.mp4'} (video, write)" in lines
    assert any(line.startswith(f"{tmp_path / 'missing.jpg'}: fails: ") for line in lines)
    out.mkdir()
    (out / "p.jpg").write_bytes(b"done before")
    assert main(["batch", str(mixed / "p.jpg"), "-o", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("(picture, skip: output exists)")
    assert (out / "p.jpg").read_bytes() == b"done before"


def test_a_worker_process_writes_the_same_pictures(mixed: Path, tmp_path: Path) -> None:
    """Picture tasks travel to a spawned worker process (as with --workers N) and come back."""
    from streamdn.batch.executors import ProcessExecutor
    from streamdn.batch.tasks import Options
    from streamdn.config import load_config

    (mixed / "bad.jpg").unlink()
    (mixed / "clip.mp4").unlink()
    one, two = tmp_path / "one", tmp_path / "two"
    cfg = load_config(values={"model": {"name": "classical:median"}})   # quick to build in the worker
    items, _ = batch.find_inputs([str(mixed)], str(one))
    inline = batch.InlineExecutor()
    try:
        assert batch.run_batch(items, cfg, inline, Options(), quiet=True).pictures == len(PICTURES)
    finally:
        inline.close()
    items, _ = batch.find_inputs([str(mixed)], str(two))
    pool = ProcessExecutor(1)
    try:
        report = batch.run_batch(items, cfg, pool, Options(), quiet=True)
    finally:
        pool.close()
    assert report.pictures == len(PICTURES) and report.backend == "local processes"
    for dst in PICTURES.values():
        assert np.array_equal(read_still(one / dst).rgb, read_still(two / dst).rgb), dst
    assert exposure_and_iso(two / "sub" / "t.tif") == (pytest.approx(1 / 250), 800)
