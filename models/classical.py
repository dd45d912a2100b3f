"""Spatial classical baselines (OpenCV) behind the FrameModel API: `classical:median`,
`classical:gaussian`. Their strength follows the noise sigma of each plane."""

from __future__ import annotations

import cv2
import numpy as np

from streamdn.frames import Frame

from .registry import FrameModel, ModelInfo, register


class _Spatial(FrameModel):
    """Filters each plane on its own; no state. pack/unpack are identities on integer planes."""

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> tuple[Frame, tuple[float, float, float]]:
        return frame, sigmas

    def forward(self, packed: tuple[Frame, tuple[float, float, float]]) -> tuple[np.ndarray, ...]:
        frame, sigmas = packed
        scale = ((1 << frame.bit_depth) - 1) / 255.0
        return tuple(self.filter(p, s, scale) for p, s in zip((frame.y, frame.u, frame.v), sigmas))

    def unpack(self, result: tuple[np.ndarray, ...], frame: Frame) -> Frame:
        return frame.with_planes(*result)

    def filter(self, plane: np.ndarray, sigma: float, scale: float) -> np.ndarray:
        raise NotImplementedError


class Median(_Spatial):
    """3x3 median up to sigma 25 (8-bit units), 5x5 above; off below sigma 1."""

    info = ModelInfo("classical:median", "classical", "OpenCV median blur, 3x3 or 5x5 by noise level")

    def filter(self, plane: np.ndarray, sigma: float, scale: float) -> np.ndarray:
        if sigma < 1.0 or min(plane.shape) < 3:
            return plane
        ksize = 3 if sigma <= 25 else 5
        return cv2.medianBlur(np.ascontiguousarray(plane), ksize)


class Gaussian(_Spatial):
    """Gaussian blur whose spatial sigma grows with the noise: 0.5 + sigma / 20 pixels, a simple
    rule chosen so that flat areas lose most of the noise while detail survives at low sigma."""

    info = ModelInfo("classical:gaussian", "classical", "OpenCV Gaussian blur, radius by noise level")

    def filter(self, plane: np.ndarray, sigma: float, scale: float) -> np.ndarray:
        if sigma < 1.0:
            return plane
        return cv2.GaussianBlur(plane, (0, 0), 0.5 + sigma / 20.0, borderType=cv2.BORDER_REFLECT)


@register(Median.info)
def median(**_: object) -> Median:
    return Median()


@register(Gaussian.info)
def gaussian(**_: object) -> Gaussian:
    return Gaussian()
