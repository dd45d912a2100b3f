"""Self-supervised fine-tuning of a network on a user's own noisy footage, with no clean
reference (the work behind `streamdn finetune`, whose flags live in streamdn.cli.finetune):

    streamdn finetune clip1.mp4 clip2.mp4 --base fast -o mine.safetensors --minutes 10
    streamdn denoise new.mp4 -o clean.mp4 --model mine.safetensors

The samples are streamdn.tools.footage windows: the network runs causally over a few frames and
each output is scored against the next noisy frame brought onto it along the motion (a
Noise2Noise target: its noise is independent of everything the output has seen). The loss is
the mean squared difference over the pixels whose target matches.

A share of the footage (each file's last windows) is never trained on. The same loss on it is,
up to a constant, the squared error against the unseen clean frames, so it says whether the
network got better: it is measured for the base before training and for the network every
`check_every_s` seconds, the best weights are kept, and they are written only if they beat the
base by more than the measurement's own noise (two standard errors over the held-out windows);
otherwise the output holds the base's weights unchanged, and says so. The run checkpoints
beside the output (`<out>.run/`) and the same command continues it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamdn.atomic import write_atomically, write_json
from streamdn.tools.footage import FootageConfig, Window, check_paths, gather_windows
from streamdn.errors import ConfigError
from streamdn.signals import stop_on_signals


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tuning run needs.

    Attributes:
        base: the network to start from: a registry name (`fast`, `fast_mc`) or a .safetensors file.
        out: the .safetensors file to write (a Markdown card is written beside it, same name).
        minutes: wall time of the whole call (preparing the footage, training, the final check);
            calling again continues the run for as long again.
        crop: side of the training crops in packed pixels (twice that in frame pixels).
        batch: crops per step. lr: AdamW learning rate (after a short warm-up).
        threads: torch threads. bf16: bf16 autocast (None: on CPUs with native bf16 and on CUDA
            GPUs that have it).
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present), for the base model's pass
            over the footage and for training.
        check_every_s: seconds of training between two checks on the held-out windows.
        rehearsal: synthetic clips with clean targets (the base's own kind of training data,
            streamdn.data.clips) added to each step, per footage crop: they keep what the
            network does on the noise and pictures it already knew while it learns the footage's
            (without them it drifts toward the footage's scenes). 0: none.
        seed: the order of crops and their flips.
        footage: how windows are drawn (streamdn.tools.footage.FootageConfig).
    """

    base: str = "fast"
    out: str = "finetuned.safetensors"
    minutes: float = 10.0
    crop: int = 96
    batch: int = 4
    lr: float = 2e-4
    threads: int = 2
    bf16: bool | None = None
    device: str = "cpu"
    check_every_s: float = 60.0
    rehearsal: float = 0.5
    seed: int = 0
    footage: FootageConfig = field(default_factory=FootageConfig)

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ConfigError(f"--minutes {self.minutes}: give a positive number of minutes.")
        if self.crop < 16 or self.crop % 8:
            raise ConfigError(f"crop={self.crop}: use a multiple of 8, at least 16 (packed pixels).")
        if self.batch < 1 or not self.lr > 0:
            raise ConfigError(f"batch={self.batch}, lr={self.lr}: need batch >= 1 and lr > 0.")
        if not str(self.out).endswith(".safetensors"):
            raise ConfigError(f"output '{self.out}': name it NAME.safetensors (it loads with --model NAME.safetensors).")


@dataclass
class Check:
    """The held-out windows' loss of one network: `per_window`, the mean weighted squared
    error against the next frame ([0, 1]^2 units). Up to the footage's own noise variance (the
    same for every network) it is the squared error against the clean frames, so differences
    between networks are differences in that error; the relative change of the loss
    understates the relative change of the error."""

    per_window: np.ndarray

    @property
    def loss(self) -> float:
        return float(self.per_window.mean())


@dataclass
class FinetuneResult:
    """What a run did: the output and card paths, whether the fine-tuned weights were kept
    (`improved`), the held-out checks of the base and of the kept weights, training steps and
    seconds (all runs together), windows used for training and held out."""

    out: Path
    card: Path
    improved: bool
    base: Check
    best: Check
    steps: int
    train_seconds: float
    windows: tuple[int, int]
    summary: dict[str, Any]


# Synthetic rehearsal clips are drawn from these training steps on (streamdn.data.clips seeds),
# past any step a training run of the base reaches.
REHEARSAL_SEED = 10_000_000
REHEARSAL_CLIPS = 48   # clips in the rehearsal pool (made once per run, about 0.2 s each)


# -- the network and its data ---------------------------------------------------------------------

def base_weights(base: str) -> Path:
    """The weight file of a base model: a shipped network's file, or the user's .safetensors.

    Raises:
        ConfigError: a name that is not a trained network, or a missing file.
    """
    from streamdn.models.network import WEIGHTS_DIR

    if base.endswith(".safetensors"):
        if not os.path.isfile(base):
            raise ConfigError(f"--base '{base}' does not exist; give a .safetensors file or a model name.")
        return Path(base)
    path = WEIGHTS_DIR / f"{base}.safetensors"
    if not path.is_file():
        shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
        raise ConfigError(f"--base '{base}' is not a trained network; use one of {', '.join(shipped)} or a "
                          f".safetensors file.")
    return path


_PACKED_FLIPS = {
    # (flip rows, flip columns, transpose) -> order of the four luma phases (y00, y01, y10, y11)
    # that keeps the packed picture the packing of the transformed full-resolution picture.
    "h": [1, 0, 3, 2, 4, 5], "v": [2, 3, 0, 1, 4, 5], "t": [0, 2, 1, 3, 4, 5],
}


def dihedral(x: Any, k: int, packed: bool) -> Any:
    """One of the 8 flips/rotations (k in 0..7) of a (..., C, H, W) tensor; for packed 4:2:0
    tensors (packed=True) the luma phases are reordered so the result is the packing of the
    flipped picture."""
    if k & 1:
        x = x.flip(-1)
        if packed:
            x = x[..., _PACKED_FLIPS["h"], :, :]
    if k & 2:
        x = x.flip(-2)
        if packed:
            x = x[..., _PACKED_FLIPS["v"], :, :]
    if k & 4:
        x = x.transpose(-1, -2)
        if packed:
            x = x[..., _PACKED_FLIPS["t"], :, :]
    return x


def training_batch(windows: Sequence[Window], crop: int, batch: int, rng: np.random.Generator) -> dict[str, Any]:
    """A batch of random crops (random flips) of random training windows, float32 tensors:
    noisy/target (B, T, 6, c, c), sigma (B, T, 3, c, c), weight (B, T, 1, c, c)."""
    import torch

    parts: dict[str, list[Any]] = {"noisy": [], "sigma": [], "target": [], "weight": []}
    for _ in range(batch):
        w = windows[int(rng.integers(len(windows)))]
        h, wd = w.noisy.shape[-2:]
        c = min(crop, h - h % 8, wd - wd % 8)
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, wd - c + 1))
        k = int(rng.integers(8))
        for name in parts:
            arr = torch.from_numpy(np.ascontiguousarray(getattr(w, name)[..., y0:y0 + c, x0:x0 + c])).float()
            parts[name].append(dihedral(arr, k, packed=name in ("noisy", "target")))
    size = min(p.shape[-1] for p in parts["noisy"])
    return {k: torch.stack([p[..., :size, :size] for p in v]).contiguous() for k, v in parts.items()}


def n2n_loss(net: Any, batch: dict[str, Any], bf16: bool) -> Any:
    """The mean weighted squared difference between each output and the next frame (the batch's
    tensors on the network's device)."""
    from streamdn.tools.train import unroll

    total = batch["noisy"].new_zeros(())
    wsum = batch["weight"].sum().clamp(min=1.0)
    for t, step in enumerate(unroll(net, batch["noisy"], batch["sigma"], bf16)):
        total = total + (batch["weight"][:, t] * (step.out - batch["target"][:, t]) ** 2).sum()
    return total / (wsum * 6.0)


def rehearsal_pool(clips: int, crop: int, frames: int) -> dict[str, np.ndarray]:
    """Synthetic training clips with clean frames (streamdn.data.clips.training_batch, `crop`
    packed pixels square, `frames` long), made once: float16 arrays "noisy", "clean" (N, T, 6,
    c, c) and "sigma" (N, T, 3, c, c)."""
    from streamdn.data.clips import training_batch as synthetic_batch

    parts = [synthetic_batch(REHEARSAL_SEED + i, 1, 1, 2 * crop, frames=frames) for i in range(clips)]
    return {k: np.concatenate([p[k] for p in parts]).astype(np.float16) for k in parts[0]}


def rehearsal_loss(net: Any, pool: dict[str, np.ndarray], clips: int, rng: np.random.Generator,
                   bf16: bool) -> Any:
    """The summed per-clip mean squared error against the clean frames of `clips` clips drawn
    from the pool (each flipped at random)."""
    import torch

    from streamdn.tools.train import unroll

    picks = [(int(rng.integers(len(pool["noisy"]))), int(rng.integers(8))) for _ in range(clips)]
    device = next(net.parameters()).device
    b = {k: torch.stack([dihedral(torch.from_numpy(pool[k][i]).float(), f, packed=k != "sigma") for i, f in picks]
                        ).to(device) for k in ("noisy", "clean", "sigma")}
    total = b["noisy"].new_zeros(())
    for t, st in enumerate(unroll(net, b["noisy"], b["sigma"], bf16)):
        total = total + ((st.out - b["clean"][:, t]) ** 2).mean(dim=(1, 2, 3)).sum()
    return total / b["noisy"].shape[1]


def check(net: Any, windows: Sequence[Window], bf16: bool) -> Check:
    """The held-out loss of `net`, window by window (whole regions, no flips)."""
    import torch

    from streamdn.tools.train import unroll

    losses = []
    device = next(net.parameters()).device
    with torch.no_grad():
        for w in windows:
            noisy, target, weight, sigma = (torch.from_numpy(getattr(w, k)).float()[None].to(device)
                                            for k in ("noisy", "target", "weight", "sigma"))
            wsum = float(weight.sum()) * 6.0
            if wsum == 0.0:
                continue
            err = 0.0
            for t, step in enumerate(unroll(net, noisy, sigma, bf16)):
                err += float((weight[:, t] * (step.out.float() - target[:, t]) ** 2).sum())
            losses.append(err / wsum)
    if not losses:
        raise ConfigError("no held-out pixel could be matched to its next frame (the footage moves too much "
                          "or changes completely from frame to frame); fine-tuning cannot check its result.")
    return Check(np.asarray(losses))


def significantly_better(new: Check, old: Check) -> bool:
    """Whether `new` beats `old` by more than twice the standard error of the paired
    per-window differences (and at all)."""
    d = old.per_window - new.per_window
    if d.size < 2:
        return bool(d.mean() > 0)
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    return bool(d.mean() > 0 and d.mean() > 2.0 * se)


def _fingerprint(paths: Sequence[str], cfg: FinetuneConfig) -> str:
    """What a checkpoint was made from: the footage (names, sizes, times), the base and settings
    that shape the data and network (not the time budget)."""
    items = [(os.path.abspath(p), os.path.getsize(p), int(os.path.getmtime(p))) for p in paths]
    base = base_weights(cfg.base)
    doc = {"footage": items, "base": [str(base.resolve()), base.stat().st_size], "crop": cfg.crop,
           "rehearsal": cfg.rehearsal,
           "footage_cfg": asdict(cfg.footage)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# -- the run --------------------------------------------------------------------------------------

@dataclass
class RunSetup:
    """The start of a fine-tuning run: when it must end (monotonic seconds), the output, the
    base's weight file, the device, whether to train in bf16 and the checkpoint folder."""

    deadline: float
    out: Path
    weights: Path
    device: str
    bf16: bool
    run_dir: Path


def prepare_run(cfg: FinetuneConfig, inputs: Sequence[str]) -> RunSetup:
    """What every fine-tuning run does first: its deadline (cfg.minutes from now), the output
    checked against the `inputs` (never one of them, in an existing folder), the base's weights
    found, torch's threads set, the device and precision resolved.

    Raises:
        ConfigError: an output that is an input or has no folder, an unknown base, no CUDA.
    """
    import torch

    from streamdn.tools.train import _train_device

    deadline = time.monotonic() + 60.0 * cfg.minutes
    out = Path(cfg.out)
    _check_output(inputs, out)
    weights = base_weights(cfg.base)
    torch.set_num_threads(cfg.threads)
    device = _train_device(cfg.device)
    return RunSetup(deadline, out, weights, device, _bf16(cfg, device), Path(str(out) + ".run"))


@contextlib.contextmanager
def reading_bar(desc: str, unit: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for reading the data: yields the callback (done, planned) that moves it."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, disable=quiet, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def _bf16(cfg: FinetuneConfig, device: str) -> bool:
    if cfg.bf16 is not None:
        return cfg.bf16
    import torch

    from streamdn.models.network import _cpu_has_bf16

    return bool(torch.cuda.is_bf16_supported()) if device.startswith("cuda") else _cpu_has_bf16()


def _check_output(paths: Sequence[str], out: Path) -> None:
    for p in paths:
        if os.path.abspath(p) == os.path.abspath(out):
            raise ConfigError(f"output '{out}' is one of the input files; choose another name.")
    if out.parent and not out.parent.exists():
        raise ConfigError(f"the output's folder '{out.parent}' does not exist; create it first.")


def finetune(paths: Sequence[str], cfg: FinetuneConfig, *, quiet: bool = False) -> FinetuneResult:
    """Fine-tunes cfg.base on the footage and writes cfg.out (and its card).

    Raises:
        ConfigError: bad settings, footage too short, an output that would overwrite an input.
        SourceError: a footage file that cannot be read.
        KeyboardInterrupt: Ctrl-C, SIGTERM or SIGHUP, after a checkpoint (the same call continues).
    """
    from streamdn.denoiser import Denoiser
    from streamdn.models.network import load_weights, read_metadata

    files = check_paths(paths)
    run = prepare_run(cfg, files)
    out, weights, device, bf16 = run.out, run.weights, run.device, run.bf16
    run_dir, deadline = run.run_dir, run.deadline
    fingerprint = _fingerprint(files, cfg)

    # The footage, through the base model as inference runs it.
    with Denoiser(str(weights), device=device) as dn, reading_bar("reading footage", "window", quiet) as progress:
        windows = gather_windows(files, dn, cfg.footage, progress=progress)
    train_w = [w for w in windows if not w.held_out]
    held_w = [w for w in windows if w.held_out]
    pool = rehearsal_pool(REHEARSAL_CLIPS, cfg.crop, cfg.footage.frames) if round(cfg.rehearsal * cfg.batch) else {}
    meta = read_metadata(weights)
    arch = meta["arch"]
    run = guarded_training(
        lambda: load_weights(weights)[0], cfg, device,
        make_batch=lambda rng: training_batch(train_w, cfg.crop, cfg.batch, rng),
        loss=lambda net, batch: n2n_loss(net, batch, bf16),
        rehearsal=(lambda net, n, rng: rehearsal_loss(net, pool, n, rng, bf16)) if pool else None,
        held_check=lambda net: check(net, held_w, bf16), run_dir=run_dir, fingerprint=fingerprint,
        deadline=deadline, what="footage", desc=f"fine-tuning {arch}", quiet=quiet)
    assert run.base is not None
    best, base_check, improved = run.best, run.base, run.improved
    summary = _summary(files, cfg, arch, weights, base_check, best if improved else base_check, improved, run.step,
                       run.seconds, len(train_w), len(held_w), run.history)
    write_finetuned(run.final, out, arch, meta, summary)
    card = out.with_suffix(".md")
    _write_card(card, summary)
    write_json(run_dir / "summary.json", summary)
    return FinetuneResult(out, card, improved, base_check, best if improved else base_check, run.step, run.seconds,
                          (len(train_w), len(held_w)), summary)


@dataclass
class GuardedRun:
    """Where a fine-tuning run stands: steps and seconds trained (all calls together), the best
    held-out check so far and the weights that gave it, a check every check_every_s; at the
    end the base's check, whether the best beats it and the network to write."""

    step: int
    seconds: float
    best: Check
    best_state: dict[str, Any]
    history: list[dict[str, Any]]
    base: Check | None = None
    improved: bool = False
    final: Any = None


def guarded_training(load_base: Callable[[], Any], cfg: FinetuneConfig, device: str, *,
                     make_batch: Callable[[np.random.Generator], dict[str, Any]], loss: Callable[[Any, dict[str, Any]], Any],
                     rehearsal: Callable[[Any, int, np.random.Generator], Any] | None,
                     held_check: Callable[[Any], Check], run_dir: Path, fingerprint: str, deadline: float, what: str,
                     desc: str, quiet: bool) -> GuardedRun:
    """The training both kinds of fine-tuning share. The base (`load_base()`, a fresh network)
    is checked on the held-out data (`held_check`); then AdamW with a short warm-up on
    `loss(net, make_batch(rng))` (moved to `device`), mixed with `rehearsal(net, n, rng)` (the
    summed loss of n synthetic samples, cfg.rehearsal per footage sample), until `deadline`
    less the time one check takes; a check every cfg.check_every_s keeps the best weights;
    a checkpoint in `run_dir` at each check, on Ctrl-C/SIGTERM/SIGHUP and at the end. A
    checkpoint of the same `fingerprint` is continued, one of another refused (`what` names
    the data); `desc` labels the progress bar. Returns where the run stands, the base's check, whether the best beats it by
    more than twice the standard error (`improved`) and the network to write (`final`: the
    best weights if improved, else the base's).

    Raises:
        ConfigError: `run_dir` holds a run on other data or settings.
        KeyboardInterrupt: after the checkpoint.
    """
    import torch
    from tqdm import tqdm

    from streamdn.tools.train import _save_checkpoint

    net = load_base().to(device)
    t_check = time.monotonic()
    base_check = held_check(net.eval())
    # Time kept back for the last check on the held-out data: as long as the base's took.
    until = deadline - (time.monotonic() - t_check) - 5.0
    n_synth = round(cfg.rehearsal * cfg.batch) if rehearsal is not None else 0

    def step_loss(rng: np.random.Generator) -> Any:
        batch = {k: v.to(device, non_blocking=True) for k, v in make_batch(rng).items()}
        value = loss(net, batch)
        if n_synth:
            assert rehearsal is not None
            value = (value * cfg.batch + rehearsal(net, n_synth, rng)) / (cfg.batch + n_synth)
        return value

    def reload(state: dict[str, Any]) -> Check:
        again = load_base()
        again.load_state_dict(state)
        return held_check(again.to(device).eval())

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    run = GuardedRun(0, 0.0, base_check, {k: v.clone() for k, v in net.state_dict().items()}, [])
    ckpt_path = run_dir / "ckpt.pt"
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True, map_location="cpu")   # tensors and plain values only
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(f"{run_dir} holds a run on other {what} or settings; remove that folder (or choose "
                              f"another output name) to start afresh.")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        run = GuardedRun(int(state["step"]), float(state["seconds"]), base_check, state["best_model"],
                         json.loads(state["history"]))
        run.best = reload(run.best_state)
        if not quiet:
            print(f"continuing {run_dir} at step {run.step} ({run.seconds / 60:.1f} min trained)", file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {"model": net.state_dict(), "opt": opt.state_dict(), "best_model": run.best_state,
                          "step": run.step, "seconds": run.seconds, "history": json.dumps(run.history),
                          "fingerprint": fingerprint})

    rng = np.random.default_rng([cfg.seed, run.step])
    budget = max(0.0, until - time.monotonic())
    bar = tqdm(total=round(budget), desc=desc, unit="s", disable=quiet, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
    net.train()
    last_check = time.monotonic()
    recent: list[float] = []
    signals = contextlib.ExitStack()
    stop = signals.enter_context(stop_on_signals())
    try:
        while time.monotonic() < until:
            stop.check()
            ts = time.monotonic()
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (run.step + 1) / 20)
            value = step_loss(rng)
            opt.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            run.step += 1
            recent.append(value.item())
            now = time.monotonic()
            run.seconds += now - ts
            bar.update(min(now - ts, bar.total - bar.n))
            if now - last_check > cfg.check_every_s or now >= until:
                net.eval()
                c = held_check(net)
                net.train()
                run.history.append({"step": run.step, "seconds": round(run.seconds, 1),
                                    "train_loss": float(np.mean(recent)), "held_out_loss": c.loss})
                recent = []
                if c.loss < run.best.loss:
                    run.best, run.best_state = c, {k: v.detach().clone() for k, v in net.state_dict().items()}
                bar.set_postfix_str(f"step {run.step}, held-out {c.loss / base_check.loss - 1:+.1%} vs base")
                checkpoint()
                last_check = time.monotonic()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise
    finally:
        signals.close()
    bar.close()
    checkpoint()
    run.base = base_check
    run.improved = significantly_better(run.best, base_check)
    run.final = load_base()
    if run.improved:
        run.final.load_state_dict(run.best_state)
    return run


def _summary(files: Sequence[str], cfg: FinetuneConfig, arch: str, weights: Path, base: Check, kept: Check,
             improved: bool, steps: int, seconds: float, n_train: int, n_held: int,
             history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "base": cfg.base, "base_file": weights.name, "arch": arch,
        "footage": [os.path.basename(f) for f in files],
        "windows": {"train": n_train, "held_out": n_held, "frames": cfg.footage.frames,
                    "region_px": 2 * cfg.footage.region},
        "steps": steps, "train_minutes": round(seconds / 60.0, 2), "crop_px": 2 * cfg.crop, "batch": cfg.batch,
        "lr": cfg.lr, "rehearsal": cfg.rehearsal, "improved": improved,
        "held_out_loss": {"base": base.loss, "kept": kept.loss,
                          "change": kept.loss / base.loss - 1.0 if base.loss else 0.0},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "history": history,
    }


def write_finetuned(net: Any, out: Path, arch: str, base_meta: dict[str, str], summary: dict[str, Any], *,
                    data: str = "", targets: str = "next-frame targets, no clean frames") -> None:
    """The fine-tuned (or unchanged) weights, atomically, with metadata saying what they learnt
    from: `data` before the names of summary["footage"] (e.g. "the bursts "), `targets` how."""
    from streamdn.models.network import save_weights

    footage = summary["footage"]
    names = data + ", ".join(footage[:3]) + (f" and {len(footage) - 3} more" if len(footage) > 3 else "")
    how = "fine-tuned, self-supervised," if summary["improved"] else "unchanged (fine-tuning did not beat it)"
    extra = {k: v for k, v in base_meta.items() if k in ("macs_per_px", "params", "family")}
    extra.update({
        "summary": f"{summary['base']} {how} on {names}",
        "trained_on": f"{base_meta.get('trained_on', summary['base'] + ' training data')}; then self-supervised "
                      f"fine-tuning on {names} ({targets})",
        "finetune": json.dumps({k: v for k, v in summary.items() if k != "history"}),
    })
    write_atomically(out, lambda tmp: save_weights(net, tmp, arch, extra))


def _write_card(path: Path, s: dict[str, Any]) -> None:
    """The fine-tuned model's card (Markdown), written atomically."""
    lines = [
        f"# {Path(path).stem}", "",
        f"A `{s['arch']}` network from `{s['base']}` ({s['base_file']}), "
        + ("fine-tuned without clean frames on the footage below." if s["improved"] else
           "**unchanged**: fine-tuning did not beat the base on the held-out footage, so these are the base's "
           "weights."), "",
        "## Footage", "",
        *[f"- {f}" for f in s["footage"]], "",
        f"{s['windows']['train']} windows trained on, {s['windows']['held_out']} held out (the last of each "
        f"file); {s['windows']['frames']} frames each, regions of {s['windows']['region_px']} px square.", "",
        "## Training", "",
        f"Self-supervised: each output is scored against the next noisy frame warped onto it (its noise is "
        f"independent of what the network has seen), squared error on the pixels that match. "
        f"{s['steps']} steps, {s['train_minutes']} min, crops of {s['crop_px']} px, batch {s['batch']}, "
        f"learning rate {s['lr']:g}.", "",
        "## Held-out check", "",
        f"- loss against the next frame: {s['held_out_loss']['base']:.6g} (base) -> "
        f"{s['held_out_loss']['kept']:.6g} ({s['held_out_loss']['change']:+.1%})", "",
        "Lower is better. Most of this loss is the footage's own noise, the same for every network, so the "
        "error against the (unknown) clean frames fell by more than the loss did. The weights are kept only "
        "if the drop is more than twice its standard error over the held-out windows.", "",
        "Use: `streamdn denoise in.mp4 -o out.mp4 --model " + Path(path).with_suffix(".safetensors").name + "`.", "",
    ]
    write_atomically(path, lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))
