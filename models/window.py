"""`window`: every frame of a file merged with the frames around it, then the still-image network.

The recursion of `fast_mc` carries one estimate from frame to frame; each step warps it again,
so over a long pan it is interpolated dozens of times, and its flow errors add up. For a file
there is no need to carry anything: the frames after the current one are on disk too. This
model takes, for each frame, up to `before` frames before it and `after` frames after it, brings
each onto the current frame on its own (a homography for the camera's motion, then its own
optical flow: streamdn.models.merge.Aligner and PictureMean), averages them where they match
(a moving subject or an occlusion keeps the current frame's pixels alone: no ghost), and runs
the still-image network (`photo`) over that mean with its noise map lowered by the number of
frames averaged at each pixel (streamdn.models.merge.denoise_mean). Every frame is resampled
once, whatever the motion, and the frames nearest in time (which match best) are on both sides.

The frames after the current one come with it: the pipeline reads `after` frames ahead for a
model with a window (frame.extra["ahead"], set by streamdn.frames.with_lookahead; the Denoiser
prepares them as it prepares every frame). Given frames one at a time (a live source, the
Denoiser called frame by frame) it merges the past frames alone.

A scene cut (the luma change of streamdn.kernels.is_scene_cut), or a frame that matches on too
little of the picture, ends the window on its side: no frame of another scene is averaged in.
Beside the window, the plain running mean of the noisy frames, kept on a canvas that follows
the camera (streamdn.models.mosaic.MosaicAverage, as in `fast_mc`), is blended in, so a static
shot or a pan keeps improving past the window's frames. The result goes back to 4:2:0 with the
chroma sharpened against the blur of the RGB round trip.

Measured on the validation clips and `streamdn temporal` shots, blind (docs/window.md).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import AHEAD, Frame, planes_to_rgb, rgb_to_frame
from streamdn.kernels import frame_difference, is_scene_cut, pack_yuv420, unpack_yuv420

from .merge import CONSISTENT, Aligner, PictureMean, denoise_mean
from .mosaic import LongAverage, MosaicAverage
from .network import low_noise_weight, pack_with_noise_map
from .picture import CLEAN_SIGMA, PhotoModel, rgb_to_video_planes
from .registry import FrameModel, ModelInfo

BEFORE = 4   # frames before the current one merged with it (default)
AFTER = 4    # frames after it (default): the file is read this many frames ahead
MAX_SIDE = 16  # the most frames on either side
CUT_THRESHOLD = 25.0   # 8-bit luma change above the noise that ends the window (as the recursion's cuts)
# The long average (streamdn.models.mosaic.MosaicAverage: the running mean of the noisy frames on
# a canvas that follows the camera), blended with the weight c / (c + 8) ramped in from 5 to 20
# frames (a window's result is already a 9-frame average; on the static shots of `streamdn
# temporal` at frame 39: ramp (10, 30) 39.05 / 36.10 dB, (5, 20) 39.22 / 36.25; k 4 or 8 the same).
LONG_AVERAGE = LongAverage(k=8.0, ramp=(5.0, 20.0))
# The chroma's sharpening against the RGB round trip (picture.rgb_to_video_planes). With the
# noisy chroma upsampled bilinearly and the output shown so (earlier), g = 0 / 1 / 2 / 3 gave
# awgn20 33.93 / 34.27 / 34.57 / 34.77 dB. With both fitted to the luma (streamdn.frames,
# chroma="luma"), g = 0 / 0.75 / 1 / 1.25 / 1.5 / 2 gave awgn20 35.73 / 35.98 / 36.02 / 36.03 /
# 35.99 / 35.87, awgn30 33.91 / 34.10 / 34.13 / 34.14 / 34.11 / 34.08, pg_lowlight 34.07 / 34.24 /
# 34.27 / 34.27 / 34.25 / 34.21; SSIM highest and flicker lowest near 1.
CHROMA_SHARPEN = 1.0
MIN_SHARE = 0.3   # a frame matching on less of the picture than this ends the window on its side


@dataclass
class WindowPacked:
    """One frame's work: its RGB (uint8, or uint16 above 8 bits), its noise sigmas (8-bit units),
    the frames after it in the window (RGB, nearest first, none past a cut) and whether a cut
    lies between it and the frame before."""

    rgb: np.ndarray
    sigmas: tuple[float, float, float]
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    bit_depth: int
    ahead: list[np.ndarray] = field(default_factory=list)
    cut: bool = False
    impulses_removed: bool = False


class WindowModel(FrameModel):
    """A still-image network (PhotoModel) over the mean of a window of aligned frames."""

    impulse_filter = True

    def __init__(self, photo: PhotoModel, info: ModelInfo, *, before: int = BEFORE, after: int = AFTER,
                 cut_threshold: float = CUT_THRESHOLD, long_average: bool = True) -> None:
        """Args:
            photo: the still-image network (its device, dtype and noise map settings apply).
            info: what `streamdn models` shows.
            before, after: frames merged on each side of the current one (0..MAX_SIDE).
            cut_threshold: see streamdn.kernels.is_scene_cut (inf: never cut).
            long_average: blend in the running mean of the noisy frames, kept on a canvas that
                follows the camera (streamdn.models.mosaic.MosaicAverage, see _blend_long_average).

        Raises:
            ConfigError: a window side out of range.
        """
        for name, n in (("before", before), ("after", after)):
            if not 0 <= int(n) <= MAX_SIDE:
                raise ConfigError(f"model '{info.name}': {name}={n}; use 0..{MAX_SIDE} frames.")
        self.photo = photo
        self.info = info
        self.device = photo.device
        self.before = int(before)
        self.lookahead = int(after)
        self.cut_threshold = float(cut_threshold)
        self.min_share = MIN_SHARE
        self._past: deque[np.ndarray] = deque(maxlen=max(self.before, 1))
        self._rgb: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()   # id(plane) -> (plane, RGB)
        self._last_luma: np.ndarray | None = None
        self.long_average: MosaicAverage | None = MosaicAverage(LONG_AVERAGE) if long_average else None

    @property
    def signal_dependent(self) -> bool:
        return self.photo.signal_dependent

    @property
    def dtype(self) -> Any:
        """The network's compute dtype (torch)."""
        return self.photo.dtype

    # -- the three stages --------------------------------------------------------------------

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> WindowPacked:
        """The frame and the frames after it (frame.extra["ahead"]) in RGB, up to the first cut."""
        rgb = self._frame_rgb(frame)
        sigma_y = float(sigmas[0])
        last, self._last_luma = self._last_luma, frame.y
        cut = last is not None and self._is_cut(last, frame, sigma_y)
        ahead: list[np.ndarray] = []
        prev = frame
        for nxt in list(frame.extra.get(AHEAD, ()))[:self.lookahead]:
            if not isinstance(nxt, Frame) or nxt.y.shape != frame.y.shape or self._is_cut(prev.y, nxt, sigma_y):
                break
            ahead.append(self._frame_rgb(nxt))
            prev = nxt
        return WindowPacked(rgb, sigmas, (frame.y, frame.u, frame.v), frame.bit_depth, ahead, cut,
                            bool(frame.extra.get("impulses_removed")))

    def forward(self, packed: WindowPacked) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The merged and denoised frame's Y, U, V planes (the frame's size and depth)."""
        if self.photo.net is None:
            raise ConfigError(f"model '{self.info.name}' was closed; create a new Denoiser to continue.")
        if packed.cut or (self._past and self._past[-1].shape != packed.rgb.shape):
            self._past.clear()
        rgb = packed.rgb
        # A clean input stays clean: below the low-noise blend's range the frame passes as it
        # is (merging would only add the alignment's errors), inside it the result leans back
        # to the frame, as for the other networks.
        w = 1.0 if packed.impulses_removed else low_noise_weight(packed.sigmas[0], self.photo.low_noise_blend)
        if w == 0.0:
            if self.before:
                self._past.append(rgb)
            if self.long_average is not None:
                self.long_average.reset()
            return packed.planes
        frame = rgb_to_frame(rgb)
        if packed.impulses_removed:
            # Its noise estimate now reads low, but what the median missed still needs the
            # network: no low-noise blend (as for a single frame).
            frame.extra["impulses_removed"] = True
        acc = PictureMean(rgb, frame, packed.sigmas, self.photo.signal_dependent)
        past = list(self._past)[::-1][:self.before]
        follow = bool(self._past) and self.long_average is not None
        aligner = Aligner(rgb) if past or packed.ahead or follow else None
        # The camera's motion since the previous frame (the long average's first guess).
        to_previous = aligner.homography(self._past[-1]) if aligner is not None and follow else None
        if aligner is not None and (past or packed.ahead):
            # Every frame of the window is measured first: the frames of this scene show the
            # noise's unit (the lowest), and each is judged in at most CONSISTENT times it, so that
            # a frame of another scene (a cut the luma change missed, a dissolve, a flash) cannot
            # loosen its own test. Nearest first; a frame matching on less than min_share of the
            # picture ends the window on its side.
            sides = [[acc.measure(f, to_previous if follow and f is self._past[-1] else aligner.homography(f))
                      for f in side] for side in (past, packed.ahead)]
            units = [shot.unit for side in sides for shot in side]
            top = min(acc.max_unit, CONSISTENT * max(min(units), 1.0))
            for d in range(max(len(side) for side in sides)):
                for k, side in enumerate(sides):
                    if d < len(side):
                        shot = side[d]
                        if acc.add_trusted(shot.warped, acc.trust(shot, top), self.min_share) < self.min_share:
                            sides[k] = side[:d]
        out, _ = denoise_mean(self.photo, acc, frame, packed.sigmas, rgb.dtype, self.photo.tile)
        if self.before:
            self._past.append(rgb)
        # Back to the frame's planes, the chroma undone from the RGB round trip's blur.
        clean = packed.impulses_removed or packed.sigmas[0] < CLEAN_SIGMA
        planes = rgb_to_video_planes(out, packed.planes, packed.bit_depth, clean, sharpen=CHROMA_SHARPEN)
        if self.long_average is not None:
            planes = self._blend_long_average(planes, packed, to_previous)
        if w < 1.0:
            planes = tuple(np.clip(np.rint(a + w * (b.astype(np.float32) - a)), 0, (1 << packed.bit_depth) - 1)
                           .astype(b.dtype) for a, b in zip(packed.planes, planes))  # type: ignore[assignment]
        return planes

    def _blend_long_average(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], packed: WindowPacked,
                            to_previous: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Blends in the running mean of the noisy frames where it has averaged long enough (a
        window averages at most before + after + 1 frames; a shot that keeps the same scene in
        view, still or panning, keeps improving past them): streamdn.models.mosaic.MosaicAverage,
        `to_previous` (this frame's pixels -> the previous frame's, or None) its first guess."""
        assert self.long_average is not None
        frame = Frame(*packed.planes, bit_depth=packed.bit_depth)
        cur, sigma = pack_with_noise_map(frame, packed.sigmas, self.photo.signal_dependent)
        maxv = (1 << packed.bit_depth) - 1
        out = pack_yuv420(*planes, 1.0 / maxv, np.empty_like(cur))
        self.long_average.step(cur, sigma, out, frame.y.shape, to_previous, packed.cut)
        y, u, v = (np.empty_like(p) for p in planes)
        unpack_yuv420(out, maxv, y, u, v)
        return y, u, v

    def unpack(self, result: tuple[np.ndarray, np.ndarray, np.ndarray], frame: Frame) -> Frame:
        """The result as a Frame with `frame`'s size, depth, timing and metadata."""
        return frame.with_planes(*result)

    def reset(self) -> None:
        if self.long_average is not None:
            self.long_average.reset()
        self._past.clear()
        self._rgb.clear()
        self._last_luma = None

    def clone(self) -> WindowModel:
        """The same network (shared) and window with no past."""
        return WindowModel(self.photo, self.info, before=self.before, after=self.lookahead,
                           cut_threshold=self.cut_threshold, long_average=self.long_average is not None)

    def close(self) -> None:
        self.reset()
        self.photo.close()

    # -- helpers ------------------------------------------------------------------------------

    def _frame_rgb(self, frame: Frame) -> np.ndarray:
        """The frame in RGB (uint8 for 8-bit frames, else uint16), converted once: a frame is
        in the window of the `after` frames before it too."""
        key = id(frame.y)
        hit = self._rgb.get(key)
        if hit is not None and hit[0] is frame.y:
            return hit[1]
        dtype = np.uint8 if frame.bit_depth <= 8 else np.uint16
        # The chroma fitted to the luma, noisy as they are: on the validation clips +0.25 / +0.38 /
        # +0.20 dB (awgn20 / awgn30 / pg_lowlight) over bilinear chroma.
        rgb = planes_to_rgb(frame.y, frame.u, frame.v, frame.bit_depth, dtype, chroma="luma")
        self._rgb[key] = (frame.y, rgb)
        while len(self._rgb) > self.lookahead + 2:
            self._rgb.popitem(last=False)
        return rgb

    def _is_cut(self, last: np.ndarray, frame: Frame, sigma_y: float) -> bool:
        if last.shape != frame.y.shape or last.dtype != frame.y.dtype:
            return True
        score = frame_difference(frame.y, last, 4) * 255.0 / ((1 << frame.bit_depth) - 1)
        return is_scene_cut(score, sigma_y, self.cut_threshold)
