"""The embedding API and the pipeline: Denoiser, Pipeline, sources, sinks and config."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

import streamdn
from streamdn import Denoiser, ListSink, Pipeline, SyntheticSource, load_config
from conftest import slow_denoiser
from streamdn.io.camera import PacedSource
from streamdn.config import SourceConfig
from streamdn.errors import ConfigError, ModelNotFoundError, SourceError
from streamdn.denoiser import PLANE_SIGMA_PER_RGB_SIGMA, parse_strength
from streamdn.frames import Frame, bgr_to_yuv420, frame_from_bgr, from_av, to_av, yuv420_to_bgr
from streamdn.metrics import psnr
from streamdn.models import create_model, list_models


def tiny_source(frames: int = 8, **kw: object) -> SyntheticSource:
    return SyntheticSource(SourceConfig(width=48, height=32, frames=frames, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(48, 32), (33, 21)])
def test_frame_round_trips(size: tuple[int, int]) -> None:
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    bgr = np.stack([xx * 5, yy * 7, xx + yy], axis=-1).clip(0, 255).astype(np.uint8)  # smooth colours
    y, u, v = bgr_to_yuv420(bgr)
    assert y.shape == (size[1], size[0]) and u.shape == ((size[1] + 1) // 2, (size[0] + 1) // 2)
    frame = Frame(y=y, u=u, v=v, pts=7)
    back = from_av(to_av(frame), 0, 8)
    for a, b in zip((frame.y, frame.u, frame.v), (back.y, back.u, back.v)):
        np.testing.assert_array_equal(a, b)
    assert back.pts == 7
    assert psnr(bgr, yuv420_to_bgr(y, u, v)) > 35


def test_frame_round_trip_16bit() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 1024, (6, 10)).astype(np.uint16)
    u = rng.integers(0, 1024, (3, 5)).astype(np.uint16)
    frame = Frame(y=y, u=u, v=u.copy(), bit_depth=10)
    back = from_av(to_av(frame), 0, 10)
    np.testing.assert_array_equal(back.y, y)
    np.testing.assert_array_equal(back.u, u)


@pytest.mark.parametrize("model", ["default", "tfilter", "classical:median", "classical:gaussian"])
def test_denoiser_improves_psnr(model: str) -> None:
    src = tiny_source(frames=10, sigma=20.0)
    gain = []
    with Denoiser(model) as dn:
        for f in src:
            out = dn(f)
            assert out.y.shape == f.y.shape and out.y.dtype == np.uint8 and out.pts == f.pts
            gain.append(psnr(f.extra["clean"], out.to_bgr()) - psnr(f.extra["clean"], f.to_bgr()))
    assert np.mean(gain[3:]) > 1.0


def test_denoiser_fixed_strength_and_reset() -> None:
    frames = list(tiny_source(frames=6))
    dn = Denoiser("tfilter", strength=15)
    assert dn.noise_sigmas(frames[0]) == tuple(15.0 * k for k in PLANE_SIGMA_PER_RGB_SIGMA)
    first = [dn(f).y.copy() for f in frames]
    dn.reset()
    again = [dn(f).y.copy() for f in frames]
    for a, b in zip(first, again):                 # reset = a fresh stream, so the same output
        np.testing.assert_array_equal(a, b)
    assert Denoiser("tfilter", strength=0)(frames[0]).y.tolist() == frames[0].y.tolist()


def test_denoiser_blind_estimate_is_close() -> None:
    f = next(iter(SyntheticSource(SourceConfig(width=320, height=240, frames=1, sigma=20.0))))
    sy, su, sv = Denoiser("tfilter").noise_sigmas(f)
    # RGB sigma 20 becomes about 20 * 0.57 on BT.601 luma; textures push the estimate up a little.
    assert 9.0 < sy < 16.0


def test_fixed_strength_is_the_rgb_sigma_the_blind_estimate_sees() -> None:
    # A fixed strength is quoted like the noise itself (RGB sigma); the Y, U, V sigmas it sets are
    # the ones the blind estimator measures on a flat picture with that noise.
    rng = np.random.default_rng(0)
    noisy = np.clip(128 + rng.normal(0, 20, (240, 320, 3)), 0, 255).round().astype(np.uint8)
    f = frame_from_bgr(noisy)
    measured = [float(p.astype(np.float64).std()) for p in (f.y, f.u, f.v)]
    np.testing.assert_allclose(Denoiser("tfilter", strength=20).noise_sigmas(f), measured, rtol=0.03)
    np.testing.assert_allclose(Denoiser("tfilter", sigma_smoothing=0).noise_sigmas(f), measured, rtol=0.1)


def test_bad_arguments() -> None:
    with pytest.raises(ModelNotFoundError, match="known"):
        Denoiser("nope")
    with pytest.raises(ConfigError):
        Denoiser(strength="loud")
    with pytest.raises(ConfigError):
        Denoiser(strength=-1)
    with pytest.raises(KeyError):            # the builtin is catchable too
        create_model("nope")


def test_registry_lists_models() -> None:
    names = [m.name for m in list_models()]
    assert {"tfilter", "classical:median", "classical:gaussian"} <= set(names)


def test_pipeline_in_order_and_stats() -> None:
    sink = ListSink()
    stats = Pipeline(tiny_source(frames=12), [sink], queue_size=2).run()
    assert [f.index for f in sink.frames] == list(range(12))
    assert stats.frames == 12 and stats.dropped == 0 and stats.fps > 0
    assert set(stats.stages_ms) == {"decode", "pack", "forward", "unpack", "encode"}
    assert stats.latency_ms["p50"] <= stats.latency_ms["p99"]


def test_pipeline_propagates_stage_errors() -> None:
    class Boom(Exception):
        pass

    dn = Denoiser()

    def bad(frame: Frame) -> object:
        if frame.index == 3:
            raise Boom("stage failed")
        return Denoiser.pack(dn, frame)

    dn.pack = bad  # type: ignore[method-assign]
    sink = ListSink()
    with pytest.raises(Boom):
        Pipeline(tiny_source(frames=10), [sink], denoiser=dn, queue_size=1).run()
    assert len(sink.frames) <= 3


def test_pipeline_drop_oldest_under_slow_model() -> None:
    dn = slow_denoiser(0.03)
    src = PacedSource(SyntheticSource(SourceConfig(width=48, height=32, frames=40, fps=200.0)))
    sink = ListSink()
    stats = Pipeline(src, [sink], denoiser=dn, queue_size=1).run()   # live: drops by default
    assert stats.dropped > 0 and stats.frames + stats.dropped <= 40 and stats.frames == len(sink.frames)
    idx = [f.index for f in sink.frames]
    assert idx == sorted(idx)


def test_synthetic_source_is_deterministic() -> None:
    a = [f.y for f in tiny_source(frames=3, seed=4)]
    b = [f.y for f in tiny_source(frames=3, seed=4)]
    c = [f.y for f in tiny_source(frames=3, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        streamdn.open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(OSError):
        streamdn.open_source(str(tmp_path / "nope.mp4"))


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[modle]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown section \[modle\]"):
        load_config(bad)
    bad.write_text("[encode]\ncrf = 'high'\n")
    with pytest.raises(ConfigError, match="should be int"):
        load_config(bad)
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    cfg = load_config(overrides=["pipeline.queue_size=8", "encode.codec=libx265"])
    assert cfg.pipeline.queue_size == 8 and cfg.encode.codec == "libx265"


@pytest.mark.parametrize("name, option, valid", [
    ("tfilter", "max_cuont", "max_count"),
    ("classical:median", "tabel", "table"),
    ("tdn_tiny", "dtyp", "dtype"),
])
def test_create_model_rejects_unknown_options(name: str, option: str, valid: str) -> None:
    with pytest.raises(ConfigError, match=f"'{option}'.*valid options: .*{valid}"):
        create_model(name, **{option: 1})
    create_model(name, device="cpu").close()                # the options it takes still go through


def test_library_messages_name_arguments_not_flags() -> None:
    with pytest.raises(ConfigError, match="device 'tpu'") as err:
        Denoiser("tfilter", device="tpu")
    assert "--" not in str(err.value)
    with pytest.raises(ConfigError, match="strength 'loud'") as err:
        parse_strength("loud")
    assert "--" not in str(err.value)
    with pytest.raises(ConfigError, match="strength 300") as err:
        parse_strength(300)
    assert "--" not in str(err.value)


def test_public_api_exports() -> None:
    assert streamdn.__all__ == sorted(streamdn.__all__)
    for name in ("CameraSource", "Denoiser", "Frame", "FrameFormat", "Sink", "Source", "denoise_file",
                 "model_info", "ConfigError", "DeviceError", "ModelNotFoundError", "SinkError", "SourceError",
                 "StreamdnError"):
        assert name in streamdn.__all__, name
    assert all(hasattr(streamdn, name) for name in streamdn.__all__)
    assert issubclass(streamdn.CameraSource, streamdn.Source) and issubclass(streamdn.FileSink, streamdn.Sink)


def test_frame_from_and_to_ndarray() -> None:
    yy, xx = np.mgrid[0:32, 0:48]
    bgr = np.stack([xx * 5, yy * 7, xx + yy], axis=-1).clip(0, 255).astype(np.uint8)
    f = Frame.from_ndarray(bgr, format="bgr24", pts=3)
    ref = frame_from_bgr(bgr)
    np.testing.assert_array_equal(f.y, ref.y)
    np.testing.assert_array_equal(f.u, ref.u)
    assert f.pts == 3
    np.testing.assert_array_equal(f.to_ndarray(format="bgr24"), f.to_bgr())
    np.testing.assert_array_equal(f.to_ndarray(format="rgb24"), f.to_bgr()[..., ::-1])
    g = Frame.from_ndarray(bgr[..., ::-1], format="rgb24")
    np.testing.assert_array_equal(g.y, f.y)
    np.testing.assert_array_equal(g.v, f.v)
    np.testing.assert_array_equal(f.to_ndarray(format="gray"), f.y)
    grey = Frame.from_ndarray(f.y, format="gray")
    assert grey.u.shape == f.u.shape and (grey.u == 128).all()
    # yuv420p in PyAV's layout: the two libraries read each other's arrays
    i420 = f.to_ndarray(format="yuv420p")
    assert i420.shape == (48, 48)
    np.testing.assert_array_equal(av.VideoFrame.from_ndarray(i420, format="yuv420p").to_ndarray(), i420)
    back = Frame.from_ndarray(i420, format="yuv420p")
    for a, b in zip((back.y, back.u, back.v), (f.y, f.u, f.v)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="format 'nv12'"):
        Frame.from_ndarray(bgr, format="nv12")
    with pytest.raises(ConfigError, match=r"\(H, W, 3\)"):
        Frame.from_ndarray(bgr[..., 0], format="bgr24")
