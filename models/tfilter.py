"""`tfilter`: the motion-adaptive recursive filter of streamdn.kernels behind the FrameModel API
(the classical temporal denoiser; needs no weights)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamdn.frames import Frame
from streamdn.kernels import float_to_plane, plane_to_float, recursive_filter

from .registry import FrameModel, ModelInfo, register


@dataclass
class _Packed:
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]   # float32, 8-bit units
    sigmas: tuple[float, float, float]                  # 8-bit units


class TemporalFilter(FrameModel):
    """Per-plane recursive averaging where the picture is still, a spatial sigma filter where it
    moves. State: the previous output and a per-pixel frame count."""

    impulse_filter = True

    def __init__(self, max_count: float = 10.0, radius: int = 2) -> None:
        self.info = INFO
        self.max_count = float(max_count)
        self.radius = int(radius)
        self._state: list[tuple[np.ndarray, np.ndarray]] | None = None

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> _Packed:
        scale = 255.0 / ((1 << frame.bit_depth) - 1)
        planes = tuple(plane_to_float(p, scale, np.empty(p.shape, np.float32)) for p in (frame.y, frame.u, frame.v))
        return _Packed(planes, sigmas)  # type: ignore[arg-type]

    def forward(self, packed: _Packed) -> tuple[np.ndarray, ...]:
        shapes = [p.shape for p in packed.planes]
        if self._state is None or [s[0].shape for s in self._state] != shapes:
            self._state = [(p, np.zeros(p.shape, np.float32)) for p in packed.planes]
        outs = []
        new_state = []
        for plane, sigma, (prev, count) in zip(packed.planes, packed.sigmas, self._state):
            out = np.empty_like(plane)
            if sigma <= 0.05:
                out[...] = plane
                new_state.append((out, count))
            else:
                recursive_filter(plane, prev, count, float(sigma), self.max_count, self.radius, out, count)
                new_state.append((out, count))
            outs.append(out)
        self._state = new_state
        return tuple(outs)

    def unpack(self, result: tuple[np.ndarray, ...], frame: Frame) -> Frame:
        maxv = (1 << frame.bit_depth) - 1
        scale = maxv / 255.0
        planes = [float_to_plane(r, scale, maxv, np.empty(r.shape, p.dtype))
                  for r, p in zip(result, (frame.y, frame.u, frame.v))]
        return frame.with_planes(*planes)

    def reset(self) -> None:
        self._state = None

    def clone(self) -> TemporalFilter:
        """The same settings with no past."""
        return TemporalFilter(self.max_count, self.radius)


INFO = ModelInfo(
    name="tfilter", kind="classical", temporal=True,
    summary="motion-adaptive recursive filter + spatial sigma filter (Numba, CPU)",
)


@register(INFO)
def tfilter(*, device: str = "cpu", max_count: float = 10.0, radius: int = 2) -> TemporalFilter:
    """Args: device: ignored (a CPU filter); max_count, radius: see streamdn.kernels.recursive_filter."""
    return TemporalFilter(max_count, radius)
