"""Training and validation clips for the temporal networks: clean moving scenes (natural images
shipped in PyPI packages, photographs from folders the user gives (streamdn.data.images) and
procedural textures, under a synthetic camera with independently moving objects, occlusions,
lighting changes and scene cuts), with the noise of streamdn.data.noise added in RGB and converted
to YUV 4:2:0 as the real pipeline sees it, packed by streamdn.kernels.

Every clip is a pure function of a seed (and of the photograph folders' contents). Training seeds
come from SeedSequence((TRAIN_KEY, step)) and validation seeds from SeedSequence((VAL_KEY, i)), so
the two never meet; the validation images (HELD_OUT) and the held-out photographs
(streamdn.data.images.is_held_out) are never used for training. See docs/training-data.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import bgr_to_yuv420
from streamdn.kernels import block_noise_stats, estimate_sigma, fit_noise_curve, noise_map, pack_yuv420
from streamdn.data.images import ImagePool
from streamdn.data.noise import NoiseSpec, add_noise_uint8, parse_noise
from streamdn.data.synthetic import MovingScene, SceneConfig, procedural_texture

TRAIN_KEY, VAL_KEY = 1, 2

# Natural images shipped inside PyPI packages (no downloads). Licences, from each package's docs:
# scikit-image data (skimage/data, see skimage.data docstrings): astronaut (NASA, public domain),
# camera, coffee, chelsea, coins, brick, grass, gravel, rocket, motorcycle_left/right (Middlebury
# stereo), hubble_deep_field (NASA/ESA, public domain), retina (CC-BY Hakan Haggstrom), page, text,
# moon, immunohistochemistry, cell, clock_motion, color; scikit-image is BSD-3 and its sample
# images are public domain / CC0 / CC-BY as listed there. matplotlib's grace_hopper.jpg
# (public domain, US Navy photo).
SKIMAGE_IMAGES = ("astronaut.png", "camera.png", "coins.png", "brick.png", "grass.png", "gravel.png",
                  "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
                  "retina.jpg", "page.png", "text.png", "moon.png", "ihc.png", "cell.png", "color.png",
                  "clock_motion.png", "coffee.png", "chelsea.png")
HELD_OUT = ("coffee.png", "chelsea.png")   # validation only
# Share of backgrounds that are procedural textures (streamdn.data.synthetic): 0.25 for the 10k-step
# run, 0.4 from the fine-tuning with the eighth-resolution level (flat colour, hard edges, text).
PROCEDURAL_SHARE = 0.4
# Share of training clips with almost no noise (gaussian sigma 0-2.5), from the same fine-tuning.
NEAR_CLEAN_SHARE = 0.1


def _image_paths() -> list[tuple[str, Path]]:
    paths: list[tuple[str, Path]] = []
    try:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        paths += [(n, root / n) for n in SKIMAGE_IMAGES if (root / n).is_file()]
    except ImportError:
        pass
    try:
        import matplotlib

        hopper = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            paths.append(("grace_hopper.jpg", hopper))
    except ImportError:
        pass
    return paths


@lru_cache(maxsize=1)
def image_pool(held_out: bool = False) -> tuple[np.ndarray, ...]:
    """The natural images as (H, W, 3) uint8 BGR: training images, or the held-out ones."""
    out = []
    for name, path in _image_paths():
        if (name in HELD_OUT) != held_out:
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and min(img.shape[:2]) >= 128:
            out.append(img)
    return tuple(out)


def photo_pool(images: Sequence[str | Path]) -> ImagePool | None:
    """The training photographs of some folders (streamdn.data.images.ImagePool, built once per
    process and list of folders), or None for no folders.

    Raises:
        ConfigError: a folder that does not exist or holds no training photographs.
    """
    return _photo_pool(tuple(str(d) for d in images)) if images else None


@lru_cache(maxsize=2)
def _photo_pool(images: tuple[str, ...]) -> ImagePool:
    return ImagePool(images)


@dataclass(frozen=True)
class ClipSpec:
    """How one clip moves.

    Attributes:
        frames: clip length. size: (height, width) in pixels (even).
        speed: camera speed in pixels/frame (0 = static camera).
        objects: independently moving sprites. cut_at: frame index of a scene cut, or -1.
        light: total gain change over the clip (1 = none).
    """

    frames: int
    size: tuple[int, int]
    speed: float
    objects: int
    cut_at: int = -1
    light: float = 1.0


def _background(rng: np.random.Generator, height: int, width: int, held_out: bool = False,
                photos: ImagePool | None = None) -> np.ndarray:
    """A source picture at least (2*height, 2*width): a natural image (rescaled, flipped,
    rotated, recoloured) or a procedural texture. The natural images are the built-in ones
    followed by `photos`, drawn uniformly; without photos the draws are exactly those of the
    built-in images alone, so existing seeds give the same pictures."""
    pool = image_pool(held_out)
    n = len(pool) + (len(photos) if photos is not None else 0)
    need = (2 * height, 2 * width)
    # The validation clips (held_out) keep the original 0.25 share: the fixed set must not change.
    if n and rng.random() < (0.75 if held_out else 1.0 - PROCEDURAL_SHARE):
        k = int(rng.integers(n))
        img = pool[k] if k < len(pool) else photos[k - len(pool)]  # type: ignore[index]
        # Downscaling cleans the sources' own noise and JPEG artefacts and varies detail size.
        s = rng.uniform(0.5, 1.0)
        s = max(s, need[0] / img.shape[0], need[1] / img.shape[1])
        img = cv2.resize(img, (int(img.shape[1] * s + 1), int(img.shape[0] * s + 1)), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.rot90(img, int(rng.integers(4)))
        if rng.random() < 0.5:
            img = img[..., rng.permutation(3)]
        img = np.ascontiguousarray(img)
        if img.shape[0] < need[0] or img.shape[1] < need[1]:
            img = cv2.resize(img, (max(need[1], img.shape[1]), max(need[0], img.shape[0])))
    else:
        img = procedural_texture(need[0], need[1], rng)
    # Brightness and contrast: dark scenes matter most for low-light noise.
    gain = math.exp(rng.uniform(math.log(0.3), math.log(1.2)))
    return np.clip(img.astype(np.float32) * gain + rng.uniform(-10, 10), 0, 255).astype(np.uint8)


def render_clip(spec: ClipSpec, rng: np.random.Generator, held_out: bool = False,
                photos: ImagePool | None = None) -> np.ndarray:
    """A clean clip: (frames, H, W, 3) uint8 BGR.

    Args:
        spec: size, length and motion. rng: every random draw comes from it.
        held_out: draw natural images from the validation images (HELD_OUT) instead.
        photos: photographs to draw from besides the built-in images (see photo_pool).
    """
    h, w = spec.size
    bg = _background(rng, h, w, held_out, photos)
    sprites = []
    for _ in range(spec.objects):
        r = int(rng.integers(max(6, h // 8), max(8, h // 3)))
        src = _background(rng, r, r, held_out, photos)[: 2 * r, : 2 * r]
        mask = np.zeros((2 * r, 2 * r), np.uint8)
        if rng.random() < 0.5:
            cv2.ellipse(mask, (r, r), (r - 1, int(rng.integers(r // 2, r))), float(rng.uniform(0, 180)), 0, 360, 255, -1,
                        lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(mask, (int(rng.integers(0, r // 2)),) * 2, (2 * r - 1 - int(rng.integers(0, r // 2)),) * 2, 255, -1)
        pos = rng.uniform([0, 0], [w - r, h - r])
        vel = rng.normal(0, 1.2, 2)
        sprites.append((src.astype(np.float32), mask.astype(np.float32)[..., None] / 255.0, pos, vel))
    # Camera: a smooth random walk of velocity around a drift of about `speed` px/frame.
    ang = rng.uniform(0, 2 * math.pi)
    vel = spec.speed * np.array([math.cos(ang), math.sin(ang)])
    rot_rate = rng.normal(0, 0.15) * min(spec.speed, 1.0)      # degrees/frame
    zoom_rate = rng.normal(0, 0.003) * min(spec.speed, 1.0)    # relative/frame
    pos = np.array([bg.shape[1] / 2, bg.shape[0] / 2])
    angle, zoom = 0.0, 1.0
    frames = np.empty((spec.frames, h, w, 3), np.uint8)
    for t in range(spec.frames):
        if t == spec.cut_at:
            bg = _background(rng, h, w, held_out, photos)
            pos = np.array([bg.shape[1] / 2, bg.shape[0] / 2])
        m = cv2.getRotationMatrix2D((float(pos[0]), float(pos[1])), angle, zoom)
        m[:, 2] += np.array([w / 2, h / 2]) - pos
        frame = cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for src, mask, spos, svel in sprites:
            shift = np.float32([[1, 0, spos[0] + svel[0] * t], [0, 1, spos[1] + svel[1] * t]])
            tex = cv2.warpAffine(src, shift, (w, h), flags=cv2.INTER_LINEAR)
            a = cv2.warpAffine(mask, shift, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1 - a) + tex * a
        frame *= 1.0 + (spec.light - 1.0) * t / max(1, spec.frames - 1)
        frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        if spec.speed > 0:
            vel = vel + rng.normal(0, 0.15 * spec.speed, 2)
            pos = pos + vel
            angle += rot_rate
            zoom *= 1.0 + zoom_rate
    return frames


def random_noise(rng: np.random.Generator) -> NoiseSpec:
    """A training noise model: the mix of streamdn.data.noise kinds over a range of strengths."""
    if rng.random() < NEAR_CLEAN_SHARE:
        # Nearly clean input must come out nearly unchanged: the 10k-step model, never shown
        # sigma < 2, blurred clean clips by 4-9 dB (fast on clean validation clips: 31.7-38.6 dB
        # against 35.5-47.4 for the bare 4:2:0 round trip).
        return NoiseSpec("gaussian", sigma=float(rng.uniform(0.0, 2.5)))
    u = rng.random()
    if u < 0.35:
        return NoiseSpec("gaussian", sigma=float(rng.uniform(2, 50)))
    if u < 0.60:
        return NoiseSpec("poisson_gaussian", sigma=float(rng.uniform(0, 6)),
                         peak=float(math.exp(rng.uniform(math.log(10), math.log(500)))))
    if u < 0.65:
        return NoiseSpec("poisson", peak=float(math.exp(rng.uniform(math.log(10), math.log(500)))))
    if u < 0.80:
        return NoiseSpec("camera", sigma=float(rng.uniform(1, 4)), peak=float(math.exp(rng.uniform(math.log(20), math.log(300)))),
                         quality=int(rng.integers(70, 96)))
    if u < 0.90:
        return NoiseSpec("speckle", sigma=float(rng.uniform(5, 30)))
    return NoiseSpec("salt_pepper", sigma=float(rng.uniform(0.5, 8)))


def pack_bgr(bgr: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(H, W, 3) uint8 BGR -> packed (H/2, W/2, 6) float32 in [0, 1] and its Y, U, V planes."""
    y, u, v = bgr_to_yuv420(bgr)
    out = pack_yuv420(y, u, v, 1.0 / 255.0, np.empty(((y.shape[0] + 1) // 2, (y.shape[1] + 1) // 2, 6), np.float32))
    return out, (y, u, v)


def sigma_map(packed: np.ndarray, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """The noise map inference would build for these noisy planes (blind: estimated sigmas and
    the fitted signal-dependent curve, as streamdn.models.network.NetworkModel.pack does).

    Returns (H/2, W/2, 3) float32 in [0, 1] units."""
    sig = np.array([estimate_sigma(p, 255.0) for p in planes], np.float32) / np.float32(255.0)
    y = planes[0]
    h, w = y.shape
    if h >= 32 and w >= 32:
        curve = fit_noise_curve(block_noise_stats(y, 16, np.empty((h // 16, w // 16, 2), np.float32)), 255.0)
    else:
        curve = np.array([1.0, 0.0, 0.0])
    return noise_map(packed, sig, curve, np.empty(packed.shape[:2] + (3,), np.float32))


def noisy_clip(clean: np.ndarray, noise: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) uint8 BGR clean clip -> the same with noise (rounded to uint8 like a video)."""
    return np.stack([add_noise_uint8(f, noise, rng) for f in clean])


def packed_clip(clean: np.ndarray, noisy: np.ndarray) -> dict[str, np.ndarray]:
    """Network tensors of a clip: "noisy" and "clean" (T, 6, H/2, W/2) and "sigma" (T, 3, H/2, W/2),
    float32, [0, 1] units, channels first."""
    out: dict[str, list[np.ndarray]] = {"noisy": [], "clean": [], "sigma": []}
    for c, n in zip(clean, noisy):
        pc, _ = pack_bgr(c)
        pn, planes = pack_bgr(n)
        out["clean"].append(pc.transpose(2, 0, 1))
        out["noisy"].append(pn.transpose(2, 0, 1))
        out["sigma"].append(sigma_map(pn, planes).transpose(2, 0, 1))
    return {k: np.ascontiguousarray(np.stack(v)) for k, v in out.items()}


def curriculum(progress: float) -> tuple[float, int]:
    """(probability of a static camera, clip length) at a point of training (progress in [0, 1]):
    static clips first, so the gate learns to average; moving, longer clips later."""
    if progress < 0.15:
        return 0.6, 4
    if progress < 0.4:
        return 0.3, 6
    return 0.15, 8


def training_batch(step: int, total_steps: int, batch: int, crop: int,
                   images: Sequence[str | Path] = (), frames: int = 0) -> dict[str, np.ndarray]:
    """The batch of training step `step` (a pure function of it and of the photographs in
    `images`, so a resumed run sees the same data): (B, T, C, crop/2, crop/2) arrays "noisy",
    "clean", "sigma".

    Args:
        step, total_steps: this step and the run's length (the curriculum, see curriculum()).
        batch: clips. crop: clip size in pixels (square, even).
        images: folders of photographs to draw backgrounds from besides the built-in images
            (their training side, streamdn.data.images.is_held_out); none: the built-in images
            alone (the same batches as a call without `images`).
        frames: clip length; 0 follows the curriculum. Long clips keep the curriculum's mix of
            static and moving cameras and of moving objects.

    Raises:
        ConfigError: an `images` folder that does not exist or holds no training photographs.
    """
    photos = photo_pool(images)
    rng = np.random.default_rng(np.random.SeedSequence((TRAIN_KEY, step)))
    p_static, length = curriculum(step / max(1, total_steps))
    frames = frames or length
    clips = []
    for _ in range(batch):
        static = rng.random() < p_static
        # Realistic motion: mostly under 1-2 px/frame, sometimes up to 6.
        speed = 0.0 if static else float(min(6.0, rng.exponential(1.0)))
        spec = ClipSpec(frames=frames, size=(crop, crop), speed=speed,
                        objects=int(rng.choice([0, 0, 1, 2, 3])) if not static or rng.random() < 0.3 else 0,
                        cut_at=int(rng.integers(1, frames)) if rng.random() < 0.08 else -1,
                        light=float(rng.uniform(0.8, 1.2)) if rng.random() < 0.2 else 1.0)
        clean = render_clip(spec, rng, photos=photos)
        clips.append(packed_clip(clean, noisy_clip(clean, random_noise(rng), rng)))
    return {k: np.stack([c[k] for c in clips]) for k in clips[0]}


@dataclass(frozen=True)
class ValClip:
    """A fixed validation clip: name, clean (T, H, W, 3) uint8 BGR, noisy likewise, noise label."""

    name: str
    clean: np.ndarray
    noisy: np.ndarray
    noise: str


VAL_NOISES = ("awgn20", "pg_lowlight")
# A validation noise's draws are seeded by its name, never by its position in a request, so a clip
# is the same whichever noises are asked for together. These keep the indices they had as the
# targets report's list (its published figures stay reproducible); any other name is hashed.
_VAL_NOISE_INDEX = {"awgn20": 0, "awgn30": 1, "pg_lowlight": 2, "camera_lowlight": 3, "sp5": 4}


def _val_noise_index(noise: str) -> int:
    """The seed index of a validation noise (stable across runs and requests)."""
    import zlib

    return _VAL_NOISE_INDEX.get(noise, 1000 + zlib.crc32(noise.encode()) % 1_000_000)


def validation_clips(frames: int = 16, size: tuple[int, int] = (192, 320),
                     noises: tuple[str, ...] = VAL_NOISES) -> list[ValClip]:
    """The project's fixed validation set: 4 scenes x each noise, from validation seeds only.

    Scenes: two synthetic MovingScenes (camera motion ~1 px/frame, moving objects) and two
    held-out natural images under a slow camera, one with moving objects.
    """
    h, w = size
    scenes: list[tuple[str, np.ndarray]] = []
    for i, speed in enumerate((0.7, 1.5)):
        sc = MovingScene(SceneConfig(width=w, height=h, speed=speed, objects=2, seed=int(
            np.random.SeedSequence((VAL_KEY, i)).generate_state(1)[0])))
        scenes.append((f"synthetic{i}", np.stack(list(sc.frames(frames)))))
    for i, (speed, objects) in enumerate(((0.5, 0), (1.2, 2))):
        rng = np.random.default_rng(np.random.SeedSequence((VAL_KEY, 100 + i)))
        clip = render_clip(ClipSpec(frames=frames, size=(h, w), speed=speed, objects=objects), rng, held_out=True)
        scenes.append((f"natural{i}", clip))
    out = []
    for noise in noises:
        j = _val_noise_index(noise)
        for k, (name, clean) in enumerate(scenes):
            rng = np.random.default_rng(np.random.SeedSequence((VAL_KEY, 1000 + 10 * j + k)))
            out.append(ValClip(f"{name}-{noise}", clean, noisy_clip(clean, parse_noise(noise), rng), noise))
    return out


LONG_LABEL = "long"


def long_validation_clips(frames: int = 40, size: tuple[int, int] = (192, 320)) -> list[ValClip]:
    """Two long validation shots where only a long temporal average does well: a static and a
    slowly panning (0.4 px/frame, sub-pixel) scene of held-out natural images, Gaussian sigma 20,
    labelled LONG_LABEL. From validation seeds of their own (the fixed set is unchanged)."""
    if frames < 2:
        raise ConfigError(f"long validation clips: frames={frames}; give at least 2.")
    h, w = size
    out = []
    for i, speed in enumerate((0.0, 0.4)):
        rng = np.random.default_rng(np.random.SeedSequence((VAL_KEY, 200 + i)))
        clean = render_clip(ClipSpec(frames=frames, size=(h, w), speed=speed, objects=0), rng, held_out=True)
        rng = np.random.default_rng(np.random.SeedSequence((VAL_KEY, 2000 + i)))
        out.append(ValClip(f"long{i}-awgn20", clean, noisy_clip(clean, parse_noise("awgn20"), rng), LONG_LABEL))
    return out
