"""The noise gate (block statistics -> a plane's sigma) is one rule, honoured at every percentile,
and the torch tensor path uses it as the numpy path does."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.kernels import block_noise_stats, estimate_sigma, percentile_bias, sigma_from_block_stats


def _noise(sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (128.0 + rng.normal(0.0, sigma, (384, 512))).astype(np.float32)


@pytest.mark.parametrize("percentile", [10.0, 15.0, 20.0, 30.0, 40.0, 50.0])
def test_every_percentile_estimates_pure_noise(percentile: float) -> None:
    # The bias correction follows the percentile asked for, so on pure Gaussian noise every low
    # percentile gives the true sigma (a percentile without its own correction reads 4-7 % high).
    assert estimate_sigma(_noise(10.0), percentile=percentile) == pytest.approx(10.0, rel=0.02)


def test_bias_is_one_at_the_median_and_grows_with_the_percentile() -> None:
    assert percentile_bias(50.0) == pytest.approx(1.0)
    assert percentile_bias(10.0) < percentile_bias(15.0) < percentile_bias(40.0) < 1.0 < percentile_bias(70.0)
    with pytest.raises(ValueError, match="percentile"):
        percentile_bias(0.0)


def test_estimate_sigma_is_the_gate_on_block_stats() -> None:
    plane = _noise(7.0, seed=3)
    stats = block_noise_stats(plane, 16, np.empty((384 // 16, 512 // 16, 2), np.float32))
    for p in (15.0, 30.0):
        assert estimate_sigma(plane, percentile=p) == sigma_from_block_stats(stats, 255.0, 16, p)


def test_gate_skips_clipped_and_missing_blocks() -> None:
    stats = np.zeros((4, 4, 2), np.float32)
    stats[..., 0] = 5.0
    stats[..., 1] = 128.0
    stats[0, :, 0], stats[0, :, 1] = 50.0, 250.0          # near white: skipped while 8 others remain
    stats[1, 0, 0] = np.nan                               # no value
    assert sigma_from_block_stats(stats) == pytest.approx(5.0 / percentile_bias(15.0))
    assert sigma_from_block_stats(np.zeros((0, 0, 2), np.float32)) == 0.0


def test_tensor_path_uses_the_same_gate() -> None:
    torch = pytest.importorskip("torch")
    from streamdn.models import create_model
    from streamdn.tensors import TensorPath, block_stats, rgb_to_yuv420

    seen: list[tuple[float, float, float]] = []

    def record(est: tuple[float, float, float]) -> tuple[float, float, float]:
        seen.append(est)
        return est

    rng = np.random.default_rng(1)
    rgb = torch.from_numpy(np.clip(128 + rng.normal(0, 12, (3, 64, 96)), 0, 255).round().astype(np.float32))
    TensorPath(create_model("tdn_tiny", dtype="fp32"), record).step(rgb)
    planes = rgb_to_yuv420(rgb)
    assert seen == [tuple(sigma_from_block_stats(block_stats(p).numpy()) for p in planes)]
