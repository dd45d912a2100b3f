"""Bursts: several hand-held shots of one scene merged into one picture aligned to the reference
shot. The command line round trip, 16-bit and metadata kept, the merge beating the single shot,
the global alignment, tiles, the order shots are fed in, and the errors (shots of different
sizes or orientations, a damaged shot, an output that is one of the shots)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdn import Denoiser
from streamdn.cli import main
from streamdn.errors import ConfigError
from streamdn.io.stills import Still, read_still, write_still
from streamdn.jobs import burst as burst_job
from streamdn.jobs.burst import (burst_files, burst_model, feed_order, merge_burst, merge_frames,
                                 motion_model)
from streamdn.jobs.merge_rgb import merge_pictures
from streamdn.jobs.still import denoise_pixels, denoise_still, frame_to_rgb, rgb_to_frame
from streamdn.metrics import psnr
from streamdn.models.merge import Aligner, PictureMean, restore_detail

from stills_helpers import scene

Image = pytest.importorskip("PIL.Image")

# Hand-held shake of the test bursts, (dx, dy) in pixels: the first shot is the reference.
SHIFTS = ((0, 0), (1, 2), (-2, 1), (2, -1), (-1, -2), (0, 3))
PAD = 8


def clean_shots(h: int, w: int, shifts: tuple[tuple[int, int], ...] = SHIFTS, depth: int = 8) -> list[np.ndarray]:
    """The clean shots of a burst: windows of one scene moved by `shifts`."""
    maxv = 255.0 if depth == 8 else 65535.0
    big = scene(h + 2 * PAD, w + 2 * PAD) * maxv
    dtype = np.uint8 if depth == 8 else np.uint16
    return [np.clip(big[PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w] + 0.5, 0, maxv).astype(dtype)
            for dx, dy in shifts]


def noisy(clean: list[np.ndarray], sigma: float = 20.0, seed: int = 0) -> list[np.ndarray]:
    """Independent Gaussian noise of `sigma` (8-bit units) on each shot."""
    rng = np.random.default_rng(seed)
    maxv = 255.0 if clean[0].dtype == np.uint8 else 65535.0
    return [np.clip(c + rng.normal(0.0, sigma * maxv / 255.0, c.shape) + 0.5, 0, maxv).astype(c.dtype)
            for c in clean]


def crossing_square() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Six shots of a still scene (noisy, sigma 20) with a yellow square crossing it in every
    shot but the first: the clean shots, the noisy ones, and where the square passed."""
    clean = clean_shots(96, 128, ((0, 0),) * 6)
    shots = [c.copy() for c in clean]
    passed = np.zeros((96, 128), bool)
    for k in range(1, 6):
        shots[k][30:54, 12 + 18 * k:36 + 18 * k] = (250, 240, 40)
        passed[30:54, 12 + 18 * k:36 + 18 * k] = True
    return clean, noisy(shots, seed=5), passed


def write_burst(folder: Path, shots: list[np.ndarray], names: list[str] | None = None) -> list[Path]:
    """The shots as picture files (PNG unless the names say otherwise)."""
    names = names or [f"shot{i + 1}.png" for i in range(len(shots))]
    paths = []
    for name, rgb in zip(names, shots):
        path = folder / name
        write_still(Still(rgb), path)
        paths.append(path)
    return paths


def digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.fixture(scope="module")
def dn() -> Denoiser:
    """The video path's model (a motion network's recursion over the shots)."""
    with Denoiser(motion_model(), device="cpu") as d:
        yield d


@pytest.fixture(scope="module")
def photo() -> Denoiser:
    """The still-image path's model (the mean of the shots, then the network)."""
    with Denoiser("photo", device="cpu") as d:
        yield d


def test_default_model_is_the_still_image_network_and_the_best_motion_model_next() -> None:
    assert burst_model() == "photo"
    assert motion_model() == "fast_mc"


def test_feed_order_walks_towards_the_reference_and_ends_on_it() -> None:
    assert feed_order(5, 0) == [4, 3, 2, 1, 0]
    assert feed_order(5, 4) == [0, 1, 2, 3, 4]
    assert feed_order(5, 2) == [0, 1, 4, 3, 2]
    with pytest.raises(ConfigError):
        feed_order(3, 3)


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = write_burst(tmp_path, noisy(clean_shots(48, 64)))
    before = digest(shots)
    out = tmp_path / "merged.png"
    assert main(["denoise", *map(str, shots), "-o", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"6 shots merged onto {shots[0]}" in err and "64x48" in err and "model photo" in err
    merged = read_still(out)
    assert merged.rgb.shape == (48, 64, 3) and merged.rgb.dtype == np.uint8
    assert digest(shots) == before                                       # inputs untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in shots), "merged.png"])


def test_sixteen_bit_stays_sixteen_bit_with_the_reference_metadata(tmp_path: Path) -> None:
    shots = noisy(clean_shots(48, 64, SHIFTS[:3], depth=16))
    paths = []
    for i, rgb in enumerate(shots):
        paths.append(tmp_path / f"s{i}.png")
        # Only the reference (the second shot given, --reference 2) has orientation 3 and an XMP packet.
        write_still(Still(rgb, exif=_exif(3 if i == 1 else 1), xmp=b"<x:xmpmeta>ref</x:xmpmeta>" if i == 1 else None),
                    paths[-1])
    out = tmp_path / "merged.tif"
    # Orientation differs between shots: refused (the camera was turned) ...
    assert main(["denoise", *map(str, paths), "-o", str(out), "-q", "--reference", "2"]) == 2
    assert not out.exists()
    # ... and accepted when all agree.
    write_still(Still(shots[0], exif=_exif(3)), paths[0])
    write_still(Still(shots[2], exif=_exif(3)), paths[2])
    assert main(["denoise", *map(str, paths), "-o", str(out), "-q", "--reference", "2"]) == 0
    merged = read_still(out)
    assert merged.rgb.dtype == np.uint16 and merged.rgb.shape == (48, 64, 3)
    assert len(np.unique(merged.rgb)) > 256
    assert merged.orientation == 3 and merged.xmp is not None and b"ref" in merged.xmp


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    return bytes(ex.tobytes())


def test_merge_beats_the_single_shot(tmp_path: Path, dn: Denoiser) -> None:
    clean = clean_shots(64, 96)
    paths = write_burst(tmp_path, noisy(clean, seed=1))
    single = denoise_still(paths[0], tmp_path / "single.png", denoiser=dn)
    merged = merge_burst(paths, tmp_path / "merged.png", denoiser=dn)
    assert merged.shots == 6 and merged.reference == str(paths[0]) and merged.order[-1] == str(paths[0])
    p_single = psnr(clean[0], read_still(single.output).rgb)
    p_merged = psnr(clean[0], read_still(merged.output).rgb)
    assert p_merged > p_single + 1.0, (p_merged, p_single)          # measured: +1.9 dB


def test_result_is_aligned_to_the_reference(tmp_path: Path, dn: Denoiser) -> None:
    shifts = ((0, 0), (3, 0), (3, 2), (0, 2))
    clean = clean_shots(64, 96, shifts)
    paths = write_burst(tmp_path, noisy(clean, seed=2))
    for ref in (0, 2):
        out = merge_burst(paths, tmp_path / f"ref{ref}.png", reference=ref, denoiser=dn)
        rgb = read_still(out.output).rgb
        scores = [psnr(c, rgb) for c in clean]
        assert int(np.argmax(scores)) == ref, scores


def test_aligner_finds_the_shake() -> None:
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (160, 224, 3)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    ref = np.clip(texture[16:144, 16:208] + 0.5, 0, 255).astype(np.uint8)
    shot = np.clip(texture[14:142, 19:211] + 0.5, 0, 255).astype(np.uint8)     # content moved by (-3, +2)
    hom = Aligner(ref).homography(shot)
    assert hom is not None
    assert hom[:2, 2] == pytest.approx([-3.0, 2.0], abs=0.3)    # reference pixels -> shot pixels
    assert np.abs(Aligner(ref)(shot)[8:-8, 8:-8].astype(int) - ref[8:-8, 8:-8]).mean() < 3


def test_tiles_match_one_piece(dn: Denoiser) -> None:
    shots = [rgb_to_frame(s) for s in noisy(clean_shots(160, 200, SHIFTS[:4]), seed=4)]
    whole, _, one = merge_frames(dn, iter(shots))
    tiled, _, many = merge_frames(dn, iter(shots), tile=128)
    assert (one, many) == (1, 4)
    assert psnr(frame_to_rgb(whole, np.dtype(np.uint8)), frame_to_rgb(tiled, np.dtype(np.uint8))) > 40


def test_the_mean_of_the_shots_is_blended_from_the_first_shots_and_the_settings_come_back(
        dn: Denoiser, monkeypatch: pytest.MonkeyPatch) -> None:
    shots = [rgb_to_frame(n) for n in noisy(clean_shots(96, 128, ((0, 0),) * 6))]
    before = (dn.model.long_average, dn.model.cut_threshold)
    merged, _, _ = merge_frames(dn, iter(shots))
    assert (dn.model.long_average, dn.model.cut_threshold) == before   # the video settings are back
    # With the video's ramp (the mean blended in only after 10 frames) six shots merge worse.
    monkeypatch.setattr(burst_job, "BURST_RAMP", before[0].ramp)
    network_only, _, _ = merge_frames(dn, iter(shots))
    clean = clean_shots(96, 128, ((0, 0),))[0]
    u8 = np.dtype(np.uint8)
    assert psnr(frame_to_rgb(merged, u8), clean) > psnr(frame_to_rgb(network_only, u8), clean) + 0.2


def test_the_mean_on_the_reference_grid_helps_and_leaves_no_ghost(dn: Denoiser) -> None:
    # A square crosses the scene in every shot but the reference (fed last): where it passed,
    # the reference's own content must come out, not a trace of the square.
    clean, shots, passed = crossing_square()
    frames = [rgb_to_frame(n) for n in shots]
    ref = frames[0]
    order = [*frames[1:], ref]
    u8 = np.dtype(np.uint8)
    with_mean = frame_to_rgb(merge_frames(dn, iter(order), reference=ref)[0], u8)
    without = frame_to_rgb(merge_frames(dn, iter(order))[0], u8)
    target = clean[0]
    assert psnr(with_mean, target) > psnr(without, target) + 0.2
    assert psnr(with_mean[passed], target[passed]) > psnr(without[passed], target[passed]) - 0.3
    assert np.abs(with_mean[passed].astype(float) - target[passed]).mean() < 10.0


def test_folder_burst_sorted_by_name_without_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shifts = ((0, 0), (2, 1), (3, 3))
    clean = clean_shots(48, 64, shifts)
    names = ["shot1.png", "shot2.png", "shot10.png"]
    write_burst(tmp_path, noisy(clean, seed=5), names)
    (tmp_path / ".shot0.png").write_bytes(b"hidden")
    (tmp_path / "notes.txt").write_text("not a picture")
    assert [p.name for p in burst_files(tmp_path)] == names
    out = tmp_path / "merged.png"
    for _ in range(2):    # the second run must not take merged.png for a shot
        assert main(["denoise", str(tmp_path), "--burst", "-o", str(out), "--overwrite"]) == 0
        assert "3 shots merged onto" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path), "--burst", "--reference", "3", "-o", str(out), "--overwrite", "-q"]) == 0
    rgb = read_still(out).rgb
    assert int(np.argmax([psnr(c, rgb) for c in clean])) == 2           # shot10, the third by name


def test_shots_of_different_sizes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = noisy(clean_shots(48, 64, SHIFTS[:2]))
    paths = write_burst(tmp_path, [a, b[:40]])
    out = tmp_path / "merged.png"
    assert main(["denoise", *map(str, paths), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "64x40" in err[0] and "64x48" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot1.png", "shot2.png"]


def test_damaged_shot_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_burst(tmp_path, noisy(clean_shots(48, 64, SHIFTS[:2])))
    bad = tmp_path / "shot3.png"
    bad.write_bytes(paths[0].read_bytes()[:200])          # a truncated PNG
    out = tmp_path / "merged.png"
    assert main(["denoise", *map(str, paths), str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shot3.png" in err[0] and err[0].startswith("streamdn: error:")
    assert not out.exists() and len(list(tmp_path.iterdir())) == 3


def test_the_shots_are_never_overwritten(tmp_path: Path) -> None:
    paths = write_burst(tmp_path, noisy(clean_shots(48, 64, SHIFTS[:3])))
    before = digest(paths)
    for target in (paths[0], paths[2]):
        assert main(["denoise", *map(str, paths), "-o", str(target), "--overwrite", "-q"]) == 1
    assert digest(paths) == before and len(list(tmp_path.iterdir())) == 3


def test_usage_errors(tmp_path: Path) -> None:
    paths = write_burst(tmp_path, noisy(clean_shots(48, 64, SHIFTS[:2])))
    out = str(tmp_path / "merged.png")
    assert main(["denoise", *map(str, paths), "-o", out, "--reference", "3"]) == 2
    assert main(["denoise", str(paths[0]), str(paths[0]), "-o", out]) == 2             # a shot twice
    assert main(["denoise", str(paths[0]), "-o", out, "--reference", "1"]) == 2        # not a burst
    assert main(["denoise", str(paths[0]), "--burst", "-o", out]) == 2                 # one shot
    assert main(["denoise", str(paths[0]), str(tmp_path / "clip.mp4"), "-o", out]) == 2
    assert main(["denoise", str(tmp_path), str(paths[0]), "-o", out]) == 2            # a folder without --burst
    assert not Path(out).exists()
    assert main(["denoise", str(paths[0]), "-o", out, "-q"]) == 0                      # one picture: as before


def test_a_model_without_past_warns_and_denoises_the_reference(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_burst(tmp_path, noisy(clean_shots(48, 64, SHIFTS[:2])))
    out = tmp_path / "merged.png"
    assert main(["denoise", *map(str, paths), "-o", str(out), "--model", "classical:median", "-q"]) == 0
    assert "keeps no past" in capsys.readouterr().err
    assert read_still(out).rgb.shape == (48, 64, 3)


# -- a still-image network: the mean of the shots, then the network ------------------------------


def aligned_shots(shots: list[np.ndarray]) -> list[np.ndarray]:
    """The shots after the reference, each aligned with it as a whole (as merge_burst does)."""
    aligner = Aligner(shots[0])
    return [aligner(s) for s in shots[1:]]


def test_photo_merge_beats_its_single_shot_and_follows_the_reference(tmp_path: Path, photo: Denoiser) -> None:
    clean = clean_shots(64, 96)
    paths = write_burst(tmp_path, noisy(clean, seed=1))
    single = denoise_still(paths[0], tmp_path / "single.png", denoiser=photo)
    merged = merge_burst(paths, tmp_path / "merged.png", denoiser=photo)
    assert merged.model == "photo" and merged.shots == 6
    p_single = psnr(clean[0], read_still(single.output).rgb)
    p_merged = psnr(clean[0], read_still(merged.output).rgb)
    assert p_merged > p_single + 2.0, (p_merged, p_single)          # measured: +4.7 dB
    out = merge_burst(paths, tmp_path / "ref3.png", reference=2, denoiser=photo)
    rgb = read_still(out.output).rgb
    assert int(np.argmax([psnr(c, rgb) for c in clean])) == 2


def test_photo_merge_leaves_no_ghost(photo: Denoiser) -> None:
    # A square crosses the scene in every shot but the reference: where it passed, the
    # reference's content comes out, and the merge still beats the single shot elsewhere.
    clean, shots, passed = crossing_square()
    merged = merge_pictures(photo, shots[0], iter(shots[1:]))[0]
    single = denoise_pixels(photo, shots[0])[0]
    target = clean[0]
    assert psnr(merged[~passed], target[~passed]) > psnr(single[~passed], target[~passed]) + 2.0
    assert psnr(merged[passed], target[passed]) > psnr(single[passed], target[passed]) - 0.3
    assert np.abs(merged[passed].astype(float) - target[passed]).mean() < 6.0   # measured: 3.1


def test_photo_merge_tiles_match_one_piece(photo: Denoiser) -> None:
    shots = noisy(clean_shots(160, 200, SHIFTS[:4]), seed=4)
    others = aligned_shots(shots)
    whole, sigmas, one = merge_pictures(photo, shots[0], iter(others))
    tiled, _, many = merge_pictures(photo, shots[0], iter(others), tile=128)
    assert (one, many) == (1, 4) and sigmas[0] > 5.0
    assert psnr(whole, tiled) > 45


def test_photo_merge_of_clean_shots_stays_clean(photo: Denoiser) -> None:
    clean = clean_shots(64, 96, SHIFTS[:4])
    merged = merge_pictures(photo, clean[0], iter(aligned_shots(clean)))[0]
    assert psnr(merged, clean[0]) > 40


def test_photo_merge_sixteen_bit_and_bad_shots(photo: Denoiser) -> None:
    shots = noisy(clean_shots(48, 64, SHIFTS[:3], depth=16), seed=6)
    merged = merge_pictures(photo, shots[0], iter(shots[1:]))[0]
    assert merged.dtype == np.uint16 and merged.shape == (48, 64, 3) and len(np.unique(merged)) > 256
    with pytest.raises(ConfigError, match="one size"):
        merge_pictures(photo, shots[0], iter([shots[1][:40]]))
    with Denoiser(motion_model(), device="cpu") as video, pytest.raises(ConfigError, match="still-image"):
        merge_pictures(video, shots[0], iter(shots[1:]))


def test_the_picture_mean_counts_only_the_shots_that_match() -> None:
    clean = clean_shots(64, 96, ((0, 0),) * 4)
    shots = noisy([*clean[:3], 255 - clean[3]], seed=7)         # the last: a shot of something else
    frame = rgb_to_frame(shots[0])
    sig = (20.0 * 0.574, 20.0 * 0.274, 20.0 * 0.289)
    acc = PictureMean(shots[0], frame, sig, signal_dependent=False)
    for s in shots[1:]:
        acc.add(s)
    assert acc.shots == 4
    assert acc.count.mean() == pytest.approx(3.0, abs=0.15)       # the odd shot left out nearly everywhere
    mean = acc.mean()
    err = mean * 255 - clean[0]
    assert err.std() == pytest.approx(20.0 / np.sqrt(3), rel=0.2)
    # The noise it expects of the mean: one shot's over sqrt(count), in the unit the shots showed.
    assert acc.units[:2] == pytest.approx([1.0, 1.0], abs=0.1)    # the noise map was right
    assert acc.noise(mean, acc.count).mean() * 255 == pytest.approx(20 / np.sqrt(3), rel=0.1)


def test_restore_detail_keeps_noise_out_and_gives_detail_back() -> None:
    rng = np.random.default_rng(8)
    base = np.full((64, 64, 3), 0.5, np.float32)
    noise = np.full_like(base, 0.02)
    # The difference is noise alone: little of it comes back.
    pure = base + rng.normal(0, 0.02, base.shape).astype(np.float32)
    assert np.abs(restore_detail(pure, base, noise) - base).mean() < 0.3 * np.abs(pure - base).mean()
    # The difference is a strong texture the network smoothed away: nearly all of it comes back.
    texture = base + np.float32(0.2) * np.sign(np.sin(np.arange(64) / 2.0)).astype(np.float32)[None, :, None]
    back = restore_detail(texture, base, noise)
    assert np.abs(back - texture).mean() < 0.05 * np.abs(texture - base).mean()


def test_the_picture_mean_takes_the_noise_the_shots_show() -> None:
    # Noise blurred a little (as compression or demosaicing correlate it): the blind noise map
    # under-rates the difference of two shots, and the measured unit keeps them in the mean.
    clean = clean_shots(96, 128, ((0, 0),) * 4)
    rng = np.random.default_rng(9)
    shots = []
    for c in clean:
        n = cv2.GaussianBlur(rng.normal(0.0, 40.0, c.shape).astype(np.float32), (0, 0), 0.7)
        shots.append(np.clip(c + n + 0.5, 0, 255).astype(np.uint8))
    frame = rgb_to_frame(shots[0])
    with Denoiser("photo", device="cpu") as d:
        sig = d.single_sigmas(d.estimate_sigmas(frame))
    acc = PictureMean(shots[0], frame, sig)
    for s in shots[1:]:
        acc.add(s)
    assert all(u > 1.2 for u in acc.units), acc.units
    assert acc.count.mean() > 3.7


@pytest.mark.parametrize("size", [(63, 97), (20, 22), (2, 2)])
def test_photo_merge_of_odd_and_tiny_pictures(photo: Denoiser, size: tuple[int, int]) -> None:
    h, w = size
    clean = clean_shots(h, w, ((0, 0), (1, 1), (0, 1), (1, 0)))
    shots = noisy(clean, seed=3)
    merged = merge_pictures(photo, shots[0], iter(aligned_shots(shots)))[0]
    single = denoise_pixels(photo, shots[0])[0]
    assert merged.shape == (h, w, 3) and merged.dtype == np.uint8
    if h * w > 100:
        assert psnr(clean[0], merged) > psnr(clean[0], single) + 3.0     # measured: +5.0, +5.5 dB


@pytest.mark.gpu
def test_photo_merge_on_cuda_matches_the_cpu(photo: Denoiser) -> None:
    shots = noisy(clean_shots(96, 128, SHIFTS[:4]), seed=10)
    others = aligned_shots(shots)
    on_cpu = merge_pictures(photo, shots[0], iter(others))[0]
    with Denoiser("photo", device="cuda") as gpu:
        on_gpu = merge_pictures(gpu, shots[0], iter(others))[0]
    assert psnr(on_cpu, on_gpu) > 40          # fp16 on the GPU, bf16 or fp32 here
