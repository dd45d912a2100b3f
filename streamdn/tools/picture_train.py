"""What training a still-image network (streamdn.models.photo) changes in the training loop of
streamdn.tools.train: its batches (single pictures, streamdn.data.pictures), its loss (L1 on
RGB) and its validation (the still path, streamdn.jobs.still.denoise_pixels, blind, on the
held-out validation pictures), scored against any other model run the same way (`fast` on a
still is its first frame: no past).

    streamdn train --config configs/train-photo.toml --images ~/.cache/streamdn/images
    streamdn train --validate photo fast --pictures --images ~/.cache/streamdn/images
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamdn.metrics import psnr, ssim

VAL_SIDE_LIMIT = 1024   # tile side of the validation runs (the pictures are smaller: one tile each)


class PictureBatches:
    """Map-style dataset: item `step` is the batch of that step (streamdn.data.pictures.picture_batch)."""

    def __init__(self, steps: int, batch: int, crop: int, images: Sequence[str]) -> None:
        self.steps, self.batch, self.crop, self.images = steps, batch, crop, list(images)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        from streamdn.data.pictures import picture_batch

        return picture_batch(step, self.batch, self.crop, self.images)


def picture_loss(net: Any, batch: dict[str, Any], bf16: bool) -> Any:
    """Mean L1 on RGB of the network's output against the clean pictures."""
    import torch

    with torch.autocast(batch["noisy"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(batch["noisy"], batch["sigma"])
    return (out.float() - batch["clean"]).abs().mean()


def picture_outputs(model: Any, pictures: Sequence[Any], device: str = "cpu") -> list[np.ndarray]:
    """A model's results ((H, W, 3) uint8 RGB) on the validation pictures, through the still
    path with a blind noise estimate: a registry name, a .safetensors path or a FrameModel."""
    from streamdn.denoiser import Denoiser
    from streamdn.jobs.still import denoise_pixels

    dn = Denoiser(model, device=device)
    try:
        return [denoise_pixels(dn, p.noisy, tile=VAL_SIDE_LIMIT)[0] for p in pictures]
    finally:
        dn.reset()
        if isinstance(model, str):
            dn.close()


def validate_pictures(model: Any, pictures: Sequence[Any] | None = None, device: str = "cpu") -> dict[str, dict[str, float]]:
    """{noise label: {"psnr", "ssim", "flicker" (NaN: no time)}} averaged over the validation
    pictures (streamdn.data.pictures.validation_pictures() when None), plus "mean"; "identical"
    counts the results equal to the clean picture, left out of the PSNR mean. `model`:
    see picture_outputs, or "noisy" (the inputs themselves) or "bm3d" (streamdn.tools.reference,
    given the true noise: not blind)."""
    from streamdn.data.pictures import validation_pictures

    pictures = pictures if pictures is not None else validation_pictures()
    if isinstance(model, str) and model == "noisy":
        outs = [p.noisy for p in pictures]
    elif isinstance(model, str) and model == "bm3d":
        from streamdn.data.noise import parse_noise
        from streamdn.tools.reference import bm3d_frame

        outs = [bm3d_frame(np.ascontiguousarray(p.noisy[..., ::-1]), parse_noise(p.noise),
                           np.ascontiguousarray(p.clean[..., ::-1]))[..., ::-1] for p in pictures]
    else:
        outs = picture_outputs(model, pictures, device)
    per: dict[str, list[tuple[float, float]]] = {}
    for p, out in zip(pictures, outs):
        per.setdefault(p.noise, []).append((psnr(p.clean, out), ssim(p.clean, out)))
    res: dict[str, dict[str, float]] = {}
    for k, v in per.items():
        finite = [a for a, _ in v if np.isfinite(a)]
        # A result identical to the clean picture (a clean input passed through) has an infinite
        # PSNR: the mean is over the others, and "identical" counts them.
        res[k] = {"psnr": float(np.mean(finite)) if finite else float("inf"), "ssim": float(np.mean([b for _, b in v])),
                  "flicker": float("nan"), "identical": float(len(v) - len(finite))}
    res["mean"] = {m: float(np.mean([r[m] for r in res.values()])) for m in ("psnr", "ssim")}
    res["mean"]["flicker"] = float("nan")
    return res


def validate_picture_models(models: Sequence[str], noises: Sequence[str], images: Sequence[str | Path] = (),
                            device: str = "cpu") -> dict[str, dict[str, dict[str, float]]]:
    """{model: validate_pictures(model)} on the validation pictures of these noises (with the
    held-out photographs of `images`)."""
    from streamdn.data.pictures import validation_pictures

    pictures = validation_pictures(tuple(noises), images)
    return {m: validate_pictures(m, pictures, device) for m in models}
