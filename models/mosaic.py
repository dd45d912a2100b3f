"""A long average of the noisy frames that follows the camera: kept on a canvas larger than the
frame, onto which every frame is brought once by the camera's motion and from which the average
is read back once onto the current frame.

The still-block long average (LongAverage with follow=False) is kept where the picture
does not move, so it is never re-interpolated; on a pan it restarts every frame. Carrying it
along the motion instead (warping the average each frame) interpolates it again at every step
and blurs it. The canvas avoids both: a frame's pixels are resampled once on the way in (the
canvas holds a weighted mean of the frames so brought over) and the mean once on the way out,
whatever the number of frames averaged. As the camera moves on, the canvas is shifted by whole
pixel pairs (no resampling) to keep the frame inside it.

The camera's motion is a translation, measured on the model's result (a clean picture) against
the canvas (OpenCV's ECC on the half-resolution luma, quarter resolution on frames of 640x360
and more, where the canvas has averaged a few frames: a moving subject, which keeps restarting
there, does not pull it), from the frame-to-frame motion as a first guess. A model that runs on
the average itself (`fast`: `average`, before the model) is measured on the noisy frame instead,
whose noise the canvas's well-averaged pixels do not share. A shift under SNAP pixels is none: a
still camera's canvas is read and written at whole pixels, exactly. The measure fits an affine
map: a rotation or zoom against the canvas beyond DRIFT starts a new canvas, so a turning camera
is never averaged into a blur.

Each step is the still long average's (streamdn.kernels.long_average) on the canvas read back
onto the frame: its count is cut where the frame does not match (a moving subject, an
occlusion, a rotation the translation misses restart from the frame), the frame is added, the
result is blended into the model's output where enough frames agree, and the update goes back
onto the canvas. A scene cut or a lost track starts a new canvas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamdn.kernels import canvas_add, canvas_add_resampled, canvas_read, cross_power, long_average, pack_yuv420
from streamdn.kernels.motion import luma_plane, packed_luma
from streamdn.kernels.resample import shift_plane

from .fast import MAX_COUNT

# A shift under this (full-resolution px) against the canvas is none: 0.1 measured against a
# canvas of ECC_COUNT frames or more, 0.25 against one of 2 frames (noisier), 0.3 for the first
# guess alone (the frame-to-frame homography: errors up to 0.27 px measured on still shots).
SNAP = (0.1, 0.25, 0.3)
# The canvas follows a translation; a rotation or zoom would blur it slowly (each frame's
# residual against the previous one too small to see). The measure fits an affine map and the
# canvas starts anew when its linear part moves a corner of the frame by more than this (px)
# at two frames in a row (one alone may be the measure's noise on a small frame):
# on a held-out clip panning 0.4 px/frame with rotation and zoom (40 frames), `window` lost
# 1.15 dB to its own result without a long average, and none with this.
DRIFT = 0.75
DRIFT_COUNT = 6.0   # ... measured where the canvas has averaged this many frames (median): fewer are too noisy
DRIFT_SIZE = (64, 96)   # ... on frames of at least 192 x 128 (chroma grid 96 x 64): the fit is too noisy on smaller
TAPS = 3         # Lanczos order of the resampling in and out (6 x 6 taps)
ECC_COUNT = 3.0  # the canvas's pixels the motion is measured on: averaged at least this many frames
ECC_MIN_SHARE = 0.2   # below this share of such pixels the motion is the first guess alone
MEASURE_STILL = 4     # a still camera is measured on every 4th frame (see step)
ECC_QUARTER = (180, 320)   # chroma grids of at least this (H, W) are measured at quarter resolution


@dataclass(frozen=True)
class LongAverage:
    """The long average of a model's output (docs/motion.md, "The long average"): beside the
    model, the running mean of the noisy frames themselves. Its frame count is cut where the
    frame does not match it (the mean absolute difference over a `box` x `box` window, in units
    of the noise expected from the count, between `match[0]`, full trust, and `match[1]`,
    none), and it is blended into the output with the weight c / (c + k) of two estimates whose
    errors are as one frame's noise over c and over k, ramped in from `ramp[0]` to `ramp[1]`
    frames, so that only a long, consistent match is used. A network's output carries a bias
    that averaging cleaned frames cannot remove (fine detail smoothed the same way in every
    frame); the plain mean has none, so a still shot keeps improving.

    follow: the mean is kept on a canvas that follows the camera (MosaicAverage), so a pan
        keeps averaging too; False: on the blocks that do not move only (where it needs no
        warp; anywhere that moved, it restarts).
    """

    k: float = 8.0
    # (10, 30) with the still-block average; following the camera, (5, 20) gave `fast_mc` the
    # validation clips' awgn20 / awgn30 / pg_lowlight +0.14 / +0.15 / +0.14 dB (SSIM 0.000 /
    # -0.003 / -0.002), the long clips +0.08, and its temporal shots up to +1 dB at frames 10-20.
    ramp: tuple[float, float] = (5.0, 20.0)
    match: tuple[float, float] = (0.9, 1.15)
    box: int = 5
    follow: bool = True


def _kernel(frac: float, taps: int) -> tuple[np.ndarray, int]:
    """The weights of a resampling `frac` (in [0, 1)) past a sample, and how many of them lie
    before it: Lanczos of order `taps` (2 * taps samples, offsets -(taps - 1)..taps,
    normalised), bilinear for taps 0, the sample itself at frac 0."""
    if frac == 0.0:
        return np.ones(1, np.float32), 0
    if taps == 0:
        return np.array([1.0 - frac, frac], np.float32), 0
    x = frac - np.arange(-(taps - 1), taps + 1, dtype=np.float64)
    w = np.sinc(x) * np.sinc(x / taps)
    return (w / w.sum()).astype(np.float32), taps - 1


def shift_read(src: np.ndarray, dy: float, dx: float, height: int, width: int, taps: int = TAPS) -> np.ndarray:
    """out[i, j] = src(i + dy, j + dx), (height, width) float32: whole shifts are a copy,
    fractional ones a separable Lanczos (taps > 0) or bilinear (taps 0) resampling; outside
    `src` its border repeats. `src`: a plane, or a packed frame ((H2, W2, 6) float32), whose
    full-resolution luma is then read (in place where it is resampled)."""
    iy, ix = math.floor(dy), math.floor(dx)
    ky, lo_y = _kernel(dy - iy, taps)
    kx, lo_x = _kernel(dx - ix, taps)
    # The samples the output needs: rows iy - lo_y .. iy + height - 1 + (len(ky) - 1 - lo_y).
    y0, x0 = iy - lo_y, ix - lo_x
    if len(ky) == 1 and len(kx) == 1:
        if src.ndim == 3:
            src = luma_plane(src, np.empty((2 * src.shape[0], 2 * src.shape[1]), np.float32))
        crop = _crop(src, y0, y0 + height, x0, x0 + width)
        return crop if crop.dtype == np.float32 else crop.astype(np.float32)
    # Separable, the border's samples repeated by clamping (no padded copy of `src`).
    return shift_plane(src if src.dtype == np.float32 else src.astype(np.float32), y0, x0, ky, kx,
                       np.empty((height, width), np.float32))


def shift_planes(src: np.ndarray, dy: float, dx: float, height: int, width: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The planes of a packed frame ((H2, W2, 6) float32, streamdn.kernels.pack_yuv420) read
    at out(i, j) = src(i + dy, j + dx), (dy, dx) in chroma samples: luma (2 height, 2 width) at
    full resolution, U and V (height, width) on their grid (shift_read: separable Lanczos, the
    border repeated)."""
    y = shift_read(src, 2.0 * dy, 2.0 * dx, 2 * height, 2 * width)
    u = shift_read(src[..., 4], dy, dx, height, width)
    v = shift_read(src[..., 5], dy, dx, height, width)
    return y, u, v


def shift_packed(src: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """A packed frame moved so that out(x, y) = src(x + dx, y + dy), (dx, dy) in
    full-resolution px (shift_planes, packed again)."""
    y, u, v = shift_planes(src, dy / 2.0, dx / 2.0, src.shape[0], src.shape[1])
    return pack_yuv420(y, u, v, 1.0, np.empty_like(src, dtype=np.float32))


def _crop(src: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """src[y0:y1, x0:x1] with its border repeated wherever that reaches outside it (a view
    where it does not)."""
    h, w = src.shape
    if 0 <= y0 and y1 <= h and 0 <= x0 and x1 <= w:
        return src[y0:y1, x0:x1]

    def span(a: int, b: int, n: int) -> tuple[int, int, int, int]:
        # The part inside [0, n) (at least the nearest line) and the lines repeated each side.
        c0 = min(max(a, 0), n - 1)
        c1 = max(min(b, n), c0 + 1)
        before = c0 - a
        return c0, c1, before, (b - a) - (c1 - c0) - before

    r0, r1, top, bottom = span(y0, y1, h)
    c0, c1, left, right = span(x0, x1, w)
    if top < 0:            # wholly past the far side: every line repeats the last one
        top, bottom = 0, bottom + top
    if left < 0:
        left, right = 0, right + left
    return cv2.copyMakeBorder(np.ascontiguousarray(src[r0:r1, c0:c1]), top, bottom, left, right, cv2.BORDER_REPLICATE)


class MosaicAverage:
    """The running mean of the noisy frames on a canvas that follows the camera (see the module)."""

    def __init__(self, blend: LongAverage, margin: float = 0.125, measure_every: int = 1,
                 agree: float | None = None) -> None:
        """Args:
            blend: the long average's match test and blend weight.
            margin: the canvas's margin each side, as a share of the frame's side.
            measure_every: while the camera moves against a settled canvas, measure on every
                n-th frame only and take the first guess between (a guess accurate
                frame to frame, as a recursion's flow; not a homography's).
            agree: take the guess between measures only where it is within this (px) of the
                move last measured (a steady pan); None: always.
        """
        self.blend = blend
        self.margin = float(margin)
        self.measure_every = max(1, int(measure_every))
        self.agree = agree
        self.reset()

    def reset(self) -> None:
        self._y: np.ndarray | None = None   # canvas planes, [0, 1] units; the count on the chroma grid
        self._u: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._count: np.ndarray | None = None
        self._at = np.zeros(2)              # (x, y): the frame's pixel (0, 0) on the canvas, full-res px
        self._shape: tuple[int, int] = (0, 0)
        self.moved = np.zeros(2)            # (x, y) the camera's motion since the canvas started, px
        # (x, y) the camera's move from the previous frame to this one (px); None where the canvas
        # started anew with this frame
        self.frame_move: np.ndarray | None = None
        self._turned = False                # the last measure found the frame turned or scaled (DRIFT)
        self._still_frames = 0              # frames since the camera was last found moving
        self._guessed = 0                   # frames placed by the guess alone since the last measure
        self._settled = False               # the last measure was against a settled canvas
        self._last_move = np.zeros(2)       # the camera's move the last measure found

    def step(self, cur: np.ndarray, sigma: np.ndarray, out: np.ndarray, shape: tuple[int, int],
             to_previous: np.ndarray | None, cut: bool) -> None:
        """One frame: the average updated with it and blended into the model's result.

        Args:
            cur: (H2, W2, 6) float32 the frame packed (streamdn.kernels.pack_yuv420), [0, 1].
            sigma: (H2, W2, 3) its noise map.
            out: (H2, W2, 6) float32 the model's result packed the same way, blended in place
                (and the picture the camera's move is measured on).
            shape: the frame's (H, W).
            to_previous: 3x3 map from this frame's pixels to the previous frame's (its centre's
                move is the first guess), or None (no guess: no motion).
            cut: a scene cut before this frame.
        """
        self._update(cur, sigma, shape, to_previous, cut, out, None, out)

    def average(self, cur: np.ndarray, sigma: np.ndarray, shape: tuple[int, int],
                to_previous: np.ndarray | None, cut: bool, luma: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """One frame, before the model runs: the average updated with it, read onto the frame.
        The camera's move is measured on the frame itself (its half-resolution luma, where the
        noise is halved, against the canvas).

        Args: as step's (no result yet); luma: the frame's packed_luma where at hand.

        Returns:
            (H2, W2, 6) float32 the mean of the frames that match this one, packed as `cur`,
            and (H2, W2, 1) float32 how many frames it holds (1 where only this frame).
        """
        res = self._update(cur, sigma, shape, to_previous, cut, cur, luma, None)
        return res if res is not None else (cur.copy(), np.ones(cur.shape[:2] + (1,), np.float32))

    def _update(self, cur: np.ndarray, sigma: np.ndarray, shape: tuple[int, int], to_previous: np.ndarray | None,
                cut: bool, picture: np.ndarray, luma: np.ndarray | None, out: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray] | None:
        """The frame placed (measured on `picture`), the canvas's mean and count read there and
        updated with it by the long average kernel (blended into `out` where given), and the
        frame added to the canvas; None where the canvas started anew with it."""
        if not self._place(cur, shape, to_previous, cut, picture, luma):
            return None
        avg, count = self._read(cur)
        la = self.blend
        # No flow: the kernel keeps the count everywhere; its match test alone cuts it.
        long_average(cur, sigma, None, avg, count, out, la.k, la.ramp[0], la.ramp[1], la.match[0], la.match[1],
                     la.box, MAX_COUNT)
        self._write_back(cur, count[..., 0])
        return avg, count

    def measure_due(self) -> bool:
        """Whether the next frame of a moving camera is measured whatever its first guess (the
        frame before was placed by the guess alone); the guess then only starts the measure,
        and the move measured last (last_move) serves."""
        return self._y is not None and self._guessed + 1 >= self.measure_every and bool(self._last_move.any())

    @property
    def last_move(self) -> np.ndarray:
        """The camera's move (x, y, full-resolution px) that the last measure found."""
        return self._last_move.copy()

    def _place(self, cur: np.ndarray, shape: tuple[int, int], to_previous: np.ndarray | None, cut: bool,
               picture: np.ndarray, luma: np.ndarray | None = None) -> bool:
        """Where this frame lies on the canvas (measured on `picture`, packed as `cur`, whose
        packed_luma `luma` may be given, or guessed); False where the canvas started anew with it."""
        if self._y is None or cut or self._shape != shape:
            self._start(cur, shape)
            return False
        guess = self._at.copy()
        if to_previous is not None:
            h, w = shape
            c = np.array([(w - 1) / 2.0, (h - 1) / 2.0, 1.0])
            p = to_previous @ c
            guess += p[:2] / p[2] - c[:2]
        guessed_only = False   # placed by the first guess alone (a young canvas)
        # A still camera (no move guessed exactly, e.g. a recursion whose flow kept its median
        # block still, and none measured the last time) is measured on every MEASURE_STILL-th
        # frame only.
        if (guess == self._at).all() and self._still_frames % MEASURE_STILL != 0:
            at = self._at.copy()
            self._still_frames += 1
        elif (self._settled and self._guessed + 1 < self.measure_every
              and (self.agree is None or np.abs(guess - self._at - self._last_move).max() < self.agree)):
            at = guess
            self._guessed += 1
            self._still_frames = 0
        else:
            measured = self._measure(guess, picture, luma)
            if measured is None:
                self._start(cur, shape)
                return False
            at, snap = measured
            if np.abs(at - self._at).max() < snap:
                at = self._at.copy()
            self._still_frames = self._still_frames + 1 if (at == self._at).all() else 0
            self._settled = snap == SNAP[0] and self._still_frames == 0
            self._guessed = 0
            self._last_move = at - self._at
            guessed_only = snap != SNAP[0]   # against a young canvas: a rough place only
        self.moved = self.moved + (at - self._at)
        self.frame_move = None if guessed_only else at - self._at
        if not self._recentre(at, cur.shape[:2]):
            self._start(cur, shape)
            return False
        return True

    def _read(self, cur: np.ndarray, fused: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The canvas's mean (packed as `cur`) and count ((H2, W2, 1); 0 where the canvas does
        not hold samples all around the read) at the frame's place. `fused`: packed and counted
        in one pass (streamdn.kernels.canvas_read; the same as the NumPy way, False)."""
        assert self._y is not None and self._u is not None and self._v is not None and self._count is not None
        h2, w2 = cur.shape[:2]
        ax, ay = self._at
        cx, cy = ax / 2.0, ay / 2.0     # on the chroma grid (centre-sited: x = 2 c + 0.5)
        y = shift_read(self._y, ay, ax, 2 * h2, 2 * w2)
        u = shift_read(self._u, cy, cx, h2, w2)
        v = shift_read(self._v, cy, cx, h2, w2)
        if fused:
            avg, count = np.empty_like(cur), np.empty(cur.shape[:2] + (1,), np.float32)
            canvas_read(y, u, v, self._count, cy, cx, avg, count)
            return avg, count
        count = shift_read(self._count, cy, cx, h2, w2, taps=0)
        # Only where the canvas holds samples all around its read: at its edge the count restarts.
        iy, ix = math.floor(cy), math.floor(cx)
        part = self._count[max(iy, 0):iy + h2 + 1, max(ix, 0):ix + w2 + 1] > 0   # the read's reach
        held = shift_read(part.astype(np.float32), cy - max(iy, 0), cx - max(ix, 0), h2, w2, taps=0)
        count = np.where(held > 0.999, count, 0.0).astype(np.float32)[..., None]
        return pack_yuv420(y, u, v, 1.0, np.empty_like(cur)), count

    def _measure(self, guess: np.ndarray, out: np.ndarray, luma: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float] | None:
        """Where the frame lies on the canvas (the move of its centre), measured on `out` (the
        model's result, or the frame itself; `luma`: its packed_luma where at hand) against the
        canvas's well-averaged pixels (ECC, affine, on the chroma grid's luma, at half that on
        frames of 640x360 and more), and the shift under which that measure is none
        (SNAP); the guess while too few pixels are averaged; None where the measure fails or
        finds the frame rotated or scaled against the canvas (DRIFT): the canvas then starts
        anew."""
        assert self._y is not None and self._count is not None
        hc2, wc2 = self._count.shape
        # On the pixels averaged longest: a moving subject restarts its pixels and would pull
        # the measure with it.
        need = ECC_MIN_SHARE * out.shape[0] * out.shape[1]
        for level, count in enumerate((ECC_COUNT, 2.0)):
            if np.count_nonzero(self._count >= count) >= need:
                break
        else:
            return guess, SNAP[2]
        template = packed_luma(out) if luma is None else luma
        h2, w2 = out.shape[:2]
        # On frames of 640 x 360 and more at quarter resolution (4x faster, as precise).
        q = 2 if (h2 >= ECC_QUARTER[0] and w2 >= ECC_QUARTER[1]) else 1
        # The canvas around the guessed place (the farthest the measure may move it, 8 px).
        r0, c0 = max(0, math.floor(guess[1] / 2.0) - 6), max(0, math.floor(guess[0] / 2.0) - 6)
        r0, c0 = r0 - r0 % q, c0 - c0 % q
        r1, c1 = min(hc2, r0 + h2 + 12), min(wc2, c0 + w2 + 12)
        r1, c1 = r1 - (r1 - r0) % q, c1 - (c1 - c0) % q
        if 2 * (r1 - r0) < h2 or 2 * (c1 - c0) < w2:
            return None   # a guess that puts most of the frame off the canvas: nothing to measure on
        hs, ws = (r1 - r0) // q, (c1 - c0) // q
        canvas = cv2.resize(self._y[2 * r0:2 * r1, 2 * c0:2 * c1], (ws, hs), interpolation=cv2.INTER_AREA)
        near = self._count[r0:r1, c0:c1]
        if q > 1:
            ht, wt = h2 // q, w2 // q
            template = cv2.resize(template[:q * ht, :q * wt], (wt, ht), interpolation=cv2.INTER_AREA)
            near = np.minimum(np.minimum(near[0::2, 0::2], near[0::2, 1::2]),
                              np.minimum(near[1::2, 0::2], near[1::2, 1::2]))
        mask = (near >= count).astype(np.uint8)
        scale = 2.0 * q   # full-resolution px per sample measured on
        warp = np.array([[1, 0, (guess[0] - 2.0 * c0) / scale], [0, 1, (guess[1] - 2.0 * r0) / scale]], np.float32)
        try:
            _, warp = cv2.findTransformECC(template, canvas, warp, cv2.MOTION_AFFINE,
                                           (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-3),
                                           mask, 3)
        except cv2.error:
            return None
        lin = warp[:, :2].astype(np.float64)
        centre = np.array([(template.shape[1] - 1) / 2.0, (template.shape[0] - 1) / 2.0])
        at = scale * (lin @ centre + warp[:, 2] - centre) + 2.0 * np.array([c0, r0])
        held = near[::2, ::2][mask[::2, ::2] > 0]   # (a quarter: the median as well, 9x faster)
        if (level == 0 and h2 >= DRIFT_SIZE[0] and w2 >= DRIFT_SIZE[1] and held.size
                and np.median(held) >= DRIFT_COUNT):
            # Measured against a settled canvas: a rotation or zoom since it started.
            corners = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]) * centre
            turned = scale * np.abs(corners @ (lin - np.eye(2)).T).max() > DRIFT
            self._turned, was = turned, self._turned
            if turned and was:
                return None
        return (at, SNAP[level]) if np.abs(at - guess).max() < 8.0 else None

    def _start(self, cur: np.ndarray, shape: tuple[int, int]) -> None:
        h2, w2 = cur.shape[:2]
        my = max(8, int(round(self.margin * h2)))
        mx = max(8, int(round(self.margin * w2)))
        # Outside the frame the canvas holds its border repeated (count 0), see _write_back.
        self._y = np.pad(luma_plane(cur, np.empty((2 * cur.shape[0], 2 * cur.shape[1]), np.float32)), ((2 * my, 2 * my), (2 * mx, 2 * mx)), mode="edge")
        self._u = np.pad(cur[..., 4], ((my, my), (mx, mx)), mode="edge")
        self._v = np.pad(cur[..., 5], ((my, my), (mx, mx)), mode="edge")
        self._count = np.zeros((h2 + 2 * my, w2 + 2 * mx), np.float32)
        self._count[my:my + h2, mx:mx + w2] = 1.0
        self._at = np.array([2.0 * mx, 2.0 * my])
        self._shape = shape
        self.moved = np.zeros(2)
        self.frame_move = None
        self._turned = False
        self._still_frames = 0
        self._guessed = 0
        self._settled = False
        self._last_move = np.zeros(2)

    def _recentre(self, at: np.ndarray, size: tuple[int, int]) -> bool:
        """Takes the frame's place on the canvas, shifting the canvas by whole chroma pixels
        when the frame comes near its edge; False where the frame cannot fit."""
        assert self._y is not None and self._u is not None and self._v is not None and self._count is not None
        hc2, wc2 = self._count.shape
        h2, w2 = size
        room = 4.0
        lo = at / 2.0
        if (lo >= room).all() and lo[0] + w2 <= wc2 - room and lo[1] + h2 <= hc2 - room:
            self._at = at
            return True
        dx = int(round((wc2 - w2) / 2.0 - lo[0]))
        dy = int(round((hc2 - h2) / 2.0 - lo[1]))
        if abs(dx) >= wc2 or abs(dy) >= hc2:
            return False
        self._u, self._v = _shifted(self._u, dy, dx), _shifted(self._v, dy, dx)
        self._count = _shifted(self._count, dy, dx, fill=0.0)
        self._y = _shifted(self._y, 2 * dy, 2 * dx)
        self._at = at + np.array([2.0 * dx, 2.0 * dy])
        return True

    def _write_back(self, cur: np.ndarray, count: np.ndarray, fused: bool = True) -> None:
        """The frame added onto the canvas with the weight the step gave it (1 / its new count)
        where the canvas sees it whole; around it, where the canvas holds nothing yet, the
        frame's border (a later read near the canvas's edge resamples the nearest picture).
        `fused`: the updates in one pass (streamdn.kernels.canvas_add at whole chroma pixels,
        canvas_add_resampled elsewhere; the same result as the NumPy way, False)."""
        assert self._y is not None and self._u is not None and self._v is not None and self._count is not None
        hc2, wc2 = self._count.shape
        h2, w2 = cur.shape[:2]
        ax, ay = self._at
        cx, cy = ax / 2.0, ay / 2.0
        count = np.ascontiguousarray(count, np.float32)
        if fused and cx == math.floor(cx) and cy == math.floor(cy):
            canvas_add(cur, count, int(cy), int(cx), TAPS, self._y, self._u, self._v, self._count)
            return
        # The canvas's part the frame covers, with the resampling's reach around it.
        r0, r1 = max(0, math.floor(cy) - TAPS), min(hc2, math.ceil(cy) + h2 + TAPS)
        c0, c1 = max(0, math.floor(cx) - TAPS), min(wc2, math.ceil(cx) + w2 + TAPS)
        hp, wp = r1 - r0, c1 - c0
        weight = (1.0 / np.maximum(count, 1.0)).astype(np.float32)
        # The frame's samples resampled onto the canvas's grid.
        y_res, u_res, v_res = shift_planes(cur, r0 - cy, c0 - cx, hp, wp)
        if fused:
            canvas_add_resampled(y_res, u_res, v_res, count, weight, r0, c0, cy, cx, self._y, self._u, self._v,
                                 self._count)
            return
        part = (slice(r0, r1), slice(c0, c1))
        wt = shift_read(weight, r0 - cy, c0 - cx, hp, wp, taps=0)
        cnt = shift_read(count, r0 - cy, c0 - cx, hp, wp, taps=0)
        # The canvas pixels whose bilinear read lies wholly inside the frame.
        rows = np.arange(r0, r1, dtype=np.float64) - cy
        cols = np.arange(c0, c1, dtype=np.float64) - cx
        inside = ((rows >= 0) & (rows <= h2 - 1))[:, None] & ((cols >= 0) & (cols <= w2 - 1))[None, :]
        old = self._count[part]
        wt = np.where(inside, wt, (old <= 0).astype(np.float32))
        self._count[part] = np.where(inside, cnt, old)
        for plane, res in ((self._u, u_res), (self._v, v_res)):
            p = plane[part]
            p += wt * (res - p)
        wy = cv2.resize(wt, (2 * wp, 2 * hp), interpolation=cv2.INTER_NEAREST)
        py = self._y[2 * r0:2 * r1, 2 * c0:2 * c1]
        py += wy * (y_res - py)


class PhaseCorrelation:
    """The translation between two images by phase correlation (what cv2.phaseCorrelate(a, b)
    gives, to within 1e-3 px on noisy pictures; where the optimal DFT size is odd, OpenCV's is
    half a pixel off and this is not), keeping each image's spectrum: a stream of frames, each
    correlated with the one before, is transformed once per frame. Per call: a forward DFT
    (the zero-padded image at OpenCV's optimal DFT size), the normalised cross-power spectrum
    in one pass (streamdn.kernels.cross_power), the inverse DFT, its peak and the weighted
    centroid of the 5 x 5 values around it (wrapping around the edges). At 640 x 360 about
    1.4 ms against 2.8-4.4 for phaseCorrelate on 2 cores."""

    BOX = 5

    @staticmethod
    def spectrum(image: np.ndarray) -> np.ndarray:
        """(H, W) float32 image -> its spectrum, (H', W', 2) float32 at the optimal DFT size."""
        h, w = image.shape
        ph, pw = cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w)
        if (ph, pw) != (h, w):
            image = cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0.0)
        return cv2.dft(np.ascontiguousarray(image, np.float32), flags=cv2.DFT_COMPLEX_OUTPUT)

    @classmethod
    def shift(cls, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(dx, dy) between the images whose spectra are `a` and `b` (same shape), as
        cv2.phaseCorrelate(image_a, image_b)."""
        surface = cv2.idft(cross_power(a, b, np.empty_like(a)), flags=cv2.DFT_REAL_OUTPUT)
        h, w = surface.shape
        py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
        r = cls.BOX // 2
        ys, xs = np.arange(py - r, py + r + 1), np.arange(px - r, px + r + 1)
        box = surface[np.ix_(ys % h, xs % w)].astype(np.float64)
        total = box.sum()
        if total == 0.0:
            cy, cx = float(py), float(px)
        else:
            cy, cx = float((box.sum(axis=1) * ys).sum() / total), float((box.sum(axis=0) * xs).sum() / total)
        # The peak sits at minus the shift, on a circle of the DFT's size.
        dx, dy = -cx, -cy
        dx -= w * round(dx / w)
        dy -= h * round(dy / h)
        return dx, dy


class ShiftGuess:
    """The camera's move from the previous frame to this one as a first guess for MosaicAverage,
    where no optical flow is at hand (`fast`): phase correlation (PhaseCorrelation, Hann window)
    of the frames' half-resolution luma, each frame's spectrum kept for the next. About 1.2 ms
    at 720p on 2 cores; typically within 0.1-0.25 px on noisy pans
    of a photograph, up to half a pixel on synthetic texture: a starting point for the
    measure against the canvas, which the frames are then measured by on every frame (a moving
    subject can pull it too). A move under SNAP_GUESS is none, so a still camera's guess is
    exactly zero (and MosaicAverage then measures it on every few frames only)."""

    # Full-resolution px. A slower pan still moves the canvas: a still camera's guess leaves the
    # measure to every MEASURE_STILL-th frame, and that measure, finding a move, resumes measuring
    # every frame.
    SNAP_GUESS = 0.25

    def __init__(self) -> None:
        self._last: np.ndarray | None = None
        self._last_spectrum: np.ndarray | None = None   # of _last times the window, when at hand
        self._window: np.ndarray | None = None

    def reset(self) -> None:
        self._last = self._last_spectrum = None

    def remember(self, luma: np.ndarray) -> None:
        """Keeps a frame's half-resolution luma (packed_luma) for the next guess without
        guessing this frame's move (it is measured anyway)."""
        self._last, self._last_spectrum = luma, None

    def __call__(self, cur: np.ndarray, luma: np.ndarray | None = None) -> np.ndarray | None:
        """cur: (H2, W2, 6) float32 the frame packed (streamdn.kernels.pack_yuv420); luma: its
        packed_luma where already at hand. Returns the 3x3 map from this frame's pixels to the
        previous frame's (a translation, full-resolution px), or None for the first frame (or
        one of another size)."""
        return self.of_luma(packed_luma(cur) if luma is None else luma)

    def of_luma(self, luma: np.ndarray) -> np.ndarray | None:
        """The same guess from the frame's half-resolution luma alone (float32, (H2, W2))."""
        last, last_spectrum = self._last, self._last_spectrum
        self._last, self._last_spectrum = luma, None
        if last is None or last.shape != luma.shape or min(luma.shape) < 8:
            return None
        if self._window is None or self._window.shape != luma.shape:
            self._window = cv2.createHanningWindow(luma.shape[::-1], cv2.CV_32F)
        # The window applied on new arrays: the luma goes on to the measure against the canvas.
        spectrum = PhaseCorrelation.spectrum(luma * self._window)
        if last_spectrum is None:
            last_spectrum = PhaseCorrelation.spectrum(last * self._window)
        self._last_spectrum = spectrum
        dx, dy = PhaseCorrelation.shift(spectrum, last_spectrum)
        move = np.array([2.0 * dx, 2.0 * dy])
        if np.abs(move).max() < self.SNAP_GUESS:
            move[:] = 0.0
        guess = np.eye(3)
        guess[:2, 2] = move
        return guess


def _shifted(a: np.ndarray, dy: int, dx: int, fill: float | None = None) -> np.ndarray:
    """`a` moved by (dy, dx) whole pixels; where nothing moved in, its border repeated (or `fill`)."""
    h, w = a.shape
    if fill is None:
        return shift_read(a, -dy, -dx, h, w)
    out = np.full_like(a, fill)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out
