"""Long files in pieces: find the keyframes by demuxing (no decoding), cut the file into segments
at keyframes, denoise one segment after a warm-up on the frames before it (decoded and denoised,
not written), and join the segment files by stream copy into one output with the original
timestamps and the input's audio copied once. Every file appears under its name only when complete."""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import av

from streamdn.atomic import temp_path_for
from streamdn.config import RunConfig
from streamdn.denoiser import Denoiser
from streamdn.io.encoding import container_for, plan_encoder
from streamdn.errors import SinkError, SourceError, warn
from streamdn.frames import AHEAD_ONLY, Frame
from streamdn.pipeline import Pipeline
from streamdn.io.sinks import FileSink, Sink, StreamCopier
from streamdn.io.sources import FileSource

PART_EXT = ".nut"   # NUT keeps every pts exactly, in any time base (Matroska rounds to 1 ms)


@dataclass(frozen=True)
class KeyframeIndex:
    """Where a file's frames and keyframes are, read from its packets without decoding.

    Attributes:
        time_base: seconds per tick of the video stream.
        frame_pts: presentation time of every frame, ticks, ascending.
        keyframes: (pts, dts) of every keyframe packet, ticks, ascending pts (dts may equal pts
            when the container stores none).
    """

    time_base: Fraction
    frame_pts: tuple[int, ...]
    keyframes: tuple[tuple[int, int], ...]

    @property
    def frames(self) -> int:
        return len(self.frame_pts)

    @property
    def seconds(self) -> float:
        """Time from the first frame to the last one, seconds."""
        return float((self.frame_pts[-1] - self.frame_pts[0]) * self.time_base) if self.frame_pts else 0.0


@dataclass(frozen=True)
class Segment:
    """One piece of a file, cut at a keyframe.

    Attributes:
        number: 0-based position in the file.
        start_pts: first frame written, ticks (a keyframe, or the file's first frame).
        end_pts: first frame of the next segment, ticks; None for the last segment.
        warmup_pts: first frame denoised (ticks): `warmup_frames` frames before start_pts.
        seek_dts: decoding starts at the keyframe with this dts (ticks); None = from the start.
        frames: frames this segment writes.
        warmup_frames: frames denoised before start_pts to converge the temporal state, not written.
    """

    number: int
    start_pts: int
    end_pts: int | None
    warmup_pts: int
    seek_dts: int | None
    frames: int
    warmup_frames: int


def read_keyframes(path: str) -> KeyframeIndex:
    """Demuxes the first video stream of `path` (no decoding) and lists its frames and keyframes.

    Raises:
        SourceError: the file cannot be opened, has no video, or its packets carry no timestamps
            (then it cannot be cut; denoise it whole).
    """
    try:
        container = av.open(path)
    except (OSError, av.error.FFmpegError, ValueError) as err:
        raise SourceError(f"input '{path}' is not a video FFmpeg can read ({err}).") from err
    with container:
        if not container.streams.video:
            raise SourceError(f"input '{path}' has no video stream; give a video file.")
        stream = container.streams.video[0]
        pts: list[int] = []
        keys: list[tuple[int, int]] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    raise SourceError(f"input '{path}': its video packets carry no timestamps, so it cannot be "
                                      f"cut into segments; denoise it whole.")
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append((packet.pts, packet.dts if packet.dts is not None else packet.pts))
        except av.error.FFmpegError as err:
            warn(f"input '{path}': reading stopped after {len(pts)} packets ({err}); the file may be truncated.")
        if not pts:
            raise SourceError(f"input '{path}': no video packet could be read; the file is corrupt.")
        return KeyframeIndex(Fraction(stream.time_base), tuple(sorted(pts)), tuple(sorted(keys)))


def plan_segments(index: KeyframeIndex, *, seconds: float | None = None, count: int | None = None,
                  warmup: int = 0) -> list[Segment]:
    """Cuts a file into about `count` segments (or segments of about `seconds`) at keyframes.

    Each cut is the keyframe nearest its ideal time, so segments are only as even as the keyframe
    interval allows; a file with fewer keyframes than segments gets fewer segments.

    Args:
        index: the file's frames and keyframes.
        seconds: target segment length, seconds (ignored when count is given).
        count: target number of segments.
        warmup: frames before each cut that are denoised, and not written, by that segment.
    """
    pts = index.frame_pts
    n = count if count is not None else max(1, math.ceil(index.seconds / seconds)) if seconds else 1
    first, last = pts[0], pts[-1]
    candidates = [k for k, _ in index.keyframes if first < k <= last]
    cuts: list[int] = []
    for k in range(1, max(1, n)):
        if not candidates:
            break
        ideal = first + (last - first) * k / n
        i = bisect.bisect_left(candidates, ideal)
        near = min(candidates[max(0, i - 1):i + 1], key=lambda c: abs(c - ideal))
        if not cuts or near > cuts[-1]:
            cuts.append(near)
    starts = [first, *cuts]
    segments = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else None
        pos = bisect.bisect_left(pts, start)
        stop = bisect.bisect_left(pts, end) if end is not None else len(pts)
        wpos = max(0, pos - warmup) if number > 0 else pos
        seek: int | None = None
        if number > 0:
            before = [key for key in index.keyframes if key[0] <= pts[wpos]]
            seek = before[-1][1] if before else None
        segments.append(Segment(number, start, end, pts[wpos], seek, stop - pos, pos - wpos))
    return segments


def part_path(parts_dir: str, number: int) -> str:
    """The file of segment `number` inside a file's parts folder."""
    return os.path.join(parts_dir, f"{number:05d}{PART_EXT}")


class SegmentSource(FileSource):
    """The frames of one segment: from its warm-up start to the frame before the next segment.

    Decoding starts at the keyframe at or before the warm-up start; frames before the warm-up
    are decoded (the codec needs them) but not yielded.
    """

    def __init__(self, path: str, segment: Segment, *, decode_threads: int = 0, ahead: int = 0) -> None:
        """Args:
            ahead: frames after the segment's end to read too, marked extra["ahead_only"] (a
                model that looks ahead merges them; streamdn.frames.with_lookahead never
                yields them).

        Raises:
            SourceError: the input cannot be opened, or seeking in it fails.
        """
        super().__init__(path, decode_threads=decode_threads)
        self.segment = segment
        self.ahead = ahead
        self.total_frames = segment.frames + segment.warmup_frames
        if segment.seek_dts is not None:
            try:
                self._container.seek(segment.seek_dts, stream=self.stream, backward=True, any_frame=False)
            except av.error.FFmpegError as err:
                raise SourceError(f"input '{path}': cannot seek to segment {segment.number} ({err}); "
                                  f"denoise it whole, without segments.") from err

    def __iter__(self) -> Iterator[Frame]:
        seg = self.segment
        first = True
        after = 0
        for frame in self._decode():
            pts = frame.pts if frame.pts is not None else 0
            if first and pts > seg.warmup_pts:
                raise SourceError(f"input '{self.path}': seeking for segment {seg.number} landed after its "
                                  f"start ({float(pts * frame.time_base):.3f} s); this file cannot be cut "
                                  f"precisely; denoise it whole, without segments.")
            first = False
            if pts < seg.warmup_pts:
                continue
            if seg.end_pts is not None and pts >= seg.end_pts:
                if after >= self.ahead:
                    return
                after += 1
                frame.extra[AHEAD_ONLY] = True
            yield frame


class _AfterWarmup(Sink):
    """Passes on the frames at or after `start_pts`; the warm-up frames before it are dropped."""

    def __init__(self, sink: FileSink, start_pts: int) -> None:
        self.sink = sink
        self.start_pts = start_pts

    def write(self, frame: Frame) -> None:
        if frame.pts is None or frame.pts >= self.start_pts:
            self.sink.write(frame)
            self.written += 1


def denoise_segment(input_path: str, segment: Segment, output_path: str, parts_dir: str, cfg: RunConfig,
                    denoiser: Denoiser, *, on_frame: Callable[[int], None] | None = None,
                    handle_signals: bool = False) -> int:
    """Denoises one segment of `input_path` into its part file in `parts_dir`.

    The denoiser is reset, runs over the warm-up frames (not written), then over the segment's
    own frames, which are encoded with their original timestamps, with the encoder that
    `output_path` will have, into a NUT file that appears only when complete.

    Args:
        input_path: the long input file.
        segment: which piece (from plan_segments).
        output_path: the final joined output (its extension picks the codec).
        parts_dir: folder of the part files (must exist).
        cfg: model, encoder and pipeline settings.
        denoiser: the worker's denoiser (its state is reset here).
        on_frame: called with 1 for each frame written (progress).
        handle_signals: passed to Pipeline.run (command-line programs set it so that Ctrl-C stops
            between two frames; by default the process's SIGINT handler is left alone).

    Returns:
        Frames written.

    Raises:
        SourceError, SinkError, ConfigError: with messages saying what to do.
    """
    target = part_path(parts_dir, segment.number)
    denoiser.reset()
    with SegmentSource(input_path, segment, decode_threads=cfg.pipeline.decode_threads,
                       ahead=denoiser.lookahead) as src:
        plan = plan_encoder(output_path, cfg.encode, src.format.bit_depth, (src.format.width, src.format.height))
        encode = replace(cfg.encode, codec=plan.codec, pix_fmt=plan.pix_fmt)
        sink = FileSink(target, src.format, encode, meta=src.meta, overwrite=True)
        writer = _AfterWarmup(sink, segment.start_pts)

        def count(_noisy: Frame, clean: Frame) -> None:
            if on_frame is not None and (clean.pts is None or clean.pts >= segment.start_pts):
                on_frame(1)

        pipe = Pipeline(src, [writer], denoiser=denoiser, queue_size=cfg.pipeline.queue_size, on_frame=count)
        with sink:
            pipe.run(handle_signals=handle_signals)
    if writer.written != segment.frames:
        warn(f"input '{input_path}': segment {segment.number} has {writer.written} frames where its packets "
             f"announced {segment.frames}.")
    return writer.written


def _input_rotation(path: str) -> float:
    """The display rotation of the input's video (degrees), read from its first frame."""
    with av.open(path) as c:
        for frame in c.decode(c.streams.video[0]):
            return float(getattr(frame, "rotation", 0) or 0)
    return 0.0


def join_segments(input_path: str, segments: list[Segment], parts_dir: str, output_path: str, *,
                  overwrite: bool = False) -> int:
    """Joins the segments' part files, packet for packet, into `output_path` and copies the
    input's audio once.

    Video packets get the input's timestamps back: a part's first packet (its first frame, a
    keyframe) is put at its segment's start, undoing any shift the part's muxer made to avoid
    negative decode times. Where a part stores no decode timestamp (NUT, for the first packets
    after B-frame reordering) it is extrapolated one frame step per packet before the first
    one stored.

    Args:
        input_path: the input the parts came from (audio, subtitles, rotation, time base).
        segments: the plan the parts were written from, in order.
        parts_dir: the folder holding the part files.
        output_path: final output; written to a hidden temporary file, renamed when complete.
        overwrite: replace an existing output.

    Returns:
        Video packets written (= frames).

    Raises:
        SinkError: a part is missing or unreadable, the parts' encoder settings differ, or the
            output cannot be written.
    """
    parts = [part_path(parts_dir, seg.number) for seg in segments]
    missing = [p for p in parts if not os.path.exists(p)]
    if missing:
        raise SinkError(f"cannot join '{output_path}': part {missing[0]} is missing; run the batch again.")
    tmp = temp_path_for(output_path)
    try:
        with av.open(input_path) as src:
            in_video = src.streams.video[0]
            time_base = Fraction(in_video.time_base)
            metadata = {k: v for k, v in in_video.metadata.items() if k.lower() in ("language", "title")}
        rotation = _input_rotation(input_path)
        with av.open(tmp, "w", format=container_for(output_path)) as out:
            with av.open(parts[0]) as first:
                template = first.streams.video[0]
                extradata = bytes(template.codec_context.extradata or b"")
                video = out.add_stream_from_template(template)
            video.time_base = time_base
            for k, v in metadata.items():
                video.metadata[k] = v
            if rotation:
                video.set_display_rotation(rotation)
            copier = StreamCopier(input_path, out)
            written = 0
            last_dts: Fraction | None = None
            for seg, path in zip(segments, parts):
                start = seg.start_pts * time_base
                n, last_dts = _copy_part(path, start, out, video, copier, extradata, last_dts)
                written += n
            copier.mux_until(None)
            copier.close()
        if os.path.exists(output_path) and not overwrite:
            raise SinkError(f"output '{output_path}' appeared while streamdn was writing; it was left untouched. "
                            f"Pass overwrite=True to replace it.")
        os.replace(tmp, output_path)
    except av.error.FFmpegError as err:
        raise SinkError(f"joining the segments of '{output_path}' failed: {err}.") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return written


def _copy_part(path: str, start: Fraction, out: av.container.OutputContainer, video: av.stream.Stream,
               copier: StreamCopier, extradata: bytes, last_dts: Fraction | None) -> tuple[int, Fraction | None]:
    """Muxes one part's video packets (and the audio up to them); returns (packets, last dts in s)."""
    with av.open(path) as part:
        stream = part.streams.video[0]
        if bytes(stream.codec_context.extradata or b"") != extradata:
            raise SinkError(f"part '{path}' was encoded with other settings than the first part; delete the "
                            f"parts folder '{os.path.dirname(path)}' and run the batch again.")
        rate = stream.average_rate or stream.guessed_rate
        step = max(1, round(1 / (rate * stream.time_base))) if rate else 1
        pending: list[av.Packet] = []   # packets before the first stored dts (a few frames)
        n = 0
        shift: int | None = None
        for packet in part.demux(stream):
            if packet.size == 0:
                continue
            if shift is None:
                shift = round((packet.pts * stream.time_base - start) / stream.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            if packet.dts is None and n == 0:
                pending.append(packet)
                continue
            if pending:
                base = packet.dts if packet.dts is not None else packet.pts
                for i, early in enumerate(pending):
                    early.dts = base - (len(pending) - i) * step
                    last_dts = _mux(early, out, video, copier, last_dts)
                    n += 1
                pending = []
            last_dts = _mux(packet, out, video, copier, last_dts)
            n += 1
        for early in pending:   # a part of very few frames
            early.dts = early.pts
            last_dts = _mux(early, out, video, copier, last_dts)
            n += 1
    return n, last_dts


def _mux(packet: av.Packet, out: av.container.OutputContainer, video: av.stream.Stream, copier: StreamCopier,
         last_dts: Fraction | None) -> Fraction:
    """Muxes one video packet after the audio that comes before it; decode times (seconds) are
    kept strictly increasing across parts. Returns the packet's decode time, seconds."""
    tb = Fraction(packet.time_base)
    dts = packet.dts if packet.dts is not None else packet.pts
    if last_dts is not None and dts * tb <= last_dts:
        dts = math.floor(last_dts / tb) + 1
    if packet.pts is not None and dts > packet.pts:
        raise SinkError(f"cannot join: a packet's decode time ({float(dts * tb):.4f} s) follows its "
                        f"presentation time ({float(packet.pts * tb):.4f} s); denoise this file whole, "
                        f"without segments.")
    packet.dts = dts
    copier.mux_until(float(dts * tb))
    packet.stream = video
    out.mux(packet)
    return dts * tb
