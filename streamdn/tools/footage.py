"""Self-supervised training samples from a user's own noisy footage, with no clean reference
(the data behind `streamdn finetune`).

A causal recurrent denoiser's output at frame t has seen frames 0..t only, so frame t + 1,
brought onto frame t along the motion, is a second noisy picture of the same scene whose noise
the output has never seen: a Noise2Noise target. Minimising the squared difference to it
minimises, in expectation, the squared difference to the clean frame (plus a constant, the
target's noise variance), provided the noise of two frames is independent, whatever its
spatial structure (demosaicing, compression within a frame).

A window is `frames + 1` consecutive frames of one region of the picture: the network runs on
frames 0..frames-1, and step t is scored against frame t + 1 warped onto frame t. The motion is
estimated between the base model's outputs (a cleaner picture than the noisy frames) with the
motion networks' own flow (streamdn.models.motion.StateWarper: still blocks keep exactly zero
motion, the rest is Lanczos-warped), and a pixel whose warped neighbour does not match (an
occlusion, a failed match, the frame's edge) gets weight 0, as does one near black or white,
where clipped noise would teach a bias (unclipped).

Everything the network sees comes from the real inference path (streamdn.denoiser.Denoiser: the
blind noise estimate, the noise map, impulse handling), so the fine-tuned network is trained on
exactly the inputs it will get.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from streamdn.errors import ConfigError, SourceError
from streamdn.frames import BGR_TO_YUV, Frame


@dataclass(frozen=True)
class FootageConfig:
    """How samples are drawn from the footage.

    Attributes:
        frames: network steps per window (the window decodes one frame more, the last target).
        region: side of each window's region in packed pixels (half the frame's pixels; a
            multiple of 8); a smaller frame gives its whole (even-cropped) picture.
        windows: windows drawn in all, spread evenly over the footage in time (proportionally to
            each file's length, at least one per file that is long enough).
        held_out: share of each file's windows (its last ones in time) kept out of training and
            used to check the result.
        seed: where in the picture each window's region lies.
        margin: packed pixels of picture kept around the region while the motion is estimated
            (the flow near the region's edge sees past it).
    """

    frames: int = 8
    region: int = 192
    windows: int = 48
    held_out: float = 0.15
    seed: int = 0
    margin: int = 24

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ConfigError(f"frames={self.frames}: a window needs at least 2 steps.")
        if self.region < 16 or self.region % 8:
            raise ConfigError(f"region={self.region}: use a multiple of 8, at least 16 (packed pixels).")
        if self.windows < 2:
            raise ConfigError(f"windows={self.windows}: need at least 2 (one to train on, one to check).")
        if not 0.0 < self.held_out < 0.5:
            raise ConfigError(f"held_out={self.held_out}: use a share between 0 and 0.5.")


@dataclass
class Window:
    """One sample: `frames` network steps over a region of consecutive frames.

    Attributes:
        source: the file it comes from. start: its first frame's index there.
        noisy: (T, 6, R, R) float16 packed noisy frames (the network's input), [0, 1] units.
        sigma: (T, 3, R, R) float16 noise maps the inference path builds for them.
        target: (T, 6, R, R) float16: frame t + 1 warped onto frame t.
        weight: (T, 1, R, R) float16: 1 where the target matches, 0 where it cannot be trusted.
        held_out: kept for checking, never trained on.
    """

    source: str
    start: int
    noisy: np.ndarray
    sigma: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    held_out: bool = False

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.noisy, self.sigma, self.target, self.weight))


def plan_windows(lengths: Sequence[int], cfg: FootageConfig) -> list[list[int]]:
    """The first frame of every window of each file, spread evenly over its length.

    Args:
        lengths: frames in each file (the header's count; 0 when unknown or too short).

    Returns:
        per file, the sorted start frames (empty for a file shorter than one window).

    Raises:
        ConfigError: no file holds a whole window.
    """
    span = cfg.frames + 1
    usable = [max(0, n - span + 1) for n in lengths]
    total = sum(usable)
    if total == 0:
        raise ConfigError(f"the footage is too short: each file needs at least {span} frames "
                          f"(frames + 1) for a window.")
    # Windows never overlap: at most one per `span` frames.
    caps = [(u + span - 1) // span if u else 0 for u in usable]
    counts = [min(c, max(1, round(cfg.windows * u / total))) if u else 0 for u, c in zip(usable, caps)]
    plans = []
    for n, u, k in zip(lengths, usable, counts):
        if k == 0:
            plans.append([])
            continue
        step = (u - 1) / max(1, k - 1) if k > 1 else 0.0
        plans.append(sorted({int(round(i * step)) for i in range(k)}))
    return plans


def held_out_flags(starts: Sequence[int], share: float) -> list[bool]:
    """Which of one file's windows (in time order) are held out: its last ceil(share * n), but
    never all of them (a single window trains)."""
    n = len(starts)
    k = min(n - 1, math.ceil(share * n)) if n > 1 else 0
    return [i >= n - k for i in range(n)]


def _crop_box(height: int, width: int, cfg: FootageConfig, rng: np.random.Generator) -> tuple[int, int, int, int, int, int]:
    """(y0, x0, size_y, size_x, pad_y, pad_x) in packed pixels: the region with its margin
    (clipped to the frame) and where the region lies inside it."""
    h2, w2 = height // 2, width // 2
    ry, rx = min(cfg.region, h2 - h2 % 8), min(cfg.region, w2 - w2 % 8)
    y0 = int(rng.integers(0, h2 - ry + 1))
    x0 = int(rng.integers(0, w2 - rx + 1))
    my0, mx0 = max(0, y0 - cfg.margin), max(0, x0 - cfg.margin)
    my1, mx1 = min(h2, y0 + ry + cfg.margin), min(w2, x0 + rx + cfg.margin)
    return my0, mx0, my1 - my0, mx1 - mx0, y0 - my0, x0 - mx0  # region = [pad, pad + r)


def crop_frame(frame: Frame, y0: int, x0: int, h: int, w: int) -> Frame:
    """The part of a frame at packed (y0, x0) of packed size (h, w): frame pixels (2y0, 2x0),
    2h x 2w; chroma at half."""
    return Frame(y=np.ascontiguousarray(frame.y[2 * y0:2 * (y0 + h), 2 * x0:2 * (x0 + w)]),
                 u=np.ascontiguousarray(frame.u[y0:y0 + h, x0:x0 + w]),
                 v=np.ascontiguousarray(frame.v[y0:y0 + h, x0:x0 + w]),
                 bit_depth=frame.bit_depth, index=frame.index)


def _luma_mean(packed: np.ndarray) -> np.ndarray:
    return packed[..., :4].mean(axis=-1)


def match_weight(out: np.ndarray, warped_next: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """1 where the next frame, warped, shows what this frame shows; 0 elsewhere.

    Args:
        out: (H2, W2, 6) the base model's output at this frame.
        warped_next: (H2, W2, 6) its output at the next frame, warped onto this one.
        flow: (H2, W2, 2) the flow used (samples falling outside the frame get 0).

    The test is on the 5x5 mean of the signed luma difference, which averages the outputs'
    leftover noise away but not a real change: a pixel fails where it exceeds four times that
    mean's spread over the frame (a robust estimate: most of a frame matches) plus one level,
    and the failure is widened by a pixel so the edge of an occlusion goes too.
    """
    h, w = out.shape[:2]
    diff = cv2.blur((_luma_mean(out) - _luma_mean(warped_next)).astype(np.float32), (5, 5))
    spread = 1.4826 * float(np.median(np.abs(diff - np.median(diff))))
    ok = (np.abs(diff) <= 4.0 * spread + 1.0 / 255.0).astype(np.uint8)
    gx = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    gy = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    ok &= ((gx >= 0) & (gx <= w - 1) & (gy >= 0) & (gy <= h - 1)).astype(np.uint8)
    ok = cv2.erode(ok, np.ones((3, 3), np.uint8))
    return ok.astype(np.float32)


# BT.601 limited-range YUV (8-bit units) -> BGR, as streamdn.frames converts.
_YUV_TO_BGR = np.linalg.inv(np.vstack([BGR_TO_YUV, [0.0, 0.0, 0.0, 1.0]]))[:3].astype(np.float32)
CLIP_MARGIN = 3.0   # luma noise sigmas kept between every colour channel and black or white


def unclipped(out: np.ndarray, sigma_y: np.ndarray, margin: float = CLIP_MARGIN) -> np.ndarray:
    """1 where no colour channel of the picture is near black or white, 0 elsewhere.

    Near black and white a camera's noise is clipped, so the mean of noisy frames there is
    brighter (or darker) than the scene: a next-frame target would teach the network that
    bias (measured: 2.1 dB lost on dark pixels of Gaussian-noise footage). Those pixels are
    left out; what the network does there is kept by the rehearsal clips.

    Args:
        out: (H2, W2, 6) the base model's output (packed, [0, 1]).
        sigma_y: (H2, W2) the luma noise sigma, [0, 1] units.
    """
    yuv = np.dstack([out[..., :4].mean(axis=-1), out[..., 4], out[..., 5]]).astype(np.float32) * 255.0
    bgr = cv2.transform(yuv, _YUV_TO_BGR) / 255.0
    m = margin * sigma_y
    return ((bgr.min(axis=-1) > m) & (bgr.max(axis=-1) < 1.0 - m)).astype(np.float32)


def build_window(frames: Sequence[Frame], denoiser: object, box: tuple[int, int, int, int, int, int],
                 region: tuple[int, int], source: str, start: int) -> Window:
    """Runs the base model over the cropped frames and makes one Window.

    Args:
        frames: `frames + 1` consecutive decoded frames.
        denoiser: a streamdn.denoiser.Denoiser with the base network (its stream is reset here).
        box: _crop_box's result. region: the region's packed size (ry, rx).
    """
    import torch

    from streamdn.kernels.motion import warp_packed_lanczos
    from streamdn.models.motion import StateWarper

    my0, mx0, mh, mw, py, px = box
    ry, rx = region
    dn = denoiser
    dn.reset()  # type: ignore[attr-defined]
    cur, sig, outs = [], [], []
    with torch.inference_mode():
        for f in frames:
            crop = crop_frame(f, my0, mx0, mh, mw)
            packed = dn.pack(crop)  # type: ignore[attr-defined]
            out = dn.forward(packed)  # type: ignore[attr-defined]
            cur.append(packed.cur[0].permute(1, 2, 0).float().cpu().numpy().copy())
            sig.append(packed.sigma[0].permute(1, 2, 0).float().cpu().numpy().copy())
            outs.append(out[0].permute(1, 2, 0).float().cpu().numpy()[:mh, :mw].copy())
    warper = StateWarper()
    n = len(frames) - 1
    target = np.empty((n, ry, rx, 6), np.float32)
    weight = np.empty((n, ry, rx), np.float32)
    for t in range(n):
        flow = warper.estimate(outs[t], outs[t + 1])
        nxt = warp_packed_lanczos(np.ascontiguousarray(cur[t + 1]), flow, 3)
        onxt = warp_packed_lanczos(np.ascontiguousarray(outs[t + 1]), flow, 3)
        wgt = match_weight(outs[t], onxt, flow) * unclipped(outs[t], sig[t][..., 0])
        target[t] = nxt[py:py + ry, px:px + rx]
        weight[t] = wgt[py:py + ry, px:px + rx]
    sl = (slice(py, py + ry), slice(px, px + rx))
    noisy = np.stack([c[sl] for c in cur[:n]])
    sigma = np.stack([s[sl] for s in sig[:n]])
    dn.reset()  # type: ignore[attr-defined]
    return Window(source=source, start=start,
                  noisy=np.ascontiguousarray(noisy.transpose(0, 3, 1, 2), dtype=np.float16),
                  sigma=np.ascontiguousarray(sigma.transpose(0, 3, 1, 2), dtype=np.float16),
                  target=np.ascontiguousarray(target.transpose(0, 3, 1, 2), dtype=np.float16),
                  weight=np.ascontiguousarray(weight[:, None], dtype=np.float16))


def footage_lengths(paths: Sequence[str]) -> list[int]:
    """Frames in each video (the header's count, else counted by decoding).

    Raises:
        SourceError: a file that is missing or not a readable video (the message names it).
    """
    from streamdn.io.sources import FileSource

    lengths = []
    for p in paths:
        with FileSource(p) as src:
            n = src.expected_frames
            if not n:
                n = sum(1 for _ in src)
        lengths.append(int(n))
    return lengths


def gather_windows(paths: Sequence[str], denoiser: object, cfg: FootageConfig,
                   progress: Callable[[int, int], None] | None = None) -> list[Window]:
    """Decodes the footage once and returns its windows (training and held-out) in file order.

    Args:
        paths: video files (anything `streamdn denoise` reads).
        denoiser: a Denoiser with the base model (see build_window).
        progress: called with the number of windows built so far and the number planned.

    Raises:
        SourceError: a file that cannot be read; ConfigError: footage too short or too small.
    """
    from streamdn.io.sources import FileSource

    plans = plan_windows(footage_lengths(paths), cfg)
    rng = np.random.default_rng(cfg.seed)
    out: list[Window] = []
    span = cfg.frames + 1
    planned = sum(len(s) for s in plans)
    for path, starts in zip(paths, plans):
        if not starts:
            continue
        flags = held_out_flags(starts, cfg.held_out)
        with FileSource(path) as src:
            fmt = src.format
            if fmt.width < 32 or fmt.height < 32:
                raise ConfigError(f"'{path}' is {fmt.width}x{fmt.height}: fine-tuning needs frames of at "
                                  f"least 32x32.")
            frames_iter: Iterator[Frame] = iter(src)
            index = 0
            for start, held in zip(starts, flags):
                while index < start:
                    if next(frames_iter, None) is None:
                        break
                    index += 1
                chunk = []
                for f in frames_iter:
                    chunk.append(f)
                    index += 1
                    if len(chunk) == span:
                        break
                if len(chunk) < span:
                    break   # the file held fewer frames than its header said
                box = _crop_box(fmt.height, fmt.width, cfg, rng)
                region = (min(cfg.region, fmt.height // 2 - (fmt.height // 2) % 8),
                          min(cfg.region, fmt.width // 2 - (fmt.width // 2) % 8))
                w = build_window(chunk, denoiser, box, region, os.path.basename(path), start)
                w.held_out = held
                out.append(w)
                if progress is not None:
                    progress(len(out), planned)
    if not any(w.held_out for w in out) or all(w.held_out for w in out):
        raise ConfigError(f"the footage gave {len(out)} window(s) of {span} frames; fine-tuning needs at least "
                          f"two (one to train on, one to check the result): give longer or more videos.")
    return out


def check_paths(paths: Sequence[str]) -> list[str]:
    """The footage's paths, each an existing regular file (a folder adds the videos below it)."""
    from streamdn.io.sources import VIDEO_EXTENSIONS

    files: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs
                           if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS)
            if not found:
                raise SourceError(f"folder '{p}' holds no video files.")
            files.extend(found)
        elif not os.path.exists(p):
            raise SourceError(f"footage '{p}' does not exist; check the path.")
        else:
            files.append(p)
    return files
