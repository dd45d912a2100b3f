"""What merging a burst gains over denoising one shot: synthetic hand-held bursts of held-out
pictures, the PSNR of the merged result against the clean reference shot beside the single-shot
result (the reference denoised alone, as `streamdn denoise photo.jpg` does).

Each burst: `--shots` shots of one of scikit-image's held-out pictures (chelsea, coffee; never
trained on), each moved by a random hand-held shake (a shift of up to `--shift` pixels each way
and a rotation of up to `--rotate` degrees about the centre; the reference, shot 1, is not
moved), rendered at 4x the size and area-averaged down (so the motion is real, with no
interpolation blur), then noise added independently to each shot and rounded to 8 bits.
Scored: RGB PSNR of the whole picture against the clean reference (full chroma; the video
models' 4:2:0 layout caps their results: the "4:2:0 cap" column is the clean reference through
that round trip; a still-image network such as `photo` works in full RGB). "mean (true
motion)" is the plain mean of the noisy shots warped back with the motion they were made with:
what a perfect alignment and a plain average reach. "one shot, 8x light" is
the model's single-shot result on ONE exposure that collected all the burst's light (the
noise's variance divided by the number of shots): what the same model reaches when the light
is not split over several shots, a yardstick for the merge.

`--single-model photo` adds the single-shot result of another model (the still-image network,
which `streamdn denoise photo.jpg` uses by default where installed) and each burst's gain over it.

Variants (`--variants`): "aligned" is merge_burst (each shot first aligned with the reference as
a whole, then fed in merge_burst's order: shots 8..2, the reference last); "unaligned" leaves
the whole alignment to the model's own flow; "near-last" and "near-first" are aligned but fed by
decreasing (increasing) true displacement from the reference.

Usage:
    python scripts/burst_eval.py [--models photo,fast_mc]
        [--noises awgn20,pg_lowlight] [--shots 8] [--seeds 0,1] [--variants aligned,unaligned] [--tile 2048]
        [--single-model photo]

Needs scikit-image (pip install -e ".[eval]"). Runs on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace

import cv2
import numpy as np

from streamdn import Denoiser
from streamdn.data.noise import NoiseSpec, add_noise, parse_noise
from streamdn.jobs.burst import OVERLAP, feed_order, merge_frames
from streamdn.jobs.merge_rgb import merge_pictures
from streamdn.models.merge import Aligner
from streamdn.jobs.still import TILE, denoise_pixels, frame_to_rgb, rgb_to_frame
from streamdn.metrics import psnr
from streamdn.tools.temporal import SCENES, _picture

UP = 4   # supersampling of the rendering


@dataclass
class Burst:
    """clean: (H, W, 3) uint8 RGB of the reference shot; shots: the noisy shots, reference
    first; motions: each shot's 2x3 affine map from reference to shot pixels (identity first);
    cleans: every shot before its noise (cleans[0] is clean)."""

    clean: np.ndarray
    shots: list[np.ndarray]
    motions: list[np.ndarray]
    cleans: list[np.ndarray]


def make_burst(picture: np.ndarray, width: int, height: int, count: int, shift: float, rotate: float,
               noise: str, seed: int) -> Burst:
    """`count` hand-held shots of `picture` (BGR) at width x height (see the module doc)."""
    rng = np.random.default_rng(seed)
    margin = int(math.ceil(shift + math.radians(rotate) * math.hypot(width, height) / 2)) + 4
    scale = max((width + 2 * margin) / picture.shape[1], (height + 2 * margin) / picture.shape[0])
    big = cv2.resize(picture[..., ::-1], None, fx=scale * UP, fy=scale * UP, interpolation=cv2.INTER_CUBIC)
    bh, bw = big.shape[:2]
    cx, cy = bw / 2.0, bh / 2.0
    spec = parse_noise(noise)
    clean: np.ndarray | None = None
    shots, motions, cleans = [], [], []
    for k in range(count):
        angle = 0.0 if k == 0 else float(rng.uniform(-rotate, rotate))
        dx, dy = (0.0, 0.0) if k == 0 else (float(v) for v in rng.uniform(-shift, shift, 2))
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[:, 2] += (dx * UP, dy * UP)
        moved = cv2.warpAffine(big, m, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        x0, y0 = (bw - width * UP) // 2, (bh - height * UP) // 2
        shot = cv2.resize(moved[y0:y0 + height * UP, x0:x0 + width * UP], (width, height),
                          interpolation=cv2.INTER_AREA)
        if clean is None:
            clean = shot
        cleans.append(shot)
        shots.append(np.clip(add_noise(shot, spec, rng) + 0.5, 0, 255).astype(np.uint8))
        # The same map in shot pixels: rotation about the crop's centre, shift in shot pixels.
        ms = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
        ms[:, 2] += (dx, dy)
        motions.append(ms)
    assert clean is not None
    return Burst(clean, shots, motions, cleans)


def displacement(motion: np.ndarray, width: int, height: int) -> float:
    """Mean distance (pixels) a pixel of the reference moves in the shot."""
    yy, xx = np.mgrid[0:height:8, 0:width:8]
    pts = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 0)
    moved = motion @ pts
    return float(np.mean(np.hypot(moved[0] - pts[0], moved[1] - pts[1])))


def true_mean(burst: Burst) -> np.ndarray:
    """The plain mean of the noisy shots warped back onto the reference with their true motion."""
    h, w = burst.clean.shape[:2]
    acc = np.zeros((h, w, 3), np.float64)
    for shot, m in zip(burst.shots, burst.motions):
        # warpAffine with WARP_INVERSE_MAP samples shot at m(x): the shot's content back on the reference.
        acc += cv2.warpAffine(shot.astype(np.float32), m, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
    return np.clip(acc / len(burst.shots) + 0.5, 0, 255).astype(np.uint8)


def pooled_light(noise: str, shots: int) -> NoiseSpec | None:
    """The noise of one exposure collecting the light of `shots` shots (variance / shots), for
    Gaussian and Poisson-Gaussian noise; None for other kinds."""
    spec = parse_noise(noise)
    if spec.kind == "gaussian":
        return replace(spec, sigma=spec.sigma / math.sqrt(shots))
    if spec.kind == "poisson_gaussian":
        return replace(spec, sigma=spec.sigma / math.sqrt(shots), peak=spec.peak * shots)
    return None


def order_of(burst: Burst, how: str) -> list[int]:
    """Feeding order (indices into burst.shots, the reference 0 last)."""
    n = len(burst.shots)
    if how == "taken":
        return feed_order(n, 0)
    h, w = burst.clean.shape[:2]
    dist = {i: displacement(burst.motions[i], w, h) for i in range(1, n)}
    others = sorted(dist, key=dist.__getitem__, reverse=how == "near-last")
    if how not in ("near-last", "near-first"):
        raise SystemExit(f"order '{how}': use taken, near-last or near-first.")
    return [*others, 0]


def merged(dn: Denoiser, burst: Burst, variant: str, tile: int) -> np.ndarray:
    """The merged burst, as merge_burst makes it ("aligned"), or without the global alignment
    ("unaligned"), or aligned and fed in another order ("near-last", "near-first")."""
    order = order_of(burst, "taken" if variant in ("aligned", "unaligned") else variant)
    align = Aligner(burst.shots[0]) if variant != "unaligned" else (lambda rgb: rgb)
    ref = rgb_to_frame(burst.shots[0])
    if hasattr(dn.model, "pack_picture"):   # a still-image network: the RGB mean, then the network
        return merge_pictures(dn, burst.shots[0], (align(burst.shots[i]) for i in order if i != 0), tile=tile)[0]
    frames = (ref if i == 0 else rgb_to_frame(align(burst.shots[i])) for i in order)
    out, _, _ = merge_frames(dn, frames, tile=tile, overlap=OVERLAP, reference=ref)
    return frame_to_rgb(out, np.dtype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="photo,fast_mc", help="comma-separated models that merge (a still-image "
                                                           "network merges the RGB mean, a video network its recursion)")
    p.add_argument("--noises", default="awgn20,pg_lowlight")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--shift", type=float, default=3.0, help="largest shift each way, pixels")
    p.add_argument("--rotate", type=float, default=1.0, help="largest rotation each way, degrees")
    p.add_argument("--seeds", default="0", help="comma-separated burst seeds (one burst per scene and seed)")
    p.add_argument("--variants", default="aligned", help="comma-separated: aligned (as merge_burst), unaligned, "
                                                          "near-last, near-first")
    p.add_argument("--tile", type=int, default=TILE)
    p.add_argument("--device", default="cpu")
    p.add_argument("--single-model", metavar="MODEL", help="also score this model's single-shot result (e.g. photo)")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    orders = [o for o in args.variants.split(",") if o]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    head = ["scene", "noise", "seed", "noisy", "4:2:0 cap", "mean (true motion)"]
    if args.single_model:
        head.append(f"{args.single_model} single")
    other = Denoiser(args.single_model, device=args.device) if args.single_model else None
    other_gains: dict[str, list[float]] = {m: [] for m in models}
    for m in models:
        short = m.rsplit("/", 2)[-2] + "/" + m.rsplit("/", 1)[-1].removesuffix(".safetensors") if "/" in m else m
        head += [f"{short} single", f"{short} one shot, {args.shots}x light"] + [f"{short} burst ({o})" for o in orders] + [f"{short} gain ({orders[0]})"]
    rows: list[list[str]] = []
    gains: dict[str, list[float]] = {m: [] for m in models}
    dns = {m: Denoiser(m, device=args.device) for m in models}
    for noise in args.noises.split(","):
        for name, w, h in SCENES:
            for seed in seeds:
                burst = make_burst(_picture(name), w, h, args.shots, args.shift, args.rotate, noise, seed)
                cap = frame_to_rgb(rgb_to_frame(burst.clean), np.dtype(np.uint8))
                row = [name.removesuffix(".png"), noise, str(seed), f"{psnr(burst.clean, burst.shots[0]):.2f}",
                       f"{psnr(burst.clean, cap):.2f}", f"{psnr(burst.clean, true_mean(burst)):.2f}"]
                alone = None
                if other is not None:
                    alone = psnr(burst.clean, denoise_pixels(other, burst.shots[0], tile=args.tile)[0])
                    row.append(f"{alone:.2f}")
                for m in models:
                    single = psnr(burst.clean, denoise_pixels(dns[m], burst.shots[0], tile=args.tile)[0])
                    pooled = pooled_light(noise, args.shots)
                    ideal = "n/a"
                    if pooled is not None:
                        one = np.clip(add_noise(burst.clean, pooled, np.random.default_rng(seed + 1000)) + 0.5, 0, 255)
                        ideal = f"{psnr(burst.clean, denoise_pixels(dns[m], one.astype(np.uint8), tile=args.tile)[0]):.2f}"
                    scores = [psnr(burst.clean, merged(dns[m], burst, o, args.tile)) for o in orders]
                    gains[m].append(scores[0] - single)
                    if alone is not None:
                        other_gains[m].append(scores[0] - alone)
                    row += [f"{single:.2f}", ideal] + [f"{s:.2f}" for s in scores] + [f"{scores[0] - single:+.2f}"]
                rows.append(row)
                print(" | ".join(row), file=sys.stderr, flush=True)
    for d in dns.values():
        d.close()
    if other is not None:
        other.close()
    print(f"{args.shots} shots, shake up to {args.shift:g} px and {args.rotate:g} deg, RGB PSNR (dB) against the "
          f"clean reference shot\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for m in models:
        print(f"{m}: mean gain of the burst ({orders[0]}) over the single shot {np.mean(gains[m]):+.2f} dB")
        if other_gains[m]:
            print(f"{m}: mean gain of the burst ({orders[0]}) over {args.single_model}'s single shot "
                  f"{np.mean(other_gains[m]):+.2f} dB (min {np.min(other_gains[m]):+.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
