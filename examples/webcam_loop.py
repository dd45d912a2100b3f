"""Your own capture loop with streamdn's Denoiser: OpenCV camera in, clean BGR frames out.

    python examples/webcam_loop.py            # camera 0, shows a window (q quits)
    python examples/webcam_loop.py --frames 30 --synthetic   # no camera: a noisy synthetic scene
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from streamdn import Denoiser, SyntheticSource
from streamdn.config import SourceConfig


def frames(args: argparse.Namespace):
    if args.synthetic:
        for f in SyntheticSource(SourceConfig(width=640, height=360, frames=args.frames or 90)):
            yield f.to_bgr()
        return
    cap = cv2.VideoCapture(args.camera)
    if not cap.isOpened():
        raise SystemExit(f"no camera at {args.camera}; try --synthetic")
    try:
        n = 0
        while args.frames is None or n < args.frames:
            ok, bgr = cap.read()
            if not ok:
                break
            n += 1
            yield bgr
    finally:
        cap.release()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--camera", type=int, default=0)
    p.add_argument("--frames", type=int)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--show", action="store_true", help="open a window (needs a display)")
    args = p.parse_args()
    times = []
    with Denoiser() as dn:                       # default model, CUDA when present
        for bgr in frames(args):
            t = time.perf_counter()
            clean = dn(bgr)                      # (H, W, 3) uint8 BGR in, the same out
            times.append(time.perf_counter() - t)
            if args.show:
                cv2.imshow("streamdn example", np.hstack([bgr, clean]))
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
    print(f"{len(times)} frames, {1000 * float(np.mean(times)):.1f} ms per frame in the denoiser")


if __name__ == "__main__":
    main()
