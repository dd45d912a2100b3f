"""Pictures of one scene merged for a still-image network: the mean of the shots (a burst's, or
the frames around a video frame) in full-resolution RGB, then the network over it with a noise
map lowered by the number of shots averaged at each pixel.

A still-image network (`photo`) has no past to carry. It gets the picture a long exposure would
have given instead: every shot is brought onto the reference by a homography (Aligner: the
camera's motion) and along its own optical flow (DIS on the half-resolution lumas, 8x8 blocks
that match as well at zero motion kept at exactly zero: after the homography most of the
picture should not move, and a flow estimated between two noisy shots is noise there),
resampled with an 8x8 Lanczos kernel (a burst's shots once along the homography, by the
caller, then along the flow; `window`'s frames once along both together: PictureMean.measure),
and added where it matches the reference
(streamdn.kernels.mismatch_map: the mean absolute difference over 5x5 pixels against the noise
of a difference of two shots, in a unit measured on the shots): a moving subject or an
occlusion keeps the reference's pixels alone, so no ghost. Near black and white the mean of
clipped noise is biased (the noise cut off below 0 and above 1 is missing);
streamdn.kernels.unclip_mean takes it back to the level the shots measure. The network then
sees that mean with the reference's noise map times 1 / sqrt(shots averaged): it removes what
noise is left and no more. At such low noise a network also smooths fine texture, which the
mean of many shots still holds: restore_detail gives back whatever the network took beyond the
mean's expected noise.

Used by bursts (streamdn.jobs.merge_rgb, `python scripts/burst_eval.py --models photo`,
docs/photo.md) and by the `window` video model (streamdn.models.window, docs/window.md).
Memory: the mean's sum and the shot being added, about 40 bytes per pixel, whatever the number
of shots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import PLANE_SIGMA_PER_RGB_SIGMA, Frame, crop_frame, rgb_to_frame, tile_boxes
from streamdn.kernels import add_shot, mismatch_map, pack_yuv420, unclip_mean
from streamdn.kernels.motion import flow_maps

from .motion import StateWarper, StillTest
from .network import noise_curve, pack_with_noise_map

OVERLAP = 32   # luma pixels of context each side of the network's tiles (at least its own context)
ALIGN_SIDE = 640   # the global alignment works on lumas scaled down to this long side (at most)
DETAIL_BOX = 7   # restore_detail's window
# The 10th percentile and the median of streamdn.kernels.mismatch_map between two shots that differ
# by noise alone, at the level the noise map gives (measured 0.65-0.71 and 0.74-0.80 on synthetic
# bursts with Gaussian and Poisson-Gaussian noise; 1.10-1.14 and 1.40-1.47 under JPEG-compressed
# low-light noise).
NOISE_MISMATCH = (0.68, 0.77)
CONSISTENT = 1.25   # a shot's unit is at most this times the lowest of the shots added before it
# Below this luma noise sigma (8-bit units) the unit stays 1: two nearly clean shots differ by
# their alignment's errors, which the match test must see (measured: salt-and-pepper noise,
# removed on each shot, left sigma 0.4; with the measured unit the merge lost 2 dB there).
MIN_UNIT_SIGMA = 2.0


@dataclass
class Shot:
    """A shot warped onto the reference (PictureMean.measure): its pixels, its mismatch map
    ((H2, W2) float32, streamdn.kernels.mismatch_map) and the units of noise it shows (the match
    test's, from a low quantile of the mismatch; the typical noise's, from its median)."""

    warped: np.ndarray
    mismatch: np.ndarray
    unit: float
    noise_unit: float


class PictureMean:
    """The mean of a burst's shots on the reference's grid, in full-resolution RGB.

    Attributes (chosen on synthetic bursts, scripts/burst_eval.py seeds 0 and 1):
        match: the mismatch (streamdn.kernels.mismatch_map, in the measured unit) of full trust
            and of none; the tighter (1.0, 1.3) of the video path left shots out in low light
            for no gain.
        still: the zero-motion test of the shots' flow: a block keeps exactly zero motion when
            it matches as well (5 % and half a level per pixel) and moves under 0.6
            half-resolution pixels. Against the flow as estimated: +0.1-0.3 dB.
        max_unit: the most the measured noise unit may exceed the noise map's (see add): 1.65
            was measured under JPEG-compressed low-light noise, where the noise map's own unit
            left half the shots out. A shot of another scene measures 1.9-3.3 and is then
            judged with this unit, or with 1.25 times the lowest unit of the shots before it: its
            low-contrast parts may be taken for noise when it comes first.
    """

    match: tuple[float, float] = (1.2, 1.6)
    max_unit: float = 2.0
    box: int = 5
    still: StillTest = StillTest(rel=0.05, margin=0.5, small=0.6)

    def __init__(self, reference: np.ndarray, frame: Frame, sigmas: tuple[float, float, float],
                 signal_dependent: bool = True) -> None:
        """Args:
            reference: (H, W, 3) uint8 or uint16 RGB, the shot the others are brought onto.
            frame: its 16-bit YUV 4:2:0 frame (streamdn.jobs.still.rgb_to_frame).
            sigmas: the Y, U, V noise sigmas of one shot (8-bit units).
            signal_dependent: shape the noise by brightness (the picture's fitted noise curve).
        """
        self.height, self.width = reference.shape[:2]
        self._scale = np.float32(1.0 / np.iinfo(reference.dtype).max)
        self.ref_packed, self.sigma_map = pack_with_noise_map(frame, sigmas, signal_dependent)
        self._reference = reference
        self._sum: np.ndarray | None = None      # made at the first add (warp alone needs none)
        self._count: np.ndarray | None = None
        self.count_half = np.ones(self.ref_packed.shape[:2], np.float32)
        self.shots = 1
        self.units: list[float] = []        # per shot: the unit of its match test
        self.noise_units: list[float] = []  # per shot: the unit of its typical noise (noise())
        self._warper = StateWarper(still=self.still)
        self._gx = np.empty((2 * self.ref_packed.shape[0], 2 * self.ref_packed.shape[1]), np.float32)
        self._gy = np.empty_like(self._gx)
        self.curve = noise_curve(frame) if signal_dependent else np.array([1.0, 0.0, 0.0])
        self.sigma_y = float(sigmas[0])
        self.sigma_rgb = self.sigma_y / PLANE_SIGMA_PER_RGB_SIGMA[0] / 255.0

    @property
    def sum(self) -> np.ndarray:
        """(H, W, 3) float32: the sum of the shots added (the reference included), [0, 1] units."""
        if self._sum is None:
            self._sum = self._reference.astype(np.float32) * self._scale
        return self._sum

    @property
    def count(self) -> np.ndarray:
        """(H, W) float32: the shots counted at each pixel (the sum of their trusts, the reference's 1)."""
        if self._count is None:
            self._count = np.ones((self.height, self.width), np.float32)
        return self._count

    def add(self, rgb: np.ndarray, min_share: float = 0.0) -> float:
        """Warps a shot ((H, W, 3) of the reference's dtype, aligned with it as a whole) onto the
        reference along its own flow and adds it where it matches.

        min_share: a shot matching on less than this share of the picture (its trust's mean) is
            not added at all and leaves no trace (a frame of another scene).

        Returns:
            The share of the picture where it matches (the mean of its trust).
        """
        return self.add_trusted(*self.warp(rgb), min_share)

    def warp(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A shot ((H, W, 3) of the reference's dtype, aligned with it as a whole) warped onto the
        reference along its own flow (same dtype), and how far it may be trusted there: (H2, W2)
        float32 in [0, 1], one value per 2x2 pixels (see add). Adds nothing."""
        # The noise is the burst's, not a shot's: a shot measuring far more than those before it
        # is of something else, and is judged with their unit.
        top = min(self.max_unit, CONSISTENT * min(self.units)) if self.units else self.max_unit
        shot = self.measure(rgb)
        return shot.warped, self.trust(shot, top)

    def measure(self, rgb: np.ndarray, hom: np.ndarray | None = None) -> Shot:
        """A shot ((H, W, 3) of the reference's dtype) warped onto the reference along its own
        flow, with its mismatch and the units of noise it shows (see add); nothing is added or
        kept.

        hom: the shot's alignment with the reference as a whole (Aligner.homography), or None
            for a shot already aligned. Given, the flow is estimated on the shot brought over
            by it (bilinearly: the flow needs no more) and the shot is then resampled once
            along both together, not twice."""
        if rgb.shape != (self.height, self.width, 3):
            raise ConfigError(f"shot of shape {rgb.shape}; the reference is {self.height}x{self.width}.")
        self._warper.reset()
        near = rgb if hom is None else cv2.warpPerspective(
            rgb, hom, (self.width, self.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE)
        flow = self._warper.estimate(self.ref_packed, _packed(rgb_to_frame(near)))
        flow_maps(flow, 2, self._gx, self._gy)
        gx, gy = self._gx[:self.height, :self.width], self._gy[:self.height, :self.width]
        if hom is not None:
            gx, gy = _through(hom, gx, gy)
        elif gx.shape != self._gx.shape:
            gx, gy = np.ascontiguousarray(gx), np.ascontiguousarray(gy)
        # Resampled in the picture's own depth: the rounding (a twelfth of a level squared) is
        # nothing beside any noise worth merging, and the shot is never held in float.
        warped = cv2.remap(rgb, gx, gy, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
        d = mismatch_map(_packed(rgb_to_frame(warped)), self.ref_packed, self.sigma_map, self.box,
                         np.empty(self.count_half.shape, np.float32))
        # The noise as the shots show it: where the noise map under-rates the noise of a
        # difference (noise correlated by compression or demosaicing, a mis-estimated level),
        # the whole shot would look mismatched. The best-matching tenth of the shot against its
        # value for noise alone sets the unit; a low quantile, so that a subject moving over
        # much of the picture does not raise it.
        low, mid = np.percentile(d[::2, ::2], (10, 50))
        return Shot(warped, d, float(low / NOISE_MISMATCH[0]), float(mid / NOISE_MISMATCH[1]))

    def trust(self, shot: Shot, top: float) -> np.ndarray:
        """How far a measured shot may be trusted, (H2, W2) float32 in [0, 1] (its mismatch map,
        overwritten), judged in its own unit of noise clamped to [1, top] (1 below luma sigma
        MIN_UNIT_SIGMA: two nearly clean shots differ by their alignment, which must show).
        The units are recorded for a later add."""
        if self.sigma_y < MIN_UNIT_SIGMA:
            top = 1.0
        unit = float(np.clip(shot.unit, 1.0, max(top, 1.0)))
        self.units.append(unit)
        self.noise_units.append(float(np.clip(shot.noise_unit, 1.0, max(top, 1.0))))
        lo, hi = self.match[0] * unit, self.match[1] * unit
        d = shot.mismatch
        return np.clip((hi - d) / (hi - lo), 0.0, 1.0, out=d)

    def add_trusted(self, warped: np.ndarray, trust: np.ndarray, min_share: float = 0.0) -> float:
        """Adds a warped shot where `trust` says (PictureMean.trust, just before); a shot matching
        on less than `min_share` of the picture is not added and leaves no trace. Returns the
        share where it matches (the mean of its trust)."""
        share = float(trust.mean())
        if share < min_share:
            self.units.pop()
            self.noise_units.pop()
            return share
        add_shot(self.sum, self.count, warped, float(self._scale), trust)
        self.count_half += trust
        self.shots += 1
        return share

    def mean(self) -> np.ndarray:
        """The mean, (H, W, 3) float32 in [0, 1], taken back from the bias of clipped noise. The
        sum becomes the mean in place and what only adding needs is let go (the flow's buffers,
        the packed reference): call it once, after the last shot."""
        self._warper = self._gx = self._gy = None  # type: ignore[assignment]
        self.ref_packed = self.sigma_map = None  # type: ignore[assignment]
        mean = np.divide(self.sum, self.count[..., None], out=self.sum)
        a, b, ref = (float(v) for v in self.curve)
        unclip_mean(mean, self.count, self.sigma_rgb, a, b, ref, 8, mean)
        return np.clip(mean, 0.0, 1.0, out=mean)

    def noise(self, mean: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The noise sigma of (part of) the mean per pixel and channel, (H, W, 3) float32: one
        shot's at each channel's level (the noise curve), over sqrt(count), in the unit the
        shots showed (add: the median mismatch, the typical noise, where the match test takes
        a low quantile). The unit matters: with the noise map's own, restore_detail gave back
        0.2 dB less in daylight and left noise in low light."""
        a, b, ref = (float(v) for v in self.curve)
        var = np.maximum(np.float32(a) + np.float32(b) * mean, 0.0) / np.float32(max(a + b * ref, 1e-12))
        unit = float(np.median(self.noise_units)) if self.noise_units else 1.0
        return np.sqrt(var / count[..., None]) * np.float32(self.sigma_rgb * unit)


class Aligner:
    """Brings each shot onto the reference by one homography (the camera's shake: shift,
    rotation, perspective), so the model's own flow has only what is left to follow (parallax,
    moving subjects) and no tile sees more motion than its context holds.

    The homography is fitted (RANSAC) to a dense optical flow (OpenCV's DIS) from the reference
    to the shot on their lumas scaled down to ALIGN_SIDE pixels at most and blurred (noise
    averaged away); where the fit fails the shot is left as it is. The shot is then resampled
    with an 8x8 Lanczos kernel; outside its view the border repeats (the model's gate does not
    trust what does not match the reference there).
    """

    def __init__(self, reference: np.ndarray) -> None:
        """reference: (H, W, 3) uint8 or uint16 RGB."""
        self.height, self.width = reference.shape[:2]
        self.scale = max(1.0, max(self.height, self.width) / ALIGN_SIDE)
        self._ref = self._luma(reference)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def _luma(self, rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if grey.dtype == np.uint16:
            grey = (grey >> 8).astype(np.uint8)
        if self.scale > 1.0:
            size = (max(1, round(self.width / self.scale)), max(1, round(self.height / self.scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(grey, (0, 0), 1.0)

    def homography(self, rgb: np.ndarray) -> np.ndarray | None:
        """The 3x3 map from reference pixels to the shot's pixels, or None where no reliable
        fit is found (too small a picture, too few matching points)."""
        small = self._luma(rgb)
        h, w = small.shape
        if h < 32 or w < 32:
            return None
        flow = self._dis.calc(self._ref, small, None)
        step = max(2, min(h, w) // 48)
        margin = max(4, min(h, w) // 16)
        yy, xx = np.mgrid[margin:h - margin:step, margin:w - margin:step]
        src = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)
        dst = src + flow[yy.ravel(), xx.ravel()]
        if len(src) < 16:
            return None
        hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
        if hom is None or inliers is None or inliers.mean() < 0.3:
            return None
        # Scaled-down pixels -> full-size pixels (pixel centres: x_full = (x + 0.5) * s - 0.5).
        s = self.scale
        to_full = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
        return to_full @ hom @ np.linalg.inv(to_full)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The shot resampled onto the reference (the shot itself where no fit is found)."""
        return self.warp(rgb, self.homography(rgb))

    def warp(self, rgb: np.ndarray, hom: np.ndarray | None) -> np.ndarray:
        """The shot resampled along `hom` (see homography); the shot itself when None."""
        if hom is None:
            return rgb
        return cv2.warpPerspective(rgb, hom, (self.width, self.height),
                                   flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def denoise_mean(model: Any, acc: PictureMean, frame: Frame, sigmas: tuple[float, float, float],
                 dtype: np.dtype | type, tile: int, overlap: int = OVERLAP) -> tuple[np.ndarray, int]:
    """A still-image network (a model with `pack_picture`) over a merged mean, tile by tile,
    then restore_detail: the merge's picture.

    Args:
        model: the network.
        acc: the shots added (its mean is taken here: add nothing after).
        frame: the reference's 16-bit YUV frame (its noise map).
        sigmas: the Y, U, V noise sigmas of one shot (8-bit units).
        dtype: the result's, uint8 or uint16.
        tile, overlap: the network's tiles and their context (at least the network's own and
            restore_detail's).

    Returns:
        (H, W, 3) RGB of `dtype` and the number of tiles.
    """
    mean = acc.mean()
    scale = (1.0 / np.sqrt(acc.count_half)).astype(np.float32)
    tile -= tile % 2
    overlap = max(overlap, int(getattr(model, "context", 0)), DETAIL_BOX)
    overlap += overlap % 2
    out = np.empty(mean.shape, dtype)
    maxv = np.float32(np.iinfo(np.dtype(dtype)).max)
    tiles = 0
    for (t0, s0, t1, s1), box in tile_boxes(frame.height, frame.width, tile, overlap):
        a0, b0, a1, b1 = box
        part = mean[a0:a1, b0:b1]
        packed = model.pack_picture(part, crop_frame(frame, box), sigmas,
                                    noise_scale=scale[a0 // 2:(a1 + 1) // 2, b0 // 2:(b1 + 1) // 2])
        res = model.forward(packed)[0].permute(1, 2, 0).float().cpu().numpy()
        res = restore_detail(part, res, acc.noise(part, acc.count[a0:a1, b0:b1]))
        k = (slice(t0 - a0, t1 - a0), slice(s0 - b0, s1 - b0))
        out[t0:t1, s0:s1] = np.clip(res[k] * maxv + np.float32(0.5), 0, maxv).astype(dtype)
        tiles += 1
    return out, tiles


def restore_detail(mean: np.ndarray, denoised: np.ndarray, noise: np.ndarray, box: int = 7) -> np.ndarray:
    """Gives back what the network took from the mean beyond its noise (a local Wiener gain on
    the difference, per channel): at low noise a network smooths fine texture along with the
    noise, and the mean of many shots still holds it.

    With r = mean - denoised and v its local mean square over box x box pixels, the result is
    denoised + max(v - noise^2, 0) / v * r: where r is no larger than the mean's noise it is
    noise and stays removed, where it is larger the excess is detail and comes back.

    Args:
        mean, denoised: (H, W, 3) float32.
        noise: (H, W, 3) float32, the mean's noise sigma per pixel and channel.
        box: the window's side.

    Returns:
        (H, W, 3) float32, a new array.
    """
    r = mean - denoised
    power = cv2.boxFilter(r * r, -1, (box, box), normalize=True, borderType=cv2.BORDER_REFLECT)
    gain = np.clip(1.0 - noise * noise / np.maximum(power, np.float32(1e-12)), 0.0, 1.0)
    return denoised + gain * r


def _through(hom: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (pixel positions) taken through a homography: hom @ (x, y, 1), float32."""
    h = hom.astype(np.float32)
    z = h[2, 0] * gx + h[2, 1] * gy + h[2, 2]
    return (h[0, 0] * gx + h[0, 1] * gy + h[0, 2]) / z, (h[1, 0] * gx + h[1, 1] * gy + h[1, 2]) / z


def _packed(frame: Frame) -> np.ndarray:
    """A 16-bit frame packed as the networks take it, (H2, W2, 6) float32 in [0, 1]."""
    h2, w2 = (frame.height + 1) // 2, (frame.width + 1) // 2
    return pack_yuv420(frame.y, frame.u, frame.v, 1.0 / 65535.0, np.empty((h2, w2, 6), np.float32))

