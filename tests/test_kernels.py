"""Each Numba kernel against a NumPy reference on small random arrays (odd sizes, 8/16-bit)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.kernels import block_noise_stats, estimate_sigma, float_to_plane, plane_to_float, recursive_filter


@pytest.mark.parametrize("dtype,maxv", [(np.uint8, 255), (np.uint16, 1023), (np.uint16, 65535)])
@pytest.mark.parametrize("shape", [(7, 5), (16, 33)])
def test_convert_round_trip(dtype: type, maxv: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, maxv + 1, shape).astype(dtype)
    f = plane_to_float(src, 255.0 / maxv, np.empty(shape, np.float32))
    np.testing.assert_allclose(f, src.astype(np.float32) * np.float32(255.0 / maxv), rtol=1e-6)
    back = float_to_plane(f, maxv / 255.0, maxv, np.empty(shape, dtype))
    np.testing.assert_array_equal(back, src)


def test_float_to_plane_clamps_and_rounds() -> None:
    x = np.array([[-3.0, 0.49, 0.5, 254.5, 300.0]], np.float32)
    out = float_to_plane(x, 1.0, 255, np.empty(x.shape, np.uint8))
    np.testing.assert_array_equal(out, [[0, 0, 1, 255, 255]])


def _block_stats_ref(plane: np.ndarray, block: int) -> np.ndarray:
    p = plane.astype(np.float64)
    h, w = p.shape
    lap = (4 * p[1:-1, 1:-1] - 2 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
           + p[:-2, :-2] + p[:-2, 2:] + p[2:, :-2] + p[2:, 2:])
    out = np.zeros((h // block, w // block, 2))
    for bi in range(h // block):
        for bj in range(w // block):
            y0, y1 = max(bi * block, 1), min((bi + 1) * block, h - 1)
            x0, x1 = max(bj * block, 1), min((bj + 1) * block, w - 1)
            out[bi, bj, 0] = np.abs(lap[y0 - 1:y1 - 1, x0 - 1:x1 - 1]).mean() * np.sqrt(np.pi / 2) / 6
            out[bi, bj, 1] = p[y0:y1, x0:x1].mean()
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_block_noise_stats_matches_reference(dtype: type) -> None:
    rng = np.random.default_rng(1)
    plane = rng.integers(0, 200, (37, 50)).astype(dtype)
    got = block_noise_stats(plane, 8, np.empty((4, 6, 2), np.float32))
    np.testing.assert_allclose(got, _block_stats_ref(plane, 8), rtol=1e-4)


@pytest.mark.parametrize("sigma", [3.0, 10.0, 25.0])
def test_estimate_sigma_on_gaussian_noise(sigma: float) -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:240, 0:320]
    clean = 60 + 100 * (xx / 320) + 20 * (yy > 120)          # smooth ramp with one edge
    noisy = clean + rng.normal(0, sigma, clean.shape)
    assert estimate_sigma(noisy.astype(np.float32)) == pytest.approx(sigma, rel=0.1)


def test_estimate_sigma_clean_is_small() -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    assert estimate_sigma((50 + xx * 0.5 + yy * 0.25).astype(np.float32)) < 0.5


def _recursive_ref(cur, prev, count, sigma, max_count, radius):
    h, w = cur.shape
    pad1c, pad1p = np.pad(cur, 1, mode="edge"), np.pad(prev, 1, mode="edge")
    diff = pad1c - pad1p
    dmean = np.abs(sum(diff[1 + di:1 + di + h, 1 + dj:1 + dj + w] for di in (-1, 0, 1) for dj in (-1, 0, 1)) / 9)
    padr = np.pad(cur, radius, mode="edge")
    ssum = np.zeros_like(cur, dtype=np.float64)
    sw = np.zeros_like(cur, dtype=np.float64)
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            v = padr[radius + di:radius + di + h, radius + dj:radius + dj + w]
            m = np.abs(v - cur) <= 2.5 * sigma
            ssum += v * m
            sw += m
    spatial = ssum / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = sigma * np.sqrt(1 + 1 / count) / 3
        motion = np.clip(dmean / (3 * expected) - 1, 0, 1)
    motion = np.where(count < 1, 1.0, motion)
    kn = np.minimum(count + 1, max_count)
    temporal = prev + (0.5 * cur + 0.5 * spatial - prev) / kn
    return (1 - motion) * temporal + motion * spatial, (1 - motion) * kn + motion


def test_recursive_filter_matches_reference() -> None:
    rng = np.random.default_rng(3)
    cur = rng.normal(100, 10, (13, 17)).astype(np.float32)
    prev = (cur + rng.normal(0, 8, cur.shape)).astype(np.float32)
    prev[:5, :5] += 80                                          # a moving object
    count = rng.integers(0, 6, cur.shape).astype(np.float32)
    out, out_count = np.empty_like(cur), np.empty_like(cur)
    recursive_filter(cur, prev, count, 10.0, 8.0, 2, out, out_count)
    ref, ref_count = _recursive_ref(cur.astype(np.float64), prev.astype(np.float64), count.astype(np.float64),
                                    10.0, 8.0, 2)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out_count, ref_count, rtol=1e-4, atol=1e-3)


def test_recursive_filter_averages_static_noise() -> None:
    rng = np.random.default_rng(4)
    clean = np.full((64, 64), 120.0, np.float32)
    prev, count = None, np.zeros_like(clean)
    for _ in range(12):
        cur = (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)
        out = np.empty_like(cur)
        recursive_filter(cur, cur if prev is None else prev, count, 10.0, 10.0, 2, out, count)
        prev = out
    assert np.std(prev - clean) < 10 / 4


def test_unclip_mean_undoes_the_bias_of_clipped_noise() -> None:
    from streamdn.kernels import unclip_mean

    rng = np.random.default_rng(1)
    level = np.linspace(-0.02, 1.02, 27)
    for sigma, curve in ((0.05, (1.0, 0.0, 0.5)), (0.08, (0.0, 1.0, 0.5))):
        s = sigma * np.sqrt(np.maximum(curve[0] + curve[1] * np.clip(level, 0, 1), 1e-6) / (curve[0] + curve[1] * 0.5))
        samples = np.clip(level + s * rng.standard_normal((100_000, level.size)), 0.0, 1.0)
        mean = samples.mean(0).astype(np.float32).reshape(1, -1, 1)
        count = np.ones((1, level.size), np.float32)
        out = unclip_mean(mean, count, sigma, *curve, 8, np.empty_like(mean))
        assert np.abs(mean[0, :, 0] - level).max() > 0.015                 # the plain mean is biased
        inside = (level > 0.0) & (level < 1.0)
        np.testing.assert_allclose(out[0, inside, 0], level[inside], atol=3e-3)
        # Far from black and white the mean is kept as it is; no mean (count 0) too.
        mid = np.abs(level - 0.5) < 0.1
        np.testing.assert_array_equal(out[0, mid, 0], mean[0, mid, 0])
    empty = unclip_mean(mean, np.zeros_like(count), 0.05, 1.0, 0.0, 0.5, 8, np.empty_like(mean))
    np.testing.assert_array_equal(empty, mean)


def test_match_weights_are_what_match_add_adds() -> None:
    from streamdn.kernels import match_add, match_weights

    rng = np.random.default_rng(2)
    ref = rng.uniform(0.2, 0.8, (13, 18, 6)).astype(np.float32)
    shot = ref + rng.normal(0, 0.03, ref.shape).astype(np.float32)
    shot[4:9, 6:12] += 0.3                                              # a part that does not match
    sigma = np.full((13, 18, 3), 0.03, np.float32)
    w = match_weights(shot, ref, sigma, 1.0, 1.3, 5, np.empty((13, 18), np.float32))
    assert w[6, 9] == 0.0 and w[0, 0] > 0.5 and ((0 <= w) & (w <= 1)).all()
    acc, count = np.zeros_like(ref), np.zeros((13, 18, 1), np.float32)
    match_add(shot, ref, sigma, acc, count, 1.0, 1.3, 5)
    np.testing.assert_allclose(count[..., 0], w, atol=1e-6)
    np.testing.assert_allclose(acc, w[..., None] * shot, atol=1e-6)


def test_add_shot_spreads_the_half_resolution_trust() -> None:
    from streamdn.kernels import add_shot

    rng = np.random.default_rng(3)
    trust = rng.uniform(0, 1, (4, 5)).astype(np.float32)
    trust[1, 2] = 0.0
    full = np.repeat(np.repeat(trust, 2, 0), 2, 1)[:7, :9]
    for dtype, maxv in ((np.float32, 1.0), (np.uint8, 255.0), (np.uint16, 65535.0)):
        shot = (rng.uniform(0, 1, (7, 9, 3)) * maxv).astype(dtype)
        acc, count = np.ones((7, 9, 3), np.float32), np.ones((7, 9), np.float32)
        add_shot(acc, count, shot, 1.0 / maxv, trust)
        np.testing.assert_allclose(count, 1 + full, rtol=1e-6)
        np.testing.assert_allclose(acc, 1 + full[..., None] * shot.astype(np.float64) / maxv, rtol=1e-5)


def test_mean_input_matches_reference() -> None:
    """The network's input from a long average: the frame up to ramp0 trusted frames, the
    average from ramp1 on, and a noise map scaled by the noise left (a mean of c frames: 1/c)."""
    from streamdn.kernels import mean_input

    rng = np.random.default_rng(0)
    h, w = 6, 7
    cur, avg = rng.random((h, w, 6), np.float32), rng.random((h, w, 6), np.float32)
    sigma = rng.random((h, w, 3), np.float32) * 0.1
    count = rng.uniform(0.0, 12.0, (h, w, 1)).astype(np.float32)
    trust = np.minimum(count, rng.uniform(0.0, 12.0, (h, w, 1)).astype(np.float32))
    inp, sig, frames = np.empty_like(cur), np.empty_like(sigma), np.empty_like(count)
    mean_input(cur, sigma, avg, count, trust, 3.0, 6.0, inp, sig, frames)
    c = np.maximum(count, 1.0)
    wt = np.clip((trust - 3.0) / 3.0, 0.0, 1.0)
    f = (1.0 - wt + wt / c) ** 2 + wt**2 * (c - 1.0) / c**2
    np.testing.assert_allclose(inp, cur + wt * (avg - cur), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sig, sigma * np.sqrt(f), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(frames, 1.0 / f, rtol=1e-5)
    full = (trust >= 6.0)[..., 0]
    np.testing.assert_allclose(frames[full], c[full], rtol=1e-5)     # the whole average: c frames
    none = (trust <= 3.0)[..., 0]
    np.testing.assert_allclose(frames[none], 1.0, rtol=1e-6)          # the frame alone
    assert np.array_equal(inp[none], cur[none])


def test_mean_output_matches_reference() -> None:
    from streamdn.kernels import mean_output

    rng = np.random.default_rng(1)
    h, w = 5, 8
    out, inp, avg = (rng.random((h, w, 6), np.float32) for _ in range(3))
    frames = rng.uniform(1.0, 40.0, (h, w, 1)).astype(np.float32)
    count = rng.uniform(0.0, 40.0, (h, w, 1)).astype(np.float32)
    for sigma_y, low in ((12.0, (0.5, 3.0)), (2.0, (0.5, 3.0)), (2.0, (0.0, 0.0))):
        res = out.copy()
        mean_output(res, inp, frames, avg, count, sigma_y, low[0], low[1], 8.0, 5.0, 20.0)
        keep = np.clip((sigma_y / np.sqrt(frames) - low[0]) / (low[1] - low[0]), 0, 1) if low[1] > 0 else 1.0
        o = inp + keep * (out - inp)
        wl = count / (count + 8.0) * np.clip((count - 5.0) / 15.0, 0, 1)
        np.testing.assert_allclose(res, o + wl * (avg - o), rtol=1e-5, atol=1e-6)
        kept, dst = out.copy(), np.empty_like(out)      # into another array: the output left alone
        mean_output(kept, inp, frames, avg, count, sigma_y, low[0], low[1], 8.0, 5.0, 20.0, dst)
        np.testing.assert_array_equal(kept, out)
        np.testing.assert_array_equal(dst, res)


@pytest.mark.parametrize("y0, x0, shape", [(0, 0, (9, 11)), (-3, -2, (14, 17)), (4, 6, (5, 4)), (-8, 9, (30, 3))])
def test_shift_plane_matches_reference(y0: int, x0: int, shape: tuple[int, int]) -> None:
    """A separable filter over a plane whose border repeats, from a plane or from a packed
    frame's luma, inside and past every edge: the padded NumPy sum."""
    from streamdn.kernels import pack_yuv420, shift_plane
    from streamdn.kernels.motion import luma_plane

    rng = np.random.default_rng(5)
    plane = rng.random((12, 14), np.float32)
    ky, kx = rng.normal(size=6).astype(np.float32), rng.normal(size=4).astype(np.float32)

    def reference(src: np.ndarray) -> np.ndarray:
        h, w = src.shape
        rows = np.clip(np.arange(shape[0] + 5) + y0, 0, h - 1)
        cols = np.clip(np.arange(shape[1] + 3) + x0, 0, w - 1)
        patch = src[np.ix_(rows, cols)].astype(np.float64)
        out = np.zeros(shape)
        for m in range(6):
            for n in range(4):
                out += ky[m] * kx[n] * patch[m:m + shape[0], n:n + shape[1]]
        return out

    got = shift_plane(plane, y0, x0, ky, kx, np.empty(shape, np.float32))
    np.testing.assert_allclose(got, reference(plane), rtol=1e-5, atol=1e-5)
    strided = np.repeat(plane[..., None], 2, axis=2)[..., 1]      # any strides
    np.testing.assert_allclose(shift_plane(strided, y0, x0, ky, kx, np.empty(shape, np.float32)), got, atol=1e-6)
    chroma = np.zeros((6, 7), np.float32)
    packed = pack_yuv420(plane, chroma, chroma, 1.0, np.empty((6, 7, 6), np.float32))
    np.testing.assert_allclose(shift_plane(packed, y0, x0, ky, kx, np.empty(shape, np.float32)),
                               reference(luma_plane(packed, np.empty((12, 14), np.float32))), rtol=1e-5, atol=1e-5)
