"""Photographs and raw files: format round trips with their metadata, 16-bit precision, the
denoising itself, tiling, and the errors for damaged, unsupported and existing files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdn import Denoiser
from streamdn.errors import ConfigError, SinkError, SourceError
from streamdn.jobs.still import denoise_pixels, denoise_still, frame_to_rgb, rgb_to_frame
from streamdn.io.stills import Still, read_still, write_still

from stills_helpers import noisy_scene, write_dng

Image = pytest.importorskip("PIL.Image")
ImageCms = pytest.importorskip("PIL.ImageCms")
tifffile = pytest.importorskip("tifffile")

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/></rdf:RDF>'
       b'</x:xmpmeta>')


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    maxv = 255.0 if a.dtype == np.uint8 else 65535.0
    return float(10 * np.log10(maxv ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def dn() -> Iterator[Denoiser]:
    with Denoiser("default", device="cpu") as d:
        yield d


@pytest.fixture(scope="module")
def icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def exif_block(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "TestMake"
    ex[0x8769] = {0x829A: 0.01}   # ExposureTime in the EXIF sub-IFD
    return ex.tobytes()


def no_leftovers(folder: Path, keep: set[str]) -> bool:
    return {p.name for p in folder.iterdir()} == keep


def test_conversion_keeps_16_bit_precision() -> None:
    grey = np.repeat(np.linspace(1000, 60000, 96 * 64).reshape(64, 96, 1), 3, axis=2).astype(np.uint16)
    back = frame_to_rgb(rgb_to_frame(grey), np.uint16)
    assert back.dtype == np.uint16
    assert np.abs(back.astype(int) - grey).max() <= 2   # neutral: no chroma loss, 16-bit steps


def test_jpeg_keeps_orientation_icc_exif_and_xmp(tmp_path: Path, dn: Denoiser, icc: bytes) -> None:
    _, noisy = noisy_scene(64, 96, 15)
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    Image.fromarray(noisy).save(src, quality=95, exif=exif_block(6), icc_profile=icc, xmp=XMP)
    res = denoise_still(src, dst, denoiser=dn)
    assert (res.width, res.height, res.bit_depth) == (96, 64, 8)
    with Image.open(dst) as im:
        assert im.size == (96, 64)                 # pixels as stored: not turned
        ex = im.getexif()
        assert ex[0x0112] == 6 and ex[0x010F] == "TestMake"
        assert ex.get_ifd(0x8769)[0x829A] == pytest.approx(0.01)
        assert im.info["icc_profile"] == icc
        assert b"dc:format" in im.info["xmp"]


def test_png_16_bit_stays_16_bit_and_gets_cleaner(tmp_path: Path, dn: Denoiser, icc: bytes) -> None:
    clean, noisy = noisy_scene(96, 128, 20, np.uint16)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    write_still(Still(noisy, icc_profile=icc, exif=exif_block(3), xmp=XMP), src)
    assert read_still(src).rgb.tolist() == noisy.tolist()          # the writer is lossless
    res = denoise_still(src, dst, denoiser=dn)
    out = read_still(dst)
    assert res.bit_depth == 16 and out.rgb.dtype == np.uint16
    assert len(np.unique(out.rgb)) > 256
    assert psnr(clean, out.rgb) > psnr(clean, noisy) + 3
    assert out.icc_profile == icc and out.orientation == 3 and out.xmp == XMP
    with Image.open(dst) as im:                                     # other readers see the chunks
        assert im.info["icc_profile"] == icc and im.getexif()[0x0112] == 3


def test_tiff_16_bit_round_trip(tmp_path: Path, dn: Denoiser, icc: bytes) -> None:
    clean, noisy = noisy_scene(80, 112, 20, np.uint16, seed=1)
    src, dst = tmp_path / "in.tif", tmp_path / "out.tiff"
    tifffile.imwrite(src, noisy, photometric="rgb", iccprofile=icc, extratags=[(274, 3, 1, 8, True)])
    res = denoise_still(src, dst, denoiser=dn)
    with tifffile.TiffFile(dst) as tf:
        page = tf.pages[0]
        out = page.asarray()
        assert page.tags[34675].value == icc and page.tags[274].value == 8
    assert res.bit_depth == 16 and out.dtype == np.uint16 and out.shape == noisy.shape
    assert len(np.unique(out)) > 256
    assert psnr(clean, out) > psnr(clean, noisy) + 3


def test_webp_and_8_bit_tiff(tmp_path: Path, dn: Denoiser, icc: bytes) -> None:
    clean, noisy = noisy_scene(64, 80, 20, seed=2)
    src = tmp_path / "in.webp"
    Image.fromarray(noisy).save(src, lossless=True, icc_profile=icc, exif=exif_block(1))
    denoise_still(src, tmp_path / "out.webp", denoiser=dn)
    denoise_still(src, tmp_path / "out.tif", denoiser=dn)
    with Image.open(tmp_path / "out.webp") as im:
        assert im.format == "WEBP" and im.size == (80, 64) and im.info["icc_profile"] == icc
    tif = read_still(tmp_path / "out.tif")
    assert tif.rgb.dtype == np.uint8 and tif.icc_profile == icc
    assert psnr(clean, tif.rgb) > psnr(clean, noisy) + 3


def test_grey_with_alpha_stays_grey_and_keeps_alpha(tmp_path: Path, dn: Denoiser) -> None:
    _, noisy = noisy_scene(48, 64, 10, seed=3)
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    src = tmp_path / "in.png"
    Image.fromarray(np.dstack([noisy[..., 1], alpha]), "LA").save(src)
    denoise_still(src, tmp_path / "out.png", denoiser=dn)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "LA"
        assert np.asarray(im)[..., 1].tolist() == alpha.tolist()


def test_sixteen_bit_to_jpeg_warns_once(tmp_path: Path, dn: Denoiser, capsys: pytest.CaptureFixture[str]) -> None:
    _, noisy = noisy_scene(32, 48, 10, np.uint16)
    write_still(Still(noisy), tmp_path / "in.png")
    capsys.readouterr()
    denoise_still(tmp_path / "in.png", tmp_path / "out.jpg", denoiser=dn)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rounded to 8 bits" in err[0]
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB"


def test_tiles_match_one_piece(dn: Denoiser) -> None:
    _, noisy = noisy_scene(200, 300, 15, seed=4)
    whole, sig1, n1 = denoise_pixels(dn, noisy)
    tiled, sig2, n2 = denoise_pixels(dn, noisy, tile=128)
    assert (n1, n2) == (1, 6) and sig1 == sig2
    assert np.abs(whole.astype(int) - tiled).mean() < 0.5


def test_strength_number_is_used(tmp_path: Path, dn: Denoiser) -> None:
    _, noisy = noisy_scene(32, 32, 10)
    Image.fromarray(noisy).save(tmp_path / "in.png")
    res = denoise_still(tmp_path / "in.png", tmp_path / "out.png", model="tfilter", strength=12)
    assert res.sigmas[0] == pytest.approx(12 * 0.574, abs=0.01)


def test_damaged_and_unsupported_inputs(tmp_path: Path, dn: Denoiser) -> None:
    _, noisy = noisy_scene(64, 64, 10)
    Image.fromarray(noisy).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    before = {p.name for p in tmp_path.iterdir()}
    with pytest.raises(SourceError, match=r"cut\.jpg' could not be read as JPEG .*damaged"):
        denoise_still(tmp_path / "cut.jpg", tmp_path / "a.png", denoiser=dn)
    with pytest.raises(SourceError, match=r"noise\.png' is not a PNG file"):
        denoise_still(tmp_path / "noise.png", tmp_path / "b.png", denoiser=dn)
    with pytest.raises(SourceError, match=r"'\.gif' is not a picture format streamdn reads"):
        denoise_still(tmp_path / "clip.gif", tmp_path / "c.png", denoiser=dn)
    with pytest.raises(ConfigError, match=r"cannot write a picture as '\.bmp'"):
        denoise_still(tmp_path / "full.jpg", tmp_path / "d.bmp", denoiser=dn)
    with pytest.raises(SourceError, match="does not exist"):
        denoise_still(tmp_path / "missing.jpg", tmp_path / "e.png", denoiser=dn)
    assert no_leftovers(tmp_path, before)


def test_existing_output_and_input_as_output(tmp_path: Path, dn: Denoiser) -> None:
    _, noisy = noisy_scene(32, 32, 10)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(noisy).save(src)
    dst.write_bytes(b"keep me")
    with pytest.raises(SinkError, match="already exists.*overwrite"):
        denoise_still(src, dst, denoiser=dn)
    assert dst.read_bytes() == b"keep me"
    with pytest.raises(SinkError, match="is the input"):
        denoise_still(src, src, denoiser=dn, overwrite=True)
    denoise_still(src, dst, denoiser=dn, overwrite=True)
    assert cv2.imread(str(dst)).shape == (32, 32, 3)
    assert no_leftovers(tmp_path, {"in.png", "out.png"})


def test_raw_dng_is_developed_and_denoised(tmp_path: Path, dn: Denoiser) -> None:
    pytest.importorskip("rawpy")
    ref = read_still(write_dng(tmp_path / "clean.dng"))
    assert ref.rgb.dtype == np.uint16 and ref.rgb.shape == (128, 160, 3) and ref.icc_profile
    disc = ref.rgb[55:75, 45:65].reshape(-1, 3).mean(0)      # the yellow disc of the scene
    assert disc[0] > disc[1] > disc[2]
    src = write_dng(tmp_path / "noisy.dng", noise=0.08, seed=5)
    noisy = read_still(src).rgb
    res = denoise_still(src, tmp_path / "out.tif", denoiser=dn)
    out = tifffile.imread(tmp_path / "out.tif")
    assert res.bit_depth == 16 and out.dtype == np.uint16 and out.shape == (128, 160, 3)
    assert psnr(ref.rgb, out) > psnr(ref.rgb, noisy) + 2
    with Image.open(tmp_path / "out.tif") as im:
        assert im.getexif()[0x010F] == "streamdn"          # Make travels from the DNG


def test_damaged_raw_file(tmp_path: Path, dn: Denoiser) -> None:
    pytest.importorskip("rawpy")
    (tmp_path / "bad.nef").write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(SourceError, match=r"bad\.nef' could not be decoded as a camera raw file"):
        denoise_still(tmp_path / "bad.nef", tmp_path / "out.tif", denoiser=dn)
    assert not (tmp_path / "out.tif").exists()


# -- EXIF directories through every format -------------------------------------------------------

Rational = pytest.importorskip("PIL.TiffImagePlugin").IFDRational


def camera_exif(maker_note: bool = True) -> bytes:
    """What a camera writes: main tags, an EXIF IFD (exposure, ISO, aperture, lens, with an
    interoperability IFD and a maker note) and a GPS IFD."""
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010F] = "TestMake"
    ex[0x0131] = "Camera firmware 1.2"
    exif_ifd = {0x829A: Rational(1, 250), 0x8827: 800, 0x829D: Rational(28, 10), 0xA434: "TestLens 50mm F1.8",
                0xA432: (Rational(50, 1), Rational(50, 1), Rational(18, 10), Rational(18, 10)),
                0x9003: "2024:05:06 07:08:09", 0xA005: {0x0001: "R98"}}
    if maker_note:
        exif_ifd[0x927C] = b"PRIVATE\x00" + bytes(range(40))
    ex[0x8769] = exif_ifd
    ex[0x8825] = {0x0001: "N", 0x0002: (Rational(51, 1), Rational(30, 1), Rational(1234, 100))}
    return ex.tobytes()


def assert_camera_exif(path: Path, *, maker_note: bool) -> None:
    """The EXIF of `path` (read by Pillow) holds everything camera_exif wrote."""
    with Image.open(path) as im:
        ex = im.getexif()
        assert ex[0x0112] == 6 and ex[0x010F] == "TestMake" and ex[0x0131] == "Camera firmware 1.2"
        sub = ex.get_ifd(0x8769)
        assert sub[0x829A] == pytest.approx(1 / 250) and sub[0x8827] == 800 and sub[0x829D] == pytest.approx(2.8)
        assert sub[0xA434] == "TestLens 50mm F1.8" and sub[0x9003] == "2024:05:06 07:08:09"
        assert [float(v) for v in sub[0xA432]] == pytest.approx([50, 50, 1.8, 1.8])
        assert ex.get_ifd(0xA005).get(0x0001) == "R98"
        assert (0x927C in sub) == maker_note
        gps = ex.get_ifd(0x8825)
        assert gps[0x0001] == "N" and [float(v) for v in gps[0x0002]] == pytest.approx([51, 30, 12.34])


def test_exif_directories_survive_jpeg_png_webp_unchanged(tmp_path: Path) -> None:
    """JPEG, PNG (8 and 16 bits) and WebP carry the EXIF block byte for byte, maker note and all."""
    _, noisy = noisy_scene(32, 48, 10)
    Image.fromarray(noisy).save(tmp_path / "in.jpg", quality=95, exif=camera_exif())
    still = read_still(tmp_path / "in.jpg")
    for name, pic in (("out.jpg", still), ("out.png", still), ("out.webp", still),
                      ("out16.png", still.with_rgb(still.rgb.astype(np.uint16) * 257))):
        write_still(pic, tmp_path / name)
        assert_camera_exif(tmp_path / name, maker_note=True)
        assert read_still(tmp_path / name).exif == still.exif


@pytest.mark.parametrize("depth", [8, 16])
def test_tiff_keeps_the_exif_gps_and_interop_directories(tmp_path: Path, depth: int) -> None:
    """JPEG -> TIFF -> TIFF -> JPEG: exposure, ISO, lens, GPS and interop survive every step (the
    maker note, which breaks when moved, is left out of TIFF); other readers see them too."""
    _, noisy = noisy_scene(32, 48, 10, np.uint8 if depth == 8 else np.uint16)
    src = Still(noisy, exif=camera_exif(), source="JPEG")
    write_still(src, tmp_path / "a.tif")
    assert_camera_exif(tmp_path / "a.tif", maker_note=False)
    with tifffile.TiffFile(tmp_path / "a.tif") as tf:          # an independent reader of TIFF
        page = tf.pages[0]
        assert page.asarray().tolist() == noisy.tolist()
        exif = page.tags["ExifTag"].value
        assert exif["ExposureTime"] == (1, 250) and exif["ISOSpeedRatings"] == 800
        assert page.tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        assert page.tags["Software"].value == "Camera firmware 1.2"   # not tifffile's own name
    again = read_still(tmp_path / "a.tif")
    write_still(again, tmp_path / "b.tif")
    assert_camera_exif(tmp_path / "b.tif", maker_note=False)
    write_still(read_still(tmp_path / "b.tif"), tmp_path / "c.jpg")
    assert_camera_exif(tmp_path / "c.jpg", maker_note=False)


def test_tiff_without_exif_names_no_software(tmp_path: Path) -> None:
    _, noisy = noisy_scene(16, 16, 10)
    write_still(Still(noisy), tmp_path / "a.tif")
    with tifffile.TiffFile(tmp_path / "a.tif") as tf:
        assert "Software" not in tf.pages[0].tags and "ExifTag" not in tf.pages[0].tags


def test_exif_directories_of_tiffs_from_other_writers(tmp_path: Path) -> None:
    """A big-endian TIFF and one written by Pillow (whose interop pointer is stale): the EXIF
    directories are read, a broken one is left out, the pixels are denoised regardless."""
    _, noisy = noisy_scene(32, 48, 10)
    Image.fromarray(noisy).save(tmp_path / "pil.tif", exif=camera_exif(maker_note=False))
    tifffile.imwrite(tmp_path / "be.tif", noisy, photometric="rgb", byteorder=">")
    from streamdn.io.stills import _add_tiff_ifds

    _add_tiff_ifds(str(tmp_path / "be.tif"), {0x8769: {0x829A: Rational(1, 60), 0x8827: 3200}})
    for name, exposure, iso in (("pil.tif", 1 / 250, 800), ("be.tif", 1 / 60, 3200)):
        still = read_still(tmp_path / name)
        assert still.rgb.tolist() == noisy.tolist()
        write_still(still, tmp_path / f"out-{name}")
        with Image.open(tmp_path / f"out-{name}") as im:
            sub = im.getexif().get_ifd(0x8769)
            assert sub[0x829A] == pytest.approx(exposure) and sub[0x8827] == iso


def test_raw_exif_directory_reaches_the_tiff(tmp_path: Path, dn: Denoiser) -> None:
    pytest.importorskip("rawpy")
    from streamdn.io.stills import _add_tiff_ifds

    src = write_dng(tmp_path / "in.dng", 64, 80, noise=0.05)
    _add_tiff_ifds(str(src), {0x8769: {0x829A: Rational(1, 30), 0x8827: 6400, 0x927C: b"private"}})
    denoise_still(src, tmp_path / "out.tif", denoiser=dn)
    with Image.open(tmp_path / "out.tif") as im:
        ex = im.getexif()
        sub = ex.get_ifd(0x8769)
        assert ex[0x010F] == "streamdn" and ex.get(0x0112, 1) == 1
        assert sub[0x829A] == pytest.approx(1 / 30) and sub[0x8827] == 6400 and 0x927C not in sub
