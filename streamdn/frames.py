"""Frame (YUV 4:2:0 planes + timing) and FrameFormat (the "caps" a stage accepts), plus the
conversions between PyAV frames, numpy images (Frame.from_ndarray / to_ndarray) and Frames."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction

import av
import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.kernels.chroma import WORK_PLANES, chroma_from_luma, yuv420_to_bgr_guided

# The PyAV pixel-format names Frame.from_ndarray and Frame.to_ndarray know.
NDARRAY_FORMATS = ("bgr24", "rgb24", "gray", "gray8", "yuv420p")


# A fixed strength is the sigma of Gaussian noise on the RGB picture in 8-bit units (how noise
# is usually quoted, and what BM3D or a noise generator is given). Independent RGB noise of sigma s
# shows up in BT.601 limited-range 4:2:0 planes as s * |row of the RGB->YCbCr matrix| * 219/255
# (224/255 for chroma), the chroma further halved by the 2x2 average of 4:2:0:
PLANE_SIGMA_PER_RGB_SIGMA = (
    float(np.hypot.reduce([0.299, 0.587, 0.114]) * 219 / 255),                  # Y  0.574
    float(np.hypot.reduce([0.168736, 0.331264, 0.5]) * 224 / 255 / 2),          # Cb 0.274
    float(np.hypot.reduce([0.5, 0.418688, 0.081312]) * 224 / 255 / 2),          # Cr 0.289
)


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """Chroma plane size (w, h) of a 4:2:0 frame; odd sizes round up, as FFmpeg does."""
    return (width + 1) // 2, (height + 1) // 2


@dataclass(frozen=True)
class FrameFormat:
    """What flows between stages.

    Attributes:
        width, height: luma size in pixels (odd values allowed).
        bit_depth: 8 (uint8 planes) or 9..16 (uint16 planes holding values < 2**bit_depth).
        fps: nominal frame rate in frames/s, or None when unknown.
        time_base: seconds per pts tick, or None for sources without timestamps.
        source_pix_fmt: the pixel format the source delivered before conversion to 4:2:0.
    """

    width: int
    height: int
    bit_depth: int = 8
    fps: Fraction | None = None
    time_base: Fraction | None = None
    source_pix_fmt: str = "yuv420p"

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype(np.uint16)

    @property
    def pix_fmt(self) -> str:
        """The planar 4:2:0 PyAV format of frames in this format."""
        return "yuv420p" if self.bit_depth == 8 else f"yuv420p{self.bit_depth}le"

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1


@dataclass
class Frame:
    """One picture in planar YUV 4:2:0.

    Attributes:
        y: luma, (H, W) uint8, or uint16 holding `bit_depth`-bit values.
        u, v: chroma, (ceil(H/2), ceil(W/2)), same dtype as y.
        bit_depth: 8..16.
        pts: presentation timestamp in `time_base` ticks, or None.
        time_base: seconds per tick, or None.
        index: 0-based position in the stream as decoded.
        captured: time.monotonic() when the source produced it (latency accounting).
        extra: per-frame metadata carried unchanged (e.g. "rotation", colour properties).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8
    pts: int | None = None
    time_base: Fraction | None = None
    index: int = 0
    captured: float = field(default_factory=time.monotonic)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or None."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    def with_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Frame:
        """A copy carrying new planes and the same timing and metadata."""
        return replace(self, y=y, u=u, v=v)

    def to_bgr(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR, BT.601 limited range (for previews, metrics and tests)."""
        return yuv420_to_bgr(self.y, self.u, self.v, self.bit_depth)

    @classmethod
    def from_ndarray(cls, array: np.ndarray, format: str = "bgr24", *, pts: int | None = None,
                     time_base: Fraction | None = None, index: int = 0) -> Frame:
        """A Frame from a numpy image, as PyAV's VideoFrame.from_ndarray takes it.

        Args:
            array: for "bgr24"/"rgb24" (H, W, 3) uint8 (OpenCV's images are BGR); for
                "gray"/"gray8" (H, W) uint8 (neutral chroma); for "yuv420p" (H * 3 // 2, W)
                uint8 in PyAV's layout (Y rows, then the U and V planes, even H and W).
            format: the pixel format of `array` (NDARRAY_FORMATS).
            pts, time_base, index: the frame's timing and position in its stream.

        Raises:
            ConfigError: an unknown format, or an array that does not fit it.
        """
        y, u, v = _planes_from_ndarray(np.asarray(array), format)
        return cls(y=y, u=u, v=v, bit_depth=8, pts=pts, time_base=time_base, index=index)

    def to_ndarray(self, format: str = "bgr24") -> np.ndarray:
        """The picture as a numpy image, as PyAV's VideoFrame.to_ndarray gives it: "bgr24" and
        "rgb24" (H, W, 3) uint8, "gray"/"gray8" the (H, W) uint8 luma, "yuv420p" (H * 3 // 2, W)
        uint8 (even H and W). Planes deeper than 8 bits are rounded to 8.

        Raises:
            ConfigError: an unknown format, or "yuv420p" of an odd-sized frame.
        """
        if format == "bgr24":
            return self.to_bgr()
        if format == "rgb24":
            return np.ascontiguousarray(self.to_bgr()[..., ::-1])
        if format in ("gray", "gray8"):
            return to_8bit(self.y, self.bit_depth)
        if format == "yuv420p":
            if self.width % 2 or self.height % 2:
                raise ConfigError(f"format 'yuv420p' needs an even frame size, not {self.width}x{self.height}; "
                                  f"use 'bgr24' or 'rgb24'.")
            planes = [to_8bit(p, self.bit_depth).ravel() for p in (self.y, self.u, self.v)]
            return np.concatenate(planes).reshape(-1, self.width)
        raise ConfigError(f"format '{format}' is not supported; use one of {', '.join(NDARRAY_FORMATS)}.")


def _planes_from_ndarray(a: np.ndarray, format: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V uint8 planes of an image in a PyAV pixel format (see Frame.from_ndarray)."""
    if format not in NDARRAY_FORMATS:
        raise ConfigError(f"format '{format}' is not supported; use one of {', '.join(NDARRAY_FORMATS)}.")
    if format in ("bgr24", "rgb24"):
        want, ok = "(H, W, 3)", a.ndim == 3 and a.shape[2] == 3
    elif format == "yuv420p":
        rows = a.shape[0] if a.ndim == 2 else 0
        want, ok = "(H * 3 // 2, W), H and W even,", a.ndim == 2 and rows % 3 == 0 and rows * 2 // 3 % 2 == 0 \
            and a.shape[1] % 2 == 0
    else:
        want, ok = "(H, W)", a.ndim == 2
    if not ok or a.dtype != np.uint8 or 0 in a.shape:
        raise ConfigError(f"format '{format}' takes a {want} uint8 array, not shape {a.shape} dtype {a.dtype}.")
    if format in ("bgr24", "rgb24"):
        return bgr_to_yuv420(a if format == "bgr24" else a[..., ::-1])
    if format in ("gray", "gray8"):
        cw, ch = chroma_size(a.shape[1], a.shape[0])
        grey = np.full((ch, cw), 128, np.uint8)
        return np.ascontiguousarray(a), grey, grey.copy()
    w = a.shape[1]
    h = a.shape[0] * 2 // 3
    flat = np.ascontiguousarray(a).ravel()
    n, q = h * w, h * w // 4
    return (flat[:n].reshape(h, w).copy(), flat[n:n + q].reshape(h // 2, w // 2).copy(),
            flat[n + q:].reshape(h // 2, w // 2).copy())


def _plane_view(plane: av.video.plane.VideoPlane, width: int, height: int, dtype: np.dtype) -> np.ndarray:
    """A writable (height, width) numpy view of a PyAV plane, honouring its line padding."""
    raw = np.frombuffer(plane, dtype=np.uint8)
    rows = raw[: plane.line_size * height].reshape(height, plane.line_size)
    return rows.view(dtype)[:, :width]


def from_av(frame: av.VideoFrame, index: int, bit_depth: int, captured: float | None = None) -> Frame:
    """Copies a decoded PyAV frame into a Frame, converting it to planar 4:2:0 first.

    Args:
        frame: any pixel format FFmpeg can convert (nv12, yuv422p, rgb24, gray, 10-bit...).
        index: position in the stream.
        bit_depth: 8, or the source's depth (10, 12, 16) to keep high-bit-depth planes.
        captured: monotonic capture time; now when None.
    """
    fmt = "yuv420p" if bit_depth == 8 else f"yuv420p{bit_depth}le"
    src = frame if frame.format.name == fmt else frame.reformat(format=fmt)
    dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
    w, h = src.width, src.height
    cw, ch = chroma_size(w, h)
    y = _plane_view(src.planes[0], w, h, dtype).copy()
    u = _plane_view(src.planes[1], cw, ch, dtype).copy()
    v = _plane_view(src.planes[2], cw, ch, dtype).copy()
    extra: dict[str, object] = {}
    rotation = getattr(frame, "rotation", 0)
    if rotation:
        extra["rotation"] = rotation
    return Frame(
        y=y, u=u, v=v, bit_depth=bit_depth, pts=frame.pts,
        time_base=Fraction(frame.time_base) if frame.time_base is not None else None,
        index=index, captured=time.monotonic() if captured is None else captured, extra=extra,
    )


def to_av(frame: Frame) -> av.VideoFrame:
    """A PyAV frame (yuv420p or yuv420pNNle) holding a copy of `frame`'s planes and its pts."""
    fmt = "yuv420p" if frame.bit_depth == 8 else f"yuv420p{frame.bit_depth}le"
    out = av.VideoFrame(frame.width, frame.height, fmt)
    dtype = np.dtype(np.uint8) if frame.bit_depth == 8 else np.dtype("<u2")
    cw, ch = chroma_size(frame.width, frame.height)
    _plane_view(out.planes[0], frame.width, frame.height, dtype)[...] = frame.y
    _plane_view(out.planes[1], cw, ch, dtype)[...] = frame.u
    _plane_view(out.planes[2], cw, ch, dtype)[...] = frame.v
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def _even(a: np.ndarray) -> np.ndarray:
    """Pads an image to even height and width by repeating the last row/column."""
    h, w = a.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return a
    pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, mode="edge")


# BT.601 limited range (what cameras and most SD/HD software hand over as "YUV"): rows Y, U, V;
# columns B, G, R and the offset, for 8-bit values.
BGR_TO_YUV = np.array([[24.966, 128.553, 65.481, 16.0 * 255],
                        [112.0, -74.203, -37.797, 128.0 * 255],
                        [-18.214, -93.786, 112.0, 128.0 * 255]], np.float64) / 255.0
_YUV_TO_BGR = np.linalg.inv(np.vstack([BGR_TO_YUV, [0, 0, 0, 1]]))[:3]
_BGR_TO_YUV_F32 = BGR_TO_YUV.astype(np.float32)
_YUV_TO_BGR_F32 = _YUV_TO_BGR.astype(np.float32)


def bgr_to_yuv420(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 BGR -> Y (H, W), U and V (ceil(H/2), ceil(W/2)) uint8, BT.601 limited range.

    Chroma is the mean of each 2x2 block (OpenCV's COLOR_BGR2YUV_I420 takes one sample of four,
    which aliases and leaves chroma noise unaveraged: 3.9 dB lower round-trip PSNR measured on
    a synthetic 640x360 scene, 33.8 against 37.6 dB).
    """
    h, w = bgr.shape[:2]
    yuv = cv2.transform(_even(np.ascontiguousarray(bgr)), _BGR_TO_YUV_F32)   # uint8, rounded and clipped
    he, we = yuv.shape[:2]
    # OpenCV splits and merges the channels (four times faster at 1280x720 than NumPy's strided
    # copies, 2.0 against 8.3 ms in all); the chroma is resized as one two-channel image, whose
    # 2x2 means round halves to even (one channel at a time rounds them up: 1/8 level brighter).
    y, u, v = cv2.split(yuv)
    if (he, we) != (h, w):
        y = np.ascontiguousarray(y[:h, :w])
    u, v = cv2.split(cv2.resize(cv2.merge((u, v)), (we // 2, he // 2), interpolation=cv2.INTER_AREA))
    return y, u, v


# Chroma upsampling of the pictures streamdn hands out (Frame.to_bgr, stills): "luma" fits the
# colour to the luma in small windows (streamdn.kernels.chroma: a guided filter on the chroma
# grid with a back-projection that keeps each 2x2 block's mean); "bilinear" is the plain one.
# Measured on the validation clips' clean 4:2:0 round trip: 35.4 / 35.9 / 45.2 / 47.4 dB RGB
# PSNR bilinear, 40.5 / 42.6 / 48.0 / 50.4 dB from the luma (docs/figures.md, "Chroma").
CHROMA_UPSAMPLING = ("luma", "bilinear")
CHROMA_EPS = 1e-4      # the fit's regulariser on the luma's variance, in [0, 1] units squared
CHROMA_RADIUS = 1      # its windows: 3 x 3 chroma samples

_scratch = threading.local()


def _chroma_work(h2: int, w2: int) -> np.ndarray:
    """The chroma kernels' scratch planes for a (h2, w2) chroma grid, kept per thread."""
    work = getattr(_scratch, "work", None)
    if work is None or work.shape[1:] != (h2, w2):
        work = np.empty((WORK_PLANES, h2, w2), np.float32)
        _scratch.work = work
    return work


def check_chroma(chroma: str) -> None:
    """Raises ConfigError for a chroma upsampling that is not one of CHROMA_UPSAMPLING."""
    if chroma not in CHROMA_UPSAMPLING:
        raise ConfigError(f"chroma upsampling '{chroma}' is not known; choose one of {', '.join(CHROMA_UPSAMPLING)}.")


def yuv420_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int = 8, chroma: str = "luma") -> np.ndarray:
    """Y, U, V 4:2:0 planes (any depth) -> (H, W, 3) uint8 BGR, BT.601 limited range.

    Args:
        chroma: how the chroma is brought to full resolution (CHROMA_UPSAMPLING): "luma"
            (guided by the luma; on a noisy picture it brings some of the luma's noise into the
            colour, as noise added in RGB has it: noisy frames measured 0.2-0.6 dB closer to the
            clean ones than with "bilinear") or "bilinear".
    """
    check_chroma(chroma)
    if bit_depth != 8:
        y, u, v = (to_8bit(p, bit_depth) for p in (y, u, v))
    h, w = y.shape
    ch, cw = u.shape
    if chroma == "luma":
        # Contiguous planes: one compiled kernel (a view would compile another, seconds once).
        y, u, v = (np.ascontiguousarray(p) for p in (y, u, v))
        return yuv420_to_bgr_guided(y, u, v, CHROMA_EPS * 255.0 ** 2, CHROMA_RADIUS, _YUV_TO_BGR_F32,
                                    _chroma_work(ch, cw), np.empty((h, w, 3), np.uint8))
    up = cv2.resize(np.dstack([u, v]), (cw * 2, ch * 2), interpolation=cv2.INTER_LINEAR)
    yuv = np.dstack([y, up[:h, :w]])
    return cv2.transform(yuv, _YUV_TO_BGR_F32)


def to_8bit(plane: np.ndarray, bit_depth: int) -> np.ndarray:
    """A plane of `bit_depth`-bit values as uint8 (rounded); 8-bit planes as they are."""
    if bit_depth == 8:
        return plane
    shift = bit_depth - 8
    return np.minimum((plane.astype(np.uint32) + (1 << (shift - 1))) >> shift, 255).astype(np.uint8)


def frame_from_bgr(bgr: np.ndarray, index: int = 0, pts: int | None = None,
                   time_base: Fraction | None = None, captured: float | None = None) -> Frame:
    """A Frame from an (H, W, 3) uint8 BGR image (camera and synthetic sources)."""
    y, u, v = bgr_to_yuv420(bgr)
    return Frame(y=y, u=u, v=v, bit_depth=8, pts=pts, time_base=time_base, index=index,
                 captured=time.monotonic() if captured is None else captured)


WARMUP_PAN = (1.3, 0.4)     # the warm-up camera's move, pixels per frame (x, y)
WARMUP_NOISE = 8.0          # its noise, 8-bit units


def warmup_frames(fmt: FrameFormat, count: int, seed: int = 0) -> list[Frame]:
    """`count` frames in `fmt` for a warm-up: a smooth random picture with noise, seen by a camera
    that pans WARMUP_PAN pixels a frame (sub-pixel moves). A still grey frame leaves the paths a
    real stream takes after its first frame (a long average's camera tracking, its sub-pixel
    resampling, the recursion following the camera) to be compiled at the second frame: at
    640x360 on a fresh install that was 8.7 s of Numba compilation inside the run, after a
    21.5 s grey warm-up. Frames are numbered 0..count-1 and carry no timestamps."""
    rng = np.random.default_rng(seed)
    w, h = fmt.width, fmt.height
    margin = 4 + int(np.ceil(max(WARMUP_PAN) * count))
    bw, bh = w + 2 * margin, h + 2 * margin
    small = rng.uniform(40, 215, (max(2, bh // 8), max(2, bw // 8), 3)).astype(np.float32)
    picture = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_CUBIC)
    shift = 1 << (fmt.bit_depth - 8)
    frames = []
    for t in range(count):
        move = np.float32([[1, 0, margin + WARMUP_PAN[0] * t], [0, 1, margin + WARMUP_PAN[1] * t]])
        view = cv2.warpAffine(picture, move, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
        bgr = np.clip(view + rng.normal(0.0, WARMUP_NOISE, view.shape), 0, 255).astype(np.uint8)
        y, u, v = bgr_to_yuv420(bgr)
        if fmt.bit_depth > 8:
            y, u, v = (p.astype(np.uint16) * np.uint16(shift) for p in (y, u, v))
        frames.append(Frame(y=y, u=u, v=v, bit_depth=fmt.bit_depth, index=t))
    return frames


# RGB in 8-bit units -> YUV in 8-bit units (BT.601 limited range), RGB column order; and back.
_RGB_TO_YUV_F32 = np.hstack([BGR_TO_YUV[:, [2, 1, 0]], BGR_TO_YUV[:, 3:]]).astype(np.float32)
_YUV_TO_RGB_F32 = np.linalg.inv(np.vstack([_RGB_TO_YUV_F32.astype(np.float64), [0, 0, 0, 1]]))[:3].astype(np.float32)


def rgb_to_planes(rgb: np.ndarray, bit_depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An (H, W, 3) RGB picture -> Y, U, V 4:2:0 planes of `bit_depth` bits (uint8 up to 8 bits,
    else uint16), BT.601 limited range scaled from 8-bit by (2^bits - 1) / 255, chroma the mean of
    each 2x2 block, rounded and clipped.

    Args:
        rgb: uint8 or uint16 (full range of its type), or float32 in [0, 1].
        bit_depth: 8 to 16.
    """
    h, w = rgb.shape[:2]
    maxv = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    y = np.empty((h, w), dtype)
    u = np.empty(((h + 1) // 2, (w + 1) // 2), dtype)
    v = np.empty_like(u)
    # In strips of rows, so that a large picture never has more than a strip in float.
    for r0 in range(0, h, _STRIP):
        r1 = min(r0 + _STRIP, h)
        part = rgb[r0:r1]
        if rgb.dtype == np.uint8:
            f = part.astype(np.float32)
        elif rgb.dtype == np.uint16:
            f = part.astype(np.float32) * np.float32(255.0 / 65535.0)
        else:
            f = np.asarray(part, np.float32) * np.float32(255.0)
        yuv = cv2.transform(f, _RGB_TO_YUV_F32 * np.float32(maxv / 255.0))
        del f
        half = cv2.resize(np.ascontiguousarray(_even(yuv[..., 1:])), ((w + 1) // 2, (r1 - r0 + 1) // 2),
                          interpolation=cv2.INTER_AREA)
        y[r0:r1] = np.clip(yuv[..., 0] + 0.5, 0, maxv)
        u[r0 // 2:(r1 + 1) // 2] = np.clip(half[..., 0] + 0.5, 0, maxv)
        v[r0 // 2:(r1 + 1) // 2] = np.clip(half[..., 1] + 0.5, 0, maxv)
    return y, u, v


_STRIP = 256   # rows per strip in rgb_to_planes (even: whole 2x2 chroma blocks)


def planes_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int,
                  dtype: np.dtype | type = np.float32, chroma: str = "bilinear") -> np.ndarray:
    """Y, U, V 4:2:0 planes of `bit_depth` bits -> (H, W, 3) RGB; the inverse of rgb_to_planes
    up to the chroma subsampling.

    Args:
        dtype: uint8 or uint16 (rounded and clipped to the type's full range), or float32
            (in [0, 1] for in-gamut colours; not clipped).
        chroma: "bilinear" (the default: models take noisy pictures through here) or "luma"
            (see yuv420_to_bgr).
    """
    check_chroma(chroma)
    h, w = y.shape
    ch, cw = u.shape
    scale = np.float32(255.0 / ((1 << bit_depth) - 1))
    if chroma == "luma":
        uv = np.empty((2, h, w), np.float32)
        eps = CHROMA_EPS * float((1 << bit_depth) - 1) ** 2
        y, u, v = (np.ascontiguousarray(p) for p in (y, u, v))
        chroma_from_luma(y, u, v, eps, CHROMA_RADIUS, _chroma_work(ch, cw), uv[0], uv[1])
        uv = uv.transpose(1, 2, 0)
    else:
        uv = cv2.resize(np.dstack([u, v]).astype(np.float32), (cw * 2, ch * 2), interpolation=cv2.INTER_LINEAR)[:h, :w]
    rgb = cv2.transform(np.dstack([y.astype(np.float32), uv]) * scale, _YUV_TO_RGB_F32)
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(rgb * np.float32(257.0) + 0.5, 0, 65535).astype(np.uint16)
    return rgb * np.float32(1.0 / 255.0)


def tile_boxes(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[tuple[int, int, int, int],
                                                                         tuple[int, int, int, int]]]:
    """(kept box, box with context) per tile of an h x w picture, each (top, left, bottom,
    right) in luma pixels; with an even `tile` and `overlap`, on even coordinates (whole 2x2
    chroma blocks)."""
    for t0 in range(0, h, tile):
        for s0 in range(0, w, tile):
            t1, s1 = min(t0 + tile, h), min(s0 + tile, w)
            yield (t0, s0, t1, s1), (max(t0 - overlap, 0), max(s0 - overlap, 0),
                                     min(t1 + overlap, h), min(s1 + overlap, w))


def crop_frame(frame: Frame, box: tuple[int, int, int, int]) -> Frame:
    """The part of a 4:2:0 frame inside `box` (top, left, bottom, right; even top and left)."""
    a0, b0, a1, b1 = box
    return frame.with_planes(frame.y[a0:a1, b0:b1], frame.u[a0 // 2:(a1 + 1) // 2, b0 // 2:(b1 + 1) // 2],
                             frame.v[a0 // 2:(a1 + 1) // 2, b0 // 2:(b1 + 1) // 2])


def rgb_to_frame(rgb: np.ndarray) -> Frame:
    """(H, W, 3) uint8 or uint16 RGB -> a 16-bit YUV 4:2:0 Frame (BT.601 limited range, the
    model's training colour space; chroma the mean of each 2x2 block; 8-bit values scaled by 257)."""
    y, u, v = rgb_to_planes(rgb, 16)
    return Frame(y=y, u=u, v=v, bit_depth=16)


def frame_to_rgb(frame: Frame, dtype: np.dtype) -> np.ndarray:
    """A 16-bit YUV 4:2:0 Frame -> (H, W, 3) RGB of `dtype` (uint8 or uint16), the chroma
    brought to full resolution from the luma (yuv420_to_bgr); the inverse of rgb_to_frame up to
    the chroma subsampling."""
    if frame.bit_depth != 16:
        raise ConfigError(f"frame_to_rgb takes 16-bit frames, not {frame.bit_depth}-bit.")
    return planes_to_rgb(frame.y, frame.u, frame.v, 16, dtype, chroma="luma")


AHEAD = "ahead"               # frame.extra key: the frames after it, for a model that looks ahead
AHEAD_ONLY = "ahead_only"     # frame.extra key: a frame read only to be looked ahead at


def with_lookahead(frames: Iterable[Frame], count: int) -> Iterator[Frame]:
    """The frames, each with the `count` frames after it (fewer at the end) in extra["ahead"],
    for a model that merges frames after the current one (FrameModel.lookahead). Reads `count`
    frames ahead of what it yields; holds no more. Frames marked extra["ahead_only"] (a segment's
    frames after its end) are looked at and never yielded.
    """
    buf: deque[Frame] = deque()

    def release() -> Frame:
        head = buf.popleft()
        head.extra[AHEAD] = tuple(buf)
        return head

    for frame in frames:
        buf.append(frame)
        if len(buf) > count:
            head = release()
            if not head.extra.get(AHEAD_ONLY):
                yield head
    while buf:
        head = release()
        if not head.extra.get(AHEAD_ONLY):
            yield head
