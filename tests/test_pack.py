"""The packing, noise-map and scene-cut kernels against NumPy references (odd sizes, 8/16-bit)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.kernels import (block_noise_stats, fit_noise_curve, frame_difference, noise_map, pack_bgr, pack_nv12,
                              pack_yuv420, pack_yuv420_to, unpack_bgr, unpack_nv12,
                              unpack_yuv420)

SIZES = [(8, 12), (7, 12), (8, 13), (9, 11), (1, 1), (2, 3)]
DEPTHS = [(np.uint8, 255), (np.uint16, 1023), (np.uint16, 65535)]


def _planes(shape: tuple[int, int], dtype: type, maxv: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    h, w = shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    return (rng.integers(0, maxv + 1, (h, w)).astype(dtype), rng.integers(0, maxv + 1, (ch, cw)).astype(dtype),
            rng.integers(0, maxv + 1, (ch, cw)).astype(dtype))


def _pack_ref(y: np.ndarray, u: np.ndarray, v: np.ndarray, maxv: int) -> np.ndarray:
    h, w = y.shape
    ye = np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.float32)
    phases = [ye[0::2, 0::2], ye[0::2, 1::2], ye[1::2, 0::2], ye[1::2, 1::2], u.astype(np.float32), v.astype(np.float32)]
    return np.stack(phases, -1) * np.float32(1.0 / maxv)


def _unpack_ref(src: np.ndarray, maxv: int, shape: tuple[int, int], dtype: type) -> tuple[np.ndarray, ...]:
    q = np.clip(np.floor(src.astype(np.float32) * np.float32(maxv) + np.float32(0.5)), 0, maxv).astype(dtype)
    h2, w2 = src.shape[:2]
    y = np.empty((2 * h2, 2 * w2), dtype)
    y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2] = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return y[: shape[0], : shape[1]], q[..., 4], q[..., 5]


@pytest.mark.parametrize("dtype,maxv", DEPTHS)
@pytest.mark.parametrize("shape", SIZES)
def test_pack_matches_reference(shape: tuple[int, int], dtype: type, maxv: int) -> None:
    y, u, v = _planes(shape, dtype, maxv)
    out = pack_yuv420(y, u, v, 1.0 / maxv, np.empty(u.shape + (6,), np.float32))
    np.testing.assert_allclose(out, _pack_ref(y, u, v, maxv), rtol=1e-6, atol=0)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("dtype,maxv", DEPTHS)
@pytest.mark.parametrize("shape", SIZES)
def test_unpack_inverts_pack(shape: tuple[int, int], dtype: type, maxv: int) -> None:
    y, u, v = _planes(shape, dtype, maxv, seed=1)
    packed = pack_yuv420(y, u, v, 1.0 / maxv, np.empty(u.shape + (6,), np.float32))
    out = [np.empty_like(p) for p in (y, u, v)]
    unpack_yuv420(packed, maxv, *out)
    for got, want in zip(out, (y, u, v)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype,maxv", DEPTHS)
@pytest.mark.parametrize("shape", [(7, 9), (6, 10)])
def test_unpack_clamps_and_rounds(shape: tuple[int, int], dtype: type, maxv: int) -> None:
    rng = np.random.default_rng(2)
    h2, w2 = (shape[0] + 1) // 2, (shape[1] + 1) // 2
    src = rng.uniform(-0.2, 1.2, (h2, w2, 6)).astype(np.float32)
    out = [np.empty(shape, dtype), np.empty((h2, w2), dtype), np.empty((h2, w2), dtype)]
    unpack_yuv420(src, maxv, *out)
    for got, want in zip(out, _unpack_ref(src, maxv, shape, dtype)):
        np.testing.assert_array_equal(got, want)


def test_unpack_accepts_a_channels_first_view() -> None:
    """The network's NCHW output is handed over as a strided (H2, W2, 6) view."""
    rng = np.random.default_rng(3)
    chw = rng.uniform(0, 1, (6, 5, 4)).astype(np.float32)
    view = chw.transpose(1, 2, 0)
    out = [np.empty((10, 8), np.uint8), np.empty((5, 4), np.uint8), np.empty((5, 4), np.uint8)]
    unpack_yuv420(view, 255, *out)
    for got, want in zip(out, _unpack_ref(np.ascontiguousarray(view), 255, (10, 8), np.uint8)):
        np.testing.assert_array_equal(got, want)


def _noise_map_ref(packed: np.ndarray, sigmas: np.ndarray, curve: np.ndarray) -> np.ndarray:
    a, b, ref = curve
    if b == 0:
        f = np.ones(packed.shape[:2])
    else:
        luma = packed[..., :4].astype(np.float64).sum(-1)
        p = np.pad(luma, 1, mode="edge")
        h, w = luma.shape
        level = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 36.0
        f = np.sqrt(np.maximum(a + b * level, 0) / max(a + b * ref, 1e-12))
    return (f[..., None] * sigmas[None, None, :]).astype(np.float32)


@pytest.mark.parametrize("curve", [(1.0, 0.0, 0.0), (1e-4, 2e-3, 0.4), (0.0, 1e-3, 0.5)])
@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (16, 9)])
def test_noise_map_matches_reference(shape: tuple[int, int], curve: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(4)
    packed = rng.uniform(0, 1, shape + (6,)).astype(np.float32)
    sig = np.array([0.05, 0.03, 0.02], np.float32)
    c = np.array(curve)
    out = noise_map(packed, sig, c, np.empty(shape + (3,), np.float32))
    np.testing.assert_allclose(out, _noise_map_ref(packed, sig, c), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("step", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_frame_difference_matches_reference(step: int, dtype: type) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 200, (13, 17)).astype(dtype)
    b = rng.integers(0, 200, (13, 17)).astype(dtype)
    want = np.abs(a.astype(np.float64) - b.astype(np.float64))[::step, ::step].mean()
    assert frame_difference(a, b, step) == pytest.approx(want, rel=1e-9)


def test_noise_curve_fit_finds_signal_dependence() -> None:
    """Poisson-Gaussian noise on a ramp: variance grows with level, so b > 0 and the map is
    brighter where the picture is; pure Gaussian noise gives a (nearly) flat curve."""
    rng = np.random.default_rng(6)
    ramp = np.tile(np.linspace(20, 235, 256), (256, 1))
    peak = 30.0
    pg = np.clip(rng.poisson(ramp * peak / 255) * 255 / peak + rng.normal(0, 2, ramp.shape), 0, 255).astype(np.uint8)
    stats = block_noise_stats(pg, 16, np.empty((16, 16, 2), np.float32))
    a, b, ref = fit_noise_curve(stats, 255.0)
    assert b > 0 and 0 < ref < 1
    # The fitted sigma at two levels follows sqrt(level * 255 / peak) within 25 %.
    for level in (0.3, 0.8):
        want = np.sqrt(level * 255 * 255 / peak + 4) / 255
        assert np.sqrt(a + b * level) == pytest.approx(want, rel=0.25)
    flat = np.clip(ramp + rng.normal(0, 10, ramp.shape), 0, 255).astype(np.uint8)
    a, b, ref = fit_noise_curve(block_noise_stats(flat, 16, np.empty((16, 16, 2), np.float32)), 255.0)
    assert np.sqrt(a + b * 0.9) / np.sqrt(a + b * 0.1) < 1.25


def test_noise_curve_fit_falls_back_to_flat_on_tiny_frames() -> None:
    stats = np.full((2, 2, 2), 5.0, np.float32)
    np.testing.assert_array_equal(fit_noise_curve(stats, 255.0), [1.0, 0.0, 0.0])


# -- NV12, BGR and 16-bit float outputs --------------------------------------------------------

@pytest.mark.parametrize("mode,dtype", [(1, "float16"), (2, "bfloat16")])
@pytest.mark.parametrize("maxv", [255, 1023, 65535])
def test_half_outputs_round_like_torch(mode: int, dtype: str, maxv: int) -> None:
    import torch

    y, u, v = _planes((9, 13), np.uint16, maxv, seed=4)
    y[0, :4] = [0, 1, 2, 3]                    # the smallest values: subnormal halves at 16-bit
    f32 = pack_yuv420_to(y, u, v, 1.0 / maxv, np.empty(u.shape + (6,), np.float32), 0)
    np.testing.assert_array_equal(f32, pack_yuv420(y, u, v, 1.0 / maxv, np.empty_like(f32)))
    bits = pack_yuv420_to(y, u, v, 1.0 / maxv, np.empty(u.shape + (6,), np.uint16), mode)
    tdt = getattr(torch, dtype)
    assert torch.equal(torch.from_numpy(bits).view(tdt), torch.from_numpy(f32).to(tdt))


@pytest.mark.parametrize("dtype,maxv", DEPTHS)
@pytest.mark.parametrize("shape", SIZES)
def test_nv12_pack_and_unpack(shape: tuple[int, int], dtype: type, maxv: int) -> None:
    y, u, v = _planes(shape, dtype, maxv, seed=5)
    uv = np.ascontiguousarray(np.stack([u, v], -1))           # the interleaved plane of NV12/P010
    got = pack_nv12(y, uv, 1.0 / maxv, np.empty(u.shape + (6,), np.float32))
    np.testing.assert_array_equal(got, _pack_ref(y, u, v, maxv))
    y2, uv2 = np.empty_like(y), np.empty_like(uv)
    unpack_nv12(got, maxv, y2, uv2)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(uv2, uv)


@pytest.mark.parametrize("shape", [(8, 12), (7, 11), (1, 1), (36, 50)])
def test_bgr_pack_matches_float_conversion(shape: tuple[int, int]) -> None:
    from streamdn.frames import _BGR_TO_YUV_F32, bgr_to_yuv420

    h, w = shape
    bgr = np.random.default_rng(6).integers(0, 256, (h, w, 3)).astype(np.uint8)
    got = pack_bgr(bgr, _BGR_TO_YUV_F32, np.empty(((h + 1) // 2, (w + 1) // 2, 6), np.float32))
    even = np.pad(bgr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge").astype(np.float64)
    m = _BGR_TO_YUV_F32.astype(np.float64)
    yuv = np.clip(even @ m[:, :3].T + m[:, 3], -1e9, 1e9)
    luma = np.clip(yuv[..., 0], 0, 255)
    chroma = np.clip(yuv[..., 1:].reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2, 2).mean((1, 3)), 0, 255)
    want = np.stack([luma[0::2, 0::2], luma[0::2, 1::2], luma[1::2, 0::2], luma[1::2, 1::2],
                     chroma[..., 0], chroma[..., 1]], -1) / 255.0
    np.testing.assert_allclose(got, want, atol=2e-6)
    # The two-step path (uint8 YUV planes, then pack) differs only by its intermediate rounding.
    planes = bgr_to_yuv420(bgr)
    two_step = pack_yuv420(*planes, 1.0 / 255, np.empty_like(got))
    assert np.abs(two_step - got).max() <= 1.0 / 255 + 1e-6


@pytest.mark.parametrize("shape", [(8, 12), (7, 11), (36, 50)])
def test_bgr_unpack_matches_the_frame_conversion(shape: tuple[int, int]) -> None:
    from streamdn.frames import _YUV_TO_BGR_F32, yuv420_to_bgr

    y, u, v = _planes(shape, np.uint8, 255, seed=7)
    u[:] = np.clip(u, 60, 190)                  # stay inside the gamut: no clipping differences
    v[:] = np.clip(v, 60, 190)
    y[:] = np.clip(y, 40, 220)
    packed = pack_yuv420(y, u, v, 1.0 / 255, np.empty(u.shape + (6,), np.float32))
    got = unpack_bgr(packed, _YUV_TO_BGR_F32, np.empty(shape + (3,), np.uint8))
    # Reference: the same conversion with float chroma (cv2.resize INTER_LINEAR on float32).
    import cv2

    h, w = shape
    chroma = cv2.resize(np.dstack([u, v]).astype(np.float32), (u.shape[1] * 2, u.shape[0] * 2),
                        interpolation=cv2.INTER_LINEAR)[:h, :w]
    yuv = np.dstack([y.astype(np.float32), chroma]).astype(np.float64)
    ref = np.clip(np.floor(yuv @ _YUV_TO_BGR_F32[:, :3].T.astype(np.float64) + _YUV_TO_BGR_F32[:, 3] + 0.5), 0, 255)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert np.mean(got.astype(int) != ref.astype(int)) < 0.01
    # frames.yuv420_to_bgr rounds the upsampled chroma to uint8 first: half a chroma level times
    # the largest coefficient (2.02, U -> B) plus the final rounding.
    want = yuv420_to_bgr(y, u, v, chroma="bilinear")
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
