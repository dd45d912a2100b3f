"""Self-supervised fine-tuning (`streamdn finetune`): the footage windows, their flips, the
held-out guard, the written weights and card, resuming, and the command's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdn.tools.footage import FootageConfig, held_out_flags, match_weight, plan_windows
from streamdn.data.noise import add_noise, parse_noise
from streamdn.errors import ConfigError
from streamdn.frames import bgr_to_yuv420
from streamdn.kernels import pack_yuv420
from streamdn.tools.finetune import Check, FinetuneConfig, dihedral, finetune, significantly_better
from videos import Spec, make_video


def _packed(bgr: np.ndarray) -> np.ndarray:
    y, u, v = bgr_to_yuv420(np.ascontiguousarray(bgr))
    out = np.empty((y.shape[0] // 2, y.shape[1] // 2, 6), np.float32)
    return pack_yuv420(y, u, v, 1.0 / 255.0, out)


@pytest.mark.parametrize("k", range(8))
def test_flips_of_packed_frames_are_the_packing_of_the_flipped_picture(k: int) -> None:
    rng = np.random.default_rng(k)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    flipped = img
    if k & 1:
        flipped = flipped[:, ::-1]
    if k & 2:
        flipped = flipped[::-1]
    if k & 4:
        flipped = flipped.transpose(1, 0, 2)
    want = torch.from_numpy(_packed(flipped)).permute(2, 0, 1)
    got = dihedral(torch.from_numpy(_packed(img)).permute(2, 0, 1), k, packed=True)
    assert torch.equal(got, want)


def test_windows_spread_over_each_file_and_hold_out_the_last() -> None:
    cfg = FootageConfig(frames=8, windows=10, held_out=0.2)
    plans = plan_windows([300, 100, 5], cfg)
    assert len(plans[0]) > len(plans[1]) > 0 and plans[2] == []
    for starts, n in zip(plans[:2], (300, 100)):
        assert starts[0] == 0 and starts[-1] <= n - 9
        assert all(b - a >= 9 for a, b in zip(starts, starts[1:]))   # windows never overlap
    assert held_out_flags([0, 10, 20, 30, 40], 0.2) == [False, False, False, False, True]
    assert held_out_flags([0], 0.2) == [False]
    with pytest.raises(ConfigError, match="too short"):
        plan_windows([5, 8], cfg)


def test_the_match_weight_drops_changed_pixels_and_samples_from_outside() -> None:
    rng = np.random.default_rng(0)
    out = np.full((40, 40, 6), 0.5, np.float32)
    nxt = out + rng.normal(0, 0.02, out.shape).astype(np.float32)   # leftover noise matches
    nxt[10:20, 10:20] += 0.3                # an object that appeared
    flow = np.zeros((40, 40, 2), np.float32)
    flow[:, 35:, 0] = 10.0                  # the right edge samples from outside the frame
    w = match_weight(out, nxt, flow)
    assert w[25:, :30].mean() > 0.95 and w[5, 25] == 1.0
    assert w[10:20, 10:20].max() == 0.0
    assert w[:, 36:].max() == 0.0


def test_pixels_near_black_or_white_are_left_out() -> None:
    from streamdn.tools.footage import unclipped

    colours = {(120, 120, 120): 1.0, (60, 60, 60): 1.0, (5, 120, 120): 0.0, (250, 250, 250): 0.0, (30, 30, 30): 0.0}
    for bgr, want in colours.items():
        y, u, v = bgr_to_yuv420(np.full((4, 4, 3), bgr, np.uint8))
        out = np.zeros((2, 2, 6), np.float32)
        out[..., :4], out[..., 4], out[..., 5] = y[0, 0] / 255, u[0, 0] / 255, v[0, 0] / 255
        assert unclipped(out, np.full((2, 2), 13.4 / 255, np.float32))[0, 0] == want, bgr
    # The margin follows the noise: a dark grey is kept when the noise is faint.
    y, u, v = bgr_to_yuv420(np.full((4, 4, 3), 30, np.uint8))
    out = np.zeros((2, 2, 6), np.float32)
    out[..., :4], out[..., 4], out[..., 5] = y[0, 0] / 255, u[0, 0] / 255, v[0, 0] / 255
    assert unclipped(out, np.full((2, 2), 2.0 / 255, np.float32))[0, 0] == 1.0


def test_the_guard_wants_a_gain_beyond_the_measurements_noise() -> None:
    base = Check(np.array([1.0, 1.0, 1.0, 1.0]))
    assert significantly_better(Check(np.array([0.9, 0.91, 0.89, 0.9])), base)
    assert not significantly_better(Check(np.array([0.5, 1.4, 0.9, 1.1])), base)   # too noisy to tell
    assert not significantly_better(Check(np.array([1.1, 1.1, 1.1, 1.1])), base)


def test_bayer_noise_is_spatially_correlated_and_leaves_the_picture() -> None:
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), 120, np.uint8)
    noisy = add_noise(img, parse_noise("bayer_lowlight"), rng)
    d = noisy - img
    corr = np.corrcoef(d[:, :-1, 1].ravel(), d[:, 1:, 1].ravel())[0, 1]
    assert corr > 0.2 and d.std() > 5.0
    assert abs(float(d.mean())) < 1.5
    assert parse_noise("bayer_lowlight").label.startswith("bayer_")


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    from streamdn.models.fast import build
    from streamdn.models.network import save_weights

    torch.manual_seed(0)
    return save_weights(build("tdn_tiny"), tmp_path / "tiny.safetensors", "tdn_tiny")


def _footage(tmp_path: Path) -> list[str]:
    return [str(make_video(tmp_path / f"f{i}.mp4", Spec(width=96, height=64, frames=30, sigma=15.0, seed=i)))
            for i in range(2)]


def _cfg(base: Path, out: Path, **kw: object) -> FinetuneConfig:
    args: dict[str, object] = dict(base=str(base), out=str(out), minutes=0.3, crop=16, batch=2, check_every_s=1.0,
                                   footage=FootageConfig(frames=3, region=24, windows=8, margin=8))
    args.update(kw)
    return FinetuneConfig(**args)  # type: ignore[arg-type]


def test_finetune_writes_weights_that_load_and_a_card_and_continues(tmp_path: Path, tiny_base: Path) -> None:
    from streamdn.denoiser import Denoiser
    from streamdn.frames import Frame

    files = _footage(tmp_path)
    out = tmp_path / "mine.safetensors"
    res = finetune(files, _cfg(tiny_base, out, lr=3e-3), quiet=True)
    assert out.is_file() and res.card.is_file() and (tmp_path / "mine.safetensors.run" / "ckpt.pt").is_file()
    assert res.steps > 0 and res.windows[0] > 0 and res.windows[1] > 0
    card = res.card.read_text()
    assert "f0.mp4" in card and "Held-out check" in card
    with Denoiser(str(out), device="cpu") as dn:
        y = np.full((32, 48), 100, np.uint8)
        uv = np.full((16, 24), 128, np.uint8)
        assert dn(Frame(y=y, u=uv, v=uv)).y.shape == (32, 48)
        assert ("self-supervised" in dn.model.info.summary) == res.improved
    # The same call continues the run where it stopped.
    again = finetune(files, _cfg(tiny_base, out, lr=3e-3), quiet=True)
    assert again.steps > res.steps
    # Other settings do not silently continue an unrelated run.
    with pytest.raises(ConfigError, match="other footage or settings"):
        finetune(files, _cfg(tiny_base, out, crop=24), quiet=True)


def test_without_a_measurable_gain_the_base_is_kept(tmp_path: Path, tiny_base: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "same.safetensors"
    res = finetune(_footage(tmp_path), _cfg(tiny_base, out, lr=1e-12), quiet=True)
    assert not res.improved
    base, got = load_file(str(tiny_base)), load_file(str(out))
    assert all(torch.equal(base[k], got[k]) for k in base)
    assert "unchanged" in res.card.read_text()


def test_finetune_refuses_bad_settings(tmp_path: Path, tiny_base: Path) -> None:
    files = _footage(tmp_path)
    with pytest.raises(ConfigError, match="NAME.safetensors"):
        _cfg(tiny_base, tmp_path / "mine.pt")
    with pytest.raises(ConfigError, match="does not exist; create it"):
        finetune(files, _cfg(tiny_base, tmp_path / "nowhere" / "m.safetensors"), quiet=True)
    with pytest.raises(ConfigError, match="not a trained network"):
        finetune(files, _cfg(Path("nonesuch"), tmp_path / "m.safetensors"), quiet=True)
    assert not list(tmp_path.glob("m.safetensors*"))


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "streamdn", "finetune", str(tmp_path / "missing.mp4"), "-o",
                          str(tmp_path / "m.safetensors")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "does not exist" in run.stderr and "Traceback" not in run.stderr
    short = make_video(tmp_path / "short.mp4", Spec(frames=5))
    run = subprocess.run([sys.executable, "-m", "streamdn", "finetune", str(short), "-o",
                          str(tmp_path / "m.safetensors"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "too short" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.gpu
def test_finetune_runs_on_a_cuda_device(tmp_path: Path, tiny_base: Path) -> None:
    out = tmp_path / "gpu.safetensors"
    res = finetune(_footage(tmp_path), _cfg(tiny_base, out, lr=3e-3, device="cuda"), quiet=True)
    assert out.is_file() and res.steps > 0


def test_asking_for_cuda_without_it_says_so(tmp_path: Path, tiny_base: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        finetune(_footage(tmp_path), _cfg(tiny_base, tmp_path / "m.safetensors", device="cuda"), quiet=True)
