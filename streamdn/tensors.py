"""Denoising torch tensors where they live: on a CUDA device the frame never goes to the host.
Colour conversion, packing, the noise estimate and map, the scene-cut test and unpacking are
torch operations on the tensor's device; only a few dozen noise statistics per frame (for the
noise-curve fit) and three sigmas cross to the CPU. Mirrors what streamdn.kernels does on numpy
planes for the CPU path, so the two agree to rounding; the rules that turn numbers into decisions
(the noise gate, the scene cut) are the same functions on both paths."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from streamdn.errors import ConfigError
from streamdn.frames import BGR_TO_YUV, CHROMA_EPS, CHROMA_RADIUS, check_chroma
from streamdn.kernels import fit_noise_curve, sigma_from_block_stats
from streamdn.models import FrameModel
from streamdn.models.network import NetworkModel, Packed

_LAPLACE = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_IMMERKAER = math.sqrt(math.pi / 2.0) / 6.0
_RGB_TO_YUV = torch.tensor(BGR_TO_YUV[:, [2, 1, 0, 3]], dtype=torch.float32)      # rows Y, U, V; cols R, G, B, 1
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


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, chroma: str = "luma") -> torch.Tensor:
    """The inverse: planes in [0, 255] -> (3, H, W) float RGB in [0, 255], the chroma brought to
    full resolution as streamdn.frames.yuv420_to_bgr does ("luma" or "bilinear")."""
    check_chroma(chroma)
    h, w = y.shape
    if chroma == "luma":
        full = _chroma_from_luma(y, u, v, CHROMA_EPS * 255.0 ** 2, CHROMA_RADIUS)
    else:
        full = F.interpolate(torch.stack([u, v])[None], scale_factor=2, mode="bilinear", align_corners=False)[0, :, :h, :w]
    yuv = torch.cat([y[None], full])
    m = _YUV_TO_RGB.to(y.device)
    return (torch.einsum("ck,khw->chw", m[:, :3], yuv) + m[:, 3, None, None]).round().clamp(0, 255)


def _chroma_from_luma(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, eps: float, radius: int) -> torch.Tensor:
    """(2, H, W) full-resolution U and V guided by the luma: streamdn.kernels.chroma_from_luma
    in torch."""
    h, w = y.shape
    size = 2 * radius + 1

    def box(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, size, 1, radius, count_include_pad=False)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]

    def down(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (0, w % 2, 0, h % 2), mode="replicate"), 2)

    luma = y[None, None].float()
    yl = down(luma)
    c = torch.stack([u, v])[None].float()
    my = box(yl)
    var = (box(yl * yl) - my * my).clamp(min=0.0) + eps
    mc = box(c)
    a = (box(yl * c) - my * mc) / var
    b = mc - a * my
    full = up(box(a)) * luma + up(box(b))
    return (full + up(c - down(full)))[0]


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


Sigmas = tuple[float, float, float]


class TensorPath:
    """Runs a network model on torch tensors on the model's device.

    Args:
        model: a NetworkModel (streamdn.models.network).
        sigmas: turns one frame's blind Y, U, V noise estimate (8-bit units) into the sigmas to
            denoise with (the Denoiser's smoothing over frames, fixed strength and gain).

    Raises:
        TypeError: the model is not a network.
    """

    def __init__(self, model: FrameModel, sigmas: Callable[[Sigmas], Sigmas]) -> None:
        if not isinstance(model, NetworkModel):
            raise TypeError(f"TensorPath needs a network model, not {model.info.name}")
        self.model = model
        self.sigmas = sigmas
        self._last_y: torch.Tensor | None = None

    def step(self, rgb: torch.Tensor) -> torch.Tensor:
        """One frame: (3, H, W) float RGB in [0, 255] on the model's device -> the same, denoised."""
        y, u, v = rgb_to_yuv420(rgb)
        stats = [block_stats(p) for p in (y, u, v)]
        host = [s.float().cpu().numpy() for s in stats]            # a few hundred numbers, not the frame
        sigmas = self.sigmas(tuple(sigma_from_block_stats(s) for s in host))  # type: ignore[arg-type]
        packed = self._pack(y, u, v)
        curve = fit_noise_curve(host[0], 255.0) if self.model.signal_dependent else np.array([1.0, 0.0, 0.0])
        sigma_map = self._noise_map(packed, sigmas, curve)
        out = self.model.forward(Packed(packed, sigma_map, self._is_cut(y, sigmas[0]), float(sigmas[0])))
        return yuv420_to_rgb(*self._unpack(out, y.shape))

    def _pack(self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        luma = F.pad(y[None, None], (0, w % 2, 0, h % 2), mode="replicate")
        cur = torch.cat([F.pixel_unshuffle(luma, 2), torch.stack([u, v])[None]], dim=1) / 255.0
        return cur.contiguous(memory_format=torch.channels_last)

    def _noise_map(self, packed: torch.Tensor, sigmas: Sigmas, curve: np.ndarray) -> torch.Tensor:
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
        return self.model.is_scene_cut(score, sigma_y)

    @staticmethod
    def _unpack(out: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = shape
        q = (out.float().clamp(0, 1) * 255).round()
        y = F.pixel_shuffle(q[:, :4], 2)[0, 0, :h, :w]
        return y, q[0, 4], q[0, 5]

    def reset(self) -> None:
        """Forgets the last frame (the scene-cut reference); the model's state is the model's."""
        self._last_y = None


def denoise_tensor(path: TensorPath, t: torch.Tensor, order: str = "rgb") -> torch.Tensor:
    """One image on the model's device: (H, W, 3) uint8 or (3, H, W) float in [0, 1] ->
    the same layout, dtype and device, denoised as the next frame of `path`'s stream.

    Args:
        path: the tensor path of the model (and stream) to use.
        t: the image, its channels in `order` ("rgb" or "bgr").
        order: the channel order of `t`.
    """
    rgb_first = order == "rgb"
    if t.ndim == 3 and t.shape[2] == 3 and t.dtype == torch.uint8:
        img = t.permute(2, 0, 1).float()
        out = path.step(img if rgb_first else img.flip(0))
        out = out if rgb_first else out.flip(0)
        return out.permute(1, 2, 0).to(torch.uint8)
    if not (t.ndim == 3 and t.shape[0] == 3 and t.dtype.is_floating_point):
        raise ConfigError(f"unsupported tensor shape {tuple(t.shape)} dtype {t.dtype}: pass H×W×3 uint8, 3×H×W or "
                          f"N×3×H×W float in [0, 1].")
    img = t.float() * 255.0
    out = path.step(img if rgb_first else img.flip(0)) / 255.0
    return (out if rgb_first else out.flip(0)).to(t.dtype)


def same_device(a: torch.device, b: torch.device, current: int = 0) -> bool:
    """Whether two torch devices are the same device: same type and index, where a device
    without an index ("cuda") means index `current` (torch.cuda.current_device() for CUDA)."""
    if a.type != b.type:
        return False
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def takes_device_path(tensor: torch.device, model: torch.device, current: int = 0) -> bool:
    """Whether a tensor on `tensor` is denoised where it lives (TensorPath) by a network on
    `model`: both the same accelerator device (see same_device). Otherwise the tensor goes
    through the host (a CPU tensor, or a tensor on another device than the network's)."""
    return tensor.type != "cpu" and same_device(tensor, model, current)
