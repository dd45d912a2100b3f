"""Noise synthesis: the statistics of every kind (mean, variance, signal dependence), seeds."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.data.noise import NoiseSpec, add_noise, add_noise_uint8, noise_sigma_at, parse_noise

N = 100_000


def _flat(level: float, shape: tuple[int, ...] = (N,)) -> np.ndarray:
    return np.full(shape, level, np.float32)


@pytest.mark.parametrize("sigma", [5.0, 20.0, 40.0])
def test_gaussian_mean_and_variance(sigma: float) -> None:
    y = add_noise(_flat(128.0), NoiseSpec("gaussian", sigma=sigma), np.random.default_rng(0))
    assert abs(y.mean() - 128.0) < 0.2
    assert abs(y.std() - sigma) < 0.02 * sigma


@pytest.mark.parametrize("level", [20.0, 80.0, 160.0])
@pytest.mark.parametrize("kind,read", [("poisson", 0.0), ("poisson_gaussian", 4.0)])
def test_shot_noise_variance_follows_the_signal(level: float, kind: str, read: float) -> None:
    spec = NoiseSpec(kind, sigma=read, peak=60.0)
    y = add_noise(_flat(level), spec, np.random.default_rng(1))
    want = level * 255.0 / 60.0 + read ** 2          # gain * level + read^2, 8-bit units
    assert abs(y.mean() - level) < 0.3
    assert abs(y.var() - want) < 0.03 * want
    assert abs(float(noise_sigma_at(spec, level)) - np.sqrt(want)) < 1e-6


def test_speckle_is_proportional_to_the_signal() -> None:
    spec = NoiseSpec("speckle", sigma=20.0)
    stds = [add_noise(_flat(lvl), spec, np.random.default_rng(2)).std() for lvl in (50.0, 100.0)]
    assert abs(stds[0] - 10.0) < 0.2 and abs(stds[1] - 20.0) < 0.4


def test_salt_and_pepper_hits_whole_pixels() -> None:
    img = _flat(100.0, (300, 400, 3))
    y = add_noise(img, NoiseSpec("salt_pepper", sigma=5.0), np.random.default_rng(3))
    changed = np.any(y != 100.0, axis=2)
    assert abs(changed.mean() - 0.05) < 0.003
    vals = y[changed]
    assert set(np.unique(vals)) <= {0.0, 255.0}
    assert np.all(vals.min(axis=1) == vals.max(axis=1))   # all three channels alike
    assert abs((vals[:, 0] == 255.0).mean() - 0.5) < 0.03


def test_camera_noise_is_signal_dependent_and_compressed() -> None:
    img = np.zeros((64, 128, 3), np.float32)
    img[:, :64], img[:, 64:] = 40.0, 200.0
    y = add_noise(img, NoiseSpec("camera", sigma=3.0, peak=40.0, quality=80), np.random.default_rng(4))
    assert y.shape == img.shape and y.dtype == np.float32
    assert np.allclose(y, np.round(y))                      # went through an 8-bit JPEG
    dark, bright = y[:, 8:56], y[:, 72:120]
    assert dark.std() > 2.0 and bright.std() > 2.0
    assert abs(dark.mean() - 40.0) < 6.0 and abs(bright.mean() - 200.0) < 6.0


def test_every_draw_is_reproducible_from_its_seed() -> None:
    img = np.random.default_rng(9).integers(0, 256, (32, 48, 3)).astype(np.uint8)
    for name in ("awgn20", "sp5", "speckle15", "poisson30", "pg_lowlight", "camera_lowlight"):
        spec = parse_noise(name)
        a = add_noise_uint8(img, spec, np.random.default_rng(5))
        b = add_noise_uint8(img, spec, np.random.default_rng(5))
        c = add_noise_uint8(img, spec, np.random.default_rng(6))
        assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, c), name


def test_results_are_clipped_like_video() -> None:
    y = add_noise(_flat(250.0), NoiseSpec("gaussian", sigma=30.0), np.random.default_rng(7))
    assert y.min() >= 0.0 and y.max() <= 255.0


def test_parse_noise_names_and_errors() -> None:
    assert parse_noise("awgn25") == NoiseSpec("gaussian", sigma=25.0)
    assert parse_noise("sp2.5").kind == "salt_pepper"
    assert parse_noise("pg_lowlight").kind == "poisson_gaussian"
    with pytest.raises(ValueError, match="not known"):
        parse_noise("blur3")
    with pytest.raises(ValueError, match="not known"):
        NoiseSpec("rain")
