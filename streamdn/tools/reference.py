"""BM3D as a quality reference: the `bm3d` package (PyPI; its own non-commercial licence, an
optional extra: pip install -e ".[reference]"), run per frame with the TRUE noise parameters.

It is far too slow to ship (seconds per small frame) and it is given what a blind denoiser is
not: the noise model and its strength. That makes it the bar for "as good as the best
single-image method":

- Gaussian noise: bm3d_rgb with the true sigma of every channel.
- Poisson and Poisson-Gaussian noise: the generalized Anscombe transform with the true gain and
  read noise, bm3d_rgb with unit sigma, and the closed-form approximation of the exact unbiased
  inverse (Makitalo & Foi, IEEE TIP 2011 and 2013); the usual way BM3D meets signal-dependent
  noise.
- Anything else (camera pipelines, speckle, salt & pepper): an oracle sigma per channel, the
  standard deviation of noisy - clean of that frame.

Frames are (H, W, 3) uint8 BGR as in streamdn.data.clips's validation clips.
"""

from __future__ import annotations

import math

import numpy as np

from streamdn.errors import ConfigError
from streamdn.data.noise import NoiseSpec


def gat_forward(z: np.ndarray, gain: float, sigma: float) -> np.ndarray:
    """Generalized Anscombe transform of z = gain * Poisson(x / gain) + N(0, sigma^2) (8-bit
    units): to noise of unit variance, whatever the signal. Returns float64."""
    s = sigma / gain
    return 2.0 * np.sqrt(np.maximum(z / gain + 0.375 + s * s, 0.0))


def gat_inverse(d: np.ndarray, gain: float, sigma: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse of gat_forward (Makitalo & Foi):
    maps a denoised transformed value back to the expected signal, not just to its algebraic
    inverse (which is biased at low counts). Returns float64 in 8-bit units, >= 0."""
    s = sigma / gain
    d = np.maximum(np.asarray(d, np.float64), 0.8)   # the formula's domain; below, the signal is ~0
    r = math.sqrt(1.5)
    x = 0.25 * d ** 2 + 0.25 * r / d - 1.375 / d ** 2 + 0.625 * r / d ** 3 - 0.125 - s * s
    return gain * np.maximum(x, 0.0)


def _bm3d() -> object:
    try:
        import bm3d
    except ImportError as err:
        raise ConfigError("the BM3D reference needs the bm3d package: pip install -e \".[reference]\" "
                          "(or pip install bm3d).") from err
    return bm3d


def bm3d_frame(noisy: np.ndarray, spec: NoiseSpec, clean: np.ndarray | None = None) -> np.ndarray:
    """Denoises one (H, W, 3) uint8 BGR frame with BM3D given the true noise (see the module).

    Args:
        noisy: the noisy frame.
        spec: the noise it carries.
        clean: the clean frame; needed for noise kinds without a closed-form sigma (oracle sigma).

    Returns:
        (H, W, 3) uint8 BGR.

    Raises:
        ConfigError: bm3d is not installed, or `clean` is missing where an oracle sigma is needed.
    """
    bm3d = _bm3d()
    rgb = noisy[..., ::-1].astype(np.float64)
    if spec.kind == "gaussian":
        out = bm3d.bm3d_rgb(rgb / 255.0, spec.sigma / 255.0) * 255.0
    elif spec.kind in ("poisson", "poisson_gaussian"):
        gain = 255.0 / spec.peak
        read = spec.sigma if spec.kind == "poisson_gaussian" else 0.0
        t = gat_forward(rgb, gain, read)
        top = float(gat_forward(np.array(255.0), gain, read))
        den = bm3d.bm3d_rgb(t / top, 1.0 / top) * top
        out = gat_inverse(den, gain, read)
    else:
        if clean is None:
            raise ConfigError(f"the BM3D reference for {spec.kind} noise needs the clean frame (oracle sigma).")
        diff = noisy.astype(np.float64) - clean.astype(np.float64)
        sig = [float(diff[..., c].std()) / 255.0 for c in (2, 1, 0)]     # R, G, B
        out = bm3d.bm3d_rgb(rgb / 255.0, np.array(sig)) * 255.0
    return np.clip(np.asarray(out)[..., ::-1] + 0.5, 0, 255).astype(np.uint8)
