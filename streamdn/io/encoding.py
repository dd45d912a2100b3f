"""Encoding: the choice of container (from the extension), a codec that fits it, the output
pixel format (4:2:0 at the source's bit depth where the codec allows) and its options; and
VideoEncoder, which encodes Frames into an open PyAV output."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import av

from streamdn.config import EncodeConfig
from streamdn.errors import ConfigError
from streamdn.frames import Frame, FrameFormat, to_av
from streamdn.io.sources import VideoMeta

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm",
              ".avi": "avi", ".ts": "mpegts", ".nut": "nut"}
DEFAULT_CODEC = {"webm": "libvpx-vp9"}                # everything else: libx264
LOSSLESS_CODEC = {"matroska": "ffv1", "avi": "ffv1", "nut": "ffv1", "webm": "libvpx-vp9"}  # else x264 qp 0


@dataclass(frozen=True)
class EncoderPlan:
    """Resolved encoder settings.

    Attributes:
        container: FFmpeg muxer name.
        codec: FFmpeg encoder name.
        pix_fmt: encoder input pixel format.
        options: encoder private options (strings, as FFmpeg takes them).
    """

    container: str
    codec: str
    pix_fmt: str
    options: dict[str, str]


def container_for(path: str) -> str:
    """The muxer for an output path, from its extension.

    Raises:
        ConfigError: the extension is not one streamdn writes.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        raise ConfigError(f"output '{path}': unknown extension '{ext or '(none)'}'; use one of "
                          f"{', '.join(sorted(CONTAINERS))}.")
    return CONTAINERS[ext]


# Muxers with a complete list of the codecs they can hold; others (MPEG-TS, NUT) answer FFmpeg's
# query with only their default codecs although they take many more, so they are not checked.
CHECKED_CONTAINERS = ("mp4", "mov", "webm", "matroska", "avi")


def container_accepts(container: str, codec: str) -> bool:
    """Whether an FFmpeg muxer can store `codec` (an encoder or codec name); True for muxers
    that do not list their codecs."""
    if container not in CHECKED_CONTAINERS:
        return True
    with av.open(io.BytesIO(), mode="w", format=container) as probe:
        return codec in probe.supported_codecs


def _encoder(name: str) -> av.codec.Codec:
    try:
        codec = av.codec.Codec(name, "w")
    except Exception as err:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError
        raise ConfigError(f"codec '{name}' is not an encoder this FFmpeg build has; try libx264, "
                          f"libx265, libvpx-vp9, libsvtav1, ffv1 (see `ffmpeg -encoders`).") from err
    if codec.type != "video":
        raise ConfigError(f"codec '{name}' is a {codec.type} encoder; give a video encoder such as libx264.")
    return codec


def _pick_pix_fmt(codec: av.codec.Codec, bit_depth: int, requested: str) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if requested != "auto":
        if supported and requested not in supported:
            raise ConfigError(f"pix_fmt '{requested}' is not supported by {codec.name}; it takes "
                              f"{', '.join(supported)}.")
        return requested
    if not supported:
        return "yuv420p" if bit_depth == 8 else f"yuv420p{bit_depth}le"
    if bit_depth == 8:
        wanted = ["yuv420p"]
    else:  # the smallest depth that keeps every bit, else the deepest the codec has
        wanted = [f"yuv420p{d}le" for d in (10, 12, 16) if d >= bit_depth]
        wanted += [f"yuv420p{d}le" for d in (16, 12, 10) if d < bit_depth]
    for name in wanted + ["yuv420p", "yuvj420p", "nv12", "yuv444p", "gbrp", "bgr0"]:
        if name in supported:
            return name
    return supported[0]


# Encoders that reject 4:2:0 at odd widths or heights; at odd sizes they get 4:4:4 instead, so
# that the output keeps the input's exact size.
EVEN_ONLY_420 = ("libx264", "libx265", "libsvtav1", "libaom-av1", "h264_nvenc", "hevc_nvenc")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
NVENC_PRESETS = ("default", "slow", "medium", "fast", "hp", "hq", "bd", "ll", "llhq", "llhp", "lossless",
                 "losslesshp", "p1", "p2", "p3", "p4", "p5", "p6", "p7")
# The presets streamdn checks before encoding (a value FFmpeg would only reject when the first
# frame is encoded); SVT-AV1 takes a number instead.
PRESETS = {"libx264": X264_PRESETS, "libx265": X264_PRESETS, "h264_nvenc": NVENC_PRESETS,
           "hevc_nvenc": NVENC_PRESETS, "av1_nvenc": NVENC_PRESETS}
SVTAV1_PRESETS = range(-1, 14)
# CRF ranges of the encoders that take one (others: 0 to 63).
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (4, 63),
             "libsvtav1": (0, 63), "libaom-av1": (0, 63)}


def check_preset(codec: str, preset: str | None) -> None:
    """Checks an encoder speed preset for the encoders streamdn knows the presets of.

    Raises:
        ConfigError: a preset the encoder does not have; the message lists the valid ones.
    """
    if preset is None:
        return
    if codec in PRESETS and preset not in PRESETS[codec]:
        raise ConfigError(f"preset '{preset}' is not a {codec} preset; use one of {', '.join(PRESETS[codec])}.")
    if codec == "libsvtav1":
        try:
            ok = int(preset) in SVTAV1_PRESETS
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"preset '{preset}' is not a libsvtav1 preset; use a number from "
                              f"{SVTAV1_PRESETS[0]} (slowest) to {SVTAV1_PRESETS[-1]} (fastest).")


def check_crf(codec: str, crf: int | None) -> None:
    """Checks a CRF against the encoder's range.

    Raises:
        ConfigError: out of range; the message gives the range.
    """
    if crf is None:
        return
    low, high = CRF_RANGE.get(codec, (0, 63))
    if not low <= crf <= high:
        raise ConfigError(f"crf {crf} is out of range for {codec}: use {low} (best) to {high} (smallest file).")


def plan_encoder(path: str, cfg: EncodeConfig, bit_depth: int, size: tuple[int, int] = (2, 2)) -> EncoderPlan:
    """Chooses container, codec, pixel format and options for an output path.

    Args:
        path: output path (its extension picks the container).
        cfg: the [encode] config (codec "auto" follows the container).
        bit_depth: the source's bit depth (8, 10, 12, 16).
        size: (width, height) of the frames.

    Raises:
        ConfigError: unknown extension or codec, a codec the container cannot hold, or a preset
            or CRF the codec does not take.
    """
    container = container_for(path)
    if cfg.lossless:
        name = LOSSLESS_CODEC.get(container, "libx264") if cfg.codec == "auto" else cfg.codec
    else:
        name = DEFAULT_CODEC.get(container, "libx264") if cfg.codec == "auto" else cfg.codec
    codec = _encoder(name)
    family = codec.canonical_name if hasattr(codec, "canonical_name") else codec.name
    if not (container_accepts(container, family) or container_accepts(container, codec.name)):
        raise ConfigError(f"codec '{name}' ({family}) cannot be stored in a .{path.rsplit('.', 1)[-1]} file; "
                          f"use another extension (e.g. .mkv) or another codec.")
    check_preset(name, cfg.preset)
    if not cfg.lossless:
        check_crf(name, cfg.crf)
    options: dict[str, str] = {}
    if name in ("libx264", "libx265"):
        options["preset"] = cfg.preset or ("veryfast" if name == "libx264" else "fast")
        if cfg.lossless:
            options["qp" if name == "libx264" else "x265-params"] = "0" if name == "libx264" else "lossless=1"
        else:
            options["crf"] = str(cfg.crf if cfg.crf is not None else (18 if name == "libx264" else 22))
    elif name.startswith("libvpx"):
        options.update({"deadline": "good", "cpu-used": "4", "row-mt": "1", "b": "0"})
        if cfg.lossless and name == "libvpx-vp9":
            options["lossless"] = "1"
        else:
            options["crf"] = str(cfg.crf if cfg.crf is not None else 30)
    elif name == "libsvtav1":
        options["crf"] = str(cfg.crf if cfg.crf is not None else 30)
        options["preset"] = cfg.preset or "10"
    elif name == "ffv1":
        options.update({"level": "3", "slices": "4", "slicecrc": "1"})
    elif cfg.crf is not None:
        options["crf"] = str(cfg.crf)
    if cfg.preset is not None and "preset" not in options and name not in ("ffv1",):
        options["preset"] = cfg.preset
    pix_fmt = _pick_pix_fmt(codec, bit_depth, cfg.pix_fmt)
    odd = size[0] % 2 == 1 or size[1] % 2 == 1
    if odd and cfg.pix_fmt == "auto" and name in EVEN_ONLY_420 and pix_fmt.startswith("yuv420p"):
        full = pix_fmt.replace("yuv420p", "yuv444p")
        if full in [f.name for f in (codec.video_formats or [])]:
            pix_fmt = full
        else:
            raise ConfigError(f"{name} cannot encode {size[0]}x{size[1]} (odd) frames; use .mkv with "
                              f"lossless=True (FFV1) or codec='libvpx-vp9'.")
    return EncoderPlan(container, name, pix_fmt, options)


class VideoEncoder:
    """One video stream in an open PyAV output: adds the stream, encodes Frames with their pts
    (a non-increasing pts is nudged forward by one tick) and flushes. Used by the file and the
    network-stream sinks."""

    def __init__(self, output: av.container.OutputContainer, plan: EncoderPlan, fmt: FrameFormat,
                 meta: VideoMeta | None = None, threads: int = 0) -> None:
        self._out = output
        self.plan = plan
        self.time_base = fmt.time_base or (1 / fmt.fps if fmt.fps else None)
        self.last_pts: int | None = None
        self.written = 0
        rate = fmt.fps.limit_denominator(100000) if fmt.fps else None
        stream = output.add_stream(plan.codec, rate=rate)
        stream.width, stream.height = fmt.width, fmt.height
        stream.pix_fmt = plan.pix_fmt
        if self.time_base is not None:
            stream.codec_context.time_base = self.time_base
            stream.time_base = self.time_base
        if threads:
            stream.codec_context.thread_count = threads
        stream.options = dict(plan.options)
        if meta is not None:
            cc = stream.codec_context
            for key in ("color_primaries", "color_trc", "colorspace", "color_range"):
                value = getattr(meta, key)
                if value is not None:
                    setattr(cc, key, value)
            if meta.sample_aspect_ratio:
                cc.sample_aspect_ratio = meta.sample_aspect_ratio
            for k, v in meta.metadata.items():
                stream.metadata[k] = v
        self.stream = stream

    def encode(self, frame: Frame) -> None:
        """Encodes and muxes one frame. Raises av.error.FFmpegError from the encoder or muxer."""
        if self.written == 0 and frame.extra.get("rotation"):
            self.stream.set_display_rotation(float(frame.extra["rotation"]))  # type: ignore[arg-type]
        vf = to_av(frame)
        if vf.format.name != self.plan.pix_fmt:
            vf = vf.reformat(format=self.plan.pix_fmt)
        pts = frame.pts if frame.pts is not None else frame.index
        if frame.time_base is not None and self.time_base is not None and frame.time_base != self.time_base:
            pts = int(round(pts * frame.time_base / self.time_base))
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        vf.pts = pts
        if self.time_base is not None:
            vf.time_base = self.time_base
        for packet in self.stream.encode(vf):
            self._out.mux(packet)
        self.written += 1

    @property
    def end_seconds(self) -> float | None:
        """End time of the last frame written (its pts plus one tick), in seconds."""
        if self.last_pts is None or self.time_base is None:
            return None
        return float((self.last_pts + 1) * self.time_base)

    def flush(self) -> None:
        """Drains the encoder's delayed packets into the output."""
        for packet in self.stream.encode(None):
            self._out.mux(packet)
