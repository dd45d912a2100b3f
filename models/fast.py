"""The temporal networks: a small causal, recurrent U-Net whose output is an explicit, learned
recursive filter, out = alpha * previous_output + (1 - alpha) * spatial_estimate, with alpha
predicted per pixel and channel (docs/design.md §3: a plain U-Net fed the previous output learned to
ignore it; the gate makes using the past the easy thing to learn).

With `NetConfig.motion` the recursion is motion compensated, like a Kalman filter: the caller
warps the carried state (the previous estimate, the hidden features and a per-pixel effective
frame count) to the current frame (streamdn.models.motion), and the gate starts from the
running-average weight count / (count + 1), which the network corrects where the warped past
does not match. A static or well-tracked pixel then keeps averaging, frame after frame; an
occluded one (count 0 after the warp) restarts from the current frame. A display residual on top
of the carried estimate lets the network clean (and re-sharpen) what it shows without biasing
what it carries.

All tensors are NCHW at half resolution (the packed 4:2:0 layout of streamdn.kernels.pack_yuv420):
6 channels = 4 luma phases + U + V, values in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

IN_CH = 6      # packed frame: 4 luma phases, U, V
SIGMA_CH = 3   # noise map: sigma of Y, U, V per packed pixel
MAX_COUNT = 1000.0   # effective frame counts are capped here (a long static shot)


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
        motion: a motion-compensated recursion: the step also takes the warped effective frame
            count of the carried state, starts its gate from count / (count + 1), returns the
            updated count, and adds a display residual to what it shows (see the module doc).
        raw_state: (motion networks) carry the motion-compensated running average of the noisy
            frames themselves, not of spatially cleaned ones: state = alpha * previous +
            (1 - alpha) * current, an unbiased estimate whose noise falls as 1 / sqrt(count);
            what is shown is that state plus the head's residual, the spatial clean-up at the
            noise the state has left. A spatial estimate smooths fine detail the same way in
            every frame, so averaging cleaned frames converges to the smoothed picture; averaging
            the frames converges to the picture (a static shot reaches the plain mean of its
            frames, then better). The head has no separate display residual.
    """

    width: int = 24
    inner: int = 48
    depth: int = 2
    hidden: int = 4
    deep: int = 0
    deep_depth: int = 2
    motion: bool = False
    raw_state: bool = False

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class Step(NamedTuple):
    """What one recurrent step returns (all NCHW float32 at the packed resolution).

    Attributes:
        out: (N, 6, H, W) the denoised frame to show (not clamped).
        hidden: (N, hidden, H, W) the new hidden state.
        alpha: (N, 6, H, W) the weight given to the carried past (diagnostics).
        state: (N, 6, H, W) the estimate to carry to the next step: `out` itself, except for
            motion networks, whose display residual is not carried.
        count: (N, 1, H, W) the effective number of frames averaged into `state` (motion
            networks), else None.
    """

    out: torch.Tensor
    hidden: torch.Tensor
    alpha: torch.Tensor
    state: torch.Tensor
    count: torch.Tensor | None


PRESETS: dict[str, NetConfig] = {
    "fast": NetConfig(width=24, inner=48, depth=2, hidden=4, deep=48),
    "fast_mc": NetConfig(width=24, inner=48, depth=2, hidden=4, deep=48, motion=True),
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
        if cfg.raw_state and not cfg.motion:
            raise ValueError("NetConfig.raw_state needs motion=True (the carried average needs the count)")
        self.cfg = cfg
        c_in = 2 * IN_CH + SIGMA_CH + 1 + int(cfg.motion) + cfg.hidden
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
        self.head = nn.Conv2d(cfg.width, self.head_channels, 3, padding=1)
        with torch.no_grad():
            # Start as "keep the current frame, trust the past a little": residual 0, alpha ~ 0.27.
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[IN_CH:2 * IN_CH].fill_(-1.0)

    @property
    def head_channels(self) -> int:
        """Output channels of the head: residual, gate logits, [display residual,] hidden."""
        return (3 if self.has_display else 2) * IN_CH + self.cfg.hidden

    @property
    def has_display(self) -> bool:
        """Whether the head has a separate display residual (motion networks carrying their
        cleaned estimate; a raw-state network's residual is the display residual)."""
        return self.cfg.motion and not self.cfg.raw_state

    def init_state(self, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """State before the first frame: previous output = `cur`, hidden = zeros (and, for
        motion networks, a count of zeros: see zero_count)."""
        n, _, h, w = cur.shape
        return cur, cur.new_zeros((n, self.cfg.hidden, h, w))

    @staticmethod
    def zero_count(cur: torch.Tensor) -> torch.Tensor:
        """The effective frame count before the first frame: (N, 1, H, W) float32 zeros."""
        n, _, h, w = cur.shape
        return torch.zeros((n, 1, h, w), dtype=torch.float32, device=cur.device)

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
                has_prev: torch.Tensor | float = 1.0, count: torch.Tensor | None = None) -> Step:
        """One step.

        Args:
            cur: (N, 6, H, W) packed noisy frame in [0, 1]; H and W even.
            sigma: (N, 3, H, W) noise sigma of Y, U, V in [0, 1] units.
            prev: (N, 6, H, W) previous state (float32): for motion networks, already warped to
                the current frame.
            hidden: (N, hidden, H, W) previous hidden state (warped likewise).
            has_prev: 0 on the first frame of a stream (the gate is closed), else 1; a float or
                an (N, 1, 1, 1) tensor.
            count: motion networks: (N, 1, H, W) effective frame count of `prev` at each pixel
                after the warp (0 where the past is unknown); None counts zeros.

        Returns:
            The Step: output, new hidden state, gate, state to carry and (motion networks) count.
        """
        sig6 = torch.cat([sigma[:, :1].expand(-1, 4, -1, -1), sigma[:, 1:]], 1)
        if self.cfg.motion:
            count = self.zero_count(cur) if count is None else count.float()
        if self.cfg.raw_state:
            # A matching noisy past differs from the frame by noise of sigma * sqrt(1 + 1/count):
            # normalised by it, the cue reads the same at every count and rises only on a mismatch.
            sig6 = sig6 * torch.sqrt(1.0 + 1.0 / count.clamp(min=1.0))
        motion = ((cur - prev).abs() / (sig6 + 2e-3)).mean(1, keepdim=True) * 0.25
        parts = [cur, prev, sigma * 10.0, motion]
        if self.cfg.motion:
            parts.append(torch.log1p(count) * 0.25)
        x = torch.cat([*parts, hidden], 1)
        y = self.trunk(x)
        res = y[:, :IN_CH].float()
        logits = y[:, IN_CH:2 * IN_CH].float()
        if self.cfg.motion:
            # The prior of the gate is the running average of `count` frames: logit(c / (c + 1)).
            logits = logits + torch.log(count.clamp(min=1e-3))
        alpha = torch.sigmoid(logits) * has_prev
        k = 3 * IN_CH if self.has_display else 2 * IN_CH
        # float32: tanh on a strided bf16 slice is 4x slower on CPU (6 ms at 720p, measured).
        new_hidden = torch.tanh(y[:, k:].float())
        # The blend runs in float32 whatever the compute dtype: the recursion would otherwise
        # accumulate bf16 rounding (2^-8 near white, one 8-bit step).
        if self.cfg.raw_state:
            state = torch.lerp(cur.float(), prev.float(), alpha)
        else:
            state = alpha * prev.float() + (1.0 - alpha) * (cur.float() + res)
        if not self.cfg.motion:
            return Step(state, new_hidden, alpha, state, None)
        # The count of a weighted mean of two estimates of variances 1/count and 1 (the current
        # frame): 1 / (a^2 / count + (1 - a)^2), with the channels' mean gate.
        a = alpha.mean(1, keepdim=True)
        new_count = 1.0 / (a * a / count.clamp(min=1e-3) + (1.0 - a) ** 2)
        out = state + (res if self.cfg.raw_state else y[:, 2 * IN_CH:3 * IN_CH].float())
        return Step(out, new_hidden, alpha, state, new_count.clamp(max=MAX_COUNT))


def build(arch: str, config: dict[str, int | bool] | None = None) -> RecurrentDenoiser:
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


def adapt_state_dict(src: RecurrentDenoiser, dst: RecurrentDenoiser) -> dict[str, torch.Tensor]:
    """`src`'s weights shaped for `dst` when the two differ only by NetConfig.motion and
    raw_state: a new count input of the first convolution starts at zero; a new display residual
    starts at zero; a display residual that `dst` lacks is folded into its residual (the head is
    linear, so the first frame's output is unchanged); a gate adapted to a raw state starts at
    the running-average prior (its corrections at zero). The adapted network starts as `src` with
    the gate's running-average prior. Tensors whose shapes already agree are taken as they are
    (anything else is left for load_state_dict to report)."""
    out = dict(src.state_dict())
    if dst.cfg.motion and not src.cfg.motion:
        enc = out["enc.weight"]                    # (width, in, 3, 3): count goes before hidden
        split = 2 * IN_CH + SIGMA_CH + 1
        zeros = enc.new_zeros((enc.shape[0], 1, *enc.shape[2:]))
        out["enc.weight"] = torch.cat([enc[:, :split], zeros, enc[:, split:]], 1)
    for key in ("head.weight", "head.bias"):        # out: residual, gate, [display], hidden
        w = out[key]
        if dst.has_display and not src.has_display:
            zeros = w.new_zeros((IN_CH, *w.shape[1:]))
            out[key] = torch.cat([w[:2 * IN_CH], zeros, w[2 * IN_CH:]], 0)
        elif src.has_display and not dst.has_display:
            res = w[:IN_CH] + w[2 * IN_CH:3 * IN_CH]
            out[key] = torch.cat([res, w[IN_CH:2 * IN_CH], w[3 * IN_CH:]], 0)
        if dst.cfg.raw_state and not src.cfg.raw_state:
            # The gate learnt for a cleaned past does not fit a noisy one: start at the prior.
            w = out[key].clone()
            w[IN_CH:2 * IN_CH] = 0.0
            out[key] = w
    return out
