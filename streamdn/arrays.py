"""The layouts the embedding API accepts, turned into Frames and back into the caller's layout,
dtype and device: numpy H×W×3 uint8 (BGR or RGB), I420 plane tuples, torch images (H×W×3 uint8
or 3×H×W float in [0, 1]; the Denoiser splits batches into these)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import Frame, frame_from_bgr

Restore = Callable[[Frame], Any]


def is_tensor(x: object) -> bool:
    """Whether `x` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


def _check_hwc(a: np.ndarray) -> None:
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ConfigError(f"expected an (H, W, 3) uint8 image, got shape {a.shape} dtype {a.dtype}; "
                          f"float images go in as torch tensors (3×H×W in [0, 1]).")


def from_image(img: np.ndarray, order: str, index: int) -> tuple[Frame, Restore]:
    """(H, W, 3) uint8 in `order` ("bgr" or "rgb") -> Frame, and the function that turns the
    denoised Frame back into the same layout."""
    _check_hwc(img)
    bgr = img if order == "bgr" else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    frame = frame_from_bgr(np.ascontiguousarray(bgr), index=index, pts=index)

    def restore(out: Frame) -> np.ndarray:
        res = out.to_bgr()
        return res if order == "bgr" else cv2.cvtColor(res, cv2.COLOR_BGR2RGB)

    return frame, restore


def from_planes(planes: tuple[np.ndarray, np.ndarray, np.ndarray], index: int) -> tuple[Frame, Restore]:
    """(Y, U, V) I420 planes (uint8, or uint16 with 10-bit values) -> Frame and back."""
    y, u, v = planes
    depth = 8 if y.dtype == np.uint8 else 10
    ch, cw = (y.shape[0] + 1) // 2, (y.shape[1] + 1) // 2
    if u.shape != (ch, cw) or v.shape != (ch, cw):
        raise ConfigError(f"I420 planes: U and V must be {(ch, cw)} for Y {y.shape}; got {u.shape}, {v.shape}.")
    frame = Frame(y=np.ascontiguousarray(y), u=np.ascontiguousarray(u), v=np.ascontiguousarray(v),
                  bit_depth=depth, pts=index, index=index)
    return frame, lambda out: (out.y, out.u, out.v)


def from_tensor(t: Any, order: str, index: int) -> tuple[Frame, Restore]:
    """One torch image -> Frame, and the function that builds the output tensor in the input's
    layout, dtype and device: (H, W, 3) uint8, or (3, H, W) float in [0, 1], channels in
    `order` ("rgb" or "bgr").

    CPU tensors are viewed without a copy; tensors on another device are copied to the host
    for the CPU filters (networks take them as they are, see Denoiser).

    Raises:
        ConfigError: another shape or dtype.
    """
    import torch

    device, dtype = t.device, t.dtype
    if t.ndim == 3 and t.shape[2] == 3 and dtype == torch.uint8:
        frame, back = from_image(t.detach().to("cpu").numpy(), order, index)
        return frame, lambda out: torch.from_numpy(back(out)).to(device)
    if t.ndim == 3 and t.shape[0] == 3 and dtype.is_floating_point:
        host = t.detach().to("cpu")
        img = (host.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        frame, back = from_image(np.ascontiguousarray(img), order, index)

        def build(out: Frame) -> Any:
            res = torch.from_numpy(back(out)).permute(2, 0, 1).to(dtype) / 255.0
            return res.to(device)

        return frame, build
    raise ConfigError(f"unsupported tensor shape {tuple(t.shape)} dtype {dtype}: pass H×W×3 uint8, 3×H×W or "
                      f"N×3×H×W float in [0, 1].")
