"""Photographs for training: finding and reading them, the held-out split, the memory-bounded
pool, and clips drawn with and without a photograph folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdn.data import clips
from streamdn.data.clips import ClipSpec, render_clip, training_batch, validation_clips
from streamdn.data.images import (ImagePool, find_images, is_held_out, read_image, split_images,
                                  write_training_copy)
from streamdn.errors import ConfigError, SourceError


def _gradient(h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 BGR with detail (so a JPEG of it is not flat)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(1, w - 1)), (y * 255 // max(1, h - 1)), ((x ^ y) & 255)], -1).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of small images in every supported flavour, plus files that are not images."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / ".hidden").mkdir()
    cv2.imwrite(str(d / "colour.png"), _gradient(80, 120))
    cv2.imwrite(str(d / "sub" / "photo.JPG"), _gradient(96, 64))
    cv2.imwrite(str(d / "deep16.png"), (_gradient(64, 64).astype(np.uint16) * 257))
    cv2.imwrite(str(d / "grey.png"), _gradient(70, 90)[..., 0])
    rgba = np.dstack([_gradient(64, 80), np.full((64, 80), 255, np.uint8)])
    rgba[:, :40, 3] = 0
    cv2.imwrite(str(d / "alpha.png"), rgba)
    cv2.imwrite(str(d / "sub" / "scan.tif"), _gradient(64, 64))
    cv2.imwrite(str(d / ".hidden" / "skip.png"), _gradient(64, 64))
    cv2.imwrite(str(d / ".skip.png"), _gradient(64, 64))
    (d / "SOURCES.tsv").write_text("file\tpackage\n")
    (d / "notes.txt").write_text("not an image")
    return d


def test_find_images_is_recursive_sorted_and_skips_the_rest(photo_dir: Path) -> None:
    found = find_images([photo_dir])
    assert [p.relative_to(photo_dir).as_posix() for p in found] == [
        "alpha.png", "colour.png", "deep16.png", "grey.png", "sub/photo.JPG", "sub/scan.tif"]
    # The same folder twice, or a file inside it, adds nothing; a file alone is taken as is.
    assert find_images([photo_dir, photo_dir / "grey.png", photo_dir]) == found
    assert find_images([photo_dir / "grey.png"]) == [photo_dir / "grey.png"]
    with pytest.raises(ConfigError, match="does not exist"):
        find_images([photo_dir / "missing"])
    with pytest.raises(ConfigError, match="not an image"):
        find_images([photo_dir / "notes.txt"])


def test_read_image_gives_8bit_bgr_for_every_flavour(photo_dir: Path) -> None:
    ref = _gradient(64, 64)
    for path in find_images([photo_dir]):
        img = read_image(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, path.name
    np.testing.assert_array_equal(read_image(photo_dir / "deep16.png"), ref)   # x*257 -> x exactly
    grey = read_image(photo_dir / "grey.png")
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    np.testing.assert_array_equal(grey[..., 0], _gradient(70, 90)[..., 0])
    alpha = read_image(photo_dir / "alpha.png")
    assert (alpha[:, :40] == 128).all()                                        # transparent: mid-grey
    np.testing.assert_array_equal(alpha[:, 40:], _gradient(64, 80)[:, 40:])   # opaque: unchanged
    (photo_dir / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="broken.png"):
        read_image(photo_dir / "broken.png")


def test_write_training_copy_downscales_to_an_8bit_png(tmp_path: Path) -> None:
    src = tmp_path / "big.png"
    cv2.imwrite(str(src), (_gradient(300, 500).astype(np.uint16) * 257))
    assert write_training_copy(src, tmp_path / "out.png", max_side=100) == (60, 100)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (60, 100, 3) and out.dtype == np.uint8
    assert write_training_copy(tmp_path / "out.png", tmp_path / "same.png", max_side=1000) == (60, 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "out.png", "same.png"]   # no temporaries


def test_split_is_by_file_name_deterministic_and_disjoint(tmp_path: Path) -> None:
    names = [f"img{i:03d}.jpg" for i in range(400)]
    paths = [tmp_path / "a" / n for n in names]
    train, held = split_images(paths)
    assert (train, held) == split_images(list(paths))
    assert not set(train) & set(held) and len(train) + len(held) == len(paths)
    assert 0.05 < len(held) / len(paths) < 0.15                                # HELD_OUT_SHARE = 0.1
    # The folder does not matter, only the name: a copied folder splits the same way.
    assert [is_held_out(tmp_path / "elsewhere" / n) for n in names] == [p in held for p in paths]
    assert split_images(paths, share=0.0) == (paths, []) and split_images(paths, share=1.0) == ([], paths)


def test_pool_sides_are_disjoint_and_memory_is_bounded(tmp_path: Path) -> None:
    d = tmp_path / "many"
    d.mkdir()
    for i in range(40):
        cv2.imwrite(str(d / f"p{i:02d}.png"), np.roll(_gradient(60, 90), 7 * i, axis=1))
    train, held = ImagePool([d]), ImagePool([d], held_out=True)
    assert train.paths and held.paths and not set(train.paths) & set(held.paths)
    assert len(train) + len(held) == 40
    one = 60 * 90 * 3
    small = ImagePool([d], max_bytes=3 * one)
    first = small[0].copy()
    for i in range(len(small)):
        assert small[i].shape == (60, 90, 3)
        assert small.nbytes() <= 3 * one
    np.testing.assert_array_equal(small[0], first)     # decoded again after eviction: same pixels
    assert ImagePool([d], max_side=45)[0].shape == (30, 45, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no training photographs"):
        ImagePool([empty])


class _Spy:
    """A stand-in photo pool that counts how often it is drawn from."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images, self.draws = images, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        self.draws += 1
        return self.images[i]


def test_clips_draw_from_the_photographs(photo_dir: Path) -> None:
    pool = ImagePool([photo_dir], share=0.0)
    spec = ClipSpec(frames=3, size=(32, 48), speed=1.0, objects=2)
    a = render_clip(spec, np.random.default_rng(0), photos=pool)
    assert a.shape == (3, 32, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render_clip(spec, np.random.default_rng(0), photos=pool))
    spy = _Spy([_gradient(200, 300)] * 200)   # 200 photographs against ~20 built-in images
    for seed in range(5):
        render_clip(spec, np.random.default_rng(seed), photos=spy)
    assert spy.draws > 0

    batch = training_batch(3, 100, 2, 32, images=[str(photo_dir)])
    assert batch["noisy"].shape == (2, 4, 6, 16, 16) and batch["sigma"].shape == (2, 4, 3, 16, 16)
    assert all(v.dtype == np.float32 for v in batch.values())
    again = training_batch(3, 100, 2, 32, images=[str(photo_dir)])
    for k in batch:
        np.testing.assert_array_equal(batch[k], again[k])
    with pytest.raises(ConfigError, match="does not exist"):
        training_batch(3, 100, 2, 32, images=[str(photo_dir / "missing")])
    assert clips.photo_pool([]) is None


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def test_without_photographs_the_data_are_unchanged() -> None:
    """Digests of fixed-seed data, recorded before photographs could be added: training batches,
    clips and the validation set must stay bit for bit the same when no folder is given. (They
    depend on the built-in images of scikit-image and matplotlib, and on OpenCV and the kernels:
    a change there changes them too.)"""
    b = training_batch(3, 100, 2, 32)
    assert _digest(*[b[k] for k in sorted(b)]) == "08341ef753432447"
    b = training_batch(3, 100, 2, 32, images=())
    assert _digest(*[b[k] for k in sorted(b)]) == "08341ef753432447"
    clip = render_clip(ClipSpec(frames=3, size=(32, 48), speed=1.0, objects=2), np.random.default_rng(5))
    assert _digest(clip) == "c363510a4ca4b9c2"
    val = validation_clips(frames=4, size=(64, 96))
    assert _digest(*[c.clean for c in val], *[c.noisy for c in val]) == "c0f4ea291197a1ba"
