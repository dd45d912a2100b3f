"""Merge a burst of hand-held photographs of one scene into one picture.

With a still-image network (`photo`, the default where it is installed) the shots are aligned
with the reference as a whole (below), then averaged in full-resolution RGB where they match it
and the network cleans that mean: streamdn.jobs.merge_rgb. What follows is the merge for a
video network.

Two stages align the shots. First each shot is brought onto the reference as a whole: one
homography (the camera's shake: shift, rotation, perspective) fitted to the optical flow
between scaled-down lumas, the shot resampled along it (Aligner). Then the shots go through the
Denoiser's temporal model as one short stream: a motion model (`fast_mc` and its kin) warps the
state it carries onto each new shot along its own flow, which follows what the homography
leaves (parallax, moving subjects), and keeps averaging wherever the shots match. Without the
first stage the model's flow has to follow the whole shake between two shots, and the merge
gains 1.1-1.6 dB less (scripts/burst_eval.py: 8 shots, up to 3 px and 1 degree of shake).
Beside the model, the plain mean of the shots on the reference's grid (ReferenceMean: each shot
warped once along its own flow to the reference, kept where it matches) is blended into the
result: the model's own long average needs exactly zero flow, which a sub-pixel residual of the
alignment rarely leaves (measured: -0.1 to +0.7 dB over the model alone, coffee in low light +2.64
-> +3.02-3.14 dB over the single shot).

The result is aligned to the LAST shot fed, so the reference (the first shot given, or the one
asked for) goes last, and the others before it in the order they were taken, walking towards
the reference: shots taken before it from the earliest on, then those after it from the latest
back (hand-held shots drift, so neighbours in time are the nearest in position). Once the
shots are aligned the order matters little: nearest-last and nearest-first by true
displacement were measured within 0.15 dB of it, neither better throughout.

Everything else is the single picture's path (streamdn.jobs.still): 16-bit YUV 4:2:0 whatever
the files' depth, the noise level estimated on each whole shot (smoothed over the burst as
over a video's frames), impulse removal on each whole shot, and the reference's metadata, ICC
profile, orientation and bit depth written back by streamdn.io.stills.write_still.

Large pictures are cut into the same tiles as a single picture, each tile with its own
recursion: the shots are read one at a time and each goes through every tile's model before
the next is read, so memory holds the reference, one other shot and the carried state of
every tile (about 11 bytes per pixel), plus the mean's sums (about 16 bytes per pixel),
however many shots there are. A tile's flow is computed
on the tile with its context, 64 pixels each side (a single picture's is 32): after the global
alignment what moves is little, and content that enters a tile from outside its context only
restarts the average there. Measured, 160- and 256-pixel tiles change the result by 0.0-0.13 dB.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from streamdn.denoiser import Denoiser, remove_frame_impulses
from streamdn.errors import ConfigError, SourceError, warn
from streamdn.frames import Frame
from streamdn.io.stills import STILL_FORMATS, Still, is_still, output_format, read_still, write_still
from streamdn.jobs.merge_rgb import merge_pictures
from streamdn.jobs.still import (TILE, check_still_paths, crop_frame, frame_to_rgb, rgb_to_frame, still_model,
                                 tile_boxes)
from streamdn.kernels import match_add, unpack_yuv420
from streamdn.kernels.motion import warp_packed_lanczos
from streamdn.models import FrameModel
from streamdn.models.merge import Aligner
from streamdn.models.motion import FlowEstimator, packed_luma_u8

OVERLAP = 64   # luma pixels of context on each side of a tile (the motion between shots must fit)
# The long average of a motion network (LongAverage) blends in the plain mean of the aligned
# shots from the first shots on, not after the 5-20 frames a video waits for: a burst is short
# and taken to be averaged. Measured alone, before ReferenceMean below and against the video's
# 10-30 frames then (`python scripts/burst_eval.py --seeds 0,1`, 8 shots): gain over the single
# shot +3.54-3.63 ->
# +4.34-4.36 dB on chelsea and +3.11-3.19 -> +3.41-3.58 on coffee with Gaussian sigma 20; low
# light (Poisson-Gaussian) unchanged.
BURST_RAMP = (1.0, 4.0)


@dataclass
class BurstResult:
    """What merge_burst did.

    Attributes:
        output: the path written.
        shots: how many shots were merged.
        reference: the reference shot (the result is aligned to it and keeps its metadata).
        width, height: the picture's size in pixels.
        bit_depth: bits per channel written (8 or 16).
        model: the model that merged them.
        sigmas: the Y, U, V noise sigmas used on the reference (8-bit units).
        seconds: wall time of the whole job (read, merge, write).
        tiles: how many tiles each shot was cut into.
        order: the shots in the order they were fed (the reference last).
    """

    output: str
    shots: int
    reference: str
    width: int
    height: int
    bit_depth: int
    model: str
    sigmas: tuple[float, float, float]
    seconds: float
    tiles: int = 1
    order: list[str] = field(default_factory=list)


def burst_model() -> str:
    """The model bursts use by default: the still-image network `photo` where it is installed
    (streamdn.jobs.merge_rgb: the shots' mean in full-resolution RGB, then the network; 0.8-2.3
    dB ahead of fast_mc's merge on scripts/burst_eval.py's bursts), else the registered network
    with a motion-compensated recursion and the best validation PSNR (`fast_mc` today), else the
    default model."""
    if still_model() != "default":
        return still_model()
    return motion_model()


def motion_model() -> str:
    """The registered network with a motion-compensated recursion and the best validation PSNR
    (`fast_mc` today); the default model when none is installed."""
    from streamdn.models import list_models
    from streamdn.models.fast import PRESETS

    motion = [i for i in list_models() if i.kind == "network" and i.name in PRESETS and PRESETS[i.name].motion]
    if not motion:
        return "default"
    return max(motion, key=lambda i: -math.inf if i.val_psnr is None else i.val_psnr).name


def burst_files(folder: str | os.PathLike[str], exclude: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """The pictures (and camera raw files) directly inside `folder`, sorted by name with the
    numbers in names compared as numbers (shot2 before shot10); hidden files and `exclude`d
    paths (the output) are left out.

    Raises:
        SourceError: `folder` is not a folder, or holds no picture.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SourceError(f"'{root}' is not a folder; give a folder of shots, or the shots themselves.")
    skip = [Path(p) for p in exclude if Path(p).exists()]
    found = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and is_still(p)
             and not any(os.path.samefile(p, s) for s in skip)]
    if not found:
        raise SourceError(f"'{root}' holds no picture streamdn reads (JPEG, PNG, TIFF, WebP, camera raw).")
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def feed_order(count: int, reference: int) -> list[int]:
    """The order the shots go through the recursion, as indices of the shots given (in the
    order taken): those before the reference from the earliest on, those after it from the
    latest back, the reference last (the result is aligned to the last shot fed)."""
    if not 0 <= reference < count:
        raise ConfigError(f"reference {reference}: the burst has shots 0..{count - 1}.")
    return [*range(reference), *range(count - 1, reference, -1), reference]


def merge_burst(shots: Sequence[str | os.PathLike[str]], output_path: str | os.PathLike[str], *,
                reference: int = 0, model: str | None = None, strength: str | float | None = "auto",
                device: str = "auto", impulses: str = "auto", denoiser: Denoiser | None = None,
                overwrite: bool = False, quality: int = 95, tile: int | None = None,
                overlap: int = OVERLAP) -> BurstResult:
    """Aligns and merges hand-held shots of one scene into `output_path` (its extension picks
    the format: .jpg, .png, .tif, .webp), aligned to the reference shot and with its metadata,
    ICC profile, orientation and bit depth. Written atomically; no input is ever touched.

    Args:
        shots: two or more pictures or camera raw files of the same size, in the order taken.
        output_path: where to write; must be none of the shots.
        reference: index in `shots` of the shot the result is aligned to (0: the first).
        model: the model (a still-image network or a motion model merges; None: burst_model());
            strength, device and impulses as for streamdn.Denoiser.
        denoiser: a Denoiser to use instead of making one (model, strength, device and impulses
            are then ignored; its stream state is reset).
        overwrite: replace an existing output file.
        quality: JPEG and WebP quality (1..100).
        tile, overlap: the tiles large pictures are cut into and their context each side, in
            pixels (tile at least 128; None: the model's own tile size, else 2048).

    Returns:
        What was written.

    Raises:
        ConfigError: fewer than two shots, a shot given twice, a bad reference or option, shots
            of different sizes or orientations.
        SourceError: a missing, damaged or unsupported shot.
        SinkError: the output exists (and not overwrite), is one of the shots, or cannot be written.
    """
    start = time.perf_counter()
    paths, dst = [Path(p) for p in shots], Path(output_path)
    if len(paths) < 2:
        raise ConfigError(f"a burst needs two or more shots, got {len(paths)}; denoise a single picture "
                          f"without --burst.")
    if not 0 <= reference < len(paths):
        raise ConfigError(f"reference shot {reference + 1}: the burst has shots 1..{len(paths)}.")
    if tile is not None and tile < 128:
        raise ConfigError(f"tile {tile}: use at least 128 pixels (2048 is the default).")
    for p in paths:
        check_still_paths(p, dst, overwrite)
    _refuse_repeats(paths)
    ref_path = paths[reference]
    sizes = {p: _probe_size(p) for p in paths}
    _check_sizes(sizes, ref_path, sizes[ref_path])
    ref = read_still(ref_path)   # first: its size, orientation and metadata are the result's
    _check_sizes(sizes, ref_path, (ref.width, ref.height))
    order = feed_order(len(paths), reference)

    aligner = Aligner(ref.rgb)

    def aligned(path: Path) -> np.ndarray:
        """A shot read, checked and aligned with the reference (only its pixels outlive the call)."""
        still = read_still(path)
        _check_same(path, still, ref_path, ref)
        hom = aligner.homography(still.rgb)
        if hom is None:
            warn(f"'{path}' could not be aligned with the reference as a whole (too little detail, or another "
                 f"scene); only its own motion estimate aligns it.")
        return aligner.warp(still.rgb, hom)

    own = denoiser is None
    dn = Denoiser(model or burst_model(), strength=strength, device=device, impulses=impulses) if own else denoiser
    try:
        if hasattr(dn.model, "pack_picture"):
            # A still-image network: the mean of the shots, then the network over it.
            others = (aligned(paths[i]) for i in order if i != reference)
            rgb, sigmas, tiles = merge_pictures(dn, ref.rgb, others, tile=tile, overlap=overlap)
        else:
            if not dn.model.info.temporal:
                warn(f"model {dn.name} keeps no past: the result is the reference shot denoised alone; use "
                     f"{burst_model()} or a temporal model (e.g. {motion_model()}) to merge the shots.")
            ref_frame = rgb_to_frame(ref.rgb)
            frames = (rgb_to_frame(aligned(paths[i])) if i != reference else ref_frame for i in order)
            merged, sigmas, tiles = merge_frames(dn, frames, tile=tile or TILE, overlap=overlap,
                                                 reference=ref_frame)
            rgb = frame_to_rgb(merged, ref.rgb.dtype)
        name = dn.name
    finally:
        if own:
            dn.close()
    out = ref.with_rgb(rgb)
    write_still(out, dst, quality=quality)
    depth = 16 if out.bit_depth == 16 and output_format(dst) in ("PNG", "TIFF") else 8
    return BurstResult(str(dst), len(paths), str(ref_path), ref.width, ref.height, depth, name, sigmas,
                       time.perf_counter() - start, tiles, [str(paths[i]) for i in order])


# -- the pixels ----------------------------------------------------------------------------------


def merge_frames(dn: Denoiser, frames: Iterable[Frame], *, tile: int = TILE, overlap: int = OVERLAP,
                 reference: Frame | None = None) -> tuple[Frame, tuple[float, float, float], int]:
    """Feeds 16-bit YUV frames of one size through `dn`'s model as one stream, tile by tile,
    and returns the output for the LAST frame (aligned to it), the sigmas used on it (8-bit
    units) and the number of tiles.

    Each tile has its own recursion (a clone of the model, weights shared) over the tile plus
    `overlap` pixels of context each side; the context is thrown away. Frames are taken one at
    a time from `frames`, so it may read them lazily. The noise sigmas and impulse removal are
    those of the stream (Denoiser.noise_sigmas on each whole frame); scene-cut detection is
    off: the shots are of one scene, and the model's gate handles what does not match.

    With `reference` (the frame that is fed last, the same object) and a motion network, the
    plain mean of the shots on the reference's grid (ReferenceMean) is blended into the result.

    Raises:
        ConfigError: no frame, frames of different sizes, or a temporal model that cannot be
            cloned and a picture that needs more than one tile.
    """
    dn.reset()
    # The tiles' models change the Denoiser's own settings for the burst (scene cuts off, the
    # long average from the first shots): put them back afterwards.
    saved = {k: getattr(dn.model, k) for k in ("cut_threshold", "long_average") if hasattr(dn.model, k)}
    try:
        return _merge(dn, frames, tile, overlap, reference)
    finally:
        for k, v in saved.items():
            setattr(dn.model, k, v)


def _merge(dn: Denoiser, frames: Iterable[Frame], tile: int, overlap: int,
           reference: Frame | None) -> tuple[Frame, tuple[float, float, float], int]:
    mean = (ReferenceMean(dn, reference) if reference is not None and dn.enabled
            and getattr(dn.model, "long_average", None) is not None else None)
    tile -= tile % 2
    overlap += overlap % 2
    boxes: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = []
    models: list[FrameModel] = []
    out: Frame | None = None
    sigmas = (0.0, 0.0, 0.0)
    for frame in frames:
        if out is None:
            boxes = list(tile_boxes(frame.height, frame.width, tile, overlap))
            models = _tile_models(dn, len(boxes))
            out = frame.with_planes(np.empty_like(frame.y), np.empty_like(frame.u), np.empty_like(frame.v))
        elif (frame.height, frame.width) != (out.height, out.width):
            raise ConfigError(f"the shots differ in size ({out.width}x{out.height} and "
                              f"{frame.width}x{frame.height}); a burst needs shots of one size.")
        if not dn.enabled:
            out = frame
            continue
        if dn.impulses != "off" and getattr(dn.model, "impulse_filter", False):
            frame = remove_frame_impulses(frame, always=dn.impulses == "on")
        sigmas = dn.noise_sigmas(frame)
        if mean is not None and frame is not reference:
            mean.add(frame, sigmas)
        # Every frame's result is written over the last one's: what stays is the last frame's.
        for (keep, ctx), model in zip(boxes, models):
            part = crop_frame(frame, ctx)
            _paste(out, model.unpack(model.forward(model.pack(part, sigmas)), part), keep, ctx)
    if out is None:
        raise ConfigError("merge_frames got no frame; give at least one.")
    if mean is not None and dn.enabled:
        mean.blend_into(out)
    for model in models:
        model.reset()
    dn.reset()
    return out, (sigmas if dn.enabled else (0.0, 0.0, 0.0)), len(boxes)


class ReferenceMean:
    """The plain mean of a burst's shots on the reference's grid, blended into the merge.

    The recursion keeps a long average only where its flow is exactly zero, and after the global
    alignment a sub-pixel residual is left nearly everywhere, so in low light it hardly averages.
    Here each shot is warped once onto the reference (its own flow to the reference, Lanczos: no
    chain of warps, no drift), added where it matches the reference (kernels.match_add: the mean
    absolute difference over 5x5 pixels against the noise of a difference of two frames), and
    the mean is blended into the merged result with the weight c / (c + k) of two estimates
    whose errors are as one frame's noise over c (the shots that matched) and over k, except
    near black and white, where clipped noise biases a mean (within `clip` luma sigmas).
    Whole frames, packed (half-resolution, 6 channels): memory of about 4 frames in float32,
    whatever the number of shots.
    """

    # Chosen on synthetic bursts (scripts/burst_eval.py, seeds 0 and 1): k 10-24 and matches
    # (0.9, 1.15) to (1.1, 1.4) tried; (0.9, 1.15), the video's, rejected most shots in low light.
    k: float = 16.0
    match: tuple[float, float] = (1.0, 1.3)
    box: int = 5
    clip: float = 3.0

    def __init__(self, dn: Denoiser, reference: Frame) -> None:
        self._packer = dn.model.clone()          # weights shared, a state of its own
        packed = self._packer.pack(reference, dn.single_sigmas(dn.estimate_sigmas(reference)))
        self.ref = _host(packed.cur)
        self.sigma = _host(packed.sigma)
        self.sum = self.ref.copy()
        self.count = np.ones(self.ref.shape[:2] + (1,), np.float32)
        self._flow = FlowEstimator()
        self._ref_luma = cv2.GaussianBlur(packed_luma_u8(self.ref), (0, 0), 1.0)

    def add(self, shot: Frame, sigmas: tuple[float, float, float]) -> None:
        """Warps `shot` (aligned to the reference as a whole) onto the reference and adds it
        where it matches."""
        packed = _host(self._packer.pack(shot, sigmas).cur)
        flow = self._flow(self._ref_luma, cv2.GaussianBlur(packed_luma_u8(packed), (0, 0), 1.0))
        warped = warp_packed_lanczos(packed, flow, 3)
        lo, hi = self.match
        match_add(warped, self.ref, self.sigma, self.sum, self.count, lo, hi, self.box)

    def blend_into(self, merged: Frame) -> None:
        """Blends the mean into `merged` (the reference's result, 16-bit YUV) in place."""
        net = _host(self._packer.pack(merged, (0.0, 0.0, 0.0)).cur)
        mean = self.sum / self.count
        w = self.count / (self.count + np.float32(self.k))
        # Near black and white the noise was clipped: its mean is biased there.
        luma = net[..., :4].mean(axis=-1, keepdims=True)
        margin = np.float32(self.clip) * self.sigma[..., :1]
        w = w * ((luma > margin) & (luma < 1.0 - margin))
        out = net + w * (mean - net)
        unpack_yuv420(np.ascontiguousarray(out, dtype=np.float32), (1 << merged.bit_depth) - 1,
                      merged.y, merged.u, merged.v)


def _host(t: object) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 contiguous array on the host."""
    return np.ascontiguousarray(t[0].permute(1, 2, 0).float().cpu().numpy())  # type: ignore[index]


def _paste(out: Frame, part: Frame, keep: tuple[int, int, int, int], ctx: tuple[int, int, int, int]) -> None:
    """Writes the kept box of `part` (a tile with its context, cut at `ctx`) into `out`."""
    t0, s0, t1, s1 = keep
    a0, b0 = ctx[0], ctx[1]
    out.y[t0:t1, s0:s1] = part.y[t0 - a0:t1 - a0, s0 - b0:s1 - b0]
    c = (slice((t0 - a0) // 2, (t1 - a0 + 1) // 2), slice((s0 - b0) // 2, (s1 - b0 + 1) // 2))
    out.u[t0 // 2:(t1 + 1) // 2, s0 // 2:(s1 + 1) // 2] = part.u[c]
    out.v[t0 // 2:(t1 + 1) // 2, s0 // 2:(s1 + 1) // 2] = part.v[c]


def _tile_models(dn: Denoiser, count: int) -> list[FrameModel]:
    """One model per tile: the Denoiser's own for the first, clones (weights shared, state of
    their own) for the others; scene cuts off in each."""
    model = dn.model
    model.reset()
    models = [model]
    for _ in range(count - 1):
        try:
            models.append(model.clone())
        except NotImplementedError as err:
            raise ConfigError(f"model '{dn.name}' cannot run on tiles ({err}); merge smaller pictures or use "
                              f"another model.") from err
    for m in models:
        if hasattr(m, "cut_threshold"):
            m.cut_threshold = math.inf  # type: ignore[attr-defined]  # NetworkModel's scene cuts
        la = getattr(m, "long_average", None)
        if la is not None:
            # The shots are aligned already (global alignment): the still-block average.
            m.long_average = replace(la, ramp=BURST_RAMP, follow=False)  # type: ignore[attr-defined]
    return models


# -- global alignment ------------------------------------------------------------------------------


# -- checks ----------------------------------------------------------------------------------------


def _refuse_repeats(paths: Sequence[Path]) -> None:
    seen: list[Path] = []
    for p in paths:
        if any(os.path.samefile(p, q) for q in seen):
            raise ConfigError(f"'{p}' is given twice; give each shot once.")
        seen.append(p)


def _probe_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header where Pillow reads it without decoding the
    pixels; None otherwise (raw files, TIFF kinds Pillow does not open): checked when read."""
    if path.suffix.lower() not in STILL_FORMATS:
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:  # any header Pillow cannot parse: read_still says what is wrong, later
        return None


def _check_sizes(sizes: dict[Path, tuple[int, int] | None], ref_path: Path, ref_size: tuple[int, int] | None) -> None:
    if ref_size is None:
        return
    for p, size in sizes.items():
        if size is not None and size != ref_size:
            raise ConfigError(f"'{p}' is {size[0]}x{size[1]} and the reference '{ref_path}' is "
                              f"{ref_size[0]}x{ref_size[1]}; a burst needs shots of one size (crop or "
                              f"resize none of them: merge the shots as the camera wrote them).")


def _check_same(path: Path, still: Still, ref_path: Path, ref: Still) -> None:
    """A shot read after the reference: its size and orientation must be the reference's."""
    _check_sizes({path: (still.width, still.height)}, ref_path, (ref.width, ref.height))
    if still.orientation != ref.orientation:
        raise ConfigError(f"'{path}' has EXIF orientation {still.orientation} and the reference '{ref_path}' "
                          f"{ref.orientation}: the camera was turned between shots; merge only shots "
                          f"taken the same way up.")

