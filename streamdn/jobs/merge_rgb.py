"""A burst merged for a still-image network (`photo`): the shots' mean in full-resolution RGB
(streamdn.models.merge.PictureMean), then the network over it with a noise map lowered by the
number of shots averaged at each pixel (streamdn.models.merge.denoise_mean). This module adds
what a Denoiser brings: its noise estimate or fixed strength, its impulse setting.

Measured on synthetic hand-held bursts (`python scripts/burst_eval.py --models photo`), see
docs/photo.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from streamdn.denoiser import Denoiser, remove_frame_impulses
from streamdn.errors import ConfigError
from streamdn.frames import Frame, frame_to_rgb, rgb_to_frame
from streamdn.jobs.still import TILE
from streamdn.models.merge import OVERLAP, PictureMean, denoise_mean


def merge_pictures(dn: Denoiser, reference: np.ndarray, shots: Iterable[np.ndarray], *,
                   tile: int | None = None,
                   overlap: int = OVERLAP) -> tuple[np.ndarray, tuple[float, float, float], int]:
    """Merges a burst for `dn`'s still-image network (a model with `pack_picture`).

    Args:
        dn: the Denoiser (its strength, impulse setting and gain apply).
        reference: (H, W, 3) uint8 or uint16 RGB of the reference shot.
        shots: the other shots, each already aligned with the reference as a whole, same shape
            and dtype; read one at a time.
        tile, overlap: the network's tiles (None: the model's own tile size) and their context.

    Returns:
        The merged picture (reference's shape and dtype), the Y, U, V sigmas of one shot (8-bit
        units) and the number of tiles.

    Raises:
        ConfigError: a model without pack_picture, or shots of another shape.
    """
    model: Any = dn.model
    if not hasattr(model, "pack_picture"):
        raise ConfigError(f"model '{dn.name}' is not a still-image network; merge_frames merges for a video model.")
    if not dn.enabled:
        return reference.copy(), (0.0, 0.0, 0.0), 0
    ref_rgb, frame = prepared_shot(dn, reference)
    est = (0.0, 0.0, 0.0) if dn.strength is not None else dn.estimate_sigmas(frame)
    sigmas = dn.single_sigmas(est)
    acc = PictureMean(ref_rgb, frame, sigmas, getattr(model, "signal_dependent", True))
    for rgb in shots:
        if rgb.shape != reference.shape or rgb.dtype != reference.dtype:
            raise ConfigError(f"a shot of shape {rgb.shape} {rgb.dtype}; the reference is {reference.shape} "
                              f"{reference.dtype}: a burst needs shots of one size and depth.")
        acc.add(prepared_shot(dn, rgb)[0])
    if tile is None:
        tile = int(getattr(model, "tile", TILE))
    out, tiles = denoise_mean(model, acc, frame, sigmas, reference.dtype, tile, overlap)
    dn.reset()
    return out, sigmas, tiles


def prepared_shot(dn: Denoiser, rgb: np.ndarray) -> tuple[np.ndarray, Frame]:
    """A shot and its 16-bit YUV frame, impulse noise removed as for a single picture (its
    pixels then come from the cleaned frame)."""
    frame = rgb_to_frame(rgb)
    if dn.impulses != "off" and getattr(dn.model, "impulse_filter", False):
        frame = remove_frame_impulses(frame, always=dn.impulses == "on")
        if frame.extra.get("impulses_removed"):
            rgb = frame_to_rgb(frame, rgb.dtype)
    return rgb, frame
