"""Denoise one photograph or camera raw file into a picture file (JPEG, PNG, TIFF, WebP).

A still is one frame with no past: the Denoiser's model runs once on it, with a noise level
estimated on the whole picture (or the strength given) and its signal-dependent noise map.
The picture is converted to 16-bit YUV 4:2:0 (the model's layout) whatever its depth, so
16-bit pictures keep their precision and 8-bit ones are rounded only once, at the end. Large
pictures go through the model in overlapping tiles (the model's working memory grows with
the picture), each tile's border thrown away, so the result does not depend on the tiling
beyond rounding.

Orientation: the pixels are denoised as stored and the EXIF orientation is written back
unchanged, so the result displays exactly as the original did.

Camera raw files are developed by LibRaw into 16-bit sRGB (sRGB curve, automatic brightness)
and denoised there, where the model was trained (display-referred pictures); the model's
noise map still follows the signal (its per-picture fit of noise variance against
brightness). Denoising linear light instead was measured worse: Poisson-Gaussian noise added
in linear light to a 448x384 photograph, PSNR of the sRGB result, linear-light vs sRGB
denoising, `fast` model: 29.6 vs 30.5 dB at 200 photons at white, 27.7 vs 28.9 dB at 50.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamdn.denoiser import Denoiser, remove_frame_impulses
from streamdn.errors import ConfigError, SinkError, SourceError
from streamdn.frames import Frame, crop_frame, frame_to_rgb, rgb_to_frame, tile_boxes  # noqa: F401  (re-exported)
from streamdn.io.stills import (RAW_EXTENSIONS, STILL_FORMATS, output_format, read_still,
                                write_still)

TILE = 2048       # luma pixels per tile side (the part of each tile that is kept)
OVERLAP = 32      # luma pixels of context on each side of a tile, thrown away after the model


@dataclass
class StillResult:
    """What denoise_still did.

    Attributes:
        output: the path written.
        width, height: the picture's size in pixels.
        bit_depth: bits per channel written (8 or 16).
        sigmas: the Y, U, V noise sigmas used (8-bit units): estimated, or from the strength.
        seconds: wall time of the whole job (read, denoise, write).
        tiles: how many tiles the model ran on.
        model: the name of the model used.
    """

    output: str
    width: int
    height: int
    bit_depth: int
    sigmas: tuple[float, float, float]
    seconds: float
    tiles: int = 1
    notes: list[str] = field(default_factory=list)
    model: str = ""


def denoise_still(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *,
                  model: str = "default", strength: str | float | None = "auto", device: str = "auto",
                  impulses: str = "auto", denoiser: Denoiser | None = None, overwrite: bool = False,
                  quality: int = 95, tile: int | None = None) -> StillResult:
    """Denoises one picture (JPEG, PNG, TIFF, WebP) or camera raw file (DNG, CR2, CR3, NEF, ARW,
    ... through rawpy) into `output_path`, whose extension picks the format (.jpg, .png, .tif,
    .webp). The output is written atomically; the input is never touched.

    Args:
        input_path: the picture or raw file.
        output_path: where to write; must differ from the input.
        model, strength, device, impulses: as for streamdn.Denoiser (strength "auto" estimates
            the noise on the picture; a number is the RGB noise sigma in 8-bit units); model
            "default" is still_model() (`photo` where installed).
        denoiser: a Denoiser to use instead of making one (a folder of pictures shares one; its
            stream state is reset). model, strength, device and impulses are then ignored.
        overwrite: replace an existing output file.
        quality: JPEG and WebP quality (1..100).
        tile: the side of the tiles large pictures are cut into, in pixels (at least 128); None:
            the model's own (`tile` attribute: 1024 for the still-image networks), else TILE (2048).

    Returns:
        What was written and the noise level used.

    Raises:
        SourceError: a missing, damaged or unsupported input.
        SinkError: the output exists (and not overwrite), is the input, or cannot be written.
        ConfigError: a bad option or output extension; a missing optional package.
    """
    start = time.perf_counter()
    src, dst = Path(input_path), Path(output_path)
    check_still_paths(src, dst, overwrite)
    if tile is not None and tile < 128:
        raise ConfigError(f"tile {tile}: use at least 128 pixels (leave it unset for the model's own).")
    still = read_still(src)   # raw files are developed into 16-bit sRGB
    own = denoiser is None
    if denoiser is None and model == "default":
        model = still_model()
    dn = Denoiser(model, strength=strength, device=device, impulses=impulses) if denoiser is None else denoiser
    try:
        clean, sigmas, tiles = denoise_pixels(dn, still.rgb, tile=tile)
        used = dn.name
    finally:
        if own:
            dn.close()
    out = still.with_rgb(clean)
    write_still(out, dst, quality=quality)
    depth = 16 if out.bit_depth == 16 and output_format(dst) in ("PNG", "TIFF") else 8
    return StillResult(str(dst), still.width, still.height, depth, sigmas, time.perf_counter() - start, tiles,
                       model=used)


def still_model() -> str:
    """The model pictures use when none is chosen: the still-image network `photo` where it is
    installed (full-resolution colour, more compute per pixel than a video frame can spend),
    else the default model."""
    from streamdn.models import list_models

    return "photo" if any(i.name == "photo" for i in list_models()) else "default"


def check_still_paths(src: Path, dst: Path, overwrite: bool) -> None:
    """Checks an input/output pair before any work: known extensions, an existing input, an
    output that is not the input and exists only when it may be replaced.

    Raises:
        SourceError, SinkError, ConfigError: see denoise_still.
    """
    ext = src.suffix.lower()
    if ext not in STILL_FORMATS and ext not in RAW_EXTENSIONS:
        raise SourceError(f"'{src}': '{ext or 'no extension'}' is not a picture format streamdn reads; use "
                          f"JPEG, PNG, TIFF, WebP or a camera raw file (DNG, CR2, NEF, ARW, ...).")
    output_format(dst)
    if not src.is_file():
        raise SourceError(f"'{src}' does not exist or is not a file; check the path.")
    if dst.exists():
        if os.path.samefile(src, dst):
            raise SinkError(f"output '{dst}' is the input; write the result to another file.")
        if not overwrite:
            raise SinkError(f"output '{dst}' already exists; choose another name or pass overwrite "
                            f"(--overwrite) to replace it.")
    if not dst.parent.is_dir():
        raise SinkError(f"output folder '{dst.parent}' does not exist; create it first.")


# -- the pixels ----------------------------------------------------------------------------------


def denoise_pixels(dn: Denoiser, rgb: np.ndarray, *, tile: int | None = None,
                   overlap: int = OVERLAP) -> tuple[np.ndarray, tuple[float, float, float], int]:
    """Denoises an (H, W, 3) uint8 or uint16 RGB picture as one image with no past.

    The noise sigmas come from the whole picture (the Denoiser's strength, or its blind
    estimate), impulse noise is removed on the whole picture as the Denoiser would, then the
    model runs on tiles of `tile` pixels (None: the model's `tile` attribute, else TILE) plus
    `overlap` of context each side (at least the model's `context`).

    Returns:
        The denoised picture (same shape and dtype), the Y, U, V sigmas used (8-bit units) and
        the number of tiles.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"expected an (H, W, 3) uint8 or uint16 picture, got shape {rgb.shape} dtype {rgb.dtype}.")
    frame = rgb_to_frame(rgb)
    if not dn.enabled:
        return rgb.copy(), (0.0, 0.0, 0.0), 0
    model = dn.model
    if dn.impulses != "off" and getattr(model, "impulse_filter", False):
        frame = remove_frame_impulses(frame, always=dn.impulses == "on")
    est = (0.0, 0.0, 0.0) if dn.strength is not None else dn.estimate_sigmas(frame)
    sigmas = dn.single_sigmas(est)
    dn.reset()
    h, w = frame.height, frame.width
    if tile is None:
        tile = int(getattr(model, "tile", TILE))
    tile -= tile % 2
    overlap = max(overlap, int(getattr(model, "context", 0)))
    overlap += overlap % 2
    if hasattr(model, "pack_picture"):
        # A still-image network takes the picture's own RGB: full colour resolution.
        out, count = _denoise_rgb_tiles(model, rgb, frame, sigmas, tile, overlap)
        return out, sigmas, count
    out_y, out_u, out_v = np.empty_like(frame.y), np.empty_like(frame.u), np.empty_like(frame.v)
    count = 0
    for (t0, s0, t1, s1), box in tile_boxes(h, w, tile, overlap):
        a0, b0 = box[:2]
        part = crop_frame(frame, box)
        model.reset()
        res = model.unpack(model.forward(model.pack(part, sigmas)), part)
        out_y[t0:t1, s0:s1] = res.y[t0 - a0:t1 - a0, s0 - b0:s1 - b0]
        c = (slice((t0 - a0) // 2, (t1 - a0 + 1) // 2), slice((s0 - b0) // 2, (s1 - b0 + 1) // 2))
        out_u[t0 // 2:(t1 + 1) // 2, s0 // 2:(s1 + 1) // 2] = res.u[c]
        out_v[t0 // 2:(t1 + 1) // 2, s0 // 2:(s1 + 1) // 2] = res.v[c]
        count += 1
    model.reset()
    return frame_to_rgb(frame.with_planes(out_y, out_u, out_v), rgb.dtype), sigmas, count


def _denoise_rgb_tiles(model: Any, rgb: np.ndarray, frame: Frame, sigmas: tuple[float, float, float],
                       tile: int, overlap: int) -> tuple[np.ndarray, int]:
    """denoise_pixels for a model that takes pictures in RGB (streamdn.models.picture.PhotoModel):
    the same tiles, each given its RGB and its part of the 4:2:0 frame (for the noise map).
    Returns the picture and the number of tiles."""
    out = np.empty_like(rgb)
    if frame.extra.get("impulses_removed"):
        # The impulse filter worked on the frame: take its pixels (the chroma resolution of the
        # frame is the price of removing salt and pepper).
        rgb = frame_to_rgb(frame, rgb.dtype)
    count = 0
    for (t0, s0, t1, s1), box in tile_boxes(frame.height, frame.width, tile, overlap):
        a0, b0, a1, b1 = box
        res = model.forward(model.pack_picture(rgb[a0:a1, b0:b1], crop_frame(frame, box), sigmas))
        out[t0:t1, s0:s1] = model.unpack_picture(res, rgb.dtype)[t0 - a0:t1 - a0, s0 - b0:s1 - b0]
        count += 1
    return out, count


