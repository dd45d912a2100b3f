"""Measures `streamdn finetune --base photo` where the truth is known: synthetic hand-held bursts
of pictures with a given noise, written as PNG folders, fine-tuned on with the real command,
then `photo` and the fine-tuned network scored (RGB PSNR against the clean shots, which training
never sees) on single shots: each burst's shots that fine-tuning never trains on, as input or as
target (with 8 shots, the last: its pair and the one before are held out), and shots of other
pictures with the same noise (scikit-image's coffee and chelsea, which no training uses).

    python scripts/finetune_photo_eval.py --noise jpeg_lowlight --minutes 10 --out runs/ft-photo-jpeg
    python scripts/finetune_photo_eval.py --noise awgn20 --minutes 10 --out runs/ft-photo-awgn20

The bursts: `--bursts` pictures from scikit-image's samples (astronaut, rocket, ...), each cut
to 512x384 and shot `--shots` times with up to 3 px and 1 degree of shake (scripts/burst_eval.py's
renderer). Everything is a pure function of --seed. Prints a table and writes OUT/report.json.
Needs scikit-image (pip install -e ".[eval]").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from burst_eval import make_burst  # noqa: E402

from streamdn import Denoiser  # noqa: E402
from streamdn.io.stills import Still, write_still  # noqa: E402
from streamdn.jobs.still import denoise_pixels  # noqa: E402
from streamdn.metrics import psnr  # noqa: E402
from streamdn.tools.finetune import FinetuneConfig  # noqa: E402
from streamdn.tools.finetune_photo import held_out_pairs  # noqa: E402
from streamdn.tools.temporal import _picture  # noqa: E402

FOOTAGE = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass",
           "camera")
OTHER = (("chelsea.png", 320, 240), ("coffee.png", 576, 384))


def _sample(name: str) -> np.ndarray:
    """A scikit-image sample picture as BGR uint8."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", default="jpeg_lowlight")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--bursts", type=int, default=6)
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/finetune-photo-eval")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held_shots: list[tuple[np.ndarray, np.ndarray]] = []   # (clean, noisy) RGB
    folders = []
    share = FinetuneConfig().footage.held_out
    for b, name in enumerate(FOOTAGE[:args.bursts]):
        burst = make_burst(_sample(name), 512, 384, args.shots, 3.0, 1.0, args.noise, args.seed * 1000 + b)
        folder = out / "bursts" / f"{b:02d}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, shot in enumerate(burst.shots):
            write_still(Still(shot), folder / f"shot{k + 1:02d}.png")
        flags = held_out_pairs(args.shots, share)
        # Scored: the shots that fine-tuning never sees as an input nor as a target (pair i takes
        # shot i to shot i + 1): those whose own pair and the pair before are both held out.
        for i in range(1, args.shots):
            if flags[i] and flags[i - 1]:
                held_shots.append((burst.cleans[i], burst.shots[i]))
        folders.append(str(folder))
    model = out / "finetuned.safetensors"
    cmd = [sys.executable, "-m", "streamdn", "finetune", *folders, "--base", "photo", "-o", str(model),
           "--minutes", str(args.minutes), "-q"]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - t0
    other = []
    for name, w, h in OTHER:
        burst = make_burst(_picture(name), w, h, 1, 0.0, 0.0, args.noise, args.seed + 7)
        other.append((burst.clean, burst.shots[0]))
    rows = {}
    for label, path in (("photo", "photo"), ("fine-tuned", str(model))):
        with Denoiser(path, device="cpu") as dn:
            rows[label] = {
                "held_out": float(np.mean([psnr(c, denoise_pixels(dn, n)[0]) for c, n in held_shots])),
                "other": float(np.mean([psnr(c, denoise_pixels(dn, n)[0]) for c, n in other])),
            }
    noisy = {"held_out": float(np.mean([psnr(c, n) for c, n in held_shots])),
             "other": float(np.mean([psnr(c, n) for c, n in other]))}
    summary = json.loads((out / "finetuned.safetensors.run" / "summary.json").read_text())
    report = {"noise": args.noise, "minutes": args.minutes, "wall_s": round(wall, 1), "noisy": noisy, **rows,
              "gain": {k: rows["fine-tuned"][k] - rows["photo"][k] for k in noisy},
              "held_out_shots": len(held_shots), "steps": summary["steps"], "improved": summary["improved"]}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"noise {args.noise}, {args.minutes:g} min ({wall:.0f} s wall), {summary['steps']} steps, kept: "
          f"{summary['improved']}")
    print("| | held-out shots of the bursts | other pictures |")
    print("| --- | --- | --- |")
    for label in ("noisy", "photo", "fine-tuned"):
        r = noisy if label == "noisy" else rows[label]
        print(f"| {label} | {r['held_out']:.2f} | {r['other']:.2f} |")
    print(f"| gain | {report['gain']['held_out']:+.2f} | {report['gain']['other']:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
