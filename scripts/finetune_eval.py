"""Measures `streamdn finetune` where the truth is known: footage rendered from clean moving
scenes with a given noise, written as lossless video, fine-tuned on with the real command, then
the base and the fine-tuned network scored (RGB PSNR against the clean frames, which training
never sees) on the footage's own held-out frames (the end of each video, which fine-tuning
keeps for its check and never trains on) and on other clips of the same noise whose pictures
the footage does not contain.

    python scripts/finetune_eval.py --noise bayer_lowlight --minutes 10 --out runs/finetune-eval
    python scripts/finetune_eval.py --noise awgn20 --minutes 10 --out runs/finetune-eval-awgn20

The footage comes from the built-in training pictures (and procedural textures) under a slowly
moving camera with moving objects; the scoring clips from the validation pictures only
(streamdn.data.clips.HELD_OUT), so no scoring picture is ever trained on. Everything is a pure
function of --seed. Prints a table and writes OUT/report.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from streamdn.data.clips import ClipSpec, noisy_clip, render_clip
from streamdn.data.noise import parse_noise
from streamdn.frames import frame_from_bgr
from streamdn.metrics import psnr
from streamdn.tools.footage import FootageConfig, held_out_flags, plan_windows


def _clips(n: int, frames: int, size: tuple[int, int], held_out: bool, key: int, noise: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence((key, i)))
        spec = ClipSpec(frames=frames, size=size, speed=float(rng.uniform(0.0, 1.5)), objects=int(rng.integers(0, 3)))
        clean = render_clip(spec, rng, held_out=held_out)
        out.append((clean, noisy_clip(clean, parse_noise(noise), rng)))
    return out


def _write(path: Path, noisy: np.ndarray) -> None:
    """Lossless FFV1 4:2:0, the planes exactly as streamdn converts the frames."""
    from fractions import Fraction

    from streamdn.config import EncodeConfig
    from streamdn.frames import FrameFormat
    from streamdn.io.sinks import FileSink

    h, w = noisy.shape[1:3]
    fmt = FrameFormat(width=w, height=h, bit_depth=8, fps=Fraction(30), time_base=Fraction(1, 30))
    with FileSink(str(path), fmt, EncodeConfig(lossless=True), overwrite=True) as sink:
        for t, f in enumerate(noisy):
            sink.write(frame_from_bgr(f, index=t, pts=t, time_base=Fraction(1, 30)))


def _score(model: str, clips: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from streamdn.denoiser import Denoiser

    vals = []
    for clean, noisy in clips:
        with Denoiser(model, device="cpu") as dn:
            for c, n in zip(clean, noisy):
                vals.append(psnr(c, dn(frame_from_bgr(n)).to_bgr()))
    return float(np.mean(vals))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", default="bayer_lowlight", help="streamdn.data.noise name (default %(default)s)")
    ap.add_argument("--base", default="fast")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--footage", type=int, default=4, help="footage videos (default %(default)s)")
    ap.add_argument("--frames", type=int, default=90, help="frames per footage video (default %(default)s)")
    ap.add_argument("--size", default="360x640", help="HxW of the footage and scoring clips")
    ap.add_argument("--score-clips", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rehearsal", type=float, default=None, help="passed to streamdn finetune (default: its own)")
    ap.add_argument("--out", default="runs/finetune-eval")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    footage = _clips(args.footage, args.frames, (h, w), False, 1000 + args.seed, args.noise)
    paths = []
    for i, (_, noisy) in enumerate(footage):
        p = out / f"footage{i}.mkv"
        _write(p, noisy)
        paths.append(str(p))
    weights = out / "finetuned.safetensors"
    t0 = time.monotonic()
    cmd = ["streamdn", "finetune", *paths, "--base", args.base, "-o", str(weights), "--minutes", str(args.minutes),
           "--json", str(out / "finetune.json")]
    if args.rehearsal is not None:
        cmd += ["--rehearsal", str(args.rehearsal)]
    print("$ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - t0
    scoring = _clips(args.score_clips, 24, (h, w), True, 2000 + args.seed, args.noise)
    noisy_psnr = float(np.mean([psnr(c, n) for clean, noisy in scoring for c, n in zip(clean, noisy)]))
    base = _score(args.base, scoring)
    tuned = _score(str(weights), scoring)
    # The footage's own held-out part: from its first held-out window to its end (never trained on).
    cfg = FootageConfig()
    tail = []
    for (clean, noisy), starts in zip(footage, plan_windows([len(c) for c, _ in footage], cfg)):
        first = min((s for s, held in zip(starts, held_out_flags(starts, cfg.held_out)) if held), default=len(clean))
        tail.append((clean[first:], noisy[first:]))
    base_tail, tuned_tail = _score(args.base, tail), _score(str(weights), tail)
    summary = json.loads((out / "finetune.json").read_text())
    report = {"noise": args.noise, "base": args.base, "minutes": args.minutes, "wall_s": round(wall, 1),
              "noisy_psnr": noisy_psnr, "base_psnr": base, "finetuned_psnr": tuned, "gain_db": tuned - base,
              "footage_held_out": {"frames": sum(len(c) for c, _ in tail), "base_psnr": base_tail,
                                   "finetuned_psnr": tuned_tail, "gain_db": tuned_tail - base_tail},
              "improved": summary["improved"], "steps": summary["steps"],
              "held_out_loss_change": summary["held_out_loss"]["change"]}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"noise {args.noise}: noisy {noisy_psnr:.2f} dB, {args.base} {base:.2f} dB, fine-tuned {tuned:.2f} dB "
          f"({tuned - base:+.2f} dB) on other scenes; on the footage's held-out frames {base_tail:.2f} -> "
          f"{tuned_tail:.2f} dB ({tuned_tail - base_tail:+.2f} dB); {summary['steps']} steps, {wall / 60:.1f} min wall "
          f"(kept: {summary['improved']}, held-out loss {summary['held_out_loss']['change']:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
