"""BM3D (true noise, per frame, RGB) against `fast` and `fast_mc` frame by frame on the
validation clips of awgn20, pg_lowlight and awgn30: where the distance lies (procedural or
natural clips, first or last frames).

    python docs/fast/bm3d_frames.py frames.json     # every frame of every clip; ~40 min on 2 cores

docs/fast/bm3d_frames.json is its output, recorded on a 2-core AMD EPYC Zen 3 (the int8
backend, the default there). Needs the `reference` extra (the `bm3d` package).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from streamdn.data.clips import validation_clips
from streamdn.data.noise import parse_noise
from streamdn.tools.reference import bm3d_frame
from streamdn.metrics import psnr
from streamdn.tools.temporal import method_outputs

MODELS = ("fast", "fast_mc")
NOISES = ("awgn20", "pg_lowlight", "awgn30")


def _rgb(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(a[..., ::-1], b[..., ::-1])


def summary(res: dict[str, dict[str, list[float]]]) -> str:
    """Mean RGB PSNR and frame 15 per noise, over the procedural, the natural and all clips."""
    lines = []
    for noise in NOISES:
        for group in ("synthetic", "natural", ""):
            names = [k for k in res if k.endswith(noise) and k.startswith(group)]
            if not names:
                continue
            cells = []
            for m in (*MODELS, "bm3d"):
                a = np.array([res[k][m] for k in names])
                cells.append(f"{m} {a.mean():.2f} (frame 0 {a[:, 0].mean():.2f}, frame 15 {a[:, -1].mean():.2f})")
            lines.append(f"{noise} {group or 'all'}: " + ", ".join(cells))
    return "\n".join(lines)


def main() -> int:
    res: dict[str, dict[str, list[float]]] = {}
    for clip in validation_clips(noises=NOISES):
        r = {m: [_rgb(o, c) for o, c in zip(method_outputs(m, clip.noisy), clip.clean)] for m in MODELS}
        spec = parse_noise(clip.noise)
        r["bm3d"] = [_rgb(bm3d_frame(n, spec, c), c) for n, c in zip(clip.noisy, clip.clean)]
        res[clip.name] = r
        print(clip.name, {k: round(float(np.mean(v)), 2) for k, v in r.items()}, file=sys.stderr, flush=True)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump(res, f)
    print(summary(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
