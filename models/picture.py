"""The still-image networks (streamdn.models.photo) behind the FrameModel API, and their weight
files.

A PhotoModel denoises every frame on its own (no past), in full-resolution RGB. Stills give it
the picture's own RGB (`pack_picture`), so a photograph keeps its full colour resolution; video
frames are converted from their 4:2:0 planes and back. The noise map is the video networks'
(streamdn.models.network.pack_with_noise_map): per-plane sigmas shaped by brightness.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import Frame, planes_to_rgb, rgb_to_planes

from .network import LOW_NOISE_BLEND, _autocast, _resolve_dtype, low_noise_weight, pack_with_noise_map, read_metadata
from .photo import FAMILY, PhotoNet, build_photo
from .registry import FrameModel, ModelInfo

# Options of the video networks that a still-image network accepts and ignores (a weight file is
# created with the same options whatever it holds).
CLEAN_SIGMA = 2.0   # luma noise sigma (8-bit) under which a video frame counts as nearly clean
VIDEO_ONLY_OPTIONS = ("cut_threshold", "fused", "long_average", "backend", "chroma_edges")


@dataclass
class PhotoPacked:
    """A picture ready for the network: rgb (1, 3, H, W) and sigma (1, 3, H/2, W/2) float32 on the
    device (H, W even: odd sizes padded by replication), the picture's size before padding, and
    its luma noise sigma in 8-bit units (the low-noise blend; inf: none)."""

    rgb: torch.Tensor
    sigma: torch.Tensor
    height: int
    width: int
    sigma_y: float = math.inf
    planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # a video frame's own (pack)
    bit_depth: int = 8


@dataclass
class PhotoFrameResult:
    """A video frame's result (PhotoModel.forward of what pack made): the denoised RGB, the
    weight of the network against the input (the low-noise blend: 0 = the input), the input's
    planes and bit depth, and whether the frame was nearly clean (CLEAN_SIGMA, impulses)."""

    rgb: torch.Tensor
    weight: float
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    bit_depth: int
    clean: bool


class PhotoModel(FrameModel):
    """A PhotoNet on one device. It keeps no state: reset() and clone() are trivial."""

    impulse_filter = True
    # Pictures go through in tiles of this side (streamdn.jobs.still): on a 12-megapixel photo on
    # two CPU cores, 1024 took 12.1 s and 0.99 GB peak, 2048 took 12.7-16.2 s and 1.54 GB.
    tile = 1024

    def __init__(self, net: PhotoNet, info: ModelInfo, *, device: str = "cpu", dtype: str = "auto",
                 signal_dependent: bool = True, low_noise_blend: tuple[float, float] = LOW_NOISE_BLEND,
                 **video_options: Any) -> None:
        """Args:
            net: the network (moved to `device`).
            info: what `streamdn models` shows.
            device: "cpu", "cuda" or "cuda:N" (already resolved).
            dtype: compute dtype of the convolutions ("auto", "fp32", "bf16", "fp16"), as for
                the video networks; the residual is subtracted in float32.
            signal_dependent: shape the noise map by brightness (see NetworkModel).
            low_noise_blend: (s0, s1), 8-bit units: below s1 the output leans back to the input
                (see NetworkModel).
            **video_options: cut_threshold, fused, long_average and backend (auto or torch) are
                accepted and ignored.

        Raises:
            ConfigError: an option no network knows, or a bad low_noise_blend.
        """
        unknown = set(video_options) - set(VIDEO_ONLY_OPTIONS)
        if unknown:
            raise ConfigError(f"model '{info.name}': unknown option(s) {sorted(unknown)}.")
        if video_options.get("backend", "auto") not in ("auto", "torch"):
            raise ConfigError(f"model '{info.name}' runs on torch only (backend auto or torch); the int8 backend "
                              "runs the recurrent video networks.")
        self.info = info
        self.device = device
        self.dtype = _resolve_dtype(dtype, device)
        self.signal_dependent = signal_dependent
        s0, s1 = (float(v) for v in low_noise_blend)
        if not 0.0 <= s0 <= s1:
            raise ConfigError(f"low_noise_blend {low_noise_blend}: need 0 <= s0 <= s1 (8-bit sigma units).")
        self.low_noise_blend = (s0, s1)
        self.net: PhotoNet | None = net.eval().to(device).to(memory_format=torch.channels_last)

    @property
    def context(self) -> int:
        """Pixels of context a tile needs on each side for its result not to depend on the tiling."""
        return self.net.cfg.radius if self.net is not None else 0

    # -- the three stages --------------------------------------------------------------------

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> PhotoPacked:
        """A video frame: its 4:2:0 planes converted to RGB, the chroma fitted to the luma (and
        kept, for unpack)."""
        # The chroma fitted to the luma, noisy as it is: on the validation clips +0.18 / +0.14 /
        # +0.34 dB (awgn20 / awgn30 / pg_lowlight) over bilinear chroma.
        rgb = planes_to_rgb(frame.y, frame.u, frame.v, frame.bit_depth, np.float32, chroma="luma")
        packed = self._pack(rgb, frame, sigmas)
        packed.planes, packed.bit_depth = (frame.y, frame.u, frame.v), frame.bit_depth
        return packed

    def pack_picture(self, rgb: np.ndarray, frame: Frame, sigmas: tuple[float, float, float],
                     noise_scale: np.ndarray | None = None) -> PhotoPacked:
        """A picture given as RGB ((H, W, 3) uint8 or uint16, or float32 in [0, 1]) with its YUV
        4:2:0 frame (the noise map is computed on the frame, as for video).

        noise_scale: ((H + 1) // 2, (W + 1) // 2) float32, a factor on the noise map per 2x2
            block (a burst's mean: 1 / sqrt(shots averaged there)); the low-noise blend then
            goes by the sigma times its mean."""
        if rgb.shape[:2] != (frame.height, frame.width):
            raise ConfigError(f"pack_picture: picture {rgb.shape[:2]} and frame {(frame.height, frame.width)} "
                              f"differ in size.")
        if rgb.dtype == np.float32:
            pixels = rgb
        else:
            pixels = rgb.astype(np.float32) * np.float32(1.0 / np.iinfo(rgb.dtype).max)
        return self._pack(pixels, frame, sigmas, noise_scale)

    def forward(self, packed: PhotoPacked) -> Any:
        """The denoised (1, 3, H, W) float32 RGB (unclamped), at the picture's size; for a video
        frame (pack) a PhotoFrameResult holding it."""
        if self.net is None:
            raise ConfigError(f"model '{self.info.name}' was closed; create a new Denoiser to continue.")
        w = low_noise_weight(packed.sigma_y, self.low_noise_blend)
        if packed.planes is not None and w == 0.0:
            # A clean video frame passes as it is (unpack): no network, no RGB round trip.
            return PhotoFrameResult(packed.rgb, 0.0, packed.planes, packed.bit_depth, True)
        with torch.inference_mode(), _autocast(self.device, self.dtype):
            out = self.net(packed.rgb, packed.sigma)
        out = out[..., :packed.height, :packed.width]
        if w < 1.0:
            out = torch.lerp(packed.rgb[..., :packed.height, :packed.width].float(), out, w)
        if packed.planes is None:
            return out
        return PhotoFrameResult(out, w, packed.planes, packed.bit_depth, packed.sigma_y < CLEAN_SIGMA
                                or math.isinf(packed.sigma_y))

    def unpack(self, result: Any, frame: Frame) -> Frame:
        """The result as a Frame with `frame`'s size, depth, timing and metadata."""
        if isinstance(result, PhotoFrameResult):
            if result.weight == 0.0:
                return frame.with_planes(*result.planes)
            return frame.with_planes(*rgb_to_video_planes(self._hwc(result.rgb), result.planes, result.bit_depth,
                                                          result.clean))
        y, u, v = rgb_to_planes(self._hwc(result), frame.bit_depth)
        return frame.with_planes(y, u, v)

    def unpack_picture(self, result: torch.Tensor, dtype: np.dtype | type) -> np.ndarray:
        """The result as an (H, W, 3) RGB picture of `dtype` (uint8 or uint16), rounded and clipped."""
        maxv = float(np.iinfo(np.dtype(dtype)).max)
        return np.clip(self._hwc(result) * np.float32(maxv) + 0.5, 0, maxv).astype(dtype)

    def close(self) -> None:
        """Drops the network; frees cached CUDA memory. Idempotent."""
        if self.net is not None:
            self.net = None
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()

    # -- helpers ------------------------------------------------------------------------------

    def _pack(self, rgb: np.ndarray, frame: Frame, sigmas: tuple[float, float, float],
              noise_scale: np.ndarray | None = None) -> PhotoPacked:
        _, smap = pack_with_noise_map(frame, sigmas, self.signal_dependent)
        level = math.inf if frame.extra.get("impulses_removed") else float(sigmas[0])
        if noise_scale is not None:
            if noise_scale.shape != smap.shape[:2]:
                raise ConfigError(f"pack_picture: noise_scale {noise_scale.shape} does not fit the noise map "
                                  f"{smap.shape[:2]}.")
            smap *= noise_scale[..., None]
            level *= float(np.mean(noise_scale))
        h, w = rgb.shape[:2]
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
        if h % 2 or w % 2:
            t = F.pad(t, (0, w % 2, 0, h % 2), mode="replicate")
        sigma = torch.from_numpy(smap).permute(2, 0, 1).unsqueeze(0)
        if self.device != "cpu":
            t, sigma = t.to(self.device, non_blocking=True), sigma.to(self.device, non_blocking=True)
        return PhotoPacked(t.contiguous(memory_format=torch.channels_last), sigma, h, w, level)

    @staticmethod
    def _hwc(result: torch.Tensor) -> np.ndarray:
        arr = result[0].permute(1, 2, 0)
        if arr.device.type != "cpu":
            arr = arr.cpu()
        return np.ascontiguousarray(arr.float().numpy())


def load_photo_weights(path: str | Path) -> tuple[PhotoNet, dict[str, str]]:
    """The still-image network of a weight file (safetensors only) and its metadata.

    Raises:
        ModelNotFoundError: not a readable streamdn file, a video network's file, or tensors
            that do not fit the architecture.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("family") != FAMILY:
        raise ModelNotFoundError(f"'{path}' holds a video network ('{meta['arch']}'), not a still-image network.")
    try:
        net = build_photo(meta["arch"], json.loads(meta.get("config", "{}")))
        net.load_state_dict(load_file(str(path)))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelNotFoundError(f"'{path}': the weights do not match still-image architecture '{meta['arch']}' "
                                 f"({err}); re-export them with `streamdn train`.") from err
    return net.eval(), meta


def load_photo_model(path: str | Path, **options: Any) -> PhotoModel:
    """A PhotoModel from a user's .safetensors file."""
    from .network import info_from_metadata

    net, meta = load_photo_weights(path)
    return PhotoModel(net, info_from_metadata(path, meta), **options)


def create_photo_model(arch: str, info: ModelInfo, weights: str | Path | None = "default", **options: Any) -> PhotoModel:
    """A PhotoModel for a registered architecture: "default" weights are the shipped
    models/weights/<arch>.safetensors (random init if none ships), None random init (tests)."""
    from .network import resolve_weights

    path = resolve_weights(arch, weights)
    if path is None:
        torch.manual_seed(0)
        return PhotoModel(build_photo(arch), info, **options)
    return PhotoModel(load_photo_weights(path)[0], info, **options)


def rgb_to_video_planes(out: np.ndarray, planes: tuple[np.ndarray, np.ndarray, np.ndarray], bit_depth: int,
                        clean: bool, sharpen: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A network's RGB result for a video frame back in 4:2:0 planes.

    The network's result is averaged back over 2x2 blocks (rgb_to_planes). Had it seen the
    frame's chroma upsampled bilinearly, the two together would blur it by [1/8, 3/4, 1/8] along
    each axis (chroma_round_trip). On a noisy frame the chroma planes may be sharpened against
    that, c + sharpen (c - blur(c)): 2 is its inverse to first order (exact at the highest
    frequency, within 12.5 % below it); with the chroma fitted to the luma on the way in (what
    PhotoModel.pack and `window` do now) the blur is smaller and `window` takes 1. It brings a
    single frame's leftover chroma noise up. On a nearly clean frame (`clean`) they
    take the network's change instead, input + (result - blur(input)), which keeps the input's
    own chroma exactly where the network changed nothing (on a noisy frame that would keep the
    input's chroma noise).

    Args:
        out: (H, W, 3) float32 RGB in [0, 1] (or uint8/uint16).
        planes: the input's Y, U, V planes.
        bit_depth: theirs.
        clean: the frame was nearly clean.
        sharpen: see above (0: the chroma as the round trip leaves it).
    """
    y, u, v = rgb_to_planes(out, bit_depth)
    maxv = (1 << bit_depth) - 1
    chroma = []
    for c_out, c_in in ((u, planes[1]), (v, planes[2])):
        f = c_out.astype(np.float32)
        if clean:
            g = c_in.astype(np.float32)
            f += g - chroma_round_trip(g)
        elif sharpen:
            f += np.float32(sharpen) * (f - chroma_round_trip(f))
        chroma.append(np.clip(f + 0.5, 0, maxv).astype(c_out.dtype))
    return y, chroma[0], chroma[1]


def chroma_round_trip(c: np.ndarray) -> np.ndarray:
    """A chroma plane (float32) upsampled bilinearly to the luma's grid and averaged back over
    2x2 blocks (what planes_to_rgb then rgb_to_planes do to it, before rounding): float32."""
    h, w = c.shape
    up = cv2.resize(c, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(up, (w, h), interpolation=cv2.INTER_AREA)
