"""Noise synthesis shared by training, tests, the synthetic source and evaluation.

Every function takes a numpy Generator, so each draw is reproducible from a seed. Images are
float32 arrays in 8-bit units ([0, 255]) of any shape; results are clipped to [0, 255] as a real
8-bit video would be, but not rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("gaussian", "poisson", "poisson_gaussian", "salt_pepper", "speckle", "camera", "bayer")


@dataclass(frozen=True)
class NoiseSpec:
    """One noise model and its strength.

    Attributes:
        kind: one of KINDS.
        sigma: gaussian: standard deviation in 8-bit units; poisson_gaussian, camera and bayer: read-noise
            standard deviation in 8-bit units; speckle: relative standard deviation x 100 (so 20
            means 20 % of the signal); salt_pepper: percent of pixels hit (so 5 means 5 %).
        peak: poisson, poisson_gaussian, camera and bayer: photons collected at full white (lower is
            darker and noisier; 30 is very low light, 1000 is a bright scene).
        quality: camera: JPEG quality of the lossy compression step (1..100).
    """

    kind: str = "gaussian"
    sigma: float = 20.0
    peak: float = 60.0
    quality: int = 85

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"noise kind '{self.kind}' is not known; choose one of {', '.join(KINDS)}.")

    @property
    def label(self) -> str:
        if self.kind == "gaussian":
            return f"awgn{self.sigma:g}"
        if self.kind == "salt_pepper":
            return f"sp{self.sigma:g}"
        if self.kind in ("poisson", "poisson_gaussian", "camera", "bayer"):
            return f"{self.kind}_p{self.peak:g}_s{self.sigma:g}"
        return f"{self.kind}{self.sigma:g}"


PRESETS: dict[str, NoiseSpec] = {
    "pg_lowlight": NoiseSpec("poisson_gaussian", sigma=4.0, peak=30.0),
    "pg_indoor": NoiseSpec("poisson_gaussian", sigma=2.0, peak=200.0),
    "camera_lowlight": NoiseSpec("camera", sigma=3.0, peak=40.0, quality=80),
    # Sensor noise on a Bayer mosaic, demosaiced: spatially correlated, colour-blotchy noise that
    # no training clip has (kept for checking fine-tuning on noise a model was not trained for).
    "bayer_lowlight": NoiseSpec("bayer", sigma=3.0, peak=40.0),
    # Low-light camera noise under heavy JPEG compression (quality 40; training uses 70-95): kept
    # for checking the still-image network's fine-tuning on noise it was not trained for.
    "jpeg_lowlight": NoiseSpec("camera", sigma=3.0, peak=40.0, quality=40),
}


def parse_noise(text: str) -> NoiseSpec:
    """Parses a short noise name: awgnS (gaussian, sigma S), spP (salt & pepper, P %), speckleS,
    poissonP (peak P), or a preset (pg_lowlight, pg_indoor, camera_lowlight, bayer_lowlight,
    jpeg_lowlight).

    Raises:
        ValueError: the name is not one of these forms.
    """
    if text in PRESETS:
        return PRESETS[text]
    m = re.fullmatch(r"(awgn|sp|speckle|poisson)(\d+(?:\.\d+)?)", text)
    if m is None:
        raise ValueError(f"noise '{text}' is not known; use awgnS, spP, speckleS, poissonP or one of "
                         f"{', '.join(PRESETS)}.")
    kind, value = m.group(1), float(m.group(2))
    if kind == "awgn":
        return NoiseSpec("gaussian", sigma=value)
    if kind == "sp":
        return NoiseSpec("salt_pepper", sigma=value)
    if kind == "speckle":
        return NoiseSpec("speckle", sigma=value)
    return NoiseSpec("poisson", peak=value)


def _shot(img: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    photons = rng.poisson(np.clip(img, 0, 255) * (peak / 255.0))
    return photons.astype(np.float32) * np.float32(255.0 / peak)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x / 255.0, 0, 1)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return (255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)).astype(np.float32)


def _camera(img: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """Linear-light shot + read noise, sRGB tone curve, 4:2:0 chroma and JPEG compression."""
    linear = _srgb_to_linear(img) * 255.0
    noisy = _shot(linear, spec.peak, rng) + rng.normal(0, spec.sigma, img.shape).astype(np.float32)
    out = _linear_to_srgb(noisy / 255.0)
    if out.ndim == 3 and out.shape[2] == 3:
        # JPEG does the 4:2:0 subsampling and the lossy DCT quantisation of a real camera pipe.
        ok, buf = cv2.imencode(".jpg", np.clip(out + 0.5, 0, 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, int(spec.quality),
                                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32)
    return out


def _bayer(img: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """Linear-light shot + read noise on an RGGB mosaic, demosaiced (OpenCV's bilinear
    demosaicing) and brought back to sRGB: the noise of a raw camera pipeline, spatially
    correlated over two or three pixels and partly shared between the colours. What is added to
    `img` is the difference the noise makes to the demosaiced picture, so the clean picture
    itself is unchanged (no demosaicing blur)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("bayer noise needs an (H, W, 3) BGR image")
    linear = _srgb_to_linear(img) * 255.0
    h, w = img.shape[:2]
    mosaic = np.empty((h, w), np.float32)
    # RGGB: R at (even, even), G at (even, odd) and (odd, even), B at (odd, odd); BGR channels.
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 2]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 0]
    noisy = _shot(mosaic, spec.peak, rng) + rng.normal(0, spec.sigma, mosaic.shape).astype(np.float32)

    def develop(m: np.ndarray) -> np.ndarray:
        raw = np.clip(m * 256.0 + 0.5, 0, 65535).astype(np.uint16)
        rgb = cv2.demosaicing(raw, cv2.COLOR_BayerRGGB2BGR).astype(np.float32) / (255.0 * 256.0)
        return _linear_to_srgb(rgb)

    return img + (develop(noisy) - develop(mosaic))


def add_noise(img: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """Returns a noisy copy of `img`.

    Args:
        img: clean image, any shape, values in [0, 255] (uint8 or float). Colour images for the
            "camera" kind are (H, W, 3) BGR.
        spec: the noise model.
        rng: the random source (np.random.default_rng(seed)).

    Returns:
        float32 array of img's shape, clipped to [0, 255].
    """
    x = img.astype(np.float32)
    if spec.kind == "gaussian":
        y = x + rng.normal(0.0, spec.sigma, x.shape).astype(np.float32)
    elif spec.kind == "poisson":
        y = _shot(x, spec.peak, rng)
    elif spec.kind == "poisson_gaussian":
        y = _shot(x, spec.peak, rng) + rng.normal(0.0, spec.sigma, x.shape).astype(np.float32)
    elif spec.kind == "speckle":
        y = x * (1.0 + rng.normal(0.0, spec.sigma / 100.0, x.shape).astype(np.float32))
    elif spec.kind == "salt_pepper":
        # Per pixel, not per channel, as dead/hot pixels and bit errors hit whole pixels.
        hit = rng.random(x.shape[:2]) < spec.sigma / 100.0
        salt = rng.random(x.shape[:2]) < 0.5
        y = x.copy()
        y[hit & salt] = 255.0
        y[hit & ~salt] = 0.0
    elif spec.kind == "bayer":
        y = _bayer(x, spec, rng)
    else:
        y = _camera(x, spec, rng)
    return np.clip(y, 0.0, 255.0).astype(np.float32)


def add_noise_uint8(img: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """add_noise, then rounded to uint8 as an 8-bit video frame carries it (same shape as img)."""
    return np.clip(add_noise(img, spec, rng) + 0.5, 0, 255).astype(np.uint8)


def noise_sigma_at(spec: NoiseSpec, level: np.ndarray | float) -> np.ndarray | float:
    """The true noise standard deviation (8-bit units) at a clean intensity `level` in [0, 255],
    for the additive and signal-dependent kinds (an approximation for camera noise)."""
    lvl = np.clip(np.asarray(level, dtype=np.float64), 0, 255)
    if spec.kind == "gaussian":
        out = np.full_like(lvl, spec.sigma)
    elif spec.kind == "poisson":
        out = np.sqrt(lvl * 255.0 / spec.peak)
    elif spec.kind in ("poisson_gaussian", "camera", "bayer"):
        out = np.sqrt(lvl * 255.0 / spec.peak + spec.sigma ** 2)
    elif spec.kind == "speckle":
        out = lvl * spec.sigma / 100.0
    else:
        out = np.full_like(lvl, np.nan)
    return float(out) if np.ndim(out) == 0 else out
