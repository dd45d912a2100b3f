"""FFmpeg's denoising filters through PyAV's filter graph, behind the FrameModel API:
`ffmpeg:nlmeans`, `ffmpeg:atadenoise`, `ffmpeg:bm3d`, `ffmpeg:fftdnoiz`, `ffmpeg:hqdn3d`.

Each frame goes in as a yuv420p (or yuv420pNNle) av.VideoFrame (streamdn.frames.to_av) and
comes back through streamdn.frames.from_av; one output per input, in order, no latency:
- nlmeans and bm3d are spatial; fftdnoiz runs with prev=1, next=0 and hqdn3d is recursive, so
  both are causal as they stand. Their graph lives as long as the stream and is rebuilt (state
  lost) only when the frame size changes or a plane's sigma drifts more than 10 % from the one
  the graph was built for.
- atadenoise centres its window on the frame it outputs (a delay of half the window). Here every
  frame gets a fresh graph fed the last D noisy frames mirrored around the current one
  (t-D .. t-1, t, t-1 .. t-D): a causal window, at the cost of D + 1 filter passes per frame.
- hqdn3d is GPL, and PyAV's wheels ship an LGPL FFmpeg without it: `ffmpeg:hqdn3d` is listed
  everywhere but raises a ConfigError when the build lacks the filter.

Strength: options from the per-plane noise sigma (8-bit units), tuned as in models/classical.py
(same clips, noise levels and oracle sigmas; grid search of one multiplier per level):

    plane sigma           2.9    5.75   11.5   17.2   28     parameter
    nlmeans               1.5    1.0    0.8    0.8    1.0    s / noise sigma (luma sigma)
    atadenoise            4      4      5      5      3      thresholds a, b/2 x 255 / noise sigma
    bm3d                  35     50     50     70     70     sigma / noise sigma
    fftdnoiz              1.5    3      6      6      4.5    sigma / noise sigma (capped at 100)
    hqdn3d                0.4    0.4    0.4    0.4    0.4    spatial / noise sigma (not tuned:
                                                             the build here has no hqdn3d)

What the tuning showed: FFmpeg's option scales are far from the noise sigma (bm3d needs 35-70x,
its default sigma 1 does nothing); fftdnoiz's sigma option tops out at 100, so above a plane
sigma of about 17 (AWGN 30) it cannot remove all the noise; atadenoise saturates (its
thresholds top out) and averages without motion compensation, so it gains at most ~3 dB on
these slowly panning scenes (about 5 dB on a static one).

Fixed choices: nlmeans patch 7, research 9 (15 is 2.5x slower for < 0.1 dB here); atadenoise
D = 4 (FFmpeg's default window of 9); bm3d block 8, step 4, group 8, range 9 (FFmpeg's group 1
does no collaborative filtering and its default sigma 1 does nothing); fftdnoiz block 32.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from fractions import Fraction

import av
import av.filter

from streamdn.errors import ConfigError
from streamdn.frames import Frame, from_av, to_av

from .classical import SIGMAS, Table, lookup
from .registry import FrameModel, ModelInfo, register

TUNING: dict[str, Table] = {
    "nlmeans": tuple(zip(SIGMAS, (1.5, 1.0, 0.8, 0.8, 1.0))),
    "atadenoise": tuple(zip(SIGMAS, (4.0, 4.0, 5.0, 5.0, 3.0))),
    "bm3d": tuple(zip(SIGMAS, (35.0, 50.0, 50.0, 70.0, 70.0))),
    "fftdnoiz": tuple(zip(SIGMAS, (1.5, 3.0, 6.0, 6.0, 4.5))),
    "hqdn3d": tuple(zip(SIGMAS, (0.4, 0.4, 0.4, 0.4, 0.4))),
}
_TIME_BASE = Fraction(1, 30)   # the graph's own clock; output frames keep the input's timing
Chain = list[tuple[str, str]]  # (filter name, "key=value:key=value" options), in order


def available(name: str) -> bool:
    """Whether this FFmpeg build has the filter `name`."""
    return name in av.filter.filters_available


def _opts(**kw: float | int | str) -> str:
    return ":".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items())


class FFmpegFilter(FrameModel):
    """One FFmpeg filter chain on the frames of one stream."""

    key = ""          # the FFmpeg filter and TUNING entry
    window = 0        # > 0: mirrored causal window of this many past frames (fresh graph per frame)

    def __init__(self, table: Table | None = None) -> None:
        """Args:
            table: (plane sigma, multiplier) rows replacing TUNING[key] (for tuning).

        Raises:
            ConfigError: this FFmpeg build has no such filter.
        """
        if not available(self.key):
            raise ConfigError(f"ffmpeg:{self.key}: this FFmpeg build has no '{self.key}' filter (PyAV's wheels "
                              f"ship an LGPL FFmpeg; {self.key} needs a GPL build). Choose another method, "
                              f"e.g. ffmpeg:fftdnoiz or tfilter.")
        self.table: Table = tuple(table) if table is not None else TUNING[self.key]
        self._graph: av.filter.Graph | None = None
        self._built_for: tuple[object, ...] = ()
        self._pts = 0
        self._past: deque[av.VideoFrame] = deque(maxlen=max(1, self.window))

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        """The filters for these per-plane sigmas (8-bit units)."""
        raise NotImplementedError

    def k(self, sigma: float) -> float:
        return lookup(self.table, sigma)

    # -- the three stages --------------------------------------------------------------------

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> tuple[av.VideoFrame, tuple[float, ...]]:
        return to_av(frame), sigmas

    def forward(self, packed: tuple[av.VideoFrame, tuple[float, float, float]]) -> av.VideoFrame:
        vf, sigmas = packed
        if max(sigmas) < 0.5:
            self._past.append(vf)
            return vf
        if self.window:
            return self._windowed(vf, sigmas)
        fmt = (vf.width, vf.height, vf.format.name)
        if self._graph is None or self._built_for[0] != fmt or self._drifted(sigmas):
            self._graph = _build(vf.width, vf.height, vf.format.name, self.chain(sigmas))
            self._built_for = (fmt, sigmas)
        return self._run(self._graph, [vf], 0)

    def unpack(self, result: av.VideoFrame, frame: Frame) -> Frame:
        out = from_av(result, frame.index, frame.bit_depth, frame.captured)
        return frame.with_planes(out.y, out.u, out.v)

    def reset(self) -> None:
        self._graph = None
        self._built_for = ()
        self._past.clear()

    def clone(self) -> FFmpegFilter:
        """The same filter and table with a graph and past of its own."""
        return type(self)(self.table)

    # -- helpers ------------------------------------------------------------------------------

    def _drifted(self, sigmas: tuple[float, float, float]) -> bool:
        built = self._built_for[1]
        return any(abs(s - b) > 0.1 * max(b, 0.5) for s, b in zip(sigmas, built))  # type: ignore[union-attr]

    def _run(self, graph: av.filter.Graph, frames: Sequence[av.VideoFrame], want: int | None,
             flush: bool = False) -> av.VideoFrame:
        """Pushes `frames` (own increasing pts) and returns the output whose pts is the index
        `want` within this call, or the first output when want is None."""
        first = self._pts
        for f in frames:
            f.pts = self._pts
            f.time_base = _TIME_BASE
            self._pts += 1
            graph.push(f)
        if flush:
            graph.push(None)
        target = first + (want or 0)
        while True:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError) as err:
                raise RuntimeError(f"ffmpeg:{self.key} returned no frame for its input "
                                   f"(filter chain {self._built_for}).") from err
            if out.pts is None or out.pts >= target:
                return out

    def _windowed(self, vf: av.VideoFrame, sigmas: tuple[float, float, float]) -> av.VideoFrame:
        past = [p for p in self._past if (p.width, p.height, p.format.name) == (vf.width, vf.height, vf.format.name)]
        seq = past + [vf] + past[::-1]
        graph = _build(vf.width, vf.height, vf.format.name, self.chain(sigmas))
        self._built_for = ((vf.width, vf.height, vf.format.name), sigmas)
        self._pts = 0
        out = self._run(graph, seq, len(past), flush=True)
        self._past.append(vf)
        return out


def _build(width: int, height: int, pix_fmt: str, chain: Chain) -> av.filter.Graph:
    graph = av.filter.Graph()
    node = graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=_TIME_BASE)
    for name, options in chain:
        nxt = graph.add(name, options)
        node.link_to(nxt)
        node = nxt
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


class NLMeans(FFmpegFilter):
    key = "nlmeans"
    info = ModelInfo("ffmpeg:nlmeans", "classical", "FFmpeg nlmeans (non-local means), s by noise level")

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        s = min(30.0, max(1.0, self.k(sigmas[0]) * sigmas[0]))  # nlmeans has one strength for all planes
        return [("nlmeans", _opts(s=s, p=7, r=9))]


class ATADenoise(FFmpegFilter):
    key = "atadenoise"
    window = 4
    info = ModelInfo("ffmpeg:atadenoise", "classical",
                     "FFmpeg atadenoise (adaptive temporal averaging), causal 9-frame mirrored window",
                     temporal=True)

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        th = {}
        for i, s in enumerate(sigmas):
            a = self.k(s) * s / 255.0
            th[f"{i}a"] = min(0.3, a)
            th[f"{i}b"] = min(5.0, 2.0 * a)
        return [("atadenoise", _opts(s=2 * self.window + 1, **th))]


class BM3D(FFmpegFilter):
    key = "bm3d"
    info = ModelInfo("ffmpeg:bm3d", "classical", "FFmpeg bm3d (basic estimate, group 8), sigma by noise level")

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        luma = self.k(sigmas[0]) * sigmas[0]
        chroma = self.k(max(sigmas[1:])) * max(sigmas[1:])
        common = dict(block=8, bstep=4, group=8, range=9)
        return [("bm3d", _opts(sigma=luma, planes=1, **common)),  # type: ignore[arg-type]
                ("bm3d", _opts(sigma=chroma, planes=6, **common))]  # type: ignore[arg-type]


class FFTDenoise(FFmpegFilter):
    key = "fftdnoiz"
    info = ModelInfo("ffmpeg:fftdnoiz", "classical",
                     "FFmpeg fftdnoiz (3D FFT Wiener, current + previous frame), sigma by noise level",
                     temporal=True)

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        luma = min(100.0, self.k(sigmas[0]) * sigmas[0])
        chroma = min(100.0, self.k(max(sigmas[1:])) * max(sigmas[1:]))
        return [("fftdnoiz", _opts(sigma=luma, prev=1, next=0, block=32, planes=1)),
                ("fftdnoiz", _opts(sigma=chroma, prev=1, next=0, block=32, planes=6))]


class HQDN3D(FFmpegFilter):
    key = "hqdn3d"
    info = ModelInfo("ffmpeg:hqdn3d", "classical",
                     "FFmpeg hqdn3d (spatio-temporal low-pass; only in GPL FFmpeg builds)", temporal=True)

    def chain(self, sigmas: tuple[float, float, float]) -> Chain:
        ls = self.k(sigmas[0]) * sigmas[0]
        cs = self.k(max(sigmas[1:])) * max(sigmas[1:])
        return [("hqdn3d", _opts(luma_spatial=ls, chroma_spatial=cs, luma_tmp=1.5 * ls, chroma_tmp=1.5 * cs))]


def _factory(cls: type[FFmpegFilter]):  # type: ignore[no-untyped-def]
    def make(*, device: str = "cpu", table: Table | None = None) -> FFmpegFilter:
        return cls(table)
    make.__name__ = cls.key
    return make


CLASSES: tuple[type[FFmpegFilter], ...] = (NLMeans, ATADenoise, BM3D, FFTDenoise, HQDN3D)
for _cls in CLASSES:
    register(_cls.info)(_factory(_cls))
