"""Training: configs, generated clips, a tiny overfit run, and resuming after an interruption."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdn.data.clips import ClipSpec, ValClip, noisy_clip, packed_clip, render_clip, training_batch
from streamdn.errors import ConfigError
from streamdn.models.fast import build
from streamdn.models.network import read_metadata
from streamdn.data.noise import NoiseSpec
from streamdn.tools.train import (TrainConfig, _save_checkpoint, clip_loss, load_train_config, lr_at, train,
                                  validate_models)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine two OpenMP threads spin-wait and run 10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TRAIN_CONFIGS = sorted((ROOT / "configs").glob("train-*.toml"))


def test_the_shipped_weights_config_is_among_those_checked() -> None:
    assert "train-fast-long.toml" in {p.name for p in TRAIN_CONFIGS}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_train_configs_load(path: Path) -> None:
    """Every configs/train-*.toml loads and describes a run train() can start: a network that
    builds with its settings, a schedule that fits, an even crop and, for fine-tuning, weights
    to start from."""
    from streamdn.models.fast import build
    from streamdn.models.photo import build_photo, is_photo_arch

    cfg = load_train_config(str(path))
    net = build_photo(cfg.arch) if is_photo_arch(cfg.arch) else build(cfg.arch, {"deep": cfg.deep} if cfg.deep else None)
    assert sum(p.numel() for p in net.parameters()) > 0
    assert 0 <= cfg.warmup < cfg.steps and 0 < cfg.epoch_steps <= cfg.steps
    assert cfg.crop % 2 == 0 and cfg.crop >= 32 and cfg.batch >= 1
    assert cfg.lr > 0 and 0 <= cfg.lr_floor <= 1 and 0 < lr_at(cfg, cfg.steps - 1) <= cfg.lr
    assert cfg.device in ("cpu", "auto") or cfg.device.startswith("cuda")
    assert cfg.init == "" or cfg.init.endswith(".safetensors")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstepz = 3\n")
    with pytest.raises(ConfigError, match="stepz.*valid keys"):
        load_train_config(str(bad))
    with pytest.raises(ConfigError, match="batch = 'x' should be a int"):
        load_train_config(None, {"batch": "x"})
    assert load_train_config(None, {"lr": 1}).lr == 1.0


def test_lr_schedule() -> None:
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, lr_floor=0.1)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 10) == pytest.approx(1.0)
    assert lr_at(cfg, 100) == pytest.approx(0.1)


def test_training_batches_are_a_function_of_the_step() -> None:
    a = training_batch(3, 100, 2, 32)
    b = training_batch(3, 100, 2, 32)
    c = training_batch(4, 100, 2, 32)
    assert a["noisy"].shape[0] == 2 and a["noisy"].shape[2:] == (6, 16, 16) and a["sigma"].shape[2] == 3
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["clean"], c["clean"])
    assert a["noisy"].dtype == np.float32 and 0 <= a["noisy"].min() and a["noisy"].max() <= 1


def test_static_clip_is_static_and_moving_clip_moves() -> None:
    rng = np.random.default_rng(0)
    still = render_clip(ClipSpec(frames=3, size=(32, 48), speed=0.0, objects=0), rng)
    assert still.shape == (3, 32, 48, 3) and np.array_equal(still[0], still[2])
    moving = render_clip(ClipSpec(frames=3, size=(32, 48), speed=2.0, objects=0), np.random.default_rng(1))
    assert not np.array_equal(moving[0], moving[2])


def test_tiny_network_overfits_one_clip() -> None:
    """A few seconds of training on one static noisy clip: the loss must fall to about what
    plain temporal averaging gives (mean of 1/sqrt(t+1) over 6 frames = 0.61 of the noise), and
    the learned gate must use the past (alpha well above its initial 0.27 on a static clip)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clean = render_clip(ClipSpec(frames=6, size=(32, 32), speed=0.0, objects=0), rng)
    noisy = np.stack([np.clip(f + rng.normal(0, 20, f.shape) + 0.5, 0, 255).astype(np.uint8) for f in clean])
    batch = {k: torch.from_numpy(v)[None] for k, v in packed_clip(clean, noisy).items()}
    net = build("tdn_tiny")
    cfg = TrainConfig(arch="tdn_tiny", bf16=False, temporal_loss=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    start = float((batch["noisy"] - batch["clean"]).abs().mean())
    for _ in range(100):
        loss = clip_loss(net, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * start
    with torch.no_grad():
        prev, hidden = net.init_state(batch["noisy"][:, 0])
        out, hidden = net(batch["noisy"][:, 0], batch["sigma"][:, 0], prev, hidden, 0.0)[:2]
        alpha = net(batch["noisy"][:, 1], batch["sigma"][:, 1], out, hidden, 1.0).alpha
    assert float(alpha.mean()) > 0.5


def _tiny_run(tmp_path: Path, **overrides: object) -> tuple[TrainConfig, list[ValClip]]:
    """The tiny network's config with its run folder under tmp_path (plus overrides), and one
    2-frame validation clip."""
    cfg = replace(load_train_config(str(ROOT / "configs" / "train-tiny.toml")), out=str(tmp_path / "run"),
                  **overrides)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    clean = render_clip(ClipSpec(frames=2, size=(32, 48), speed=1.0, objects=0), rng)
    return cfg, [ValClip("tiny", clean, noisy_clip(clean, NoiseSpec("gaussian", 20.0), rng), "awgn20")]


def test_train_writes_outputs_and_resumes(tmp_path: Path) -> None:
    cfg, clips = _tiny_run(tmp_path, steps=2, epoch_steps=2, batch=1, crop=32, val_frames=2, workers=0)
    best = train(cfg, quiet=True, clips=clips)
    assert read_metadata(best)["arch"] == "tdn_tiny"
    run = tmp_path / "run"
    for name in ("ckpt.pt", "curve.png", "history.json", "config.json"):
        assert (run / name).is_file()
    state = torch.load(run / "ckpt.pt", weights_only=True)
    assert state["step"] == 2
    # An interrupted run carries on from its checkpoint with the same command (here: more steps).
    train(replace(cfg, steps=4), quiet=True, clips=clips)
    state = torch.load(run / "ckpt.pt", weights_only=True)
    assert state["step"] == 4
    history = json.loads(state["history"])
    assert [s for s, _ in history["val"]] == [2, 4]


def test_a_time_limited_run_stops_with_a_checkpoint_and_resumes(tmp_path: Path) -> None:
    cfg, clips = _tiny_run(tmp_path, steps=100_000, epoch_steps=100_000, batch=1, crop=32, val_frames=2, workers=0)
    train(cfg, quiet=True, clips=clips, minutes=0.02)
    first = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)["step"]
    assert 0 < first < 100_000
    train(cfg, quiet=True, clips=clips, minutes=0.02)
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)["step"] > first


def test_noise_spec_used_by_training_is_valid() -> None:
    from streamdn.data.clips import random_noise

    rng = np.random.default_rng(0)
    kinds = {random_noise(rng).kind for _ in range(200)}
    assert kinds == {"gaussian", "poisson_gaussian", "poisson", "camera", "speckle", "salt_pepper"}


def test_fine_tuning_adds_the_deep_level(tmp_path: Path) -> None:
    """init weights without the eighth-resolution level + deep > 0: loads, adds the level, trains;
    init weights of another architecture: a clear ConfigError."""
    from streamdn.models.fast import build
    from streamdn.models.network import save_weights

    start = save_weights(build("tdn_tiny"), tmp_path / "start.safetensors", "tdn_tiny")
    cfg, clips = _tiny_run(tmp_path, steps=1, epoch_steps=1, batch=1, crop=32, val_frames=2, workers=0,
                           init=str(start), deep=8)
    best = train(cfg, quiet=True, clips=clips)
    assert json.loads(read_metadata(best)["config"])["deep"] == 8
    other = save_weights(build("fast"), tmp_path / "other.safetensors", "fast")
    with pytest.raises(ConfigError, match="does not fit"):
        train(replace(cfg, init=str(other), out=str(tmp_path / "run2")), quiet=True, clips=clips)


def test_cuda_training_without_a_gpu_says_so(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = replace(load_train_config(str(ROOT / "configs" / "train-tiny.toml")), out=str(tmp_path / "run"),
                  steps=1, device="cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(cfg, quiet=True, clips=[])


@pytest.mark.gpu
def test_two_steps_on_cuda(tmp_path: Path) -> None:
    cfg, clips = _tiny_run(tmp_path, steps=2, epoch_steps=2, batch=2, crop=32, val_frames=2, workers=0, device="cuda")
    best = train(cfg, quiet=True, clips=clips)
    assert read_metadata(best)["arch"] == "tdn_tiny"


def test_validation_clips_do_not_depend_on_the_other_noises_asked_for() -> None:
    from streamdn.data.clips import validation_clips

    alone = validation_clips(frames=2, size=(32, 48), noises=("sp5",))
    together = [c for c in validation_clips(frames=2, size=(32, 48), noises=("awgn20", "sp5")) if c.noise == "sp5"]
    assert [c.name for c in alone] == [c.name for c in together]
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a.noisy, b.noisy)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stopped_training_run_checkpoints_and_exits(tmp_path: Path, sig: str) -> None:
    """`kill PID` or Ctrl-C (sent to the whole process group, data worker included) ends a run with a
    checkpoint, exit code 130 and one line, no traceback; the same command then resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "streamdn", "train", "--config", str(ROOT / "configs" / "train-tiny.toml"), "-q",
           "--set", f"out='{run}'", "--set", "steps=100000", "--set", "epoch_steps=100000", "--set", "workers=1",
           "--set", "crop=32", "--set", "batch=1", "--set", "val_frames=2", "--set", "ckpt_every_s=0.5",
           "--set", "threads=1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "ckpt.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.killpg(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to resume" in err
    assert torch.load(run / "ckpt.pt", weights_only=True)["step"] >= 1


class _Unsaveable:
    """Stops torch.save half-way, as a full disk or a kill would."""

    def __reduce__(self) -> tuple:
        raise OSError("no space left on device")


def test_a_failed_checkpoint_write_keeps_the_old_one_and_leaves_no_temporary(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    _save_checkpoint(ckpt, {"step": 1})
    with pytest.raises(OSError, match="no space"):
        _save_checkpoint(ckpt, {"step": 2, "model": torch.zeros(1000), "bad": _Unsaveable()})
    assert torch.load(ckpt, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    _save_checkpoint(ckpt, {"step": 3})
    assert torch.load(ckpt, weights_only=True)["step"] == 3 and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_train_rejects_a_time_limit_that_is_not_positive(tmp_path: Path) -> None:
    cfg, clips = _tiny_run(tmp_path, steps=1, workers=0)
    with pytest.raises(ConfigError, match="minutes=0"):
        train(cfg, quiet=True, clips=clips, minutes=0)
    assert not (tmp_path / "run").exists()


def test_validate_cli_prints_and_writes_the_standard_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`streamdn train --validate noisy --noises sp5 --json F`: the table and the JSON give the
    PSNR/SSIM/flicker of the noisy input computed with streamdn.metrics on the validation clips."""
    import argparse

    from streamdn.cli.train import add_parser, run
    from streamdn.data.clips import validation_clips
    from streamdn.metrics import frame_scores

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "val.json"
    assert run(parser.parse_args(["train", "--validate", "noisy", "--noises", "sp5", "--json", str(out)])) == 0
    got = json.loads(out.read_text())["noisy"]
    scores = [frame_scores(c.clean, c.noisy) for c in validation_clips(noises=("sp5",))]
    for metric in ("psnr", "ssim", "flicker"):
        want = float(np.nanmean([v for s in scores for v in s[metric]]))
        assert got["sp5"][metric] == pytest.approx(want, rel=1e-9), metric
    assert got["mean"] == got["sp5"]
    printed = capsys.readouterr().out
    assert f"{got['sp5']['psnr']:.2f} {got['sp5']['ssim']:.4f}" in printed
    with pytest.raises(ConfigError, match="--noises"):
        run(parser.parse_args(["train", "--validate", "noisy", "--noises", "awgn"]))
    with pytest.raises(ConfigError, match="noises"):
        validate_models(["noisy"], ["awgn"])


def _train_cli(args: list[str]) -> int:
    import argparse

    from streamdn.cli.train import add_parser, run

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["train", *args]))


def test_validate_device_is_checked_and_belongs_to_validate() -> None:
    """`--device` picks where --validate runs the networks: a device that is not there is a usage
    error that says so, and on a training run it points to [train] device."""
    from streamdn.errors import DeviceError

    with pytest.raises(ConfigError, match="--set device=cpu"):
        _train_cli(["--device", "cpu", "--minutes", "1"])
    with pytest.raises(ConfigError, match="not valid"):
        _train_cli(["--validate", "noisy", "--noises", "sp5", "--device", "gpu"])
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            _train_cli(["--validate", "noisy", "--noises", "sp5", "--device", "cuda"])


@pytest.mark.gpu
def test_validation_on_cuda_matches_the_cpu(tmp_path: Path) -> None:
    """`streamdn train --validate fast fast_mc --device cuda`: the networks in fp16 on the GPU
    score as on the CPU (within 0.15 dB; an H200 gave 32.56 / 34.21 dB awgn20 against 32.50 /
    34.18 for fast without its long average and fast_mc)."""
    out_gpu, out_cpu = tmp_path / "gpu.json", tmp_path / "cpu.json"
    assert _train_cli(["--validate", "fast", "fast_mc", "--noises", "awgn20", "--device", "cuda",
                       "--json", str(out_gpu)]) == 0
    assert _train_cli(["--validate", "fast_mc", "--noises", "awgn20", "--json", str(out_cpu)]) == 0
    gpu, cpu = json.loads(out_gpu.read_text()), json.loads(out_cpu.read_text())
    assert gpu["fast_mc"]["awgn20"]["psnr"] == pytest.approx(cpu["fast_mc"]["awgn20"]["psnr"], abs=0.15)
    assert gpu["fast"]["awgn20"]["psnr"] > 31.5


def test_train_config_images(tmp_path: Path) -> None:
    """[train] images is a list of folders; anything else is a ConfigError that says so."""
    from streamdn.errors import ConfigError
    from streamdn.tools.train import load_train_config

    assert load_train_config(None, {"images": [str(tmp_path)]}).images == [str(tmp_path)]
    assert load_train_config(None).images == []
    with pytest.raises(ConfigError, match="list of folder names"):
        load_train_config(None, {"images": [1]})
    with pytest.raises(ConfigError, match="list of folder names"):
        load_train_config(None, {"images": str(tmp_path)})


def _raw_batch(frames: int = 3) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(1)
    clean = render_clip(ClipSpec(frames=frames, size=(32, 32), speed=0.0, objects=0), rng)
    noisy = noisy_clip(clean, NoiseSpec("gaussian", 20.0), rng)
    return {k: torch.from_numpy(v)[None] for k, v in packed_clip(clean, noisy).items()}


@pytest.mark.parametrize("gate_from_state", [False, True])
def test_gate_from_state_keeps_the_output_loss_off_the_gate(gate_from_state: bool) -> None:
    """With gate_from_state the gate rows of the head get no gradient from the output's loss
    (only the state loss trains them); the residual rows still learn from it."""
    torch.manual_seed(0)
    net = build("tdn_tiny", {"motion": True, "raw_state": True})
    cfg = TrainConfig(arch="tdn_tiny", bf16=False, motion=True, raw_state=True, state_loss=0.0,
                      gate_from_state=gate_from_state)
    clip_loss(net, _raw_batch(), cfg).backward()
    grad = net.head.weight.grad
    gate = grad[6:12].abs().sum().item()
    assert grad[:6].abs().sum().item() > 0
    assert (gate == 0.0) if gate_from_state else (gate > 0.0)
    # The state loss reaches the gate either way.
    net.zero_grad()
    clip_loss(net, _raw_batch(), replace(cfg, state_loss=1.0)).backward()
    assert net.head.weight.grad[6:12].abs().sum().item() > 0


def test_long_validation_clips() -> None:
    from streamdn.data.clips import LONG_LABEL, long_validation_clips

    clips = long_validation_clips(frames=6, size=(48, 64))
    assert [c.noise for c in clips] == [LONG_LABEL, LONG_LABEL]
    static, pan = clips
    assert static.clean.shape == (6, 48, 64, 3)
    assert np.array_equal(static.clean[0], static.clean[-1])
    assert not np.array_equal(pan.clean[0], pan.clean[-1])
    assert np.array_equal(long_validation_clips(frames=6, size=(48, 64))[1].noisy, pan.noisy)
    with pytest.raises(ConfigError):
        long_validation_clips(frames=1)


def test_keep_steps_keeps_every_validated_step(tmp_path: Path) -> None:
    cfg, clips = _tiny_run(tmp_path, steps=2, epoch_steps=1, batch=1, crop=32, val_frames=2, workers=0,
                           keep_steps=True)
    train(cfg, quiet=True, clips=clips)
    for step in (1, 2):
        assert read_metadata(tmp_path / "run" / f"step{step}.safetensors")["step"] == str(step)
