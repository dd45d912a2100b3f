"""Sources yield Frames: a video file or URL through PyAV (threaded decode) and a synthetic
moving scene with chosen noise (the embedded default for the demo and the tests)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType

import av
import numpy as np

from streamdn.config import SourceConfig
from streamdn.errors import SourceError, warn
from streamdn.frames import Frame, FrameFormat, frame_from_bgr, from_av
from streamdn.data.noise import NoiseSpec, add_noise_uint8
from streamdn.data.synthetic import MovingScene, SceneConfig


@dataclass
class VideoMeta:
    """Stream properties a sink copies to its output (FFmpeg names; None where unknown)."""

    color_primaries: int | None = None
    color_trc: int | None = None
    colorspace: int | None = None
    color_range: int | None = None
    sample_aspect_ratio: Fraction | None = None
    metadata: dict[str, str] = field(default_factory=dict)


# File extensions taken for videos where a folder is searched (batch jobs, fine-tuning footage).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                              ".mpeg", ".wmv", ".flv", ".3gp", ".mxf", ".nut", ".dv", ".y4m", ".ogv"})


class Source:
    """Base: an iterator of Frames and a context manager with an idempotent close().

    Attributes:
        format: the FrameFormat of every frame it yields.
        live: True for sources that produce frames in real time (may drop), False for files.
        total_frames: expected number of frames, or None when unknown.
        path: the input path or URL, or None.
    """

    format: FrameFormat
    live: bool = False
    total_frames: int | None = None
    path: str | None = None
    meta: VideoMeta

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _is_url(path: str) -> bool:
    return "://" in path


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, for messages: "a FIFO", "a character device"..."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _has_alpha(pix_fmt: str) -> bool:
    try:
        return any(getattr(c, "is_alpha", False) for c in av.video.format.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return False


def _depth_of(pix_fmt: str) -> int:
    try:
        bits = max(c.bits for c in av.video.format.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return 8
    return 8 if bits <= 8 else min(16, bits)


class FileSource(Source):
    """Decodes the first video stream of a file or URL with PyAV.

    Frames keep the stream's pts and time base; sources deeper than 8 bits give 16-bit planes
    holding their native bit depth. A file source never drops a frame.
    """

    def __init__(self, path: str, *, decode_threads: int = 0, max_frames: int | None = None) -> None:
        """Args:
            path: file path or URL (anything FFmpeg opens).
            decode_threads: 0 lets FFmpeg decide.
            max_frames: stop after this many frames.

        Raises:
            SourceError: missing, unreadable, not a video, or corrupt beyond decoding.
        """
        self.path = path
        self.max_frames = max_frames
        self.warnings: list[str] = []
        self.decoded = 0
        if not _is_url(path):
            if not os.path.exists(path):
                raise SourceError(f"input '{path}' does not exist; check the path.")
            if os.path.isdir(path):
                raise SourceError(f"input '{path}' is a folder; give a video file (a folder of videos "
                                  f"is a batch job).")
            mode = os.stat(path).st_mode
            if not stat.S_ISREG(mode):
                raise SourceError(f"input '{path}' is not a regular file: it is {file_kind(mode)}; streamdn reads "
                                  f"video files or URLs here (a camera: streamdn live --camera N|DEVICE).")
            if not os.access(path, os.R_OK):
                raise SourceError(f"input '{path}' is not readable; check its permissions.")
            if os.path.getsize(path) == 0:
                raise SourceError(f"input '{path}' is empty (0 bytes); it is not a video.")
        try:
            self._container = av.open(path, mode="r", timeout=(10.0, 10.0) if _is_url(path) else None)
        except av.error.FileNotFoundError as err:
            raise SourceError(f"input '{path}' does not exist; check the path.") from err
        except av.error.PermissionError as err:
            raise SourceError(f"input '{path}' is not readable; check its permissions.") from err
        except (av.error.InvalidDataError, ValueError) as err:
            raise SourceError(f"input '{path}' is not a video FFmpeg can read, or it is corrupt or truncated ({err}).") from err
        except (OSError, av.error.FFmpegError) as err:
            raise SourceError(f"cannot open input '{path}': {err}.") from err
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"input '{path}' has no video stream; give a video file.")
        self.stream = self._container.streams.video[0]
        cc = self.stream.codec_context
        if cc is None:   # a codec this FFmpeg does not know (or a damaged codec tag)
            tag = _codec_tag(self.stream)
            self._container.close()
            raise SourceError(f"input '{path}': its video stream's codec{tag} is one this FFmpeg build cannot "
                              f"decode (unknown or damaged); convert it (e.g. to H.264) or check the file.")
        if cc.width <= 0 or cc.height <= 0 or cc.pix_fmt is None:
            self._container.close()
            raise SourceError(f"input '{path}': the video stream has no usable size or pixel format; "
                              f"the file is probably corrupt or truncated.")
        self.stream.thread_type = "AUTO"
        if decode_threads:
            self.stream.thread_count = decode_threads
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.format = FrameFormat(
            width=cc.width, height=cc.height, bit_depth=_depth_of(cc.pix_fmt),
            fps=Fraction(rate) if rate else None,
            time_base=Fraction(self.stream.time_base) if self.stream.time_base else None,
            source_pix_fmt=cc.pix_fmt,
        )
        self.meta = VideoMeta(
            color_primaries=_opt(cc, "color_primaries"), color_trc=_opt(cc, "color_trc"),
            colorspace=_opt(cc, "colorspace"), color_range=_opt(cc, "color_range"),
            sample_aspect_ratio=cc.sample_aspect_ratio,
            metadata={k: v for k, v in self.stream.metadata.items() if k.lower() in ("language", "title")},
        )
        frames = self.stream.frames or None
        if frames is None and self.format.fps:
            if self.stream.duration and self.stream.time_base:
                seconds = float(self.stream.duration * self.stream.time_base)
            else:  # e.g. Matroska states only the container's duration
                seconds = (self._container.duration or 0) / 1_000_000
            frames = int(round(seconds * float(self.format.fps))) or None
        self.expected_frames = frames
        self.total_frames = min(frames, max_frames) if frames and max_frames else (frames or max_frames)
        self.audio_streams = [s for s in self._container.streams if s.type in ("audio", "subtitle")]
        self._closed = False
        self._resized = False
        if _has_alpha(cc.pix_fmt):
            self._warn(f"input '{path}': its alpha channel ({cc.pix_fmt}) is dropped; streamdn denoises and "
                       f"writes the picture only.")

    def __iter__(self) -> Iterator[Frame]:
        yield from self._decode()
        if self.decoded == 0:
            raise SourceError(f"input '{self.path}': no frame could be decoded; the file is corrupt "
                              f"or not a supported video.")
        if self.max_frames is None and self.expected_frames and self.decoded < 0.98 * self.expected_frames - 1:
            self._warn(f"input '{self.path}': got {self.decoded} of the {self.expected_frames} frames its "
                       f"header announces; the file may be truncated.")

    def _decode(self) -> Iterator[Frame]:
        bad_packets = 0
        last_pts: int | None = None
        step = _pts_step(self.format)
        packets = self._container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                self._warn(f"input '{self.path}': reading stopped after {self.decoded} frames ({err}); "
                           f"the file is probably truncated.")
                break
            try:
                decoded = packet.decode()
            except (av.error.InvalidDataError, ValueError) as err:
                bad_packets += 1
                if bad_packets == 1:
                    self._warn(f"input '{self.path}': skipping undecodable data near frame {self.decoded} ({err}).")
                continue
            for vf in decoded:
                if (vf.width, vf.height) != (self.format.width, self.format.height):
                    vf = self._rescale(vf)
                if vf.pts is None:  # raw streams without timestamps: count frames
                    vf.pts = 0 if last_pts is None else last_pts + step
                last_pts = vf.pts
                frame = from_av(vf, self.decoded, self.format.bit_depth)
                self.decoded += 1
                yield frame
                if self.max_frames is not None and self.decoded >= self.max_frames:
                    return

    def _rescale(self, vf: av.VideoFrame) -> av.VideoFrame:
        """A frame whose size differs from the stream's (a resolution change mid-stream): scaled
        to the stream's size, so that the output keeps one size; said once."""
        if not self._resized:
            self._resized = True
            size = f"{self.format.width}x{self.format.height}"
            self._warn(f"input '{self.path}': frame {self.decoded} is {vf.width}x{vf.height}, not the stream's "
                       f"{size} (the size changes mid-stream); such frames are scaled to {size}.")
        out = vf.reformat(width=self.format.width, height=self.format.height)
        out.pts, out.time_base = vf.pts, vf.time_base
        return out

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        warn(message)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()


def _codec_tag(stream: object) -> str:
    """" ('zzzz')" from the stream's codec tag when it is printable, else ""."""
    try:
        tag = str(getattr(stream, "codec_tag", "") or "")
    except Exception:  # noqa: BLE001 - only for the message
        return ""
    return f" ('{tag}')" if tag and tag.isprintable() and tag.strip() else ""


def _opt(cc: object, name: str) -> int | None:
    value = getattr(cc, name, None)
    return int(value) if value is not None else None


def _pts_step(fmt: FrameFormat) -> int:
    if fmt.fps and fmt.time_base:
        return max(1, int(round(1 / (fmt.fps * fmt.time_base))))
    return 1


class SyntheticSource(Source):
    """A procedural moving scene (streamdn.data.synthetic) with noise from streamdn.data.noise.

    Each yielded frame carries its clean BGR picture in `frame.extra["clean"]` so that callers
    can measure PSNR. Deterministic from cfg.seed.
    """

    def __init__(self, cfg: SourceConfig, *, max_frames: int | None = None) -> None:
        """Args:
            cfg: scene size, length, frame rate, noise and seed. Pace it like a camera with
                streamdn.io.camera.PacedSource.
            max_frames: stop after this many frames.
        """
        self.cfg = cfg
        n = cfg.frames if max_frames is None else min(cfg.frames, max_frames)
        self.total_frames = n
        fps = Fraction(cfg.fps).limit_denominator(1001)
        self.format = FrameFormat(cfg.width, cfg.height, 8, fps, 1 / fps, "bgr24")
        self.meta = VideoMeta(color_range=1, colorspace=6, color_primaries=6, color_trc=6)  # BT.601 limited
        if cfg.noise == "salt_pepper":
            spec = NoiseSpec("salt_pepper", sigma=cfg.sigma)
        else:
            spec = NoiseSpec(cfg.noise, sigma=cfg.sigma)
        self.noise = spec
        self.scene = MovingScene(SceneConfig(cfg.width, cfg.height, seed=cfg.seed))

    def __iter__(self) -> Iterator[Frame]:
        rng = np.random.default_rng(self.cfg.seed + 1)
        for t in range(self.total_frames or 0):
            clean = self.scene.render(t)
            noisy = add_noise_uint8(clean, self.noise, rng)
            frame = frame_from_bgr(noisy, index=t, pts=t, time_base=self.format.time_base)
            frame.extra["clean"] = clean
            yield frame


def open_source(path: str | None, cfg: SourceConfig | None = None, *, decode_threads: int = 0,
                max_frames: int | None = None) -> Source:
    """A FileSource for `path`, or the configured source when path is None."""
    cfg = cfg or SourceConfig()
    if path is None and cfg.kind == "file":
        path = cfg.path
    if path is not None:
        return FileSource(path, decode_threads=decode_threads, max_frames=max_frames)
    if cfg.kind != "synthetic":
        raise SourceError(f"[source] kind '{cfg.kind}' needs a path; give an input file.")
    return SyntheticSource(cfg, max_frames=max_frames)
