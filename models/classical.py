"""Classical baselines behind the FrameModel API, `classical:NAME`: mean, gaussian, median,
bilateral, nlm (OpenCV), nlm-temporal (OpenCV, causal 5-frame window), wavelet and tv
(scikit-image). FFmpeg's filters (`ffmpeg:NAME`) live in models/ffmpeg.py.

Strength. Each plane is filtered with parameters read from a table indexed by that plane's
noise sigma (8-bit units, what the Denoiser passes to pack(); linear interpolation between
rows, clamped at the ends). Below sigma 0.5 a plane is passed through unchanged.

How the tables were tuned (TUNING below). Clips: streamdn.data.synthetic.MovingScene at 640x360,
scene seeds 0 and 1 (evaluation uses seeds from 1000 on, so tuning and validation clips
differ), 3 frames each for spatial methods and 8 for temporal ones. Noise: AWGN added in RGB
with sigma 5, 10, 20, 30 and 50 (streamdn.data.noise, seed 0), which in every Y, U and V plane of
the 4:2:0 frame is a sigma of about 0.575 times the RGB sigma: 2.9, 5.75, 11.5, 17.2 and 28
(chroma keeps the luma's sigma because streamdn.frames' OpenCV I420 conversion point-samples
chroma). Each method's pack/forward/unpack (what the Denoiser calls) ran with the true
per-plane sigma (oracle), for every value of a grid of its parameter; the value with the best
mean RGB PSNR became the table row at that plane sigma. The blind estimate (--strength auto)
is within 2 % of the true sigma on these clips for AWGN, and about 4 % low on Poisson-Gaussian
low light.

    plane sigma           2.9    5.75   11.5   17.2   28     parameter
    mean                  3      3      5      5      9      box size (px)
    gaussian              0.7    0.7    1.2    1.5    2.4    spatial sigma (px)
    median                3      3      5      5      5      aperture (px)
    bilateral             8      5      5      8      14     colour sigma / noise sigma
    nlm                   1.2    1.2    1.0    1.0    1.0    h / noise sigma
    nlm-temporal          1.4    1.4    1.2    1.0    1.2    h / noise sigma
    wavelet               1.2    1.2    1.0    1.0    1.0    BayesShrink sigma / noise sigma
    tv                    1.3    0.8    0.8    1.0    1.0    weight x 255 / noise sigma

Grids searched: mean 1-11 (odd); gaussian 0.5-3.0 px; median 3, 5; bilateral 1-14; nlm 0.6-1.7;
nlm-temporal 0.8-2.0; wavelet 0.6-2.0; tv 0.3-4.0. The gaussian, bilateral, nlm and
nlm-temporal optima are flat (a neighbouring grid value within about 0.1 dB); wavelet and tv are
sharp (0.3-1 dB for one grid step). The tuning script is not shipped; its steps are above.

Fixed choices (not tuned per sigma): bilateral spatial sigma 1.5 px (d from it); nlm template
7, search 21 (OpenCV's defaults); nlm-temporal template 5, search 11 (five frames at once are
otherwise 5x slower than nlm); wavelet db2, soft thresholding, 4 levels; tv 30 iterations max.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.frames import Frame

from .registry import FrameModel, ModelInfo, register

Table = Sequence[tuple[float, float]]   # (plane sigma in 8-bit units, parameter value) rows
SIGMAS = (2.9, 5.75, 11.5, 17.2, 28.0)  # the plane sigmas of the tuning levels (AWGN 5..50)

TUNING: dict[str, Table] = {
    "mean": tuple(zip(SIGMAS, (3, 3, 5, 5, 9))),
    "gaussian": tuple(zip(SIGMAS, (0.7, 0.7, 1.2, 1.5, 2.4))),
    "median": tuple(zip(SIGMAS, (3, 3, 5, 5, 5))),
    "bilateral": tuple(zip(SIGMAS, (8.0, 5.0, 5.0, 8.0, 14.0))),
    "nlm": tuple(zip(SIGMAS, (1.2, 1.2, 1.0, 1.0, 1.0))),
    "nlm-temporal": tuple(zip(SIGMAS, (1.4, 1.4, 1.2, 1.0, 1.2))),
    "wavelet": tuple(zip(SIGMAS, (1.2, 1.2, 1.0, 1.0, 1.0))),
    "tv": tuple(zip(SIGMAS, (1.3, 0.8, 0.8, 1.0, 1.0))),
}
MIN_SIGMA = 0.5


def lookup(table: Table, sigma: float) -> float:
    """The table's parameter at `sigma` (linear interpolation, clamped at both ends)."""
    xs, ys = zip(*table)
    return float(np.interp(sigma, xs, ys))


def odd(size: float) -> int:
    """The nearest odd integer >= 1 (kernel sizes)."""
    return max(1, int(round((size - 1) / 2)) * 2 + 1)


class _Planes(FrameModel):
    """Filters Y, U and V one by one, each with its own sigma. pack/unpack are identities on the
    integer planes; planes deeper than 8 bits are handed to `filter` as float32 in 8-bit units."""

    key = ""

    def __init__(self, table: Table | None = None) -> None:
        """Args:
            table: (plane sigma, parameter) rows replacing TUNING[key] (for tuning).
        """
        self.table: Table = tuple(table) if table is not None else TUNING[self.key]

    def clone(self) -> _Planes:
        """The same filter and table with no past frames."""
        return type(self)(self.table)

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> tuple[Frame, tuple[float, float, float]]:
        return frame, sigmas

    def forward(self, packed: tuple[Frame, tuple[float, float, float]]) -> tuple[np.ndarray, ...]:
        frame, sigmas = packed
        outs = []
        for i, (plane, sigma) in enumerate(zip((frame.y, frame.u, frame.v), sigmas)):
            if sigma < MIN_SIGMA or min(plane.shape) < 3:
                outs.append(plane)
                continue
            if frame.bit_depth == 8:
                outs.append(self.filter(i, plane, sigma, lookup(self.table, sigma)))
                continue
            maxv = (1 << frame.bit_depth) - 1
            x = plane.astype(np.float32) * np.float32(255.0 / maxv)
            y = self.filter(i, x, sigma, lookup(self.table, sigma))
            outs.append(np.clip(np.rint(y * (maxv / 255.0)), 0, maxv).astype(plane.dtype))
        return tuple(outs)

    def unpack(self, result: tuple[np.ndarray, ...], frame: Frame) -> Frame:
        return frame.with_planes(*result)

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        """Denoises one plane.

        Args:
            index: 0 Y, 1 U, 2 V.
            plane: (H, W) uint8, or float32 in [0, 255] for deeper sources.
            sigma: the plane's noise sigma in 8-bit units.
            param: TUNING[key] at sigma.

        Returns:
            An array of plane's shape and dtype.
        """
        raise NotImplementedError


def _to8(plane: np.ndarray) -> np.ndarray:
    return plane if plane.dtype == np.uint8 else np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def _back(plane: np.ndarray, filtered8: np.ndarray) -> np.ndarray:
    """For 8-bit-only OpenCV functions on deeper planes: adds the 8-bit correction to the
    full-precision plane, so the fraction below one 8-bit step is kept."""
    if plane.dtype == np.uint8:
        return filtered8
    return plane + (filtered8.astype(np.float32) - _to8(plane))


class Mean(_Planes):
    key = "mean"
    info = ModelInfo("classical:mean", "classical", "OpenCV box filter, size by noise level")

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        k = odd(param)
        return plane if k == 1 else cv2.blur(plane, (k, k), borderType=cv2.BORDER_REFLECT)


class Gaussian(_Planes):
    key = "gaussian"
    info = ModelInfo("classical:gaussian", "classical", "OpenCV Gaussian blur, radius by noise level")

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        return cv2.GaussianBlur(plane, (0, 0), param, borderType=cv2.BORDER_REFLECT)


class Median(_Planes):
    key = "median"
    info = ModelInfo("classical:median", "classical", "OpenCV median blur, 3x3 or 5x5 by noise level")

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        k = min(5, odd(param))  # medianBlur takes float32 only up to 5x5
        return plane if k == 1 else cv2.medianBlur(np.ascontiguousarray(plane), k)


class Bilateral(_Planes):
    key = "bilateral"
    info = ModelInfo("classical:bilateral", "classical", "OpenCV bilateral filter, range sigma by noise level")
    space_sigma = 1.5

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        return cv2.bilateralFilter(plane, -1, param * sigma, self.space_sigma, borderType=cv2.BORDER_REFLECT)


class NLMeans(_Planes):
    key = "nlm"
    info = ModelInfo("classical:nlm", "classical", "OpenCV non-local means per plane, h by noise level")
    template, search = 7, 21

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        out = cv2.fastNlMeansDenoising(_to8(plane), None, param * sigma, self.template, self.search)
        return _back(plane, out)


class NLMeansTemporal(_Planes):
    """OpenCV's multi-frame non-local means over the current frame and the four before it.

    OpenCV centres its window on the frame it denoises, but its weights depend only on patch
    similarity, not on where a frame sits in the window, so the current frame is put in the
    middle with the four previous noisy frames around it: causal, no latency. Until four past
    frames exist, the ones there are repeated. State: the last four noisy planes.
    """

    key = "nlm-temporal"
    info = ModelInfo("classical:nlm-temporal", "classical",
                     "OpenCV non-local means over the current and 4 previous frames (causal)", temporal=True)
    template, search, window = 5, 11, 5

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)
        self._past: list[deque[np.ndarray]] = [deque(maxlen=self.window - 1) for _ in range(3)]

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        cur = _to8(plane)
        past = self._past[index]
        if past and past[-1].shape != cur.shape:
            past.clear()
        others = list(past) or [cur]
        others = [others[i % len(others)] for i in range(self.window - 1)]
        half = self.window // 2
        stack = others[:half] + [cur] + others[half:]
        out = cv2.fastNlMeansDenoisingMulti(stack, half, self.window, None, param * sigma,
                                            self.template, self.search)
        past.append(cur)
        return _back(plane, out)

    def forward(self, packed: tuple[Frame, tuple[float, float, float]]) -> tuple[np.ndarray, ...]:
        frame, sigmas = packed
        for i, (plane, sigma) in enumerate(zip((frame.y, frame.u, frame.v), sigmas)):
            if sigma < MIN_SIGMA or min(plane.shape) < 3:
                self._past[i].clear()  # a plane passed through leaves no stale frames behind
        return super().forward(packed)

    def reset(self) -> None:
        for past in self._past:
            past.clear()


def _skimage_restoration():  # type: ignore[no-untyped-def]
    try:
        from skimage import restoration
    except ImportError as err:
        raise ConfigError("classical:wavelet and classical:tv need scikit-image (and PyWavelets); install "
                          "them with: pip install 'streamdn[eval]'.") from err
    return restoration


class Wavelet(_Planes):
    key = "wavelet"
    info = ModelInfo("classical:wavelet", "classical", "scikit-image BayesShrink wavelet shrinkage (needs [eval])")

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)
        self._restoration = _skimage_restoration()
        try:
            import pywt  # noqa: F401  (denoise_wavelet imports it only when called)
        except ImportError as err:
            raise ConfigError("classical:wavelet needs PyWavelets; install it with: "
                              "pip install 'streamdn[eval]'.") from err

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        x = plane.astype(np.float32) / np.float32(255.0)
        levels = max(1, min(4, int(np.log2(min(plane.shape))) - 3))
        y = self._restoration.denoise_wavelet(x, sigma=param * sigma / 255.0, wavelet="db2", mode="soft",
                                              wavelet_levels=levels, method="BayesShrink", rescale_sigma=True)
        return _restore(plane, y)


class TotalVariation(_Planes):
    key = "tv"
    info = ModelInfo("classical:tv", "classical", "scikit-image Chambolle total-variation denoising (needs [eval])")

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)
        self._restoration = _skimage_restoration()

    def filter(self, index: int, plane: np.ndarray, sigma: float, param: float) -> np.ndarray:
        x = plane.astype(np.float32) / np.float32(255.0)
        y = self._restoration.denoise_tv_chambolle(x, weight=param * sigma / 255.0, max_num_iter=30)
        return _restore(plane, y)


def _restore(plane: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """[0, 1] float result -> plane's dtype and 8-bit units."""
    y = unit * 255.0
    if plane.dtype == np.uint8:
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return y.astype(np.float32)


def _factory(cls: type[_Planes]):  # type: ignore[no-untyped-def]
    def make(*, device: str = "cpu", table: Table | None = None) -> _Planes:
        return cls(table)
    make.__name__ = cls.key.replace("-", "_")
    return make


CLASSES: tuple[type[_Planes], ...] = (Mean, Gaussian, Median, Bilateral, NLMeans, NLMeansTemporal, Wavelet,
                                      TotalVariation)
for _cls in CLASSES:
    register(_cls.info)(_factory(_cls))
