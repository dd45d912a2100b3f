"""Impulse (salt-and-pepper) detection and the switching median before the model."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn import Denoiser
from streamdn.denoiser import IMPULSE_MIN_SHARE, remove_frame_impulses
from streamdn.frames import Frame, frame_from_bgr
from streamdn.kernels import count_impulses, remove_impulses
from streamdn.data.noise import NoiseSpec, add_noise_uint8


def _scene(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bgr = np.stack([60 + 100 * xx / w, 80 + 60 * yy / h, 120 + 40 * np.sin(xx / 9)], -1)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _hits(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    return (np.all(noisy == 255, 2) | np.all(noisy == 0, 2)) & ~np.all(noisy == clean, 2)


def test_switching_median_replaces_impulses_and_nothing_else() -> None:
    clean = _scene()
    noisy = add_noise_uint8(clean, NoiseSpec("salt_pepper", sigma=3.0), np.random.default_rng(0))
    f = frame_from_bgr(noisy)
    ref = frame_from_bgr(clean)
    out = [np.empty_like(p) for p in (f.y, f.u, f.v)]
    n = remove_impulses(f.y, f.u, f.v, 8.0, 25.5, 229.5, *out)
    hits = _hits(noisy, clean)
    changed = out[0] != f.y
    assert n == int(changed.sum())
    assert changed[hits].mean() > 0.9                  # almost every grain found
    assert not changed[~hits].any()                    # and nothing else touched
    err_before = np.abs(f.y.astype(int) - ref.y)[hits].mean()
    err_after = np.abs(out[0].astype(int) - ref.y)[hits].mean()
    assert err_after < 0.1 * err_before
    # chroma samples next to grains get closer to the clean chroma
    assert np.abs(out[1].astype(int) - ref.u).mean() < np.abs(f.u.astype(int) - ref.u).mean()


@pytest.mark.parametrize("sigma", [10.0, 30.0])
def test_gaussian_noise_does_not_trip_the_gate(sigma: float) -> None:
    clean = (_scene() * 0.5).astype(np.uint8)           # dark: clipping at black makes extremes
    noisy = add_noise_uint8(clean, NoiseSpec("gaussian", sigma=sigma), np.random.default_rng(1))
    f = frame_from_bgr(noisy)
    assert count_impulses(f.y, 24.0, 25.5, 229.5) <= IMPULSE_MIN_SHARE * f.y.size
    assert remove_frame_impulses(f) is f               # auto: untouched


def test_denoiser_removes_impulses_before_the_model_and_can_be_told_not_to() -> None:
    clean = _scene()
    noisy = add_noise_uint8(clean, NoiseSpec("salt_pepper", sigma=4.0), np.random.default_rng(2))
    f = frame_from_bgr(noisy)
    fixed = remove_frame_impulses(f)
    assert fixed is not f and np.abs(fixed.y.astype(int) - frame_from_bgr(clean).y).mean() < 1.0
    with Denoiser("tfilter", impulses="off") as off, Denoiser("tfilter") as auto:
        err_off = np.abs(off(f).y.astype(int) - frame_from_bgr(clean).y).mean()
        err_auto = np.abs(auto(f).y.astype(int) - frame_from_bgr(clean).y).mean()
    assert err_auto < 0.5 * err_off
    with pytest.raises(Exception, match="impulses 'sometimes'"):
        Denoiser("tfilter", impulses="sometimes")


def test_sixteen_bit_planes() -> None:
    rng = np.random.default_rng(3)
    y = np.full((32, 40), 400, np.uint16) + rng.integers(0, 8, (32, 40)).astype(np.uint16)
    y[10, 10], y[20, 5] = 1023, 0
    u = np.full((16, 20), 512, np.uint16)
    f = Frame(y=y, u=u, v=u.copy(), bit_depth=10)
    g = remove_frame_impulses(f, always=True)
    assert 395 <= int(g.y[10, 10]) <= 410 and 395 <= int(g.y[20, 5]) <= 410
    assert np.array_equal(np.delete(g.y.ravel(), [10 * 40 + 10, 20 * 40 + 5]),
                          np.delete(y.ravel(), [10 * 40 + 10, 20 * 40 + 5]))


def test_removal_marks_the_cleaned_frame_only() -> None:
    rng = np.random.default_rng(0)
    y = np.full((64, 64), 128, np.uint8)
    hits = rng.random(y.shape) < 0.05
    y[hits] = np.where(rng.random(int(hits.sum())) < 0.5, 0, 255)
    frame = Frame(y=y, u=np.full((32, 32), 128, np.uint8), v=np.full((32, 32), 128, np.uint8))
    cleaned = remove_frame_impulses(frame)
    assert cleaned.extra.get("impulses_removed") is True and "impulses_removed" not in frame.extra
