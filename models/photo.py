"""The still-image networks: one picture, no past, full-resolution RGB (a photograph keeps its
colour detail: the video networks work on 4:2:0, whose chroma has a quarter of the samples).

Two architectures, both residual (they predict the noise and subtract it) and both given the
noise map, so one network covers every noise level and follows noise that varies with
brightness:

- "ffdnet": the picture pixel-unshuffled into four half-resolution sub-images (12 channels)
  beside the noise map, a plain stack of 3x3 convolutions, shuffled back. Working at half
  resolution makes each layer four times cheaper and its receptive field twice as wide.
- "dncnn": the same stack at full resolution, the noise map upsampled beside the picture.

The input (centred on 0) also goes straight to the last convolution beside the stack's features.
Without that, a deep plain stack from random weights first learns to output nothing and stays
there for hundreds of steps (its random features carry little of the fine-grained noise), as
measured while building it: 12 layers, 300 steps on one batch, L1 0.0364 (the noisy input's)
without the input at the last layer, 0.0278 with it, centred.

Inputs are NCHW float32: the picture (N, 3, H, W) RGB in [0, 1] (H and W even) and the noise
map (N, 3, H/2, W/2), the sigma of Y, U and V at each 2x2 block in [0, 1] units, the map the
video networks take (streamdn.models.network).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

KINDS = ("ffdnet", "dncnn")
FAMILY = "photo"   # the "family" metadata of a still-image weight file


@dataclass(frozen=True)
class PhotoConfig:
    """Architecture of a PhotoNet.

    Attributes:
        kind: "ffdnet" (half resolution, pixel-unshuffled) or "dncnn" (full resolution).
        width: channels of every hidden layer.
        depth: 3x3 convolutions in all (the first and last included).
    """

    kind: str = "ffdnet"
    width: int = 64
    depth: int = 12

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"photo network kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.depth < 2 or self.width < 1:
            raise ValueError(f"photo network width {self.width}, depth {self.depth}: need width >= 1, depth >= 2")

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    @property
    def radius(self) -> int:
        """How far (full-resolution pixels) an output pixel sees: tiles need this much context."""
        return self.depth * (2 if self.kind == "ffdnet" else 1) + 1


PHOTO_PRESETS: dict[str, PhotoConfig] = {
    "photo": PhotoConfig("ffdnet", width=64, depth=12),
    "photo_dncnn": PhotoConfig("dncnn", width=64, depth=17),
    "photo_tiny": PhotoConfig("ffdnet", width=8, depth=3),
}


class PhotoNet(nn.Module):
    """(picture, noise map) -> denoised picture; see the module doc. A `first` 3x3 convolution
    and ReLU, `depth` - 2 more in the `body`, and a `last` one on the features and the input
    giving the residual."""

    def __init__(self, cfg: PhotoConfig) -> None:
        super().__init__()
        self.cfg = cfg
        half = cfg.kind == "ffdnet"
        c_io = 12 if half else 3
        self.first = nn.Conv2d(c_io + 3, cfg.width, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(cfg.width, cfg.width, 3, padding=1) for _ in range(cfg.depth - 2))
        self.last = nn.Conv2d(cfg.width + c_io + 3, c_io, 3, padding=1)
        with torch.no_grad():
            # He initialisation keeps the activations' scale through the plain stack (PyTorch's
            # default shrinks it about 2.4x per layer: a 12-layer stack starts dead and stays so).
            for conv in (self.first, *self.body):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                conv.bias.zero_()
            self.last.weight.zero_()   # starts as the identity: no residual
            self.last.bias.zero_()

    def forward(self, rgb: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """rgb (N, 3, H, W), sigma (N, 3, H/2, W/2) -> (N, 3, H, W) float32, not clamped."""
        inplace = not torch.is_grad_enabled()
        if self.cfg.kind == "ffdnet":
            x = F.pixel_unshuffle(rgb, 2)
        else:
            x = rgb
            sigma = F.interpolate(sigma, scale_factor=2.0, mode="nearest")
        x = torch.cat([x - 0.5, sigma * 10.0], 1)
        f = F.relu(self.first(x), inplace=inplace)
        for conv in self.body:
            f = F.relu(conv(f), inplace=inplace)
        # The input joins the features in their dtype (under autocast the convolution casts the
        # joined tensor to it anyway): the same result, without a float32 copy of both (720p on
        # two CPU cores in bf16: 0.30-0.31 -> 0.25-0.26 s).
        res = self.last(torch.cat([f, x.to(f.dtype)], 1)).float()
        if self.cfg.kind == "ffdnet":
            res = F.pixel_shuffle(res, 2)
        return rgb.float() - res


def is_photo_arch(arch: str) -> bool:
    """Whether `arch` names a still-image network preset."""
    return arch in PHOTO_PRESETS


def build_photo(arch: str, config: dict[str, int | str] | None = None) -> PhotoNet:
    """A PhotoNet from a preset name, optionally with config overrides (a weight file's config
    fully describes its network).

    Raises:
        KeyError: `arch` is not a preset and no config is given.
        TypeError, ValueError: the config has unknown keys or bad values.
    """
    if arch not in PHOTO_PRESETS and not config:
        raise KeyError(f"still-image network '{arch}' is not one of {', '.join(PHOTO_PRESETS)}")
    base = PHOTO_PRESETS.get(arch, PhotoConfig())
    return PhotoNet(PhotoConfig(**{**base.to_dict(), **(config or {})}))
