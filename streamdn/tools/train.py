"""Training of the temporal networks on generated clips, one readable loop, and their validation
(the work behind `streamdn train`, whose flags live in streamdn.cli.train):

    streamdn train --config configs/train-fast.toml          # resumes from runs/<name>/ckpt.pt if present
    streamdn train --validate fast tfilter                   # PSNR/SSIM/flicker on the fixed validation clips

Data come from streamdn.data.clips in DataLoader worker processes (a pure function of the step, so
a resumed run sees the same batches); each step runs the recurrence over the clip (truncated
backpropagation through the clip), L1 on the packed YUV plus an optional temporal term.
Validation runs the real inference path (Denoiser, blind noise estimate) every epoch.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from streamdn.atomic import write_atomically, write_json
from streamdn.config import read_toml
from streamdn.errors import ConfigError
from streamdn.metrics import frame_scores
from streamdn.signals import stop_on_signals


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (configs/train-*.toml, table [train]).

    Attributes:
        arch: network preset (streamdn.models.fast.PRESETS).
        out: run folder for checkpoints, best weights, history and the plot.
        steps: optimiser steps in all. epoch_steps: steps between validations.
        batch: clips per step. crop: clip size in pixels (square, even).
        lr: peak learning rate (AdamW), cosine-decayed to lr * lr_floor after `warmup` steps.
        weight_decay, grad_clip: AdamW decay, gradient-norm clip.
        temporal_loss: weight of L1 on frame-to-frame differences (against flicker).
        bf16: bf16 autocast for the forward pass on CPU (about 1.7x faster).
        threads: torch threads of the training process. workers: data processes.
        ckpt_every_s: seconds between checkpoints. val_frames: frames per validation clip.
        seed: initialisation seed.
        init: a .safetensors file to start from (fine-tuning), "" for random initialisation.
        deep: channels of the network's eighth-resolution level (NetConfig.deep), 0 = the
            preset's. Starting from `init` weights without that level adds it as a no-op (its
            up-projection starts at zero) and trains it in.
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present). On CUDA, `bf16` is bf16
            autocast on the GPU and `threads` only sets the host's torch threads.
        motion: train the motion-compensated recursion (NetConfig.motion): the carried state
            is warped to each frame (streamdn.models.motion) and detached there, so the clip is
            a chain of one-step losses; `init` weights of the plain recursion are adapted.
        raw_state: with `motion`, carry the running average of the noisy frames themselves
            (NetConfig.raw_state); `init` weights of either other kind are adapted.
        frames: clip length in frames; 0 follows the curriculum (4, 6, then 8 frames). The
            motion recursion needs long clips (16+) to learn to average many frames.
        state_loss: weight of the L1 loss of the carried estimate (motion networks), which keeps
            it a clean picture whatever the display residual does (for a raw state: which
            rewards averaging as many frames as match, the gain of a Kalman filter).
        gate_from_state: (raw-state networks) the gate learns from the state loss alone; the
            output's loss trains the residual and the trunk but does not reach the gate. The
            state is detached between frames, so the output's loss sees only what averaging buys
            the current frame, which the residual's spatial cleaning can also buy: a gate trained
            on it drifts toward caution, and every later frame pays (measured: docs/motion.md).
            The state loss is minimised by the blend that leaves the carried average closest to
            the clean frame, the gain a Kalman filter would choose, which all later frames inherit.
        val_long: frames of two extra validation shots, scored as "long" and counted in the mean
            that picks the best weights: a static and a slowly panning natural scene (held-out
            images, Gaussian sigma 20), where only a long average does well. 0: none.
        keep_steps: also keep the weights of every validated step as step<N>.safetensors.
        qat: quantisation-aware training for the int8 backend (streamdn.models.int8.add_fake_quant:
            the convolutions see their inputs and weights rounded as the int8 model rounds them;
            validation runs so too). The weights written are the float ones, for the int8 backend
            to quantise; start from trained `init` weights.
        images: folders of photographs to train on, besides the built-in images
            (streamdn.data.images; scripts/get-training-images.sh builds one); a tenth of the
            files, chosen by name, is held out.
    """

    arch: str = "fast"
    out: str = "runs/fast"
    steps: int = 20000
    epoch_steps: int = 500
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3
    lr_floor: float = 0.05
    warmup: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    temporal_loss: float = 0.1
    bf16: bool = True
    threads: int = 2
    workers: int = 1
    ckpt_every_s: float = 180.0
    val_frames: int = 16
    seed: int = 0
    init: str = ""
    deep: int = 0
    device: str = "cpu"
    motion: bool = False
    raw_state: bool = False
    frames: int = 0
    state_loss: float = 0.25
    gate_from_state: bool = False
    val_long: int = 0
    keep_steps: bool = False
    qat: bool = False
    images: list[str] = field(default_factory=list)


def load_train_config(path: str | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Reads [train] from a TOML file and applies overrides.

    Raises:
        ConfigError: missing file, bad TOML, an unknown key (the message lists the valid ones)
            or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    if path is not None:
        doc = read_toml(path, "training config")
        values = dict(doc.get("train", {}))
        if set(doc) - {"train"}:
            raise ConfigError(f"{path}: unknown section(s) {sorted(set(doc) - {'train'})}; put every key under [train].")
    values.update(overrides or {})
    known = {f.name: f for f in fields(TrainConfig)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{path or 'overrides'}: [train] key '{key}' is not known; valid keys: {', '.join(known)}.")
        want = type(getattr(TrainConfig(), key))
        if want is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{path or 'overrides'}: [train] {key} = {value!r} should be a list of folder names.")
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{path or 'overrides'}: [train] {key} = {value!r} should be a {want.__name__}.")
    return TrainConfig(**values)


# -- validation: the real inference path on the fixed clips -----------------------------------------

def validate(model: Any, clips: list | None = None, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Runs a model blind (estimated strength) over the validation clips through Denoiser.

    Args:
        model: a registry name, a .safetensors path, "noisy" (no denoising), "bm3d" (the
            per-frame BM3D reference given the true noise, streamdn.tools.reference; not blind) or a
            FrameModel.
        clips: streamdn.data.clips.validation_clips() (built when None).

    Returns:
        {noise label: {"psnr": dB, "ssim": [0, 1], "flicker": 8-bit units}} averaged over frames
        and clips, plus "mean". PSNR and SSIM (streamdn.metrics) are on RGB against the clean
        frames; flicker is the mean |(out_t - out_t-1) - (clean_t - clean_t-1)|, the temporal
        error a viewer sees as shimmer or ghosting (lower is better).
    """
    from streamdn.data.clips import validation_clips

    clips = clips if clips is not None else validation_clips()
    per: dict[str, list[dict[str, list[float]]]] = {}
    for clip in clips:
        per.setdefault(clip.noise, []).append(score_clip(clip, clip_outputs(model, clip, device)))
    names = ("psnr", "ssim", "flicker")
    res = {k: {m: float(np.nanmean([v for s in ss for v in s[m]])) for m in names} for k, ss in per.items()}
    res["mean"] = {m: float(np.mean([r[m] for r in res.values()])) for m in names}
    return res


def clip_outputs(model: Any, clip: Any, device: str = "cpu") -> list[np.ndarray]:
    """A method's output frames ((H, W, 3) uint8 BGR) for a validation clip, in order: "noisy"
    (the input), "bm3d" (streamdn.tools.reference, given the clip's true noise, on the RGB frames),
    "bm3d420" (the same through the 4:2:0 frames the video models take and give), or a registry name,
    weights path or FrameModel run blind through a fresh Denoiser (its state reset first)."""
    from streamdn.denoiser import Denoiser
    from streamdn.frames import frame_from_bgr

    if isinstance(model, str) and model == "noisy":
        return list(clip.noisy)
    if isinstance(model, str) and model in ("bm3d", "bm3d420"):
        from streamdn.data.noise import parse_noise
        from streamdn.tools.reference import bm3d_frame

        noise = parse_noise(clip.noise)
        if model == "bm3d":
            return [bm3d_frame(n, noise, c) for c, n in zip(clip.clean, clip.noisy)]
        # The same 4:2:0 frames in and out as every video model here (the planes a decoder gives).
        return [frame_from_bgr(bm3d_frame(frame_from_bgr(n).to_bgr(), noise, c)).to_bgr()
                for c, n in zip(clip.clean, clip.noisy)]
    dn = Denoiser(model, device=device)
    dn.reset()
    try:
        frames = [frame_from_bgr(n, index=t) for t, n in enumerate(clip.noisy)]
        return [f.to_bgr() for f in dn.denoise_clip(frames)]   # the whole clip: a windowed model looks ahead
    finally:
        dn.reset()
        if isinstance(model, str):
            dn.close()


def score_clip(clip: Any, outputs: list[np.ndarray]) -> dict[str, list[float]]:
    """Per-frame PSNR, SSIM (RGB, against clean) and flicker (NaN on the first frame) of one
    validation clip's outputs: streamdn.metrics.frame_scores(clip.clean, outputs)."""
    return frame_scores(clip.clean, outputs)


def validate_models(models: Sequence[str], noises: Sequence[str] = ("awgn20", "pg_lowlight"),
                    device: str = "cpu") -> dict[str, dict[str, dict[str, float]]]:
    """Scores several models on the fixed validation clips of these noises.

    Args:
        models: registry names, .safetensors paths, "noisy" or "bm3d" (see `validate`).
        noises: streamdn.data.noise.parse_noise names of the clips.
        device: where networks run.

    Returns:
        {model: validate(model, clips)} in the order given.

    Raises:
        ConfigError: no models, no noises, or a noise name that is not known.
    """
    from streamdn.data.clips import validation_clips
    from streamdn.data.noise import parse_noise

    if not models or not noises:
        raise ConfigError(f"validate_models: models={list(models)!r} and noises={list(noises)!r}: give at "
                          "least one of each.")
    for n in noises:
        try:
            parse_noise(n)
        except ValueError as err:
            raise ConfigError(f"noises: {err}") from err
    clips = validation_clips(noises=tuple(noises))
    return {m: validate(m, clips, device) for m in models}


def validation_text(table: dict[str, dict[str, dict[str, float]]],
                    of: str = "fixed validation clips") -> str:
    """validate_models' figures as a text table: one row per model, PSNR dB / SSIM / flicker per
    noise (flicker is nan for pictures); `of` names the set in the title."""
    labels = list(next(iter(table.values())))
    timed = any(math.isfinite(r[lab]["flicker"]) for r in table.values() for lab in labels)
    what, width = ("PSNR dB / SSIM / flicker", 26) if timed else ("PSNR dB / SSIM", 20)
    lines = [f"{what} on RGB, blind (estimated strength), {of}",
             f"{'model':32}" + "".join(f"{lab:>{width}}" for lab in labels)]
    for m, res in table.items():
        cells = []
        for lab in labels:
            r = res[lab]
            cells.append(f"{r['psnr']:>{width - 9 if timed else width - 7}.2f} {r['ssim']:.4f}"
                         + (f" {r['flicker']:5.2f}" if timed else ""))
        lines.append(f"{m:32}" + "".join(cells))
    return "\n".join(lines)


# -- the training loop -----------------------------------------------------------------------------

class _Batches:
    """Map-style dataset: item `step` is the batch of that step (generated in a worker process)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        from streamdn.data.clips import training_batch

        return training_batch(step, self.cfg.steps, self.cfg.batch, self.cfg.crop, images=self.cfg.images,
                              frames=self.cfg.frames)


def _as_is(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Batches travel from the workers as numpy arrays, pickled through the pipe: torch tensors
    would go as shared file descriptors, a hand-shake that a Ctrl-C in the middle breaks with a
    traceback from the worker."""
    return batch


def _worker_init(_: int) -> None:
    import signal

    import numba

    # Ctrl-C (and a SIGTERM or SIGHUP sent to the group) reaches every process: only the training process
    # acts on it (checkpoint, then exit) and shuts its workers down; a worker killed by it mid-batch
    # would make that shutdown fail. A worker still exits when the training process dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # a closed terminal: the training process checkpoints
    numba.set_num_threads(1)  # the kernels are tiny at crop size; leave the cores to the step


def _train_device(name: str) -> str:
    """The torch device of a run: "auto" is CUDA when present; asking for CUDA without it is a
    ConfigError that says so."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"[train] device = '{name}' but this machine has no CUDA GPU (torch "
                              f"{torch.__version__}); use device = \"cpu\" or \"auto\".")
        return name
    if name != "cpu":
        raise ConfigError(f"[train] device = '{name}': use cpu, cuda, cuda:N or auto.")
    return name


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to lr * lr_floor."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def unroll(net: Any, noisy: Any, sigma: Any, bf16: bool) -> Iterator[Any]:
    """Runs the recurrence over a batch of clips as inference does, yielding each frame's Step.

    noisy: (B, T, 6, h, w), sigma: (B, T, 3, h, w) float32 tensors. Motion networks get their
    carried state warped to each frame on the host (streamdn.models.motion), detached there, so
    their clip is a chain of one-step graphs; the plain recursion is back-propagated through
    the whole clip. The state carried on is the yielded step's."""
    import torch

    from streamdn.models.motion import StateWarper

    prev, hidden = net.init_state(noisy[:, 0])
    warper = StateWarper() if net.cfg.motion else None
    count = net.zero_count(noisy[:, 0]) if warper is not None else None
    for t in range(noisy.shape[1]):
        if warper is not None and t:
            prev, hidden, count = warper.warp_tensors(noisy[:, t], prev, hidden, count)
        with torch.autocast(noisy.device.type, dtype=torch.bfloat16, enabled=bf16):
            step = net(noisy[:, t], sigma[:, t], prev, hidden, 1.0 if t else 0.0, count)
        yield step
        prev, hidden, count = step.state, step.hidden, step.count


def clip_loss(net: Any, batch: dict[str, Any], cfg: TrainConfig) -> Any:
    """Runs the recurrence over a batch of clips; returns the mean L1 (+ temporal) loss.

    batch: "noisy", "clean" (B, T, 6, h, w) and "sigma" (B, T, 3, h, w) float32 tensors."""
    noisy, clean = batch["noisy"], batch["clean"]
    motion = bool(net.cfg.motion)
    gate_alone = bool(cfg.gate_from_state and net.cfg.raw_state)
    loss = noisy.new_zeros(())
    last = None
    for t, step in enumerate(unroll(net, noisy, batch["sigma"], cfg.bf16)):
        out = step.out
        if gate_alone:
            # out = state + residual: the output's gradient reaches the residual, not the gate.
            out = out - step.state + step.state.detach()
        loss = loss + (out - clean[:, t]).abs().mean()
        if motion:
            loss = loss + cfg.state_loss * (step.state - clean[:, t]).abs().mean()
        if cfg.temporal_loss and last is not None:
            loss = loss + cfg.temporal_loss * ((out - last) - (clean[:, t] - clean[:, t - 1])).abs().mean()
        last = out
    return loss / noisy.shape[1]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save, atomically: an interruption never leaves a half-written checkpoint."""
    import torch

    write_atomically(path, lambda tmp: torch.save(state, tmp))


def _plot(history: dict[str, list], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    steps, losses = zip(*history["loss"]) if history["loss"] else ((), ())
    a.plot(steps, losses, lw=0.8)
    a.set(xlabel="step", ylabel="train loss (L1, 100-step mean)", yscale="log")
    for label in (history["val"][0][1] if history["val"] else {}):
        b.plot([s for s, _ in history["val"]], [v[label]["psnr"] for _, v in history["val"]], marker="o", label=label)
    b.set(xlabel="step", ylabel="validation PSNR (dB, RGB)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig, *, quiet: bool = False, clips: list | None = None,
          minutes: float | None = None) -> Path:
    """Trains (or resumes) a run; returns the path of the best weights (safetensors).

    Args:
        cfg: the run's settings.
        quiet: no progress bar or messages.
        clips: validation clips (streamdn.data.clips.ValClip), or for a still-image network
            validation pictures (streamdn.data.pictures.ValPicture); the fixed sets when None.
        minutes: stop (checkpoint, return) after this much wall time, for runs done in chunks
            (a GPU machine for a few minutes, a shared machine); the same call resumes. None: no limit.

    Raises:
        ConfigError: an unknown arch, init weights that do not fit it, a CUDA device on a
            machine without one, or minutes that is not positive.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after a checkpoint (the same call resumes).
    """
    import torch
    from tqdm import tqdm

    from streamdn.data.clips import validation_clips
    from streamdn.models.fast import PRESETS, build
    from streamdn.models.macs import count_params, network_macs
    from streamdn.models.network import NetworkModel, save_weights
    from streamdn.models.registry import ModelInfo

    if minutes is not None and not minutes > 0:
        raise ConfigError(f"minutes={minutes}: give a positive number of minutes, or None for no limit.")
    from streamdn.models.photo import PHOTO_PRESETS, is_photo_arch

    photo = is_photo_arch(cfg.arch)
    if cfg.arch not in PRESETS and not photo:
        raise ConfigError(f"[train] arch '{cfg.arch}' is not known; choose one of "
                          f"{', '.join([*PRESETS, *PHOTO_PRESETS])}.")
    torch.set_num_threads(cfg.threads)
    device = _train_device(cfg.device)
    from streamdn.data.clips import photo_pool

    photos = photo_pool(cfg.images)   # a missing or empty folder fails here, not in a data process
    if photos is not None and not quiet:
        print(f"training photographs: {len(photos)} in {', '.join(cfg.images)}", file=sys.stderr)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", asdict(cfg))
    torch.manual_seed(cfg.seed)
    overrides: dict[str, int | bool] = {"deep": cfg.deep} if cfg.deep else {}
    if cfg.motion:
        overrides["motion"] = True
    if cfg.raw_state:
        if not cfg.motion:
            raise ConfigError("[train] raw_state needs motion = true.")
        overrides["raw_state"] = True
    if photo:
        net = _build_photo(cfg)
    else:
        net = build(cfg.arch, overrides or None)
    if cfg.init and not photo:
        from streamdn.models.fast import adapt_state_dict
        from streamdn.models.network import load_weights

        start, _ = load_weights(cfg.init)
        try:
            missing, unexpected = net.load_state_dict(adapt_state_dict(start, net), strict=False)
        except RuntimeError as err:   # tensor shapes differ
            raise ConfigError(f"[train] init '{cfg.init}' does not fit arch '{cfg.arch}': {err}") from err
        new_level = ("down2.", "mid2.", "up2.")
        if unexpected or any(not k.startswith(new_level) for k in missing):
            raise ConfigError(f"[train] init '{cfg.init}' does not fit arch '{cfg.arch}' (missing {missing}, "
                              f"unexpected {unexpected}).")
    if cfg.qat:
        if photo:
            raise ConfigError("[train] qat is for the recurrent video networks (the int8 backend runs those).")
        from streamdn.models.int8 import add_fake_quant, strip_fake_quant

        add_fake_quant(net)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def plain() -> Any:
        """The network as save_weights writes it (float weights, without fake quantisation)."""
        return strip_fake_quant(net) if cfg.qat else net
    step, best = 0, -math.inf
    history: dict[str, list] = {"loss": [], "val": []}
    ckpt = out / "ckpt.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True, map_location="cpu")  # plain tensors and numbers only
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best, history = int(state["step"]), float(state["best"]), json.loads(state["history"])
        if not quiet:
            print(f"resumed {ckpt} at step {step} (best val {best:.2f} dB)", file=sys.stderr)
    card = {"macs_per_px": f"{_photo_macs(net) if photo else network_macs(net):.0f}", "params": str(count_params(net)),
            **({"family": "photo"} if photo else {})}
    info = ModelInfo(cfg.arch, "network", "validation", temporal=not photo)
    if photo:
        from streamdn.data.pictures import validation_pictures
        from streamdn.models.picture import PhotoModel
        from streamdn.tools.picture_train import PictureBatches, picture_loss, validate_pictures

        pictures = clips if clips is not None else validation_pictures(images=cfg.images)
    elif clips is None:
        from streamdn.data.clips import long_validation_clips

        clips = validation_clips(frames=cfg.val_frames) + (long_validation_clips(cfg.val_long) if cfg.val_long else [])

    def checkpoint() -> None:
        _save_checkpoint(ckpt, {"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                                "history": json.dumps(history), "config": json.dumps(asdict(cfg))})

    data = PictureBatches(cfg.steps, cfg.batch, cfg.crop, cfg.images) if photo else _Batches(cfg)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, sampler=range(step, cfg.steps), num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None, worker_init_fn=_worker_init, collate_fn=_as_is,
        # spawn, not fork: a forked child of a process whose Numba/OpenMP threads already ran can hang.
        multiprocessing_context="spawn" if cfg.workers else None)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.arch}", disable=quiet, dynamic_ncols=True)
    last_ckpt, recent = time.monotonic(), []
    deadline = time.monotonic() + 60.0 * minutes if minutes else math.inf
    net.train()
    # Ctrl-C, SIGTERM (`kill PID`, a scheduler's stop) and SIGHUP (a closed terminal) stop the run
    # between two steps: checkpoint, then exit 130. Deferred to a step boundary, a signal never
    # lands inside the data loader's or the checkpoint's own bookkeeping (which could hang the
    # shutdown of the workers); a second one stops at once.
    signals = contextlib.ExitStack()
    stop = signals.enter_context(stop_on_signals())
    batches = iter(loader)
    try:
        for batch in batches:
            stop.check()
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step)
            batch = {k: torch.as_tensor(v).to(device, non_blocking=True) for k, v in batch.items()}
            loss = picture_loss(net, batch, cfg.bf16) if photo else clip_loss(net, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            recent.append(loss.item())
            bar.update(1)
            if step % 100 == 0:
                history["loss"].append((step, float(np.mean(recent))))
                recent = []
            bar.set_postfix(loss=f"{recent[-1] if recent else 0:.4f}", lr=f"{lr_at(cfg, step):.1e}", best=f"{best:.2f}")
            if step % cfg.epoch_steps == 0 or step == cfg.steps:
                net.eval()
                dtype = "bf16" if cfg.bf16 else "fp32"
                if photo:
                    val = validate_pictures(PhotoModel(net, info, device=device, dtype=dtype), pictures)
                else:
                    val = validate(NetworkModel(net, info, device=device, dtype=dtype), clips)
                net.train()
                history["val"].append((step, val))
                tqdm.write(f"step {step}: " + "  ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.4f}"
                                                        for k, v in val.items()), file=sys.stderr)
                if val["mean"]["psnr"] > best:
                    best = val["mean"]["psnr"]
                    save_weights(plain(), out / "best.safetensors", cfg.arch,
                                 {**card, "step": str(step), "val": json.dumps(val), "train_config": json.dumps(asdict(cfg))})
                if cfg.keep_steps:
                    save_weights(plain(), out / f"step{step}.safetensors", cfg.arch,
                                 {**card, "step": str(step), "val": json.dumps(val), "train_config": json.dumps(asdict(cfg))})
                _plot(history, out / "curve.png")
                write_json(out / "history.json", history)
                checkpoint()
                last_ckpt = time.monotonic()
            elif time.monotonic() - last_ckpt > cfg.ckpt_every_s:
                checkpoint()
                last_ckpt = time.monotonic()
            stop.check()
            if time.monotonic() > deadline:
                if not quiet:
                    tqdm.write(f"stopping at step {step} after {minutes:g} min; run again to resume",
                               file=sys.stderr)
                break
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise
    finally:
        del batches   # stops the data workers now, while a signal still cannot cut that short
        signals.close()
    bar.close()
    checkpoint()
    return out / "best.safetensors"


def _build_photo(cfg: TrainConfig) -> Any:
    """The still-image network of a run: the preset, or the `init` weights (which must be a
    still-image network's file)."""
    from streamdn.errors import ModelNotFoundError
    from streamdn.models.photo import build_photo
    from streamdn.models.picture import load_photo_weights

    if not cfg.init:
        return build_photo(cfg.arch)
    try:
        net, _ = load_photo_weights(cfg.init)
    except ModelNotFoundError as err:
        raise ConfigError(f"[train] init: {err}") from err
    return net.train()


def _photo_macs(net: Any) -> float:
    """MAC per pixel of a still-image network (streamdn.models.macs.count_macs on a 64x64 picture)."""
    import torch

    from streamdn.models.macs import count_macs

    return count_macs(net, lambda: net(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32)), 64 * 64)


TRAINED_ON = ("near-clean (gaussian sigma 0-2.5, 10 %), gaussian sigma 2-50, poisson-gaussian peak 10-500 + read 0-6, poisson, camera (linear-light "
              "shot+read, sRGB, JPEG 4:2:0), speckle 5-30 %, salt & pepper 0.5-8 %; RGB noise -> YUV 4:2:0")


PHOTO_TRAINED_ON = ("single pictures (no past) with the video networks' noises and demosaiced sensor noise "
                    "(bayer: linear-light shot + read on an RGGB mosaic, 12 %); RGB, full resolution")


def export(cfg: TrainConfig, dest: str | Path) -> Path:
    """Writes the run's best weights to `dest` with metadata for `streamdn models`
    (val_psnr: mean RGB PSNR on the AWGN sigma 20 validation clips; trained_on; step).

    Raises:
        ConfigError: the run has no best.safetensors yet.
    """
    from streamdn.models.network import load_weights, read_metadata, save_weights
    from streamdn.models.picture import load_photo_weights

    best = Path(cfg.out) / "best.safetensors"
    if not best.is_file():
        raise ConfigError(f"{best} does not exist: train this config first (train(cfg)).")
    photo = read_metadata(best).get("family") == "photo"
    net, meta = load_photo_weights(best) if photo else load_weights(best)
    val = json.loads(meta.get("val", "{}"))
    extra = {k: v for k, v in meta.items() if k not in ("format", "arch", "config")}
    extra["trained_on"] = PHOTO_TRAINED_ON if photo else TRAINED_ON
    if "awgn20" in val:
        extra["val_psnr"] = f"{val['awgn20']['psnr']:.2f}"
    return save_weights(net, dest, meta["arch"], extra)
