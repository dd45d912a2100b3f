"""BM3D (true noise) against `fast` on the same frames, with BM3D also charged the 4:2:0 round
trip that every video path pays (FFmpeg's bm3d filter works on yuv420p planes too).

    python docs/fast/bm3d_420.py            # frames 4 and 12 of every validation clip; ~4 min
    python docs/fast/bm3d_420.py --reuse docs/fast/bm3d_420.json   # BM3D figures from that file,
                                            # only `fast` measured again (new weights)

BM3D runs per frame (no temporal state), so a subset of frames estimates its clip mean; `fast`
runs each whole clip (its recurrence needs the past) and is scored on the same frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from streamdn.data.clips import validation_clips
from streamdn.denoiser import Denoiser
from streamdn.frames import frame_from_bgr
from streamdn.metrics import psnr
from streamdn.data.noise import parse_noise
from streamdn.tools.reference import bm3d_frame

FRAMES = (4, 12)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reuse", metavar="JSON", help="take the BM3D columns from this earlier output")
    args = p.parse_args()
    reuse = json.loads(Path(args.reuse).read_text()) if args.reuse else None
    rows: dict[str, dict[str, list[float]]] = {}
    for clip in validation_clips(noises=("awgn20", "awgn30", "pg_lowlight")):
        r = rows.setdefault(clip.noise, {"bm3d_rgb": [], "bm3d_420": [], "fast": [], "ceiling_420": []})
        with Denoiser("fast", device="cpu") as dn:
            outs = [dn(frame_from_bgr(n, index=t)).to_bgr() for t, n in enumerate(clip.noisy)]
        for t in FRAMES:
            clean, noisy = clip.clean[t], clip.noisy[t]
            if reuse is None:
                b = bm3d_frame(noisy, parse_noise(clip.noise), clean)
                r["bm3d_rgb"].append(psnr(clean, b))
                r["bm3d_420"].append(psnr(clean, frame_from_bgr(b).to_bgr()))
            else:
                r["bm3d_rgb"].append(reuse[clip.noise]["bm3d_rgb"])
                r["bm3d_420"].append(reuse[clip.noise]["bm3d_420"])
            r["fast"].append(psnr(clean, outs[t]))
            r["ceiling_420"].append(psnr(clean, frame_from_bgr(clean).to_bgr()))
        print(clip.name, {k: round(v[-1], 2) for k, v in r.items()}, file=sys.stderr)
    table = {n: {k: round(float(np.mean(v)), 2) for k, v in r.items()} for n, r in rows.items()}
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
