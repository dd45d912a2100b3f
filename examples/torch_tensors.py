"""Denoising torch tensors in the caller's layout, dtype and device.

    python examples/torch_tensors.py
"""

from __future__ import annotations

import torch

from streamdn import Denoiser, SyntheticSource
from streamdn.config import SourceConfig


def main() -> None:
    frames = [torch.from_numpy(f.to_bgr()[..., ::-1].copy())               # (H, W, 3) uint8 RGB
              for f in SyntheticSource(SourceConfig(width=320, height=180, frames=8))]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with Denoiser(channel_order="rgb") as dn:
        clean_u8 = dn(frames[0].to(device))                                 # (H, W, 3) uint8 out
        batch = torch.stack([f.permute(2, 0, 1).float() / 255 for f in frames[1:]]).to(device)
        clean = dn(batch)                                                   # (N, 3, H, W) float in [0, 1]
    print(clean_u8.shape, clean_u8.dtype, clean_u8.device, "|", clean.shape, clean.dtype, clean.device)


if __name__ == "__main__":
    main()
