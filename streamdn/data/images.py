"""Photographs to train on: finding them in folders, reading them as 8-bit BGR, splitting them
into training and held-out files, and a memory-bounded pool that streamdn.data.clips draws
backgrounds from. scripts/get-training-images.sh builds such a folder from Debian packages."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from streamdn.atomic import temp_path_for
from streamdn.errors import ConfigError, SinkError, SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
# Share of photographs (by file name) kept out of training, for validation only.
HELD_OUT_SHARE = 0.1
# Pool defaults: decoded pixels kept in memory (per process that uses a pool), and the long side
# of an image in memory. The 137 training photographs of scripts/get-training-images.sh take
# 180 MiB at 1024 px, so they all stay decoded.
POOL_BYTES = 256 * 2**20
POOL_SIDE = 1024


def find_images(dirs: Iterable[str | Path]) -> list[Path]:
    """The image files under some folders, recursively, in a fixed order.

    Files ending in .jpg, .jpeg, .png, .webp, .tif or .tiff (any case) count; hidden files and
    folders (name starting with ".") are skipped. A path that is itself an image file is taken
    as is. The result is sorted by path and free of duplicates, so the same folders always give
    the same list.

    Args:
        dirs: folders (or image files).

    Returns:
        The image paths, sorted.

    Raises:
        ConfigError: a path that does not exist, or a file that is not an image.
    """
    found: set[Path] = set()
    for d in dirs:
        root = Path(d).expanduser()
        if root.is_file():
            if root.suffix.lower() not in IMAGE_SUFFIXES:
                raise ConfigError(f"images: {root} is not an image file ({', '.join(IMAGE_SUFFIXES)}); "
                                  f"give a folder of photographs or an image file.")
            found.add(root)
            continue
        if not root.is_dir():
            raise ConfigError(f"images: folder {root} does not exist; give a folder of photographs "
                              f"(scripts/get-training-images.sh builds one).")
        for folder, subdirs, files in os.walk(root):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            found.update(Path(folder) / f for f in files
                         if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
    return sorted(found, key=lambda p: p.as_posix())


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as 8-bit BGR.

    16-bit images are scaled to 8 bits (rounded), float images are taken as [0, 1], grey images
    are repeated into three channels and images with alpha are composited over mid-grey (128).
    The EXIF orientation is not applied (training draws every rotation anyway).

    Returns:
        (H, W, 3) uint8 BGR.

    Raises:
        SourceError: a file that is missing or that OpenCV cannot decode.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SourceError(f"{path}: cannot read this image (missing, unsupported or corrupt); remove it "
                          f"from the folder or convert it to PNG.")
    return to_bgr8(img)


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded image ((H, W) or (H, W, C), C in 1/2/3/4, uint8/uint16/float) -> (H, W, 3)
    uint8 BGR, as read_image describes."""
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.clip(np.nan_to_num(img.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise SourceError(f"image of dtype {img.dtype} is not supported; use 8- or 16-bit images.")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 2:   # grey + alpha
        return _over_grey(cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2BGR), img[..., 1])
    if img.shape[2] == 4:
        return _over_grey(img[..., :3], img[..., 3])
    return np.ascontiguousarray(img[..., :3])


def _over_grey(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 composited with (H, W) uint8 alpha over a flat 128 background."""
    if alpha.min() == 255:
        return np.ascontiguousarray(bgr)
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.clip(bgr.astype(np.float32) * a + 128.0 * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscales (INTER_AREA, which also averages away the source's own noise and compression
    artefacts) so the long side is at most `max_side` pixels; smaller images are returned as is."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def write_training_copy(src: str | Path, dst: str | Path, max_side: int = 1536) -> tuple[int, int]:
    """Reads an image, downscales it to at most `max_side` pixels on its long side and writes it
    as 8-bit BGR PNG, atomically (scripts/get-training-images.sh uses this).

    Returns:
        The (height, width) written.

    Raises:
        SourceError: `src` cannot be read. SinkError: `dst` cannot be written.
    """
    img = shrink(read_image(src), max_side)
    tmp = temp_path_for(dst)
    try:
        if not cv2.imwrite(tmp, img):
            raise SinkError(f"{dst}: cannot write the PNG; check the folder is writable and has space.")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return img.shape[0], img.shape[1]


def is_held_out(path: str | Path, share: float = HELD_OUT_SHARE) -> bool:
    """Whether a photograph is kept for validation: a hash of its file name (not its folder, so
    a moved or copied folder splits the same way) falls in the first `share` of the range."""
    digest = hashlib.sha256(Path(path).name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < share * 2.0 ** 64


def split_images(paths: Sequence[Path], share: float = HELD_OUT_SHARE) -> tuple[list[Path], list[Path]]:
    """(training paths, held-out paths), each in the given order; see is_held_out."""
    held = [is_held_out(p, share) for p in paths]
    return [p for p, h in zip(paths, held) if not h], [p for p, h in zip(paths, held) if h]


class ImagePool:
    """Photographs that training draws from: one side of the split of some folders, each decoded
    on first use at most `max_side` pixels on its long side and kept while the decoded images
    take at most `max_bytes` (the least recently used go first; the last one read always stays).
    An index always gives the same pixels, whatever the cache holds, so clips drawn from the pool
    stay a pure function of their seed.

    Memory: at most max_bytes of pixels (256 MiB by default) plus one image, per process that
    uses the pool (each data-loading worker has its own).
    """

    def __init__(self, dirs: Iterable[str | Path], held_out: bool = False, max_bytes: int = POOL_BYTES,
                 max_side: int = POOL_SIDE, share: float = HELD_OUT_SHARE) -> None:
        """Lists the images (nothing is decoded yet).

        Args:
            dirs: folders of photographs (see find_images).
            held_out: the held-out side of the split instead of the training side.
            max_bytes: decoded pixels kept in memory. max_side: long side in memory (px, >= 16).
            share: held-out share (see is_held_out).

        Raises:
            ConfigError: a missing folder, no images on this side of the split, or bad limits.
        """
        if max_bytes < 0 or max_side < 16:
            raise ConfigError(f"ImagePool: max_bytes={max_bytes} must be >= 0 and max_side={max_side} >= 16.")
        self.dirs = tuple(str(d) for d in dirs)
        train, held = split_images(find_images(self.dirs), share)
        self.paths: tuple[Path, ...] = tuple(held if held_out else train)
        if not self.paths:
            side = "held-out" if held_out else "training"
            raise ConfigError(f"images: no {side} photographs in {', '.join(self.dirs) or '(no folders)'} "
                              f"(looked for {', '.join(IMAGE_SUFFIXES)}); give folders with more photographs.")
        self.max_bytes = max_bytes
        self.max_side = max_side
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        """Image `index` as (H, W, 3) uint8 BGR, long side at most max_side (read-only view)."""
        img = self._cache.get(index)
        if img is None:
            img = shrink(read_image(self.paths[index]), self.max_side)
            img.setflags(write=False)
            self._cache[index] = img
            self._bytes += img.nbytes
            while self._bytes > self.max_bytes and len(self._cache) > 1:
                self._bytes -= self._cache.popitem(last=False)[1].nbytes
        else:
            self._cache.move_to_end(index)
        return img

    def nbytes(self) -> int:
        """Bytes of decoded pixels held now."""
        return self._bytes
