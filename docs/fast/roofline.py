"""How far this CPU is from the speed target of the network alone (>= 30 frames/s at 1280x720),
and what a network would have to cost to reach it here.

    python docs/fast/roofline.py [--threads 2] [--model fast]

Measures (fp32, `threads` torch threads, idle machine assumed):
- the CPU's dense matrix-multiply rate (torch.mm, 2048x2048): the most multiply-accumulates per
  second any convolution could get from it;
- the network step as the product runs it (NetworkModel.forward: fused Numba ends + torch convs)
  on a 1280x720 frame, and the multiply-accumulates per second that is.
Prints the fps ceiling at the matmul rate and the MAC/px that 30 fps would allow at the
convolutions' measured efficiency.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from streamdn.frames import Frame
from streamdn.models import create_model, model_info


def matmul_gmacs(n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return n ** 3 * reps / (time.perf_counter() - t) / 1e9


def network_fps(model: str, width: int, height: int, frames: int = 10) -> float:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (height, width), dtype=np.uint8)
    u = rng.integers(0, 256, ((height + 1) // 2, (width + 1) // 2), dtype=np.uint8)
    m = create_model(model, device="cpu", dtype="fp32")
    packed = m.pack(Frame(y=y, u=u, v=u.copy()), (10.0, 5.0, 5.0))
    for _ in range(3):
        m.forward(packed)
    t = time.perf_counter()
    for _ in range(frames):
        m.forward(packed)
    return frames / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="fast", help="a network (name or .safetensors)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    w, h, target = 1280, 720, 30.0
    if model_info(args.model).macs_per_px is None:
        raise SystemExit(f"{args.model} is not a network (no MAC/px figure)")
    macs = float(model_info(args.model).macs_per_px)
    peaks, fpss = [], []
    for _ in range(args.rounds):      # interleaved: a VM's speed drifts
        peaks.append(matmul_gmacs())
        fpss.append(network_fps(args.model, w, h))
    peak, fps = float(np.median(peaks)), float(np.median(fpss))
    achieved = macs * w * h * fps / 1e9
    report = {
        "model": args.model, "macs_per_px": macs, "threads": args.threads,
        "matmul_gmacs": round(peak, 1), "matmul_gmacs_rounds": [round(x, 1) for x in peaks],
        "network_fps_720p": round(fps, 2), "network_fps_rounds": [round(x, 2) for x in fpss],
        "network_gmacs": round(achieved, 1), "efficiency_vs_matmul": round(achieved / peak, 3),
        "fps_ceiling_at_matmul_rate": round(peak * 1e9 / (macs * w * h), 1),
        "macs_per_px_for_30fps_at_measured_efficiency": round(achieved * 1e9 / (target * w * h)),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
