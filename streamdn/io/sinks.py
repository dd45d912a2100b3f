"""Sinks consume Frames: a video file through PyAV (written atomically, audio copied from the
input packet for packet), plus NullSink and ListSink for benchmarks and tests."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from types import TracebackType

import av

from streamdn.atomic import temp_path_for
from streamdn.config import EncodeConfig
from streamdn.io.encoding import EncoderPlan, VideoEncoder, container_accepts, plan_encoder
from streamdn.errors import SinkError, warn
from streamdn.frames import Frame, FrameFormat
from streamdn.io.sources import VideoMeta, file_kind
from streamdn.signals import protected


class Sink:
    """Base: write(frame) in stream order; a context manager with an idempotent close()."""

    encode_seconds: float = 0.0
    written: int = 0

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class NullSink(Sink):
    """Discards frames (benchmarks)."""

    def write(self, frame: Frame) -> None:
        self.written += 1


class ListSink(Sink):
    """Keeps every frame in memory (tests, small clips only)."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.written += 1


def partial_name(path: str) -> str:
    """Where an interrupted run leaves its playable output: clip.mp4 -> clip.partial.mp4."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.partial{ext}"


def is_devnull(path: str) -> bool:
    """Whether `path` is the null device (/dev/null, or a link to it): frames are encoded and
    thrown away, for a benchmark run."""
    try:
        return os.path.samefile(path, os.devnull) and not os.path.isfile(path)
    except OSError:
        return False


def not_regular_output(path: str) -> str | None:
    """Why `path` cannot be an output file: "a folder", "a character device", "a FIFO" ...; None
    when it is a regular file, does not exist, or is the null device."""
    if is_devnull(path):
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return "a folder" if stat.S_ISDIR(mode) else file_kind(mode)


def check_output_path(path: str, *, input_path: str | None = None, overwrite: bool = False) -> None:
    """Refuses outputs that would lose data or cannot be written. The null device is accepted
    (the frames are encoded and discarded).

    Raises:
        SinkError: output equals the input, exists without overwrite, is a folder or another
            file that is not a regular file (a device, a FIFO), or its folder is missing or
            unwritable.
    """
    if is_devnull(path):
        return
    if input_path is not None and "://" not in input_path and os.path.exists(input_path) and os.path.exists(path):
        if os.path.samefile(input_path, path):
            raise SinkError(f"output '{path}' is the input file; choose another output name "
                            f"(streamdn never overwrites its input).")
    elif input_path is not None and os.path.abspath(input_path) == os.path.abspath(path):
        raise SinkError(f"output '{path}' is the input file; choose another output name.")
    if os.path.isdir(path):
        raise SinkError(f"output '{path}' is a folder; give a file name such as {os.path.join(path, 'clean.mp4')}.")
    kind = not_regular_output(path)
    if kind is not None:
        raise SinkError(f"output '{path}' is not a regular file: it is {kind}; streamdn writes video files "
                        f"(or /dev/null to discard the frames). It was left untouched.")
    if os.path.exists(path) and not overwrite:
        raise SinkError(f"output '{path}' already exists; choose another name or pass overwrite=True "
                        f"to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SinkError(f"output folder '{folder}' does not exist; create it first.")
    if not os.access(folder, os.W_OK):
        raise SinkError(f"output folder '{folder}' is not writable; choose another output location.")


class StreamCopier:
    """Copies the input's audio and subtitle streams packet for packet, interleaved by time."""

    def __init__(self, input_path: str, output: av.container.OutputContainer) -> None:
        self._in = av.open(input_path)
        container = output.format.name.split(",")[0]
        self._map: dict[int, av.stream.Stream] = {}
        for s in self._in.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            name = s.codec_context.name if s.codec_context is not None else "?"
            if not container_accepts(container, name):
                warn(f"{s.type} stream #{s.index} ({name}) cannot be stored in this container and is "
                     f"left out; use .mkv to keep it.")
                continue
            self._map[s.index] = output.add_stream_from_template(s)
        self._output = output
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None
        self.copied = 0

    @property
    def active(self) -> bool:
        return bool(self._map)

    def mux_until(self, seconds: float | None) -> None:
        """Muxes the copied streams' packets up to `seconds` (all of them when None)."""
        if not self._map:
            return
        if self._packets is None:
            self._packets = self._in.demux([self._in.streams[i] for i in self._map])
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                packet = next(self._packets, None)
                if packet is None:
                    self._map = {}
                    return
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's flush packets carry no data
            t = float((packet.dts if packet.dts is not None else packet.pts) * packet.time_base)
            if seconds is not None and t > seconds:
                self._pending = packet
                return
            packet.stream = self._map[packet.stream.index]
            self._output.mux(packet)
            self.copied += 1

    def close(self) -> None:
        self._in.close()


class FileSink(Sink):
    """Encodes Frames into a file, atomically.

    Frames go to a hidden temporary file beside `path`; `close()` flushes the encoder, writes
    the trailer once, and renames the file to `path`. Leaving the `with` block on an exception
    deletes the temporary file, except on KeyboardInterrupt, where the flushed, playable output
    is kept as `partial_name(path)`.
    """

    def __init__(self, path: str, fmt: FrameFormat, cfg: EncodeConfig | None = None, *,
                 meta: VideoMeta | None = None, copy_streams_from: str | None = None,
                 trim_copied_streams: bool = False, overwrite: bool = False) -> None:
        """Args:
            path: final output path; its extension picks the container.
            fmt: the format of the frames that will be written.
            cfg: encoder settings.
            meta: colour properties etc. copied from the source.
            copy_streams_from: input file whose audio/subtitle streams are copied.
            trim_copied_streams: copy them only up to the end of the last video frame written
                (when only part of the input is denoised, e.g. pipeline.frames); otherwise all
                of them.
            overwrite: replace an existing `path` on success. Without it an existing `path` is
                refused here, before anything is created or encoded (and again in `close()`,
                should the file appear while encoding).

        Raises:
            ConfigError: bad codec or extension. SinkError: `path` exists without `overwrite`,
                is a folder, its folder is missing or unwritable, or the file cannot be created.
        """
        cfg = cfg or EncodeConfig()
        self.path = path
        self.devnull = is_devnull(path)
        # The null device has no extension: the frames go through the container the codec suits.
        planned = ("null.webm" if cfg.codec.startswith("libvpx") else "null.mkv") if self.devnull else path
        self.plan: EncoderPlan = plan_encoder(planned, cfg, fmt.bit_depth, (fmt.width, fmt.height))
        self.overwrite = overwrite
        self.trim_copied_streams = trim_copied_streams
        self.final_path: str | None = None
        self._closed = False
        check_output_path(path, input_path=copy_streams_from, overwrite=overwrite)
        if self.devnull:
            self.tmp_path = path   # written straight to it: no temporary file, no rename
        else:
            try:
                self.tmp_path = temp_path_for(path)
            except OSError as err:
                raise SinkError(f"cannot create a temporary file beside '{path}': {err.strerror or err}; "
                                f"check the folder's permissions and free space.") from err
        try:
            self._out = av.open(self.tmp_path, mode="w", format=self.plan.container)
            self._video = VideoEncoder(self._out, self.plan, fmt, meta, cfg.threads)
            self._copier = StreamCopier(copy_streams_from, self._out) if copy_streams_from else None
        except Exception as err:
            self._discard()
            raise SinkError(f"cannot create output '{path}' with {self.plan.codec}: {err}.") from err
        except BaseException:
            self._discard()
            raise

    def write(self, frame: Frame) -> None:
        """Encodes one frame, then copies the audio up to its time."""
        start = time.perf_counter()
        try:
            self._video.encode(frame)
            if self._copier is not None:
                self._copier.mux_until(self._video.end_seconds)
        except av.error.FFmpegError as err:
            raise SinkError(f"encoding '{self.path}' failed at frame {frame.index}: {err}.") from err
        self.written += 1
        self.encode_seconds += time.perf_counter() - start

    def _finish_container(self) -> None:
        """Flushes the encoder, copies the remaining audio and writes the trailer, exactly once."""
        try:
            self._video.flush()
            if self._copier is not None:
                self._copier.mux_until(self._video.end_seconds if self.trim_copied_streams else None)
        finally:
            if self._copier is not None:
                self._copier.close()
            self._out.close()

    def close(self) -> None:
        """Finishes the file and moves it to its final name. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish_container()
        except BaseException:   # an encoder error, or a second stop signal during the flush
            self._discard()
            raise
        if self.devnull:
            self.final_path = self.path
            return
        if self.written == 0:
            self._discard()
            raise SinkError(f"no frame was written, so '{self.path}' was not created.")
        with protected():
            if os.path.exists(self.path) and not self.overwrite:
                self._discard()
                raise SinkError(f"output '{self.path}' appeared while streamdn was writing; it was left "
                                f"untouched. Choose another name or pass overwrite=True to replace it.")
            os.replace(self.tmp_path, self.path)
            self.final_path = self.path

    def keep_partial(self) -> str | None:
        """After an interruption: finish what was written and keep it as clip.partial.ext.

        Returns the partial file's path, or None when nothing playable was written (or the
        output is the null device). A second stop signal during the flush discards the file and
        propagates.
        """
        if self._closed:
            return self.final_path
        self._closed = True
        try:
            self._finish_container()
        except Exception:
            self._discard()
            return None
        except BaseException:
            self._discard()
            raise
        if self.written == 0 or self.devnull:
            self._discard()
            return None
        target = partial_name(self.path)
        with protected():
            os.replace(self.tmp_path, target)
            self.final_path = target
        return target

    def _discard(self) -> None:
        with protected():   # a stop signal must not leave the temporary file behind
            self._closed = True
            out = getattr(self, "_out", None)
            if out is not None:
                try:
                    out.close()
                except Exception:  # noqa: BLE001 - best effort while cleaning up after another error
                    pass
            if not self.devnull and os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.close()
        elif issubclass(et, KeyboardInterrupt):
            self.keep_partial()
        else:
            self._discard()


STREAM_CONTAINERS = {"udp": "mpegts", "srt": "mpegts", "tcp": "mpegts", "rtp": "rtp_mpegts",
                     "rtsp": "rtsp", "rtmp": "flv", "rtmps": "flv"}


class StreamSink(Sink):
    """Encodes Frames to a network stream through PyAV/FFmpeg: MPEG-TS over UDP, SRT or TCP,
    RTSP push, or RTMP (FLV), with low-latency x264 settings (zerolatency, no B-frames, a
    keyframe every 2 s so late joiners start quickly)."""

    def __init__(self, url: str, fmt: FrameFormat, cfg: EncodeConfig | None = None) -> None:
        """Raises:
            ConfigError: unknown URL scheme or codec. SinkError: the stream cannot be opened.
        """
        from streamdn.errors import ConfigError

        cfg = cfg or EncodeConfig()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in STREAM_CONTAINERS:
            raise ConfigError(f"stream url '{url}': use a udp://, srt://, tcp://, rtp://, rtsp:// or rtmp:// URL.")
        self.url = url
        container = STREAM_CONTAINERS[scheme]
        codec = "libx264" if cfg.codec == "auto" else cfg.codec
        plan = plan_encoder("stream.mp4", EncodeConfig(codec=codec, crf=cfg.crf, preset=cfg.preset or "ultrafast",
                                                       pix_fmt=cfg.pix_fmt), 8, (fmt.width, fmt.height))
        options = dict(plan.options)
        if codec == "libx264":
            gop = str(int(round(2 * float(fmt.fps or 30))))
            options.update({"tune": "zerolatency", "bf": "0", "g": gop})
        self.plan = EncoderPlan(container, plan.codec, plan.pix_fmt, options)
        self._closed = False
        try:
            self._out = av.open(url, mode="w", format=container,
                                options={"rtsp_transport": "tcp"} if scheme == "rtsp" else {})
            self._video = VideoEncoder(self._out, self.plan, fmt, threads=cfg.threads)
        except Exception as err:
            raise SinkError(f"cannot open the stream '{url}': {err}.") from err

    def write(self, frame: Frame) -> None:
        start = time.perf_counter()
        try:
            self._video.encode(frame)
        except av.error.FFmpegError as err:
            raise SinkError(f"streaming to '{self.url}' failed at frame {frame.index}: {err}.") from err
        self.written += 1
        self.encode_seconds += time.perf_counter() - start

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._video.flush()
        finally:
            self._out.close()


class VirtualCameraSink(Sink):
    """Sends frames to a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS on macOS and
    Windows, Unity Capture on Windows) so that video-call programs see the clean picture."""

    def __init__(self, fmt: FrameFormat, device: str | None = None) -> None:
        """Raises:
            SinkError: pyvirtualcam is not installed or no virtual camera device exists.
        """
        try:
            import pyvirtualcam
        except ImportError as err:
            raise SinkError("a virtual camera needs pyvirtualcam: pip install 'streamdn[live]'.") from err
        try:
            self._cam = pyvirtualcam.Camera(fmt.width, fmt.height, float(fmt.fps or 30), device=device,
                                            fmt=pyvirtualcam.PixelFormat.BGR)
        except Exception as err:  # pyvirtualcam raises RuntimeError with the backends' reasons
            raise SinkError(f"no virtual camera is available ({err}). On Linux: sudo modprobe v4l2loopback "
                            f"exclusive_caps=1 card_label=streamdn; on macOS/Windows install OBS and start its "
                            f"virtual camera once.") from err
        self.device = self._cam.device
        self._closed = False

    def write(self, frame: Frame) -> None:
        start = time.perf_counter()
        self._cam.send(frame.to_bgr())
        self.written += 1
        self.encode_seconds += time.perf_counter() - start

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cam.close()
