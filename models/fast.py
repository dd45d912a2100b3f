"""The temporal networks: a small causal, recurrent U-Net whose output is an explicit, learned
recursive filter, out = alpha * previous_output + (1 - alpha) * spatial_estimate, with alpha
predicted per pixel and channel (docs/design.md §3: a plain U-Net fed the previous output learned to
ignore it; the gate makes using the past the easy thing to learn).

All tensors are NCHW at half resolution (the packed 4:2:0 layout of streamdn.kernels.pack_yuv420):
6 channels = 4 luma phases + U + V, values in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

IN_CH = 6      # packed frame: 4 luma phases, U, V
SIGMA_CH = 3   # noise map: sigma of Y, U, V per packed pixel


@dataclass(frozen=True)
class NetConfig:
    """Architecture of a RecurrentDenoiser.

    Attributes:
        width: channels of the half-resolution features.
        inner: channels of the quarter-resolution features.
        depth: 3x3 convolutions at quarter resolution.
        hidden: channels of the recurrent feature state (0 = the previous output only).
        deep: channels of an extra eighth-resolution level (0 = none): a stride-2 conv down from
            the quarter-resolution features, `deep_depth` 3x3 convs, a transposed conv back up
            added to them. It widens the receptive field 4x for little compute (the level has
            1/64 of the pixels), against the low-frequency noise a small window leaves behind.
        deep_depth: 3x3 convolutions at eighth resolution.
    """

    width: int = 24
    inner: int = 48
    depth: int = 2
    hidden: int = 4
    deep: int = 0
    deep_depth: int = 2

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


PRESETS: dict[str, NetConfig] = {
    "fast": NetConfig(width=24, inner=48, depth=2, hidden=4, deep=48),
    "tdn_tiny": NetConfig(width=8, inner=12, depth=1, hidden=2),
    "quality": NetConfig(width=48, inner=96, depth=6, hidden=8),
}


class RecurrentDenoiser(nn.Module):
    """One recurrent step: (current frame, noise map, previous output, hidden) -> (output, hidden).

    Inputs to the features: the current and previous frames, the noise map and a motion cue
    (|current - previous| over the noise level, averaged over channels), plus the hidden state.
    A 3x3 conv at half resolution, a stride-2 conv down, `depth` 3x3 convs at quarter resolution,
    a transposed conv back up with a skip connection, and a 3x3 head giving a residual for the
    spatial estimate, the gate logits and the new hidden state.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c_in = 2 * IN_CH + SIGMA_CH + 1 + cfg.hidden
        self.enc = nn.Conv2d(c_in, cfg.width, 3, padding=1)
        self.down = nn.Conv2d(cfg.width, cfg.inner, 2, stride=2)
        self.mid = nn.ModuleList(nn.Conv2d(cfg.inner, cfg.inner, 3, padding=1) for _ in range(cfg.depth))
        self.up = nn.ConvTranspose2d(cfg.inner, cfg.width, 2, stride=2)
        if cfg.deep:
            self.down2 = nn.Conv2d(cfg.inner, cfg.deep, 2, stride=2)
            self.mid2 = nn.ModuleList(nn.Conv2d(cfg.deep, cfg.deep, 3, padding=1) for _ in range(cfg.deep_depth))
            self.up2 = nn.ConvTranspose2d(cfg.deep, cfg.inner, 2, stride=2)
            with torch.no_grad():   # starts as a no-op: a trained net gains the level unchanged
                self.up2.weight.zero_()
                self.up2.bias.zero_()
        self.head = nn.Conv2d(cfg.width, 2 * IN_CH + cfg.hidden, 3, padding=1)
        with torch.no_grad():
            # Start as "keep the current frame, trust the past a little": residual 0, alpha ~ 0.27.
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[IN_CH:2 * IN_CH].fill_(-1.0)

    def init_state(self, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """State before the first frame: previous output = `cur`, hidden = zeros."""
        n, _, h, w = cur.shape
        return cur, cur.new_zeros((n, self.cfg.hidden, h, w))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions: (N, 16 + hidden, H, W) step input -> (N, 12 + hidden, H, W) head
        output (6 residual, 6 gate logits, hidden pre-activations). In-place ReLUs and skip add
        when no gradient is recorded (inference), which saves a pass and an allocation each."""
        inplace = not torch.is_grad_enabled()
        f1 = F.relu(self.enc(x), inplace=inplace)
        d = F.relu(self.down(f1), inplace=inplace)
        if self.cfg.deep:
            # Eighth resolution; odd quarter-resolution sizes are padded by replication, cropped after.
            qh, qw = d.shape[-2:]
            e = F.pad(d, (0, qw % 2, 0, qh % 2), mode="replicate") if (qh % 2 or qw % 2) else d
            e = F.relu(self.down2(e), inplace=inplace)
            for conv in self.mid2:
                e = F.relu(conv(e), inplace=inplace)
            e = self.up2(e)[..., :qh, :qw]
            d = d.add_(e) if inplace else d + e
        for conv in self.mid:
            d = F.relu(conv(d), inplace=inplace)
        u = F.relu(self.up(d), inplace=inplace)
        u = u.add_(f1) if inplace else u + f1
        return self.head(u)

    def forward(self, cur: torch.Tensor, sigma: torch.Tensor, prev: torch.Tensor, hidden: torch.Tensor,
                has_prev: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step.

        Args:
            cur: (N, 6, H, W) packed noisy frame in [0, 1]; H and W even.
            sigma: (N, 3, H, W) noise sigma of Y, U, V in [0, 1] units.
            prev: (N, 6, H, W) previous output (float32).
            hidden: (N, hidden, H, W) previous hidden state.
            has_prev: 0 on the first frame of a stream (the gate is closed), else 1; a float or
                an (N, 1, 1, 1) tensor.

        Returns:
            out: (N, 6, H, W) float32 denoised frame (not clamped).
            hidden: (N, hidden, H, W) new hidden state.
            alpha: (N, 6, H, W) float32 weight given to the previous output (for diagnostics).
        """
        sig6 = torch.cat([sigma[:, :1].expand(-1, 4, -1, -1), sigma[:, 1:]], 1)
        motion = ((cur - prev).abs() / (sig6 + 2e-3)).mean(1, keepdim=True) * 0.25
        x = torch.cat([cur, prev, sigma * 10.0, motion, hidden], 1)
        y = self.trunk(x)
        res = y[:, :IN_CH].float()
        alpha = torch.sigmoid(y[:, IN_CH:2 * IN_CH].float()) * has_prev
        # float32: tanh on a strided bf16 slice is 4x slower on CPU (6 ms at 720p, measured).
        new_hidden = torch.tanh(y[:, 2 * IN_CH:].float())
        # The blend runs in float32 whatever the compute dtype: the recursion would otherwise
        # accumulate bf16 rounding (2^-8 near white, one 8-bit step).
        out = alpha * prev.float() + (1.0 - alpha) * (cur.float() + res)
        return out, new_hidden, alpha


def build(arch: str, config: dict[str, int] | None = None) -> RecurrentDenoiser:
    """A RecurrentDenoiser from a preset name, optionally with config overrides (as saved in a
    weights file's metadata: a file's config fully describes its network, whatever its arch).

    Raises:
        KeyError: `arch` is not a preset and no config is given.
        TypeError: the config has keys NetConfig does not know.
    """
    if arch not in PRESETS and not config:
        raise KeyError(f"network '{arch}' is not one of {', '.join(PRESETS)}")
    base = PRESETS.get(arch, NetConfig())
    cfg = NetConfig(**{**base.to_dict(), **(config or {})})
    return RecurrentDenoiser(cfg)
