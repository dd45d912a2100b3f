"""Denoising torch tensors in the caller's layout, dtype and device (tensors are RGB by default).

    python examples/torch_tensors.py

A 3-D tensor is the next frame of the Denoiser's stream; a 4-D tensor is a batch of independent
images; denoise_clip takes the consecutive frames of one clip.
"""

from __future__ import annotations

import torch

from streamdn import Denoiser, SyntheticSource
from streamdn.config import SourceConfig


def main() -> None:
    frames = [torch.from_numpy(f.to_ndarray(format="rgb24"))                # (H, W, 3) uint8 RGB
              for f in SyntheticSource(SourceConfig(width=320, height=180, frames=8))]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    clip = torch.stack([f.permute(2, 0, 1).float() / 255 for f in frames]).to(device)   # (T, 3, H, W)
    with Denoiser() as dn:
        clean_u8 = dn(frames[0].to(device))            # the stream's next frame: (H, W, 3) uint8 out
        images = dn(clip[:4])                          # 4 independent images: (4, 3, H, W) float in [0, 1]
        video = dn.denoise_clip(clip)                  # one clip, from a fresh stream: (T, 3, H, W)
    print(clean_u8.shape, clean_u8.dtype, clean_u8.device, "|", images.shape, images.dtype, "|",
          video.shape, video.dtype, video.device)


if __name__ == "__main__":
    main()
