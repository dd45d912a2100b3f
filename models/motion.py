"""Motion compensation of a recurrent network's state: the flow from the current frame to the
carried estimate, and the warp that brings the carried state (estimate, hidden features,
effective frame count) onto the current frame.

Everything here is at the packed resolution (H/2 x W/2, streamdn.kernels.pack_yuv420) except
the luma, which is warped as the one full-resolution plane its four packed phases are: warping
the phases as four half-resolution planes interpolates an aliased signal and smears detail on
every sub-pixel move. The estimate is interpolated with a Lanczos kernel (6x6 taps, exact
positions; streamdn.kernels.motion.warp_packed_lanczos): the state is warped again at every
frame, and a softer kernel (bilinear, bicubic) compounds its blur step after step until a slow
pan has lost its fine detail (measured: docs/motion.md). Still blocks keep exactly zero motion
and are copied, never re-interpolated.

Flow convention (OpenCV's DIS): flow[i, j] = (dx, dy) says the content at pixel (x=j, y=i) of
the current frame was at (j + dx, i + dy) in the carried one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from streamdn.kernels import packed_luma
from streamdn.kernels.motion import flow_maps, keep_still_blocks, luma_plane, repack_luma, warp_packed_lanczos

FLOW_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "fine": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST}
# Settings on top of a preset: (finest pyramid scale, patch stride, gradient-descent iterations,
# variational refinement iterations). "fine": ULTRAFAST one pyramid scale finer (on the
# half-resolution luma, a flow on a quarter- instead of an eighth-resolution grid) with a little
# variational refinement; 4.6-4.9 ms against 1.1-1.2 ms for ULTRAFAST on the 640x360 luma of a
# 720p frame (2 cores), and with `fast_mc` +0.25-0.35 dB on every validation noise and up to
# +1.9 dB on pans (docs/motion.md, "Flow settings of the recursion"). MEDIUM gains no more at 12 ms.
FLOW_SETTINGS = {"fine": (1, 5, 12, 3)}
MIN_FLOW_SIDE = 16   # pictures smaller both ways are padded to this for the flow (DIS needs 12)


def packed_luma_u8(packed: np.ndarray) -> np.ndarray:
    """(H2, W2, 6) packed float32 in [0, 1] -> (H2, W2) uint8: the mean of the four luma phases
    (a half-resolution luma whose noise is half the full-resolution one's), rounded."""
    return packed_luma(np.ascontiguousarray(packed, dtype=np.float32),
                       out=np.empty(packed.shape[:2], np.uint8))


class FlowEstimator:
    """Dense optical flow between two half-resolution lumas (OpenCV's DIS: about 1.2 ms with
    "ultrafast", 5 ms with "fine", for the 640x360 luma of a 720p frame on two cores). One per
    stream: it is not thread-safe."""

    def __init__(self, preset: str = "fine") -> None:
        if preset not in FLOW_PRESETS:
            raise ValueError(f"flow preset '{preset}': use one of {', '.join(FLOW_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(FLOW_PRESETS[preset])
        if preset in FLOW_SETTINGS:
            scale, stride, iterations, refinement = FLOW_SETTINGS[preset]
            self._dis.setFinestScale(scale)
            self._dis.setPatchStride(stride)
            self._dis.setGradientDescentIterations(iterations)
            self._dis.setVariationalRefinementIterations(refinement)

    def __call__(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """(H2, W2) uint8 lumas -> (H2, W2, 2) float32 flow from `cur` to `prev` (see the module
        doc), in half-resolution pixels."""
        h, w = cur.shape
        if h < MIN_FLOW_SIDE and w < MIN_FLOW_SIDE:
            # DIS refuses pictures under 12 pixels both ways (a frame under 24 pixels): pad
            # them by repeating the border, and keep the flow of the picture itself.
            pad = ((0, MIN_FLOW_SIDE - h), (0, MIN_FLOW_SIDE - w))
            flow = self._dis.calc(np.pad(cur, pad, mode="edge"), np.pad(prev, pad, mode="edge"), None)
            return np.ascontiguousarray(flow[:h, :w])
        return self._dis.calc(np.ascontiguousarray(cur), np.ascontiguousarray(prev), None)


def _maps(flow: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling maps for cv2.remap from a half-resolution flow, at `scale` times its size
    (full-resolution sample positions in half-resolution pixels: (x + 0.5) / 2 - 0.5)."""
    h, w = flow.shape[:2]
    gx = np.empty((h * scale, w * scale), np.float32)
    gy = np.empty_like(gx)
    flow_maps(np.ascontiguousarray(flow, dtype=np.float32), scale, gx, gy)
    return gx, gy


def warp_packed(state: np.ndarray, flow: np.ndarray,
                maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Warps a packed estimate onto the current frame.

    Args:
        state: (H2, W2, 6) float32 packed estimate (4 luma phases, U, V).
        flow: (H2, W2, 2) float32 flow from the current frame to `state`, half-resolution px.
        maps: the half-resolution sampling maps of `flow` when already made (_maps(flow, 1)).

    Returns:
        (H2, W2, 6) float32: the luma warped at full resolution, the chroma at half, both with
        an 8x8 Lanczos kernel; outside the frame the border repeats.
    """
    h2, w2 = state.shape[:2]
    y = luma_plane(state, np.empty((2 * h2, 2 * w2), np.float32))
    gx, gy = _maps(flow, 2)
    yw = cv2.remap(y, gx, gy, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    cx, cy = maps if maps is not None else _maps(flow, 1)
    uv = cv2.remap(np.ascontiguousarray(state[..., 4:]), cx, cy, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    return repack_luma(yw, uv, np.empty((h2, w2, 6), np.float32))


def warp_features(x: np.ndarray, flow: np.ndarray, outside: float | None = None,
                  maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Warps (H2, W2, C) float32 features (hidden state, counts) bilinearly along `flow`.

    Args:
        outside: the value of samples that fall outside the frame; None repeats the border.
        maps: the sampling maps of `flow` when already made (_maps(flow, 1)).
    """
    gx, gy = maps if maps is not None else _maps(flow, 1)
    border = cv2.BORDER_REPLICATE if outside is None else cv2.BORDER_CONSTANT
    value = 0.0 if outside is None else float(outside)
    out = np.empty_like(x)
    # cv2.remap takes at most 4 channels at a time.
    for c in range(0, x.shape[-1], 4):
        part = cv2.remap(np.ascontiguousarray(x[..., c:c + 4]), gx, gy, cv2.INTER_LINEAR, borderMode=border,
                         borderValue=(value, value, value, value))
        out[..., c:c + 4] = part.reshape(x.shape[:2] + (-1,))
    return out


@dataclass(frozen=True)
class StillTest:
    """When a block of the flow is set to zero motion (streamdn.kernels.motion.keep_still_blocks):
    its zero-motion difference is at most (1 + rel) times the one along the flow plus `margin`
    luma levels per pixel, and, unless it was still at the previous frame, its mean flow is
    under `small` half-resolution pixels."""

    rel: float = 0.0
    margin: float = 0.25
    small: float = 0.1


class StateWarper:
    """Brings a motion network's carried state onto the current frame: flow from the current
    noisy frame to the carried estimate (on the half-resolution luma), then the estimate, the
    hidden features and the effective frame count warped along it (the count is 0 where the
    carried state has no sample: those pixels restart from the current frame).

    Two things keep the flow of a noisy frame from softening a still picture (docs/motion.md,
    "Still parts of the picture"): both lumas are smoothed a little before the flow (noise makes
    DIS's patches match at small false offsets), and 8x8 blocks that match as well at zero motion
    keep exactly zero motion (StillTest), so a still scene is never re-interpolated and its
    average stays sharp however long it runs. Which blocks were still is remembered from frame to
    frame, per stream (reset() forgets it: a new stream, a scene cut).
    """

    def __init__(self, preset: str = "fine", *, presmooth: float = 1.0,
                 still: StillTest | None = StillTest(), lanczos: int = 3) -> None:
        """Args:
            preset: the DIS preset (FLOW_PRESETS).
            presmooth: sigma in pixels of the Gaussian blur of both lumas before the flow; 0: none.
            still: the zero-motion test; None: the flow as estimated.
            lanczos: the order of the estimate's Lanczos warp (streamdn.kernels.motion.
                warp_packed_lanczos: exact positions, still pixels copied): 3 (6x6 taps) or 4
                (8x8); 0 takes OpenCV's 8x8 Lanczos remap instead (warp_packed here).
        """
        self.flow = FlowEstimator(preset)
        self.presmooth = float(presmooth)
        self.still = still
        self._still_maps: dict[int, np.ndarray] = {}
        self._last_flows: list[np.ndarray] | None = None
        if lanczos not in (0, 3, 4):
            raise ValueError(f"lanczos={lanczos}: use 3, 4 or 0 (OpenCV's remap)")
        self.lanczos = lanczos

    def reset(self) -> None:
        """Forgets which blocks were still (a new stream, a scene cut)."""
        self._still_maps.clear()
        self._last_flows = None

    def estimate(self, cur: np.ndarray, state: np.ndarray, stream: int = 0) -> np.ndarray:
        """The flow from packed `cur` to packed `state` ((H2, W2, 6) float32), with still blocks
        at exactly zero: (H2, W2, 2) float32 in half-resolution pixels. `stream` keeps the
        still blocks of several streams (a training batch) apart."""
        lc, ls = packed_luma_u8(cur), packed_luma_u8(state)
        if self.presmooth > 0.0:
            flow = self.flow(cv2.GaussianBlur(lc, (0, 0), self.presmooth),
                             cv2.GaussianBlur(ls, (0, 0), self.presmooth))
        else:
            flow = self.flow(lc, ls)
        if self.still is not None:
            grid = ((lc.shape[0] + 7) // 8, (lc.shape[1] + 7) // 8)
            still = self._still_maps.get(stream)
            if still is None or still.shape != grid:
                still = self._still_maps[stream] = np.zeros(grid, np.uint8)
            keep_still_blocks(lc, ls, flow, 8, self.still.rel, self.still.margin, self.still.small, still)
        return flow

    def __call__(self, cur: np.ndarray, state: np.ndarray, hidden: np.ndarray,
                 count: np.ndarray, stream: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Args: (H2, W2, C) float32 arrays: cur and state packed (C = 6), hidden (C = k),
        count (C = 1); the stream's index (see estimate). Returns the warped state, hidden and
        count."""
        return self.warp(self.estimate(cur, state, stream), state, hidden, count)

    def warp(self, flow: np.ndarray, state: np.ndarray, hidden: np.ndarray,
             count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The state, hidden features and count warped along `flow` (from estimate)."""
        maps = _maps(flow, 1)
        if self.lanczos:
            warped = warp_packed_lanczos(np.ascontiguousarray(state), flow, self.lanczos)
        else:
            warped = warp_packed(state, flow, maps)
        return (warped, warp_features(hidden, flow, maps=maps),
                warp_features(count, flow, outside=0.0, maps=maps))

    def warp_tensors(self, cur: torch.Tensor, state: torch.Tensor, hidden: torch.Tensor,
                     count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same on (N, C, H2, W2) tensors (any device; the warp runs on the host, one
        sample at a time; sample i is stream i). Returns float32 tensors on the inputs' device;
        when nothing moved (every flow exactly zero: a still camera on a still scene) the
        inputs themselves, uncopied."""
        host = [[t[i].detach().float().permute(1, 2, 0).cpu().numpy() for t in (cur, state)]
                for i in range(cur.shape[0])]
        flows = [self.estimate(c, s, i) for i, (c, s) in enumerate(host)]
        self._last_flows = flows if any(f.any() for f in flows) else None
        if self._last_flows is None:
            return state.float(), hidden.float(), count.float()
        outs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for i, flow in enumerate(flows):
            h, c = (t[i].detach().float().permute(1, 2, 0).cpu().numpy() for t in (hidden, count))
            outs.append(self.warp(flow, host[i][1], h, c))
        # One stream (the usual case): its arrays as they are, not copied into a batch.
        batch = [outs[0][k][None] if len(outs) == 1 else np.stack([o[k] for o in outs]) for k in range(3)]
        return tuple(torch.from_numpy(b).permute(0, 3, 1, 2).to(cur.device)
                     for b in batch)  # type: ignore[return-value]

    def last_flow(self, i: int = 0) -> np.ndarray | None:
        """Stream i's flow in the last warp_tensors call; None when nothing moved (every flow
        exactly zero)."""
        return None if self._last_flows is None else self._last_flows[i]

    def still_mask(self, like: torch.Tensor) -> torch.Tensor | float:
        """1 where the last warp_tensors call's flow was exactly zero (a still block), else 0:
        an (N, 1, H2, W2) float32 tensor on `like`'s device, or 1.0 when nothing moved."""
        flows = self._last_flows
        if flows is None:
            return 1.0
        still = np.stack([(f == 0.0).all(axis=-1) for f in flows]).astype(np.float32)[:, None]
        return torch.from_numpy(still).to(like.device)
