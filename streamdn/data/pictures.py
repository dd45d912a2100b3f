"""Training and validation pictures for the still-image networks (streamdn.models.photo): the
clean scenes of streamdn.data.clips (natural images shipped in PyPI packages, the user's
photographs, procedural textures; rescaled, flipped, rotated, recoloured, darkened, sometimes
with objects pasted on), one frame each, with the training noises of the video networks plus
demosaiced sensor noise (what a raw converter leaves), in full-resolution RGB.

Each batch is a pure function of its step (SeedSequence((PICTURE_KEY, step))), so a resumed run
sees the same data; the validation pictures come from the held-out images only
(streamdn.data.clips.HELD_OUT and the held-out photographs), never trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamdn.data.clips import VAL_KEY, ClipSpec, pack_bgr, photo_pool, random_noise, render_clip, sigma_map
from streamdn.data.images import ImagePool
from streamdn.data.noise import NoiseSpec, add_noise_uint8, parse_noise

PICTURE_KEY = 3
BAYER_SHARE = 0.12   # share of training pictures with demosaiced sensor noise
VAL_PICTURE_NOISES = ("awgn20", "awgn30", "pg_lowlight", "camera_lowlight", "bayer_lowlight")
VAL_PICTURE_SIDE = 384   # the held-out photographs are shrunk to this long side for validation


def picture_noise(rng: np.random.Generator) -> NoiseSpec:
    """A training noise for a still: the video networks' mix (streamdn.data.clips.random_noise)
    or, BAYER_SHARE of the time, linear-light sensor noise on an RGGB mosaic, demosaiced."""
    if rng.random() < BAYER_SHARE:
        return NoiseSpec("bayer", sigma=float(rng.uniform(0.5, 4)),
                         peak=float(math.exp(rng.uniform(math.log(15), math.log(500)))))
    return random_noise(rng)


def picture_tensors(clean_bgr: np.ndarray, noisy_bgr: np.ndarray) -> dict[str, np.ndarray]:
    """Network inputs of one picture: "clean" and "noisy" (3, H, W) RGB float32 in [0, 1] and
    "sigma" (3, H/2, W/2), the blind noise map inference builds (streamdn.data.clips.sigma_map)."""
    packed, planes = pack_bgr(noisy_bgr)
    return {
        "clean": np.ascontiguousarray(clean_bgr[..., ::-1].transpose(2, 0, 1), np.float32) / np.float32(255.0),
        "noisy": np.ascontiguousarray(noisy_bgr[..., ::-1].transpose(2, 0, 1), np.float32) / np.float32(255.0),
        "sigma": np.ascontiguousarray(sigma_map(packed, planes).transpose(2, 0, 1)),
    }


def picture_batch(step: int, batch: int, crop: int, images: Sequence[str | Path] = ()) -> dict[str, np.ndarray]:
    """The batch of training step `step`: "clean", "noisy" (B, 3, crop, crop) and "sigma"
    (B, 3, crop/2, crop/2) float32 arrays.

    Raises:
        ConfigError: an `images` folder that does not exist or holds no training photographs.
    """
    photos = photo_pool(images)
    rng = np.random.default_rng(np.random.SeedSequence((PICTURE_KEY, step)))
    items = []
    for _ in range(batch):
        objects = int(rng.choice([0, 0, 0, 1, 2]))
        clean = render_clip(ClipSpec(frames=1, size=(crop, crop), speed=0.0, objects=objects), rng, photos=photos)[0]
        items.append(picture_tensors(clean, add_noise_uint8(clean, picture_noise(rng), rng)))
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


@dataclass(frozen=True)
class ValPicture:
    """A fixed validation picture: name, clean and noisy (H, W, 3) uint8 RGB, noise label."""

    name: str
    clean: np.ndarray
    noisy: np.ndarray
    noise: str


def validation_pictures(noises: Sequence[str] = VAL_PICTURE_NOISES,
                        images: Sequence[str | Path] = ()) -> list[ValPicture]:
    """The still-image validation set: the held-out natural images shipped with scikit-image
    (coffee, chelsea, at full size) and, when `images` folders are given, their held-out
    photographs shrunk to VAL_PICTURE_SIDE, each with every noise of `noises` (fixed seeds).

    Raises:
        ValueError: a noise name that is not known.
    """
    from streamdn.data.clips import image_pool

    scenes = [(f"natural{i}", img) for i, img in enumerate(image_pool(held_out=True))]
    if images:
        held = ImagePool(images, held_out=True)
        for i in range(len(held)):
            img = held[i]
            s = VAL_PICTURE_SIDE / max(img.shape[:2])
            if s < 1.0:
                img = cv2.resize(img, (max(2, round(img.shape[1] * s)), max(2, round(img.shape[0] * s))),
                                 interpolation=cv2.INTER_AREA)
            scenes.append((f"photo{i}", img))
    out = []
    for noise in noises:
        spec = parse_noise(noise)
        for k, (name, bgr) in enumerate(scenes):
            h, w = bgr.shape[:2]
            bgr = np.ascontiguousarray(bgr[: h - h % 2, : w - w % 2])
            rng = np.random.default_rng(np.random.SeedSequence((VAL_KEY, 5000, k, *noise.encode())))
            noisy = add_noise_uint8(bgr, spec, rng)
            out.append(ValPicture(f"{name}-{noise}", np.ascontiguousarray(bgr[..., ::-1]),
                                  np.ascontiguousarray(noisy[..., ::-1]), noise))
    return out
