"""Chroma edges given back after a network on packed 4:2:0: a local linear fit of what the network
removed from the chroma against the luma it kept.

The networks see chroma at half resolution beside the four luma phases and smooth sharp colour
edges along with the noise: on the synthetic validation clips (saturated shapes and text) 85-92 %
of `fast_mc`'s remaining chroma error lay on chroma edges, and the chroma cost more RGB PSNR than
the luma (33.2 dB with the clean luma and its chroma, 36.4 with its luma and the clean chroma).
Where a colour edge follows a luma edge, what the network took from the chroma there is
correlated with the luma; noise is not. Over each 5x5 window of chroma samples the difference
d = input - output of a chroma plane is regressed on the output's luma (the guide g, the mean of
each 2x2 block), and the part the luma explains is given back:

    a = gain * cov(g, d) / (var(g) + k sigma^2),   out += box(a) * (g - box(g))

with sigma the noise of the input's chroma at the sample (the noise map; for a network that runs
on the long average, that average's noise). In flat parts var(g) is small against k sigma^2 and
nothing comes back. The slope's own noise (variance sigma^2 / (n var(g)) for n samples) would
otherwise come back along every luma edge, most visibly late in a still shot, when the output is
cleaner than one noisy frame's difference can tell: gain = max(0, 1 - c sigma^2 var(g) /
(n cov^2)) keeps a slope only where it stands above that noise. The intercept is left out (it
would bring back the window's mean noise). The result is shown only; the recursion carries the
network's own state.

Measured (docs/figures.md, "Chroma edges given back after the network"), validation clips, torch
fp32: `fast_mc` +0.56 / +0.40 / +0.36 / +0.44 / +0.09 dB RGB PSNR on Gaussian 20 / 30, low light,
camera low light and salt and pepper, `fast` +0.62 / +0.47 / +0.45 / +0.53 / +0.19 (SSIM
+0.006-0.009, flicker unchanged); a clean input unchanged; 3 ms a 720p frame on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from streamdn.kernels import CHROMA_EDGES_WORK_PLANES
from streamdn.kernels import restore_chroma_edges as _restore_on_host

# The window of the fit (chroma samples), the weight of the noise in its denominator and how
# strongly a slope no larger than its own noise is shrunk (see the module).
RADIUS = 2
NOISE_WEIGHT = 0.1
SHRINK = 2.0
# A floor under k sigma^2 ([0, 1] units squared), so a clean input's flat parts are left alone;
# squared, the same under cov^2 in the gain.
FLOOR = (0.25 / 255.0) ** 2


class Scratch:
    """The CPU kernel's work planes, kept for the next frame of the same size."""

    def __init__(self) -> None:
        self._planes: np.ndarray | None = None

    def planes(self, shape: tuple[int, int]) -> np.ndarray:
        """(CHROMA_EDGES_WORK_PLANES, H2, W2) float32 work planes (their contents undefined)."""
        if self._planes is None or self._planes.shape[1:] != shape:
            self._planes = np.empty((CHROMA_EDGES_WORK_PLANES,) + tuple(shape), np.float32)
        return self._planes


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over (2 radius + 1)^2 samples, the border's windows cut to the frame."""
    return F.avg_pool2d(x, 2 * radius + 1, 1, radius, count_include_pad=False)


def restore_chroma_edges(out: torch.Tensor, inp: torch.Tensor, sigma: torch.Tensor, radius: int = RADIUS,
                         noise_weight: float = NOISE_WEIGHT, shrink: float = SHRINK,
                         scratch: Scratch | None = None) -> torch.Tensor:
    """The network's packed output with the chroma its luma explains given back (see the module).

    Args:
        out: (N, 6, H2, W2) packed output (four luma phases, U, V), [0, 1] units.
        inp: (N, 6, H2, W2) what the network was given (the noisy frame, or the mean it ran on).
        sigma: (N, 3, H2, W2) the noise map of `inp` (Y, U, V sigma per packed sample).
        radius: the fit's window is 2 radius + 1 samples square.
        noise_weight: k above.
        shrink: c above (0: no shrinking).
        scratch: the CPU kernel's work planes, kept by the caller from frame to frame (fresh
            ones cost their page faults again every frame); None: made for this call.

    Returns:
        A new (N, 6, H2, W2) tensor of `out`'s dtype (float32 on the CPU); its luma is `out`'s.
    """
    if out.device.type == "cpu":
        if out.shape[0] == 1:
            return _on_host(out, inp, sigma, radius, noise_weight, shrink, scratch)
        return torch.cat([_on_host(out[i:i + 1], inp[i:i + 1], sigma[i:i + 1], radius, noise_weight, shrink, scratch)
                          for i in range(out.shape[0])])
    return _on_device(out, inp, sigma, radius, noise_weight, shrink)


def _on_device(out: torch.Tensor, inp: torch.Tensor, sigma: torch.Tensor, radius: int, noise_weight: float,
               shrink: float) -> torch.Tensor:
    """restore_chroma_edges in torch (a GPU's path; the same result as the CPU kernel)."""
    dtype = out.dtype
    out = out.float()
    guide = out[:, :4].mean(1, keepdim=True)
    r = inp[:, 4:6].float() - out[:, 4:6]
    m_g, m_r = _box(guide, radius), _box(r, radius)
    var = (_box(guide * guide, radius) - m_g * m_g).clamp(min=0.0)
    cov = _box(guide * r, radius) - m_g * m_r
    noise = sigma[:, 1:3].float() ** 2
    n = float((2 * radius + 1) ** 2)
    gain = (1.0 - shrink / n * noise * var / (cov * cov + FLOOR * FLOOR)).clamp(min=0.0)
    slope = _box(gain * cov / (var + noise_weight * noise + FLOOR), radius)
    res = out.clone()
    res[:, 4:6] += slope * (guide - m_g)
    return res.to(dtype)


def _hwc(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) CPU tensor -> (H, W, C) float32 array (a view when channels_last float32)."""
    return t[0].permute(1, 2, 0).float().contiguous().numpy()


def _on_host(out: torch.Tensor, inp: torch.Tensor, sigma: torch.Tensor, radius: int,
             noise_weight: float, shrink: float, scratch: Scratch | None = None) -> torch.Tensor:
    """restore_chroma_edges on the CPU: one Numba kernel (streamdn.kernels.restore_chroma_edges)
    instead of torch's pooling, which takes 40-200 ms a 720p frame there."""
    o = _hwc(out)
    res = np.empty_like(o)
    work = (scratch or Scratch()).planes(o.shape[:2])
    _restore_on_host(o, _hwc(inp), _hwc(sigma), noise_weight, FLOOR, radius, work, res, shrink)
    return torch.from_numpy(res).permute(2, 0, 1).unsqueeze(0).to(out.dtype)
