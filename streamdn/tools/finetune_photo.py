"""Self-supervised fine-tuning of the still-image network (`photo`) on a photographer's own
bursts, with no clean reference (`streamdn finetune BURST_FOLDER... --base photo`):

    streamdn finetune bursts/night1 bursts/night2 --base photo -o night.safetensors --minutes 10
    streamdn denoise shot.jpg -o clean.png --model night.safetensors

A burst holds several shots of one scene, each with its own noise. Two shots of a pair, the
second aligned onto the first as a burst merge aligns it (streamdn.jobs.merge_rgb.PictureMean:
a homography, then its own optical flow), are two noisy pictures of the same scene with
independent noise: the network's output on the first is scored against the second (Noise2Noise),
which in expectation is scoring it against the clean picture, whatever the noise's spatial
structure. Pixels where the second shot does not match the first (a moving subject, the frame's
edge) and pixels near black or white (clipped noise would teach a bias) get weight 0. Every
shot of a burst is paired with the next one (the last with the first).

The rest is streamdn.tools.finetune's: the network's inputs come from the inference path (the
blind noise estimate and map, impulse removal), synthetic pictures with clean targets are
rehearsed beside the bursts, a share of each burst's pairs (its last) is held out and the result
is kept only if it beats the base there by more than twice the standard error, the run
checkpoints in OUT.safetensors.run/ and the same command continues it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamdn.atomic import write_atomically, write_json
from streamdn.errors import ConfigError, SourceError
from streamdn.tools.finetune import (REHEARSAL_CLIPS, REHEARSAL_SEED, Check, FinetuneConfig, FinetuneResult,
                                     base_weights, dihedral, guarded_training, prepare_run, reading_bar,
                                     write_finetuned)

CLIP_SIGMAS = 3.0   # pixels within this many noise sigmas of black or white are not scored


@dataclass
class PairCrop:
    """One sample: a square region of a shot and the same region of the next shot aligned onto it.

    Attributes:
        source: the burst's folder name. index: the pair's place in the burst (shot index).
        noisy: (3, R, R) float16 RGB of the shot, [0, 1] (the network's input).
        sigma: (3, R/2, R/2) float16 the noise map inference builds for it.
        target: (3, R, R) float16 the next shot, aligned onto it.
        weight: (1, R, R) float16: 1 where the target matches, 0 where it cannot be trusted.
        held_out: kept for checking, never trained on.
    """

    source: str
    index: int
    noisy: np.ndarray
    sigma: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    held_out: bool = False


def is_photo_base(base: str) -> bool:
    """Whether `base` (a registry name or a .safetensors file) is a still-image network."""
    from streamdn.models.network import read_metadata

    try:
        return read_metadata(base_weights(base)).get("family") == "photo"
    except ConfigError:
        raise
    except Exception:  # an unreadable file: base_weights and the loader say what is wrong later
        return False


def burst_folders(paths: Sequence[str]) -> list[list[Path]]:
    """The bursts given: each path a folder of two or more shots of one scene (pictures or camera
    raw files directly inside it, sorted by name).

    Raises:
        SourceError: a path that is not a folder, or a folder with fewer than two pictures.
    """
    from streamdn.jobs.burst import burst_files

    bursts = []
    for p in paths:
        if not os.path.isdir(p):
            raise SourceError(f"'{p}' is not a folder: fine-tuning photo learns from bursts, each a folder of "
                              f"shots of one scene (videos fine-tune fast or fast_mc).")
        shots = burst_files(p)
        if len(shots) < 2:
            raise SourceError(f"burst '{p}' holds {len(shots)} picture; a burst needs two or more shots of one scene.")
        bursts.append(shots)
    return bursts


def plan_crops(counts: Sequence[int], total: int) -> list[list[int]]:
    """How many crops each pair of each burst gives: `total` spread evenly over all the pairs
    (at least one per pair)."""
    pairs = sum(counts)
    out = []
    done = 0
    for n in counts:
        row = []
        for _ in range(n):
            row.append(max(1, round(total * (done + 1) / pairs) - round(total * done / pairs)))
            done += 1
        out.append(row)
    return out


def held_out_pairs(n: int, share: float) -> list[bool]:
    """Which of a burst's n pairs are held out: its last ceil(share * n), never all of them.
    (Pair i's target is shot i + 1, so no held-out target is ever a training target.)"""
    k = min(n - 1, math.ceil(share * n)) if n > 1 else 0
    return [i >= n - k for i in range(n)]


def pair_crops(model: Any, dn: Any, shot: np.ndarray, other: np.ndarray, crops: int, region: int,
               rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(noisy, sigma, target, weight) arrays of `crops` random regions of a pair of shots (same
    shape and dtype): `other` aligned onto `shot` as a burst merge aligns it. Only the crops are
    ever held in float (a 12-megapixel pair: about 1.3 GB at the peak)."""
    from streamdn.denoiser import PLANE_SIGMA_PER_RGB_SIGMA
    from streamdn.jobs.merge_rgb import prepared_shot
    from streamdn.models.merge import Aligner, PictureMean
    from streamdn.models.network import pack_with_noise_map

    rgb, frame = prepared_shot(dn, shot)
    sigmas = dn.single_sigmas(dn.estimate_sigmas(frame))
    aligned = prepared_shot(dn, Aligner(rgb)(other))[0]
    signal_dependent = getattr(model, "signal_dependent", True)
    warped, trust = PictureMean(rgb, frame, sigmas, signal_dependent).warp(aligned)
    del aligned
    # The noise map exactly as PhotoModel.pack_picture builds it for the whole picture.
    sigma = pack_with_noise_map(frame, sigmas, signal_dependent)[1].transpose(2, 0, 1)
    h, w = frame.height, frame.width
    scale = np.float32(1.0 / np.iinfo(shot.dtype).max)
    r = min(region, h - h % 2, w - w % 2)
    pad = 6
    out = []
    for _ in range(crops):
        y0 = 2 * int(rng.integers(0, (h - r) // 2 + 1))
        x0 = 2 * int(rng.integers(0, (w - r) // 2 + 1))
        noisy = rgb[y0:y0 + r, x0:x0 + r].astype(np.float32) * scale
        target = warped[y0:y0 + r, x0:x0 + r].astype(np.float32) * scale
        s = sigma[:, y0 // 2:(y0 + r) // 2, x0 // 2:(x0 + r) // 2]
        # Near black and white the noise was clipped: its mean is biased there, so the target is.
        a0, b0 = max(y0 - pad, 0), max(x0 - pad, 0)
        smooth = cv2.GaussianBlur(rgb[a0:y0 + r + pad, b0:x0 + r + pad].astype(np.float32) * scale, (0, 0), 1.5)
        smooth = smooth[y0 - a0:y0 - a0 + r, x0 - b0:x0 - b0 + r]
        margin = np.repeat(np.repeat(s[0], 2, 0), 2, 1) * np.float32(CLIP_SIGMAS / PLANE_SIGMA_PER_RGB_SIGMA[0])
        inside = ((smooth > margin[..., None]) & (smooth < 1.0 - margin[..., None])).all(axis=-1)
        t = trust[y0 // 2:(y0 + r) // 2, x0 // 2:(x0 + r) // 2]
        weight = np.repeat(np.repeat(t, 2, 0), 2, 1) * inside
        out.append((noisy.transpose(2, 0, 1), s, target.transpose(2, 0, 1), weight[None]))
    return out


def gather_pairs(bursts: Sequence[Sequence[Path]], model: Any, dn: Any, cfg: FinetuneConfig,
                 progress: Callable[[int, int], None] | None = None) -> list[PairCrop]:
    """Reads the bursts once (at most three shots in memory) and returns their crops."""
    from streamdn.io.stills import read_still

    rng = np.random.default_rng(cfg.footage.seed)
    plans = plan_crops([len(b) for b in bursts], cfg.footage.windows)
    planned = sum(sum(p) for p in plans)
    region = 2 * cfg.footage.region
    out: list[PairCrop] = []
    for shots, plan in zip(bursts, plans):
        name = shots[0].parent.name
        flags = held_out_pairs(len(shots), cfg.footage.held_out)
        first = read_still(shots[0]).rgb
        cur = first
        for i, (crops, held) in enumerate(zip(plan, flags)):
            nxt = read_still(shots[i + 1]).rgb if i + 1 < len(shots) else first
            if nxt.shape != cur.shape or nxt.dtype != cur.dtype:
                raise SourceError(f"burst '{shots[0].parent}': '{shots[(i + 1) % len(shots)].name}' differs in size "
                                  f"or depth from '{shots[i].name}'; a burst needs shots of one size.")
            if min(cur.shape[:2]) < 32:
                raise ConfigError(f"burst '{shots[0].parent}': pictures of at least 32x32 pixels are needed.")
            for arrays in pair_crops(model, dn, cur, nxt, crops, region, rng):
                noisy, sigma, target, weight = (np.ascontiguousarray(a, np.float16) for a in arrays)
                out.append(PairCrop(name, i, noisy, sigma, target, weight, held))
                if progress is not None:
                    progress(len(out), planned)
            cur = nxt
    return out


def training_batch(crops: Sequence[PairCrop], size: int, batch: int, rng: np.random.Generator) -> dict[str, Any]:
    """Random `size`-pixel squares (even offsets, random flips) of random training crops:
    noisy/target (B, 3, s, s), sigma (B, 3, s/2, s/2), weight (B, 1, s, s) float32 tensors."""
    import torch

    parts: dict[str, list[Any]] = {"noisy": [], "sigma": [], "target": [], "weight": []}
    for _ in range(batch):
        c = crops[int(rng.integers(len(crops)))]
        r = c.noisy.shape[-1]
        s = min(size, r) // 2 * 2
        y0, x0 = 2 * int(rng.integers(0, (r - s) // 2 + 1)), 2 * int(rng.integers(0, (r - s) // 2 + 1))
        k = int(rng.integers(8))
        for name in parts:
            half = name == "sigma"
            a = getattr(c, name)
            a = a[:, y0 // 2:(y0 + s) // 2, x0 // 2:(x0 + s) // 2] if half else a[:, y0:y0 + s, x0:x0 + s]
            parts[name].append(dihedral(torch.from_numpy(np.ascontiguousarray(a)).float(), k, packed=False))
    s = min(p.shape[-1] for p in parts["noisy"])
    return {k: torch.stack([p[..., :(s // 2 if k == "sigma" else s), :(s // 2 if k == "sigma" else s)] for p in v])
            for k, v in parts.items()}


def pair_loss(net: Any, batch: dict[str, Any], bf16: bool) -> Any:
    """The mean weighted squared difference between the network's output and the other shot."""
    import torch

    with torch.autocast(batch["noisy"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(batch["noisy"], batch["sigma"])
    wsum = batch["weight"].sum().clamp(min=1.0) * 3.0
    return (batch["weight"] * (out.float() - batch["target"]) ** 2).sum() / wsum


def rehearsal_pool(count: int, size: int) -> dict[str, np.ndarray]:
    """Synthetic pictures with clean targets (streamdn.data.pictures.picture_batch, the base's
    own kind of training data, from steps no training run reaches), made once."""
    from streamdn.data.pictures import picture_batch

    parts = [picture_batch(REHEARSAL_SEED + i, 1, size) for i in range(count)]
    return {k: np.concatenate([p[k] for p in parts]).astype(np.float16) for k in parts[0]}


def rehearsal_loss(net: Any, pool: dict[str, np.ndarray], count: int, rng: np.random.Generator, bf16: bool) -> Any:
    """The summed per-picture mean squared error against the clean pictures of `count` pictures
    drawn from the pool (each flipped at random)."""
    import torch

    picks = [(int(rng.integers(len(pool["noisy"]))), int(rng.integers(8))) for _ in range(count)]
    device = next(net.parameters()).device
    b = {k: torch.stack([dihedral(torch.from_numpy(pool[k][i]).float(), f, packed=False) for i, f in picks]).to(device)
         for k in ("noisy", "clean", "sigma")}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(b["noisy"], b["sigma"])
    return ((out.float() - b["clean"]) ** 2).mean(dim=(1, 2, 3)).sum()


def check(net: Any, crops: Sequence[PairCrop], bf16: bool) -> Check:
    """The held-out loss of `net`, crop by crop (whole crops, no flips)."""
    import torch

    losses = []
    device = next(net.parameters()).device
    with torch.no_grad():
        for c in crops:
            b = {k: torch.from_numpy(getattr(c, k)).float()[None].to(device)
                 for k in ("noisy", "sigma", "target", "weight")}
            if float(b["weight"].sum()) == 0.0:
                continue
            losses.append(float(pair_loss(net, b, bf16)))
    if not losses:
        raise ConfigError("no held-out pixel of the bursts could be matched with the next shot (the shots differ "
                          "too much); fine-tuning cannot check its result.")
    return Check(np.asarray(losses))


def _fingerprint(bursts: Sequence[Sequence[Path]], cfg: FinetuneConfig) -> str:
    items = [(os.path.abspath(p), p.stat().st_size, int(p.stat().st_mtime)) for b in bursts for p in b]
    base = base_weights(cfg.base)
    doc = {"bursts": items, "base": [str(base.resolve()), base.stat().st_size], "crop": cfg.crop,
           "rehearsal": cfg.rehearsal, "footage_cfg": asdict(cfg.footage)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def finetune_photo(paths: Sequence[str], cfg: FinetuneConfig, *, quiet: bool = False) -> FinetuneResult:
    """Fine-tunes the still-image network cfg.base on the bursts (folders) and writes cfg.out
    (and its card). cfg.crop is half the training squares' side in pixels, as for the video
    networks' packed crops; cfg.footage.windows is the number of crops drawn from the pairs,
    cfg.footage.region half their side.

    Raises:
        ConfigError: bad settings, too few pairs, an output that would overwrite an input.
        SourceError: a burst that cannot be read.
        KeyboardInterrupt: Ctrl-C, SIGTERM or SIGHUP, after a checkpoint (the same call continues).
    """
    from streamdn.denoiser import Denoiser
    from streamdn.models.network import read_metadata
    from streamdn.models.picture import load_photo_weights

    bursts = burst_folders(paths)
    run = prepare_run(cfg, [str(p) for b in bursts for p in b])
    out, weights, device, bf16 = run.out, run.weights, run.device, run.bf16
    run_dir, deadline = run.run_dir, run.deadline
    fingerprint = _fingerprint(bursts, cfg)

    with Denoiser(str(weights), device=device) as dn, reading_bar("reading bursts", "crop", quiet) as progress:
        crops = gather_pairs(bursts, dn.model, dn, cfg, progress=progress)
    train_c = [c for c in crops if not c.held_out]
    held_c = [c for c in crops if c.held_out]
    if not train_c or not held_c:
        raise ConfigError(f"the bursts gave {len(crops)} crop(s) from {sum(len(b) for b in bursts)} shots; "
                          f"fine-tuning needs shots to train on and shots to check on: give bursts of 3 or "
                          f"more shots.")
    size = 2 * cfg.crop
    pool = rehearsal_pool(REHEARSAL_CLIPS, size) if round(cfg.rehearsal * cfg.batch) else {}
    meta = read_metadata(weights)
    arch = meta["arch"]
    run = guarded_training(
        lambda: load_photo_weights(weights)[0], cfg, device,
        make_batch=lambda rng: training_batch(train_c, size, cfg.batch, rng),
        loss=lambda net, batch: pair_loss(net, batch, bf16),
        rehearsal=(lambda net, n, rng: rehearsal_loss(net, pool, n, rng, bf16)) if pool else None,
        held_check=lambda net: check(net, held_c, bf16), run_dir=run_dir, fingerprint=fingerprint,
        deadline=deadline, what="bursts", desc=f"fine-tuning {arch}", quiet=quiet)
    assert run.base is not None
    base_check, improved, step, seconds, history = run.base, run.improved, run.step, run.seconds, run.history
    kept = run.best if improved else base_check
    names = [str(b[0].parent.name) for b in bursts]
    summary = {
        "base": cfg.base, "base_file": weights.name, "arch": arch, "footage": names,
        "shots": sum(len(b) for b in bursts),
        "windows": {"train": len(train_c), "held_out": len(held_c), "region_px": 2 * cfg.footage.region},
        "steps": step, "train_minutes": round(seconds / 60.0, 2), "crop_px": size, "batch": cfg.batch,
        "lr": cfg.lr, "rehearsal": cfg.rehearsal, "improved": improved,
        "held_out_loss": {"base": base_check.loss, "kept": kept.loss,
                          "change": kept.loss / base_check.loss - 1.0 if base_check.loss else 0.0},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "history": history,
    }
    write_finetuned(run.final, out, arch, meta, summary, data="the bursts ",
                    targets="other shots of each burst as targets, no clean pictures")
    card = out.with_suffix(".md")
    _write_card(card, summary)
    write_json(run_dir / "summary.json", summary)
    return FinetuneResult(out, card, improved, base_check, kept, step, seconds, (len(train_c), len(held_c)), summary)


def _write_card(path: Path, s: dict[str, Any]) -> None:
    """The fine-tuned model's card (Markdown), written atomically."""
    lines = [
        f"# {Path(path).stem}", "",
        f"A `{s['arch']}` still-image network from `{s['base']}` ({s['base_file']}), "
        + ("fine-tuned without clean pictures on the bursts below." if s["improved"] else
           "**unchanged**: fine-tuning did not beat the base on the held-out shots, so these are the base's "
           "weights."), "",
        "## Bursts", "",
        *[f"- {f}" for f in s["footage"]], "",
        f"{s['shots']} shots; {s['windows']['train']} crops trained on, {s['windows']['held_out']} held out (the "
        f"last pairs of each burst), {s['windows']['region_px']} px square.", "",
        "## Training", "",
        f"Self-supervised: the output on each shot is scored against the next shot of its burst, aligned onto "
        f"it (its noise is independent), squared error on the pixels that match. {s['steps']} steps, "
        f"{s['train_minutes']} min, crops of {s['crop_px']} px, batch {s['batch']}, learning rate {s['lr']:g}.", "",
        "## Held-out check", "",
        f"- loss against the other shot: {s['held_out_loss']['base']:.6g} (base) -> "
        f"{s['held_out_loss']['kept']:.6g} ({s['held_out_loss']['change']:+.1%})", "",
        "Lower is better. Most of this loss is the shots' own noise, the same for every network, so the error "
        "against the (unknown) clean pictures fell by more than the loss did. The weights are kept only if the "
        "drop is more than twice its standard error over the held-out crops.", "",
        "Use: `streamdn denoise photo.jpg -o clean.png --model " + Path(path).with_suffix(".safetensors").name + "`.",
        "",
    ]
    write_atomically(path, lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))
