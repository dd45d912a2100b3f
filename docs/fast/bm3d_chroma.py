"""BM3D (true noise) against `window`, `fast_mc` and `fast` on the same frames, with every RGB result
shown two ways: chroma upsampled bilinearly, and fitted to the luma (streamdn.frames,
chroma="luma", what streamdn hands out). BM3D runs on the RGB noisy frame, and on the frame
through 4:2:0 in and out as the video models see it.

    python docs/fast/bm3d_chroma.py > bm3d_chroma.json     # frames 4 and 12 of every clip; ~30 min on 2 cores

docs/fast/bm3d_chroma.json is its output, recorded on a 2-core AMD EPYC Zen 3 (int8 backend).

Needs the `reference` extra (the `bm3d` package). BM3D runs per frame, so a subset of frames
estimates its clip mean; the video models run each whole clip and are scored on the same frames.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from streamdn.data.clips import validation_clips
from streamdn.data.noise import parse_noise
from streamdn.denoiser import Denoiser
from streamdn.frames import Frame, frame_from_bgr, yuv420_to_bgr
from streamdn.metrics import psnr
from streamdn.tools.reference import bm3d_frame

FRAMES = (4, 12)
MODELS = ("window", "fast_mc", "fast")


def bilinear(f: Frame) -> np.ndarray:
    return yuv420_to_bgr(f.y, f.u, f.v, f.bit_depth, chroma="bilinear")


def main() -> int:
    rows: dict[str, dict[str, list[float]]] = {}
    for clip in validation_clips(noises=("awgn20", "awgn30", "pg_lowlight")):
        r = rows.setdefault(clip.noise, {})
        outs = {}
        for m in MODELS:
            with Denoiser(m, device="cpu") as dn:
                outs[m] = list(dn.denoise_clip([frame_from_bgr(n, index=t) for t, n in enumerate(clip.noisy)]))
        noise = parse_noise(clip.noise)
        for t in FRAMES:
            clean, noisy = clip.clean[t], clip.noisy[t]
            r.setdefault("bm3d_rgb", []).append(psnr(clean, bm3d_frame(noisy, noise, clean)))
            b = bm3d_frame(bilinear(frame_from_bgr(noisy)), noise, clean)
            r.setdefault("bm3d_420_bilinear", []).append(psnr(clean, bilinear(frame_from_bgr(b))))
            g = bm3d_frame(frame_from_bgr(noisy).to_bgr(), noise, clean)
            r.setdefault("bm3d_420_luma", []).append(psnr(clean, frame_from_bgr(g).to_bgr()))
            for m, o in outs.items():
                r.setdefault(f"{m}_bilinear", []).append(psnr(clean, bilinear(o[t])))
                r.setdefault(f"{m}_luma", []).append(psnr(clean, o[t].to_bgr()))
        print(clip.name, {k: round(v[-1], 2) for k, v in r.items()}, file=sys.stderr, flush=True)
    print(json.dumps({n: {k: round(float(np.mean(v)), 2) for k, v in r.items()} for n, r in rows.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
