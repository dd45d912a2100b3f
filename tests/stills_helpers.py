"""Pictures for the stills tests: a smooth synthetic scene, and a minimal valid DNG (16-bit
Bayer RGGB raw with the tags LibRaw needs) written with tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# XYZ (D65) -> linear sRGB: as ColorMatrix1 it makes the test camera's RGB plain sRGB.
_XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))


def scene(h: int, w: int) -> np.ndarray:
    """(h, w, 3) float64 RGB in [0, 1]: smooth gradients, a disc and a few bars (edges and flat
    areas, like a photograph at low resolution)."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    r = 0.2 + 0.6 * xx
    g = 0.25 + 0.5 * yy
    b = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)
    img = np.stack([r, g, b], -1)
    disc = (yy - 0.5) ** 2 + (xx - 0.35) ** 2 < 0.04
    img[disc] = (0.85, 0.7, 0.2)
    bars = (xx > 0.65) & (xx < 0.9) & (((yy * 10).astype(int) % 2) == 0)
    img[bars] = (0.1, 0.15, 0.2)
    return img


def noisy_scene(h: int, w: int, sigma: float, dtype: type = np.uint8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) RGB pictures of `dtype` with Gaussian noise of `sigma` in 8-bit units."""
    maxv = 255.0 if dtype == np.uint8 else 65535.0
    clean = scene(h, w) * maxv
    noisy = clean + np.random.default_rng(seed).normal(0.0, sigma * maxv / 255.0, clean.shape)
    to = lambda a: np.clip(a + 0.5, 0, maxv).astype(dtype)  # noqa: E731
    return to(clean), to(noisy)


def write_dng(path: Path, h: int = 128, w: int = 160, noise: float = 0.0, seed: int = 0) -> Path:
    """A minimal DNG 1.4: one 16-bit CFA image (Bayer RGGB, black 256, white 16383) of scene(),
    with Poisson-like noise of relative strength `noise` when it is above 0."""
    lin = scene(h, w) ** 2.2
    cfa = np.empty((h, w))
    cfa[0::2, 0::2] = lin[0::2, 0::2, 0]
    cfa[0::2, 1::2] = lin[0::2, 1::2, 1]
    cfa[1::2, 0::2] = lin[1::2, 0::2, 1]
    cfa[1::2, 1::2] = lin[1::2, 1::2, 2]
    if noise > 0:
        cfa = cfa + np.random.default_rng(seed).normal(0.0, 1.0, cfa.shape) * noise * np.sqrt(cfa + 0.01)
    black, white = 256, 16383
    raw = np.clip(black + cfa * (white - black) * 0.9, 0, white).astype(np.uint16)

    def srational(values: list[float]) -> list[int]:
        return [v for x in values for v in (int(round(x * 10000)), 10000)]

    tags = [
        (50706, 1, 4, (1, 4, 0, 0), True),              # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),              # DNGBackwardVersion
        (50708, 2, None, "streamdn test camera", True),  # UniqueCameraModel
        (271, 2, None, "streamdn", True),               # Make
        (272, 2, None, "test camera", True),            # Model
        (33421, 3, 2, (2, 2), True),                    # CFARepeatPatternDim
        (33422, 1, 4, (0, 1, 1, 2), True),              # CFAPattern: R G / G B
        (50710, 1, 3, (0, 1, 2), True),                 # CFAPlaneColor
        (50711, 3, 1, 1, True),                         # CFALayout: rectangular
        (50714, 3, 1, black, True),                     # BlackLevel
        (50717, 3, 1, white, True),                     # WhiteLevel
        (50721, 10, 9, srational([v for row in _XYZ_TO_SRGB for v in row]), True),   # ColorMatrix1
        (50778, 3, 1, 21, True),                        # CalibrationIlluminant1: D65
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),        # AsShotNeutral
    ]
    import tifffile

    tifffile.imwrite(path, raw, photometric=32803, subfiletype=0, extratags=tags, metadata=None)
    return path
