"""Classical baselines: each improves PSNR on the noise it is for, runs causally (one output per
input, in order), keeps sizes and depths, and fails with a clear message when unavailable."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from streamdn import ConfigError, Denoiser
from streamdn.frames import Frame, frame_from_bgr
from streamdn.metrics import psnr
from streamdn.models import create_model, list_models
from streamdn.models.ffmpeg import available
from streamdn.data.noise import add_noise, parse_noise
from streamdn.data.synthetic import MovingScene, SceneConfig

NEEDS_SKIMAGE = {"classical:wavelet", "classical:tv"}
FOR_NOISE = {"classical:median": "sp5"}   # everything else is for Gaussian-like noise
CLASSICAL = [i.name for i in list_models() if i.kind == "classical" and i.name != "tfilter"]


def _usable(name: str) -> bool:
    if name.startswith("ffmpeg:") and not available(name.split(":", 1)[1]):
        return False
    if name in NEEDS_SKIMAGE:
        try:
            import pywt  # noqa: F401
            import skimage  # noqa: F401
        except ImportError:
            return False
    return True


def _clip(noise: str, frames: int = 8) -> tuple[list[np.ndarray], list[Frame]]:
    scene = MovingScene(SceneConfig(64, 48, speed=0.5, seed=3))
    rng = np.random.default_rng(0)
    clean = [scene.render(t) for t in range(frames)]
    noisy = [frame_from_bgr(np.clip(add_noise(c, parse_noise(noise), rng) + 0.5, 0, 255).astype(np.uint8),
                            index=t, pts=t) for t, c in enumerate(clean)]
    return clean, noisy


def test_every_design_method_is_registered() -> None:
    for name in ("mean", "gaussian", "median", "bilateral", "nlm", "nlm-temporal", "wavelet", "tv"):
        assert f"classical:{name}" in CLASSICAL
    for name in ("nlmeans", "atadenoise", "bm3d", "fftdnoiz", "hqdn3d"):
        assert f"ffmpeg:{name}" in CLASSICAL


@pytest.mark.parametrize("name", CLASSICAL)
def test_improves_psnr_on_its_noise(name: str) -> None:
    if not _usable(name):
        pytest.skip(f"{name} is not available here")
    clean, noisy = _clip(FOR_NOISE.get(name, "awgn20"))
    before, after = [], []
    with Denoiser(name) as dn:
        for c, f in zip(clean, noisy):
            out = dn(f)
            assert (out.width, out.height, out.index, out.pts) == (f.width, f.height, f.index, f.pts)
            before.append(psnr(c, f.to_bgr()))
            after.append(psnr(c, out.to_bgr()))
    assert np.mean(after) > np.mean(before) + 1.0, (name, np.mean(before), np.mean(after))


@pytest.mark.parametrize("name", ["ffmpeg:atadenoise", "ffmpeg:fftdnoiz", "classical:nlm-temporal"])
def test_temporal_methods_have_no_latency(name: str) -> None:
    """Frames of very different brightness: output t must look like input t, not t - 1."""
    levels = [40, 200, 90, 160, 60, 220, 120]
    rng = np.random.default_rng(0)
    with Denoiser(name, strength=8) as dn:
        for t, level in enumerate(levels):
            img = np.clip(level + rng.normal(0, 5, (48, 64, 3)), 0, 255).astype(np.uint8)
            out = dn(frame_from_bgr(img, index=t, pts=t))
            assert abs(float(out.y.mean()) - float(frame_from_bgr(img).y.mean())) < 10, (t, out.y.mean())


@pytest.mark.parametrize("name", ["classical:gaussian", "classical:nlm", "classical:bilateral", "ffmpeg:nlmeans"])
def test_high_bit_depth_and_odd_sizes(name: str) -> None:
    rng = np.random.default_rng(0)

    def plane(h: int, w: int) -> np.ndarray:   # a 10-bit ramp plus noise of sigma 10 in 8-bit units
        ramp = np.linspace(100, 900, w)[None, :] + np.zeros((h, 1))
        return np.clip(ramp + rng.normal(0, 40, (h, w)), 0, 1023).astype(np.uint16)

    y, u, v = plane(37, 51), plane(19, 26), plane(19, 26)
    frame = Frame(y=y, u=u, v=v, bit_depth=10)
    model = create_model(name)
    out = model.unpack(model.forward(model.pack(frame, (10.0, 10.0, 10.0))), frame)
    for a, b in zip((out.y, out.u, out.v), (y, u, v)):
        assert a.shape == b.shape and a.dtype == b.dtype and int(a.max()) < 1024
    assert np.abs(out.y.astype(float) - y).mean() > 1.0   # it did filter


def test_zero_strength_passes_through() -> None:
    _, noisy = _clip("awgn20", frames=1)
    for name in ("classical:bilateral", "ffmpeg:bm3d"):
        with Denoiser(name, strength=0) as dn:
            out = dn(noisy[0])
        assert np.array_equal(out.y, noisy[0].y)


def test_missing_filter_or_library_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    if not available("hqdn3d"):
        with pytest.raises(ConfigError, match="hqdn3d"):
            create_model("ffmpeg:hqdn3d")
    monkeypatch.setitem(sys.modules, "skimage", None)   # import skimage now raises ImportError
    with pytest.raises(ConfigError, match="streamdn\\[eval\\]"):
        create_model("classical:tv")


def test_reset_forgets_the_window() -> None:
    _, noisy = _clip("awgn20", frames=3)
    model = create_model("classical:nlm-temporal")
    first = model.unpack(model.forward(model.pack(noisy[0], (11.0, 11.0, 11.0))), noisy[0])
    for f in noisy[1:]:
        model.forward(model.pack(f, (11.0, 11.0, 11.0)))
    model.reset()
    again = model.unpack(model.forward(model.pack(noisy[0], (11.0, 11.0, 11.0))), noisy[0])
    assert np.array_equal(first.y, again.y)
