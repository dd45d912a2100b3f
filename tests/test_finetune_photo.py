"""Self-supervised fine-tuning of the still-image network on bursts (`streamdn finetune BURST...
--base photo`): the pairs, their held-out share, the written weights and card, resuming, the
guard, and the command's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdn.errors import ConfigError, SourceError
from streamdn.tools.finetune import FinetuneConfig
from streamdn.tools.finetune_photo import (burst_folders, finetune_photo, held_out_pairs, is_photo_base, plan_crops,
                                          training_batch)
from streamdn.tools.footage import FootageConfig

from stills_helpers import scene


@pytest.fixture
def tiny_photo(tmp_path: Path) -> Path:
    from streamdn.models.network import save_weights
    from streamdn.models.photo import build_photo

    torch.manual_seed(0)
    return save_weights(build_photo("photo_tiny"), tmp_path / "tiny_photo.safetensors", "photo_tiny",
                        {"family": "photo"})


def _bursts(tmp_path: Path, count: int = 2, shots: int = 4, sigma: float = 15.0) -> list[str]:
    """Folders of hand-held shots (shifted windows of one scene, fresh Gaussian noise each)."""
    from streamdn.io.stills import Still, write_still

    rng = np.random.default_rng(0)
    folders = []
    for b in range(count):
        big = scene(80, 112) * 255.0
        folder = tmp_path / f"burst{b}"
        folder.mkdir()
        for k in range(shots):
            dy, dx = (int(v) for v in rng.integers(0, 8, 2))
            shot = big[dy:dy + 64, dx:dx + 96] + rng.normal(0.0, sigma, (64, 96, 3))
            write_still(Still(np.clip(shot + 0.5, 0, 255).astype(np.uint8)), folder / f"shot{k + 1}.png")
        folders.append(str(folder))
    return folders


def _cfg(base: Path, out: Path, **kw: object) -> FinetuneConfig:
    args: dict[str, object] = dict(base=str(base), out=str(out), minutes=0.2, crop=16, batch=2, check_every_s=1.0,
                                   rehearsal=0.5, footage=FootageConfig(region=24, windows=16, held_out=0.25))
    args.update(kw)
    return FinetuneConfig(**args)  # type: ignore[arg-type]


def test_pairs_are_spread_and_the_last_are_held_out() -> None:
    plan = plan_crops([4, 8], 24)
    assert [len(p) for p in plan] == [4, 8] and sum(map(sum, plan)) == 24 and min(map(min, plan)) >= 1
    assert held_out_pairs(8, 0.15) == [False] * 6 + [True] * 2
    assert held_out_pairs(2, 0.5) == [False, True]
    assert held_out_pairs(1, 0.5) == [False]


def test_bursts_are_folders_of_two_or_more_shots(tmp_path: Path) -> None:
    folders = _bursts(tmp_path, count=1, shots=3)
    assert [p.name for p in burst_folders(folders)[0]] == ["shot1.png", "shot2.png", "shot3.png"]
    with pytest.raises(SourceError, match="not a folder"):
        burst_folders([str(tmp_path / "burst0" / "shot1.png")])
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes((tmp_path / "burst0" / "shot1.png").read_bytes())
    with pytest.raises(SourceError, match="two or more"):
        burst_folders([str(tmp_path / "one")])


def test_only_still_image_networks_take_bursts(tiny_photo: Path) -> None:
    assert is_photo_base("photo") and is_photo_base(str(tiny_photo))
    assert not is_photo_base("fast")


def test_finetune_photo_writes_weights_that_load_a_card_and_continues(tmp_path: Path, tiny_photo: Path) -> None:
    from streamdn import Denoiser

    folders = _bursts(tmp_path)
    out = tmp_path / "mine.safetensors"
    res = finetune_photo(folders, _cfg(tiny_photo, out, lr=3e-3), quiet=True)
    assert out.is_file() and res.card.is_file() and (tmp_path / "mine.safetensors.run" / "ckpt.pt").is_file()
    assert res.steps > 0 and res.windows[0] > 0 and res.windows[1] > 0
    card = res.card.read_text()
    assert "burst0" in card and "Held-out check" in card and "8 shots" in card
    with Denoiser(str(out), device="cpu") as dn:
        assert type(dn.model).__name__ == "PhotoModel"
        assert ("self-supervised" in dn.model.info.summary) == res.improved
        assert dn(np.full((32, 48, 3), 100, np.uint8)).shape == (32, 48, 3)
    again = finetune_photo(folders, _cfg(tiny_photo, out, lr=3e-3), quiet=True)
    assert again.steps > res.steps
    with pytest.raises(ConfigError, match="other bursts or settings"):
        finetune_photo(folders, _cfg(tiny_photo, out, crop=24), quiet=True)


def test_without_a_measurable_gain_the_base_is_kept(tmp_path: Path, tiny_photo: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "same.safetensors"
    res = finetune_photo(_bursts(tmp_path), _cfg(tiny_photo, out, lr=1e-12), quiet=True)
    assert not res.improved
    base, got = load_file(str(tiny_photo)), load_file(str(out))
    assert all(torch.equal(base[k], got[k]) for k in base)
    assert "unchanged" in res.card.read_text()


def test_training_squares_keep_input_map_target_and_weight_together(tmp_path: Path, tiny_photo: Path) -> None:
    from streamdn import Denoiser
    from streamdn.tools.finetune_photo import gather_pairs

    cfg = _cfg(tiny_photo, tmp_path / "m.safetensors")
    with Denoiser(str(tiny_photo), device="cpu") as dn:
        crops = gather_pairs(burst_folders(_bursts(tmp_path)), dn.model, dn, cfg)
    assert len(crops) == 16 and sum(c.held_out for c in crops) == 4      # the last pair of each 4-shot burst
    c = crops[0]
    assert c.noisy.shape == c.target.shape == (3, 48, 48) and c.sigma.shape == (3, 24, 24)
    assert c.weight.shape == (1, 48, 48) and 0.5 < float(c.weight.mean()) <= 1.0
    # The target is the next shot on the same grid: noise apart, it matches the input.
    err = np.abs(c.noisy.astype(np.float32) - c.target.astype(np.float32))[:, 8:-8, 8:-8].mean() * 255
    assert err < 25.0        # two shots of sigma 15: mean |difference| ~ 17 levels where aligned
    b = training_batch([c], 32, 3, np.random.default_rng(0))
    assert b["noisy"].shape == (3, 3, 32, 32) and b["sigma"].shape == (3, 3, 16, 16)
    assert b["weight"].shape == (3, 1, 32, 32)


def test_the_command_takes_bursts_for_photo_and_says_what_is_wrong(tmp_path: Path) -> None:
    folders = _bursts(tmp_path, count=1, shots=3)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    run = subprocess.run([sys.executable, "-m", "streamdn", "finetune", str(video), "--base", "photo", "-o",
                          str(tmp_path / "m.safetensors"), "-q"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "not a folder" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "streamdn", "finetune", *folders, "--base", "photo", "-o",
                          str(tmp_path / "m.safetensors"), "--minutes", "0.3", "--windows", "6", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stderr and (tmp_path / "m.safetensors").is_file()
