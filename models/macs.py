"""Counts a network's multiply-accumulates per input pixel from the module itself (forward hooks
on its convolutions and linear layers over a dummy input), for `streamdn models` and the cards."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def count_macs(module: nn.Module, run: Callable[[], object], pixels: int) -> float:
    """Multiply-accumulates per pixel of one call of `run`.

    Counts Conv2d (k_h * k_w * C_in / groups MACs per output value), ConvTranspose2d (k_h * k_w *
    C_out / groups per input value) and Linear (in_features per output value) layers of `module`;
    elementwise work (activations, the blend) is not counted.

    Args:
        module: the network; hooks are attached to its submodules and removed afterwards.
        run: calls the network once on a dummy input.
        pixels: full-resolution pixels that input stands for (H * W of the frame).

    Returns:
        MACs divided by `pixels`.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * kh * kw * (m.in_channels // m.groups)

    def tconv_hook(m: nn.ConvTranspose2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += inp[0].numel() * kh * kw * (m.out_channels // m.groups)

    def linear_hook(m: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(tconv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total / pixels


def count_params(module: nn.Module) -> int:
    """Trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def network_macs(net: nn.Module, height: int = 64, width: int = 64) -> float:
    """MAC/px of a streamdn.models.fast.RecurrentDenoiser step on a (height, width) frame."""
    from .fast import IN_CH, SIGMA_CH

    h2, w2 = height // 2, width // 2
    cur = torch.zeros(1, IN_CH, h2, w2)
    sigma = torch.zeros(1, SIGMA_CH, h2, w2)
    prev, hidden = net.init_state(cur)
    return count_macs(net, lambda: net(cur, sigma, prev, hidden), height * width)
