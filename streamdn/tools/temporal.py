"""How well a denoiser uses time: Gaussian noise added afresh to every frame of a static shot
and of slow sub-pixel pans over held-out natural pictures, and the RGB PSNR of the output frame
by frame, beside the plain mean of the noisy frames so far (what a perfect temporal average of a
static shot reaches). A recursion that keeps averaging climbs for as long as the shot lasts;
one that gives up flattens after a few frames; one that cannot follow motion falls on pans.

The shots are 4:2:0 by default, as every decoded video is: the clean frames are the pictures'
colours through a 4:2:0 round trip, so a denoiser (which works on 4:2:0 planes) and the plain
mean are scored against what the video holds, shown as streamdn shows every output (chroma
fitted to the luma, streamdn.frames.yuv420_to_bgr). With full (4:4:4) chroma the round trip alone
caps any 4:2:0 output (43.3 dB RGB PSNR on coffee, 46.8 on chelsea; 37.1 and 42.8 through
OpenCV's I420 conversion, which the shots used before) and the table shows that ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import bgr_to_yuv420, yuv420_to_bgr
from streamdn.metrics import psnr

# Held-out pictures of streamdn.data.clips (never trained on): (file in skimage/data, width, height).
SCENES = (("chelsea.png", 320, 240), ("coffee.png", 576, 384))
SUPERSAMPLE = 4   # pans move in steps of 1 / SUPERSAMPLE px: rendered at 4x, area-averaged down
TRAIL = 8         # frames of uncovered background scored as an object's trail


@dataclass(frozen=True)
class TemporalConfig:
    """What to measure.

    Attributes:
        models: registry names or weight files to run through a fresh Denoiser each.
        speeds: camera pans in pixels per frame (0 = a static shot); the pan also moves down
            by 0.3 of that.
        frames: frames per shot. sigma: Gaussian noise sigma on RGB, 8-bit units.
        strength: the Denoiser's strength ("auto": blind).
        scenes: (picture in scikit-image's data folder, width, height).
        seed: noise seed.
        chroma: "420" (the clean shot as a decoded video holds it) or "444" (the pictures' full
            chroma; adds the 4:2:0 round trip's ceiling to the table).
        objects: speeds (px/frame) of an object crossing each static scene, one shot each: the
            whole frame's PSNR, and the PSNR of its trail (the background the object uncovered in
            the last TRAIL frames), where a recursion that trusts the past too long leaves a
            ghost.
    """

    models: tuple[str, ...] = ("fast", "tfilter")
    speeds: tuple[float, ...] = (0.0, 0.5, 1.0, 2.5)
    frames: int = 40
    sigma: float = 20.0
    strength: str = "auto"
    scenes: tuple[tuple[str, int, int], ...] = SCENES
    seed: int = 0
    chroma: str = "420"
    objects: tuple[float, ...] = (2.0,)


@dataclass
class Curve:
    """RGB PSNR (dB) of every output frame of one method on one shot."""

    scene: str
    speed: float
    method: str
    psnr: list[float] = field(default_factory=list)


def _picture(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError as err:
        raise ConfigError("the temporal report needs scikit-image's sample pictures: pip install "
                          "'streamdn[eval]'.") from err
    path = Path(skimage.data.__file__).parent / name
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ConfigError(f"scene '{name}' is not a picture in scikit-image's data folder ({path}).")
    return img


def pan_clip(picture: np.ndarray, width: int, height: int, speed: float, frames: int) -> np.ndarray:
    """A clean shot panning over `picture`: (frames, height, width, 3) uint8 BGR. Frame t shows
    the window moved by (speed * t, 0.3 * speed * t) pixels, rendered at SUPERSAMPLE times the
    size and area-averaged down, so sub-pixel moves are real (no interpolation blur)."""
    up = SUPERSAMPLE
    margin = 4
    need_w = width + int(np.ceil(speed * frames)) + 2 * margin
    need_h = height + int(np.ceil(0.3 * speed * frames)) + 2 * margin
    scale = max(need_w / picture.shape[1], need_h / picture.shape[0], 1.0)
    big = cv2.resize(picture, None, fx=scale * up, fy=scale * up, interpolation=cv2.INTER_CUBIC)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        dx, dy = int(round(speed * t * up)), int(round(0.3 * speed * t * up))
        y0, x0 = margin * up + dy, margin * up + dx
        crop = big[y0:y0 + height * up, x0:x0 + width * up]
        out[t] = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return out


def object_clip(background: np.ndarray, texture: np.ndarray, width: int, height: int, speed: float,
                frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A static shot of `background` crossed left to right by a disc of `texture` moving `speed`
    px/frame (sub-pixel moves rendered as in pan_clip). Returns the clean frames (frames, height,
    width, 3) uint8 BGR and the object's coverage (frames, height, width) float32 in [0, 1]."""
    up = SUPERSAMPLE
    bg = cv2.resize(pan_clip(background, width, height, 0.0, 1)[0], None, fx=up, fy=up,
                    interpolation=cv2.INTER_CUBIC).astype(np.float32)
    r = height // 4
    tex = cv2.resize(texture, (2 * r * up, 2 * r * up), interpolation=cv2.INTER_AREA).astype(np.float32)
    disc = np.zeros((2 * r * up, 2 * r * up), np.float32)
    cv2.circle(disc, (r * up, r * up), r * up - 1, 1.0, -1, lineType=cv2.LINE_AA)
    out = np.empty((frames, height, width, 3), np.uint8)
    cover = np.empty((frames, height, width), np.float32)
    y0 = (height // 2 - r) * up
    for t in range(frames):
        canvas, mask = bg.copy(), np.zeros(bg.shape[:2], np.float32)
        x0 = int(round((width // 8 + speed * t) * up))
        x1 = min(x0 + 2 * r * up, canvas.shape[1])
        if x1 > x0:
            m = disc[:, : x1 - x0, None]
            canvas[y0:y0 + 2 * r * up, x0:x1] = canvas[y0:y0 + 2 * r * up, x0:x1] * (1 - m) + tex[:, : x1 - x0] * m
            mask[y0:y0 + 2 * r * up, x0:x1] = m[..., 0]
        out[t] = np.clip(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA) + 0.5, 0, 255)
        cover[t] = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
    return out, cover


def trail_masks(cover: np.ndarray) -> np.ndarray:
    """Per frame, the pixels the object covered in any of the TRAIL frames before and does not
    cover now: (frames, H, W) bool."""
    out = np.zeros(cover.shape, bool)
    for t in range(1, len(cover)):
        past = cover[max(0, t - TRAIL):t].max(0) > 0.05
        out[t] = past & (cover[t] < 0.01)
    return out


def through_420(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 BGR (even H, W) through a 4:2:0 round trip as streamdn makes it (each
    2x2 block's mean colour, shown with the chroma fitted to the luma: Frame.to_bgr): what a
    video holds, shown as every model's output is."""
    out = np.empty_like(frames)
    for t, f in enumerate(frames):
        out[t] = yuv420_to_bgr(*bgr_to_yuv420(f))
    return out


def noisy_frames(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian noise of `sigma` (RGB, 8-bit) added afresh to each frame, rounded to uint8."""
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0.0, sigma, clean.shape), 0, 255).round().astype(np.uint8)


def _rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(a[..., ::-1], b[..., ::-1])


def running_mean_psnr(clean: np.ndarray, noisy: np.ndarray) -> list[float]:
    """PSNR of the mean of the noisy frames 0..t against clean frame t (a static shot's ceiling
    for a plain temporal average)."""
    acc = np.zeros(clean.shape[1:], np.float64)
    out = []
    for t, (c, n) in enumerate(zip(clean, noisy)):
        acc += n
        out.append(_rgb_psnr(np.clip(acc / (t + 1) + 0.5, 0, 255).astype(np.uint8), c))
    return out


def method_outputs(model: str, noisy: np.ndarray, strength: str = "auto") -> list[np.ndarray]:
    """A model's output frames on one shot, through a fresh Denoiser (BGR numpy frames)."""
    from streamdn.denoiser import Denoiser

    with Denoiser(model, strength=strength) as dn:
        return dn.denoise_clip(list(noisy))   # the whole shot: a windowed model looks ahead


def method_psnr(model: str, clean: np.ndarray, noisy: np.ndarray, strength: str = "auto") -> list[float]:
    """A model's per-frame RGB PSNR on one shot, through a fresh Denoiser (BGR numpy frames)."""
    return [_rgb_psnr(o, c) for o, c in zip(method_outputs(model, noisy, strength), clean)]


def frames_in_view(width: int, height: int, speed: float, t: int) -> np.ndarray:
    """(height, width) int: for each pixel of frame t of a pan_clip shot, how many frames (1..t+1)
    the part of the picture it shows has been in view. The pan brings the picture in at the
    right edge (speed px/frame) and the bottom edge (0.3 x speed)."""
    def along(n: int, step: float) -> np.ndarray:
        if step <= 0:
            return np.full(n, t + 1)
        return np.minimum(np.floor((n - 1 - np.arange(n)) / step).astype(np.int64) + 1, t + 1)

    return np.minimum(along(height, 0.3 * speed)[:, None], along(width, speed)[None, :])


def in_view_curve(static: Sequence[float], width: int, height: int, speed: float) -> list[float]:
    """What a causal denoiser reaches on a pan if each pixel is as clean as the whole static shot
    was after as many frames as that pixel's picture has been in view (frames_in_view): the
    static shot's PSNR curve mixed by mean squared error over the frame. The picture a pan
    brings in has been seen only a few frames however well the motion is followed, so this, not
    the static shot, is what a recursion that converges at its static pace can reach there."""
    mse = 10.0 ** (-np.asarray(static, np.float64) / 10.0)
    return [float(-10.0 * np.log10(np.mean(mse[frames_in_view(width, height, speed, t) - 1])))
            for t in range(len(static))]


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """RGB PSNR over the pixels where `mask` is set (nan where it is empty)."""
    if not mask.any():
        return float("nan")
    d = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(d * d))
    return 99.0 if mse == 0 else 10.0 * float(np.log10(255.0 ** 2 / mse))


def measure(cfg: TemporalConfig) -> list[Curve]:
    """Every model (and the running mean on static shots) on every scene and speed.

    Raises:
        ConfigError: frames < 2, an unknown scene, or scikit-image missing.
    """
    if cfg.frames < 2:
        raise ConfigError(f"frames={cfg.frames}: give at least 2 frames.")
    if cfg.chroma not in ("420", "444"):
        raise ConfigError(f"chroma '{cfg.chroma}': use 420 or 444.")
    curves: list[Curve] = []
    for name, width, height in cfg.scenes:
        picture = _picture(name)
        label = f"{Path(name).stem} {width}x{height}"
        for speed in cfg.speeds:
            clean = pan_clip(picture, width, height, speed, cfg.frames)
            if cfg.chroma == "420":
                clean = through_420(clean)
            noisy = noisy_frames(clean, cfg.sigma, cfg.seed)
            if speed == 0:
                curves.append(Curve(label, speed, "mean of noisy frames", running_mean_psnr(clean, noisy)))
                if cfg.chroma == "444":
                    ceiling = [_rgb_psnr(r, c) for r, c in zip(through_420(clean), clean)]
                    curves.append(Curve(label, speed, "4:2:0 ceiling (clean frames through 4:2:0)", ceiling))
            for model in cfg.models:
                curves.append(Curve(label, speed, model, method_psnr(model, clean, noisy, cfg.strength)))
        static = {c.method: c.psnr for c in curves if c.scene == label and c.speed == 0}
        for speed in (s for s in cfg.speeds if s > 0):
            for model in (m for m in cfg.models if m in static):
                curves.append(Curve(label, speed, f"{model}: static by frames in view",
                                    in_view_curve(static[model], width, height, speed)))
        for speed in cfg.objects:
            # The object wears the other held-out picture.
            texture = _picture("chelsea.png" if name == "coffee.png" else "coffee.png")
            clean, cover = object_clip(picture, texture, width, height, speed, cfg.frames)
            if cfg.chroma == "420":
                clean = through_420(clean)
            noisy = noisy_frames(clean, cfg.sigma, cfg.seed)
            trail = trail_masks(cover)
            for model in cfg.models:
                outs = method_outputs(model, noisy, cfg.strength)
                curves.append(Curve(f"{label}, object", speed, model, [_rgb_psnr(o, c) for o, c in zip(outs, clean)]))
                curves.append(Curve(f"{label}, object", speed, f"{model}: trail",
                                    [masked_psnr(o, c, m) for o, c, m in zip(outs, clean, trail)]))
    return curves


def table(curves: Sequence[Curve], at: Sequence[int] = (0, 5, 10, 20, 29, 39)) -> str:
    """A markdown table: PSNR at the frames `at` that the shots have, and at their last frame."""
    n = min(len(c.psnr) for c in curves) if curves else 0
    cols = [t for t in at if t < n - 1] + ([n - 1] if n else [])
    lines = ["| scene | px/frame | method | " + " | ".join(f"frame {t}" for t in cols) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in cols) + " |"]
    for c in curves:
        lines.append(f"| {c.scene} | {c.speed:g} | {c.method} | " + " | ".join(f"{c.psnr[t]:.2f}" for t in cols) + " |")
    return "\n".join(lines)
