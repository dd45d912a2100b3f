"""Tiny generated videos for the tests: a moving gradient plus seeded Gaussian noise, written with
PyAV in any size, pixel format, codec and container, optionally VFR, with audio or rotation."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Spec:
    width: int = 64
    height: int = 48
    frames: int = 12
    fps: int = 24
    pix_fmt: str = "yuv420p"
    codec: str = "libx264"
    vfr: bool = False          # irregular timestamps
    audio: bool = False        # a 440 Hz AAC (or Opus for .webm) track
    rotation: int = 0          # display-matrix rotation in degrees
    sigma: float = 12.0        # noise in 8-bit units
    bt709_full: bool = False   # tag the stream BT.709, full range
    seed: int = 0


def vfr_pts(n: int) -> list[int]:
    """Irregular, strictly increasing pts in 1/1000 s: gaps of 33, 50 and 83 ms."""
    pts, t = [], 0
    for i in range(n):
        pts.append(t)
        t += (33, 50, 83)[i % 3]
    return pts


def clean_rgb(spec: Spec, i: int) -> np.ndarray:
    """(H, W, 3) uint8 frame i: a diagonal gradient that moves 2 px per frame, plus a square."""
    yy, xx = np.mgrid[0:spec.height, 0:spec.width]
    base = ((xx + yy + 2 * i) * 4 % 256).astype(np.uint8)
    img = np.stack([base, 255 - base, np.full_like(base, 128)], axis=-1)
    x0 = (3 * i) % max(1, spec.width - 8)
    img[4:12, x0:x0 + 8] = (250, 40, 40)
    return img


def make_video(path: Path, spec: Spec = Spec()) -> Path:
    """Writes the clip and returns its path."""
    rng = np.random.default_rng(spec.seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = spec.pix_fmt
        tb = Fraction(1, 1000) if spec.vfr else Fraction(1, spec.fps)
        stream.codec_context.time_base = tb
        if spec.codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "10"}
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        if spec.bt709_full:
            cc = stream.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 2
        audio = None
        if spec.audio:
            audio = out.add_stream("libopus" if str(path).endswith(".webm") else "aac", rate=48000)
            audio.layout = "mono"
        pts = vfr_pts(spec.frames) if spec.vfr else list(range(spec.frames))
        for i in range(spec.frames):
            rgb = clean_rgb(spec, i).astype(np.float32) + rng.normal(0, spec.sigma, (spec.height, spec.width, 3))
            vf = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            vf = vf.reformat(format=spec.pix_fmt)
            vf.pts = pts[i]
            vf.time_base = tb
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if audio is not None:
            duration = float(pts[-1] * tb) + float(1 / Fraction(spec.fps))
            n = int(48000 * duration)
            t = np.arange(n) / 48000.0
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            step = 960
            for k in range(0, n, step):
                chunk = wave[k:k + step]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = k
                af.time_base = Fraction(1, 48000)
                for packet in audio.encode(af):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def probe(path: Path) -> dict[str, object]:
    """Frame count, pts (seconds), size, pix_fmt, rotation, stream types of a file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        colour = (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range)
        times, rotation = [], 0
        for f in c.decode(v):
            times.append(float(f.pts * f.time_base))
            rotation = getattr(f, "rotation", 0)
        return {
            "frames": len(times), "times": times, "width": v.codec_context.width,
            "height": v.codec_context.height, "pix_fmt": v.codec_context.pix_fmt, "rotation": rotation,
            "types": [s.type for s in c.streams], "codec": v.codec_context.name, "colour": colour,
        }


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    """(pts, payload) of every audio packet, to check a packet-for-packet copy."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
