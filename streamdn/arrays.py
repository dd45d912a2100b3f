"""The layouts the embedding API accepts, turned into Frames and back into the caller's layout,
dtype and device: numpy H×W×3 uint8 (BGR or RGB), I420 plane tuples, torch tensors (H×W×3 uint8,
3×H×W or N×3×H×W float in [0, 1])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import Frame, frame_from_bgr

Restore = Callable[[Frame], Any]


def _is_tensor(x: object) -> bool:
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


def tensor_frames(t: Any, order: str, start: int) -> tuple[list[Frame], Callable[[list[Frame]], Any]]:
    """A torch tensor -> Frames (a batch N×3×H×W is N consecutive frames of the stream) and the
    function that builds the output tensor in the input's layout, dtype and device.

    CPU tensors are viewed without a copy; tensors on another device are copied to the host
    for the CPU filters (networks take them as they are, see Denoiser).
    """
    import torch

    device, dtype = t.device, t.dtype
    host = t.detach().to("cpu")
    if t.ndim == 3 and t.shape[2] == 3 and dtype == torch.uint8:
        frame, back = from_image(host.numpy(), order, start)
        return [frame], lambda outs: torch.from_numpy(back(outs[0])).to(device)
    if t.ndim in (3, 4) and t.shape[-3] == 3 and dtype.is_floating_point:
        batch = host if t.ndim == 4 else host[None]
        imgs = (batch.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        pairs = [from_image(np.ascontiguousarray(img), order, start + i) for i, img in enumerate(imgs)]

        def build(outs: list[Frame]) -> Any:
            res = np.stack([back(o) for (_, back), o in zip(pairs, outs)])
            out = torch.from_numpy(res).permute(0, 3, 1, 2).to(dtype) / 255.0
            out = out if t.ndim == 4 else out[0]
            return out.to(device)

        return [f for f, _ in pairs], build
    raise ConfigError(f"unsupported tensor shape {tuple(t.shape)} dtype {dtype}: pass H×W×3 uint8, 3×H×W or "
                      f"N×3×H×W float in [0, 1].")
