"""Denoising torch tensors where they live: on a CUDA device the frame never goes to the host.
Colour conversion, packing, the noise estimate and map, the scene-cut test and unpacking are
torch operations on the tensor's device; only a few dozen noise statistics per frame (for the
noise-curve fit) and three sigmas cross to the CPU. Mirrors what streamdn.kernels does on numpy
planes for the CPU path, so the two agree to rounding."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from streamdn.frames import _BGR_TO_YUV
from streamdn.kernels import fit_noise_curve

if TYPE_CHECKING:
    from streamdn.denoiser import Denoiser

_LAPLACE = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_IMMERKAER = math.sqrt(math.pi / 2.0) / 6.0
_RGB_TO_YUV = torch.tensor(_BGR_TO_YUV[:, [2, 1, 0, 3]], dtype=torch.float32)      # rows Y, U, V; cols R, G, B, 1
_YUV_TO_RGB = torch.linalg.inv(torch.cat([_RGB_TO_YUV, torch.tensor([[0.0, 0, 0, 1]])]))[:3]


def rgb_to_yuv420(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(3, H, W) float RGB in [0, 255] -> Y (H, W), U, V (ceil(H/2), ceil(W/2)), rounded to
    integers in [0, 255] as float32 (BT.601 limited range, 2x2-averaged chroma)."""
    m = _RGB_TO_YUV.to(rgb.device)
    yuv = torch.einsum("ck,khw->chw", m[:, :3], rgb) + m[:, 3, None, None]
    yuv = yuv.round().clamp(0, 255)
    h, w = rgb.shape[-2:]
    chroma = F.pad(yuv[None, 1:], (0, w % 2, 0, h % 2), mode="replicate")
    chroma = F.avg_pool2d(chroma, 2)[0].round()
    return yuv[0], chroma[0], chroma[1]


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The inverse: planes in [0, 255] -> (3, H, W) float RGB in [0, 255] (bilinear chroma)."""
    h, w = y.shape
    chroma = F.interpolate(torch.stack([u, v])[None], scale_factor=2, mode="bilinear", align_corners=False)
    yuv = torch.cat([y[None], chroma[0, :, :h, :w]])
    m = _YUV_TO_RGB.to(y.device)
    return (torch.einsum("ck,khw->chw", m[:, :3], yuv) + m[:, 3, None, None]).round().clamp(0, 255)


def block_stats(plane: torch.Tensor, block: int = 16) -> torch.Tensor:
    """(H, W) plane in 8-bit units -> (H // block, W // block, 2): Immerkaer noise sigma and mean
    level per block (as streamdn.kernels.block_noise_stats, up to border handling)."""
    x = plane[None, None]
    lap = F.conv2d(x, _LAPLACE.to(plane.device, plane.dtype)[None, None]).abs()
    lap = F.pad(lap, (1, 1, 1, 1), mode="replicate")
    hb, wb = plane.shape[0] // block * block, plane.shape[1] // block * block
    sig = F.avg_pool2d(lap[..., :hb, :wb], block)[0, 0] * _IMMERKAER
    mean = F.avg_pool2d(x[..., :hb, :wb], block)[0, 0]
    return torch.stack([sig, mean], dim=-1)


def estimate_sigma(stats: np.ndarray, block: int = 16, percentile: float = 15.0) -> float:
    """A plane's noise sigma from its block statistics (the rule of kernels.estimate_sigma)."""
    sig, lvl = stats[..., 0].ravel(), stats[..., 1].ravel()
    mid = (lvl > 0.06 * 255) & (lvl < 0.94 * 255)
    use = sig[mid] if mid.sum() >= 8 else sig
    if use.size == 0:
        return 0.0
    bias = max(0.5, 1.0 - 1.0364 * 1.63 * math.sqrt((math.pi / 2 - 1) / ((block - 1) ** 2)))
    return float(np.percentile(use, percentile) / bias)


class TensorPath:
    """Runs a Denoiser's network model on torch tensors on the model's device."""

    def __init__(self, denoiser: Denoiser) -> None:
        from streamdn.models.network import NetworkModel

        if not isinstance(denoiser.model, NetworkModel):
            raise TypeError("TensorPath needs a network model")
        self.dn = denoiser
        self.model = denoiser.model
        self._last_y: torch.Tensor | None = None

    def step(self, rgb: torch.Tensor) -> torch.Tensor:
        """One frame: (3, H, W) float RGB in [0, 255] on the model's device -> the same, denoised."""
        y, u, v = rgb_to_yuv420(rgb)
        stats = [block_stats(p) for p in (y, u, v)]
        host = [s.float().cpu().numpy() for s in stats]            # a few hundred numbers, not the frame
        sigmas = self.dn.smooth_sigmas(tuple(estimate_sigma(s) for s in host))  # type: ignore[arg-type]
        packed = self._pack(y, u, v)
        curve = fit_noise_curve(host[0], 255.0) if self.model.signal_dependent else np.array([1.0, 0.0, 0.0])
        sigma_map = self._noise_map(packed, sigmas, curve)
        from streamdn.models.network import _Packed

        out = self.model.forward(_Packed(packed, sigma_map, self._is_cut(y, sigmas[0]), float(sigmas[0])))
        return yuv420_to_rgb(*self._unpack(out, y.shape))

    def _pack(self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        luma = F.pad(y[None, None], (0, w % 2, 0, h % 2), mode="replicate")
        cur = torch.cat([F.pixel_unshuffle(luma, 2), torch.stack([u, v])[None]], dim=1) / 255.0
        return cur.contiguous(memory_format=torch.channels_last)

    def _noise_map(self, packed: torch.Tensor, sigmas: tuple[float, float, float], curve: np.ndarray) -> torch.Tensor:
        sig = torch.tensor(sigmas, device=packed.device, dtype=packed.dtype).view(1, 3, 1, 1) / 255.0
        a, b, ref = float(curve[0]), float(curve[1]), float(curve[2])
        if b == 0.0:
            return sig.expand(1, 3, *packed.shape[-2:]).contiguous(memory_format=torch.channels_last)
        level = F.avg_pool2d(F.pad(packed[:, :4].mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate"), 3, 1)
        factor = torch.sqrt((a + b * level).clamp(min=0) / max(a + b * ref, 1e-12))
        return (sig * factor).contiguous(memory_format=torch.channels_last)

    def _is_cut(self, y: torch.Tensor, sigma_y: float) -> bool:
        last, self._last_y = self._last_y, y
        if last is None or last.shape != y.shape:
            return False
        score = float((y[::4, ::4] - last[::4, ::4]).abs().mean())
        return score > 1.2 * sigma_y + self.model.cut_threshold

    @staticmethod
    def _unpack(out: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = shape
        q = (out.float().clamp(0, 1) * 255).round()
        y = F.pixel_shuffle(q[:, :4], 2)[0, 0, :h, :w]
        return y, q[0, 4], q[0, 5]

    def reset(self) -> None:
        self._last_y = None


def denoise_tensor(denoiser: Denoiser, path: TensorPath, t: torch.Tensor) -> Any:
    """(H, W, 3) uint8, (3, H, W) or (N, 3, H, W) float in [0, 1] on the model's device ->
    the same layout, dtype and device, denoised (a batch is consecutive frames)."""
    rgb_first = denoiser.channel_order == "rgb"
    if t.ndim == 3 and t.shape[2] == 3 and t.dtype == torch.uint8:
        img = t.permute(2, 0, 1).float()
        img = img if rgb_first else img.flip(0)
        out = path.step(img)
        out = out if rgb_first else out.flip(0)
        return out.permute(1, 2, 0).to(torch.uint8)
    batch = t if t.ndim == 4 else t[None]
    outs = []
    for frame in batch:
        img = frame.float() * 255.0
        out = path.step(img if rgb_first else img.flip(0)) / 255.0
        outs.append(out if rgb_first else out.flip(0))
    res = torch.stack(outs).to(t.dtype)
    return res if t.ndim == 4 else res[0]
