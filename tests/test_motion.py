"""Motion kernels against NumPy references: the warps (bilinear, bicubic, packed 4:2:0), the packed
luma plane, and the block matcher on textures moved by known integer and sub-pixel shifts."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.kernels import block_match, packed_luma, warp, warp_packed


def _keys(d: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel at distance d."""
    d = np.abs(d)
    near = (a + 2) * d**3 - (a + 3) * d**2 + 1
    far = a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _sample(plane: np.ndarray, sy: np.ndarray, sx: np.ndarray, cubic: bool) -> np.ndarray:
    """plane (h, w, C) at positions (sy, sx): clamped to the border, then interpolated."""
    h, w = plane.shape[:2]
    sy = np.clip(sy, 0, h - 1)
    sx = np.clip(sx, 0, w - 1)
    y0 = np.minimum(np.floor(sy).astype(int), max(h - 2, 0))
    x0 = np.minimum(np.floor(sx).astype(int), max(w - 2, 0))
    p = plane.astype(np.float64)
    offsets = range(-1, 3) if cubic else range(0, 2)
    out = 0.0
    for dy in offsets:
        yy = np.clip(y0 + dy, 0, h - 1)
        wy = _keys(sy - (y0 + dy)) if cubic else 1 - np.abs(sy - (y0 + dy))
        for dx in offsets:
            xx = np.clip(x0 + dx, 0, w - 1)
            wx = _keys(sx - (x0 + dx)) if cubic else 1 - np.abs(sx - (x0 + dx))
            out = out + (wy * wx)[..., None] * p[yy, xx]
    return out


def _warp_ref(src: np.ndarray, flow: np.ndarray, cubic: bool) -> tuple[np.ndarray, np.ndarray]:
    h, w = src.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = xx + flow[..., 0]
    sy = yy + flow[..., 1]
    valid = ((sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)).astype(np.float32)
    return _sample(src, sy, sx, cubic), valid


def _warp_packed_ref(src: np.ndarray, flow: np.ndarray, cubic: bool) -> tuple[np.ndarray, np.ndarray]:
    h, w = src.shape[:2]
    luma = np.empty((2 * h, 2 * w, 1))
    for p in range(4):
        luma[p >> 1::2, p & 1::2, 0] = src[..., p]
    chroma, valid = _warp_ref(src[..., 4:], flow, cubic)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty(src.shape)
    for p in range(4):
        ly = 2 * yy + (p >> 1) + 2 * flow[..., 1]
        lx = 2 * xx + (p & 1) + 2 * flow[..., 0]
        out[..., p] = _sample(luma, ly, lx, cubic)[..., 0]
    out[..., 4:] = chroma
    return out, valid


def _flow(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    # Mostly inside, some samples pushed well outside to exercise the border and the mask.
    return rng.normal(0.0, scale, (h, w, 2)).astype(np.float32)


@pytest.mark.parametrize("cubic", [False, True])
@pytest.mark.parametrize("shape", [(7, 11, 3), (16, 9, 1), (2, 5, 6)])
def test_warp_matches_reference(cubic: bool, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    src = rng.random(shape, dtype=np.float32)
    flow = _flow(rng, shape[0], shape[1], 3.0)
    out, valid = warp(src, flow, cubic=cubic)
    ref, ref_valid = _warp_ref(src, flow, cubic)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_array_equal(valid, ref_valid)
    assert 0 < valid.mean() < 1


@pytest.mark.parametrize("cubic", [False, True])
@pytest.mark.parametrize("shape", [(9, 13), (4, 3)])
def test_warp_packed_matches_reference(cubic: bool, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    src = rng.random((*shape, 6), dtype=np.float32)
    # Small vectors (the fast interior path) and large ones (the border path).
    flow = np.concatenate([_flow(rng, shape[0], shape[1] // 2, 0.7),
                           _flow(rng, shape[0], shape[1] - shape[1] // 2, 4.0)], axis=1)
    out, valid = warp_packed(src, flow, cubic=cubic)
    ref, ref_valid = _warp_packed_ref(src, flow, cubic)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_array_equal(valid, ref_valid)


@pytest.mark.parametrize("fn", [warp, warp_packed])
@pytest.mark.parametrize("cubic", [False, True])
def test_whole_pixel_moves_are_exact(fn, cubic: bool) -> None:
    rng = np.random.default_rng(2)
    src = rng.random((12, 14, 6), dtype=np.float32)
    flow = np.zeros((12, 14, 2), np.float32)
    out, valid = fn(src, flow, cubic=cubic)
    np.testing.assert_array_equal(out, src)
    assert valid.min() == 1.0
    flow[..., 0] = 2.0           # content 2 px to the left of where it was
    flow[..., 1] = -1.0
    out, valid = fn(src, flow, cubic=cubic)
    np.testing.assert_allclose(out[1:, :-2], src[:-1, 2:], atol=1e-6)
    assert valid[0].max() == 0.0 and valid[:, -2:].max() == 0.0 and valid[1:, :-2].min() == 1.0


@pytest.mark.parametrize("cubic", [False, True])
def test_warp_packed_moves_luma_by_full_resolution_pixels(cubic: bool) -> None:
    """Half a packed pixel is one luma pixel: warp_packed moves luma exactly, warp cannot."""
    rng = np.random.default_rng(3)
    src = rng.random((10, 12, 6), dtype=np.float32)
    flow = np.zeros((10, 12, 2), np.float32)
    flow[..., 0] = 0.5
    out, _ = warp_packed(src, flow, cubic=cubic)
    # Phase (r, 0) now holds what phase (r, 1) held; phase (r, 1) what (r, 0) held one column right.
    np.testing.assert_allclose(out[:, :-1, 0], src[:, :-1, 1], atol=1e-6)
    np.testing.assert_allclose(out[:, :-1, 1], src[:, 1:, 0], atol=1e-6)
    np.testing.assert_allclose(out[:, :-1, 2], src[:, :-1, 3], atol=1e-6)
    generic, _ = warp(src, flow, cubic=cubic)
    assert np.abs(generic[:, :-1, 0] - src[:, :-1, 1]).max() > 0.1


def test_warp_rejects_bad_shapes() -> None:
    src = np.zeros((4, 5, 3), np.float32)
    with pytest.raises(ValueError, match="flow"):
        warp(src, np.zeros((4, 6, 2), np.float32))
    with pytest.raises(ValueError, match="float32"):
        warp(src.astype(np.float64), np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        warp(src, np.zeros((4, 5, 2), np.float32), out=src)
    with pytest.raises(ValueError, match="6 channels"):
        warp_packed(src, np.zeros((4, 5, 2), np.float32))


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_packed_luma_matches_reference(factor: int) -> None:
    rng = np.random.default_rng(4)
    src = rng.uniform(-0.1, 1.1, (7, 9, 6)).astype(np.float32)
    h, w = -(-7 // factor), -(-9 // factor)
    pad = np.pad(src[..., :4].mean(axis=2), ((0, h * factor - 7), (0, w * factor - 9)), mode="edge")
    ref = pad.reshape(h, factor, w, factor).mean(axis=(1, 3))
    np.testing.assert_allclose(packed_luma(src, factor=factor), ref, atol=1e-6)
    got8 = packed_luma(src, factor=factor, out=np.empty((h, w), np.uint8))
    np.testing.assert_array_equal(got8, np.clip(np.floor(ref * 255 + 0.5), 0, 255).astype(np.uint8))


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Band-limited random texture in [0, 1] (smooth enough that a Fourier shift is exact)."""
    spec = np.fft.fft2(rng.random((h, w)))
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    img = np.real(np.fft.ifft2(spec * np.exp(-(kx**2 + ky**2) / (2 * 0.12**2))))
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The content moved by (dx, dy): result(x) = img(x - d)."""
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.fftfreq(img.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (kx * dx + ky * dy)))).astype(np.float32)


@pytest.mark.parametrize("dx,dy,tol", [(3.0, -2.0, 0.01), (0.4, -0.25, 0.06), (-5.3, 1.7, 0.06)])
def test_block_match_recovers_a_shift(dx: float, dy: float, tol: float) -> None:
    rng = np.random.default_rng(5)
    prev = _texture(rng, 96, 128)
    cur = _shift(prev, dx, dy)
    flow = block_match(cur, prev, tile=16, levels=3)
    inner = flow[16:-16, 16:-16]
    # The content moved by +d, so each pixel of cur was at x - d in prev.
    assert np.median(inner[..., 0]) == pytest.approx(-dx, abs=tol)
    assert np.median(inner[..., 1]) == pytest.approx(-dy, abs=tol)
    assert np.percentile(np.hypot(inner[..., 0] + dx, inner[..., 1] + dy), 90) < 3 * tol + 0.05


def test_block_match_static_pair_is_zero() -> None:
    rng = np.random.default_rng(6)
    prev = _texture(rng, 64, 80)
    assert np.abs(block_match(prev, prev.copy())).max() == 0.0
    noisy = prev + rng.normal(0, 0.02, prev.shape).astype(np.float32)
    assert np.median(np.hypot(*block_match(noisy, prev).transpose(2, 0, 1))) < 0.1


def test_block_match_resamples_to_out() -> None:
    """Matching at quarter resolution and asking for a half-resolution field doubles the vectors."""
    rng = np.random.default_rng(7)
    prev = _texture(rng, 64, 96)
    cur = _shift(prev, 2.0, 1.0)
    out = block_match(cur, prev, out=np.empty((128, 192, 2), np.float32))
    assert out.shape == (128, 192, 2)
    assert np.median(out[..., 0]) == pytest.approx(-4.0, abs=0.05)
    assert np.median(out[..., 1]) == pytest.approx(-2.0, abs=0.05)


def test_block_match_rejects_bad_input() -> None:
    a = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="one size"):
        block_match(a, np.zeros((32, 31), np.float32))
    with pytest.raises(ValueError, match="stride"):
        block_match(a, a, tile=8, stride=9)


def test_flow_maps_and_luma_plane_match_their_numpy_references() -> None:
    """The Numba sampling maps equal cv2.resize of the flow (to its fixed-point rounding) plus
    the pixel grid; the luma plane and its repacking are exact inverses."""
    import cv2

    from streamdn.kernels.motion import flow_maps, luma_plane, repack_luma

    rng = np.random.default_rng(0)
    h, w = 9, 13
    flow = ((rng.random((h, w, 2)) - 0.5) * 6).astype(np.float32)
    for s in (1, 2):
        gx, gy = np.empty((h * s, w * s), np.float32), np.empty((h * s, w * s), np.float32)
        flow_maps(flow, s, gx, gy)
        big = cv2.resize(flow, (w * s, h * s), interpolation=cv2.INTER_LINEAR) * s if s > 1 else flow
        np.testing.assert_allclose(gx, np.arange(w * s)[None, :] + big[..., 0], atol=1e-3)
        np.testing.assert_allclose(gy, np.arange(h * s)[:, None] + big[..., 1], atol=1e-3)
    packed = rng.random((h, w, 6), dtype=np.float32)
    y = luma_plane(packed, np.empty((2 * h, 2 * w), np.float32))
    assert y[1, 0] == packed[0, 0, 2] and y[2 * h - 1, 2 * w - 1] == packed[h - 1, w - 1, 3]
    back = repack_luma(y, np.ascontiguousarray(packed[..., 4:]), np.empty_like(packed))
    np.testing.assert_array_equal(back, packed)


def _still_ref(cur: np.ndarray, prev: np.ndarray, flow: np.ndarray, block: int, rel: float, margin: float,
               small: float, still: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of keep_still_blocks: the edited flow and still map."""
    h, w = cur.shape
    flow, still = flow.copy(), still.copy()
    c, p = cur.astype(np.float64), prev.astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    px = np.clip(xx + flow[..., 0], 0, w - 1)
    py = np.clip(yy + flow[..., 1], 0, h - 1)
    ix, iy = np.clip(px.astype(int), 0, w - 2), np.clip(py.astype(int), 0, h - 2)
    tx, ty = px - ix, py - iy
    top = p[iy, ix] + tx * (p[iy, ix + 1] - p[iy, ix])
    bot = p[iy + 1, ix] + tx * (p[iy + 1, ix + 1] - p[iy + 1, ix])
    along = np.abs(c - (top + ty * (bot - top)))
    zero = np.abs(c - p)
    for by in range(still.shape[0]):
        for bx in range(still.shape[1]):
            sl = np.s_[by * block:(by + 1) * block, bx * block:(bx + 1) * block]
            n = zero[sl].size
            mean = flow[sl].reshape(-1, 2).mean(0)
            slow = still[by, bx] == 1 or float(np.hypot(*mean)) <= small
            ok = slow and zero[sl].sum() <= along[sl].sum() * (1 + rel) + margin * n
            still[by, bx] = int(ok)
            if ok:
                flow[sl] = 0.0
    return flow, still


def _noisy_luma(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape) + 0.5, 0, 255).astype(np.uint8)


def test_keep_still_blocks_matches_its_reference() -> None:
    from streamdn.kernels.motion import keep_still_blocks

    rng = np.random.default_rng(3)
    img = _texture(rng, 36, 44)
    cur, prev = _noisy_luma(rng, img, 8.0), _noisy_luma(rng, _shift(img, 0.6, 0.0), 3.0)
    flow = rng.normal(0, 0.3, (36, 44, 2)).astype(np.float32)
    still = (rng.random((5, 6)) < 0.5).astype(np.uint8)
    want_flow, want_still = _still_ref(cur, prev, flow, 8, 0.02, 0.25, 0.1, still)
    got_flow, got_still = flow.copy(), still.copy()
    n = keep_still_blocks(cur, prev, got_flow, 8, 0.02, 0.25, 0.1, got_still)
    assert np.array_equal(got_still, want_still) and n == int(want_still.sum())
    assert 0 < n < still.size                          # both outcomes occur in this case
    np.testing.assert_array_equal(got_flow, want_flow)


def test_still_scene_keeps_zero_motion_and_a_pan_keeps_its_flow() -> None:
    """The warper's flow between noisy frames of a still picture is exactly zero in most
    blocks after a few frames (no re-interpolation), where the plain flow is noise everywhere;
    between frames of a 1-pixel pan it stays near the pan."""
    from streamdn.models.motion import StateWarper

    rng = np.random.default_rng(4)
    img = _texture(rng, 96, 128) * 255.0

    def packed(luma: np.ndarray) -> np.ndarray:
        out = np.empty((48, 64, 6), np.float32)
        out[..., 0], out[..., 1] = luma[0::2, 0::2], luma[0::2, 1::2]
        out[..., 2], out[..., 3] = luma[1::2, 0::2], luma[1::2, 1::2]
        out[..., 4:] = 0.5
        return out

    warper = StateWarper()
    state = packed(img / 255.0)
    plain = StateWarper(presmooth=0.0, still=None)
    for _ in range(4):
        noisy = packed(_noisy_luma(rng, img, 20.0) / 255.0)
        flow, raw = warper.estimate(noisy, state), plain.estimate(noisy, state)
    assert (flow == 0.0).all(axis=-1).mean() > 0.6
    assert (raw == 0.0).all(axis=-1).mean() < 0.1
    warper.reset()
    moved = packed(_shift(img, 2.0, 0.0) / 255.0)      # 2 full-resolution px = 1 packed px
    for w in (warper, plain):
        f = w.estimate(packed(_noisy_luma(rng, img, 20.0) / 255.0), moved)
        assert abs(float(np.median(f[8:-8, 8:-8, 0])) - 1.0) < 0.2


def _lanczos_ref(src: np.ndarray, flow: np.ndarray, a: int) -> np.ndarray:
    """NumPy reference of warp_packed_lanczos (float64, the same 1/1024 weight table)."""
    from streamdn.kernels.motion import LANCZOS_STEPS, lanczos_table

    table = lanczos_table(a).astype(np.float64)
    h, w = src.shape[:2]
    luma = np.empty((2 * h, 2 * w))
    luma[0::2, 0::2], luma[0::2, 1::2], luma[1::2, 0::2], luma[1::2, 1::2] = (src[..., k] for k in range(4))

    def sample(plane: np.ndarray, y: float, x: float) -> float:
        fy, fx = np.floor(y), np.floor(x)
        wy = table[int((y - fy) * LANCZOS_STEPS + 0.5)]
        wx = table[int((x - fx) * LANCZOS_STEPS + 0.5)]
        rows = np.clip(np.arange(int(fy) - a + 1, int(fy) + a + 1), 0, plane.shape[0] - 1)
        cols = np.clip(np.arange(int(fx) - a + 1, int(fx) + a + 1), 0, plane.shape[1] - 1)
        return float(wy @ plane[np.ix_(rows, cols)] @ wx)

    out = np.empty_like(src, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            u, v = float(flow[i, j, 0]), float(flow[i, j, 1])
            if u == 0.0 and v == 0.0:
                out[i, j] = src[i, j]
                continue
            for p in range(4):
                out[i, j, p] = sample(luma, 2 * i + (p >> 1) + 2 * v, 2 * j + (p & 1) + 2 * u)
            for c in (4, 5):
                out[i, j, c] = sample(src[..., c].astype(np.float64), i + v, j + u)
    return out


@pytest.mark.parametrize("a", [3, 4])
def test_warp_packed_lanczos_matches_reference(a: int) -> None:
    from streamdn.kernels.motion import warp_packed_lanczos

    rng = np.random.default_rng(5)
    src = rng.random((14, 18, 6)).astype(np.float32)
    flow = _flow(rng, 14, 18, 2.5)
    flow[3:6, 4:9] = 0.0                               # still pixels are copied
    got = warp_packed_lanczos(src, flow, a)
    np.testing.assert_allclose(got, _lanczos_ref(src, flow, a), atol=2e-5)
    assert np.array_equal(got[3:6, 4:9], src[3:6, 4:9])


def test_warp_packed_lanczos_moves_whole_pixels_exactly_and_follows_opencv() -> None:
    """A move by whole full-resolution pixels is exact; a sub-pixel move agrees with OpenCV's
    8x8 Lanczos remap (which rounds positions to 1/32 px) on a smooth picture."""
    from streamdn.kernels.motion import warp_packed_lanczos
    from streamdn.models.motion import warp_packed as cv2_warp

    rng = np.random.default_rng(6)
    tex = _texture(rng, 64, 80)
    src = np.stack([tex[0::2, 0::2], tex[0::2, 1::2], tex[1::2, 0::2], tex[1::2, 1::2],
                    tex[0::2, 0::2] * 0.5, tex[1::2, 1::2] * 0.5], axis=-1).astype(np.float32)
    flow = np.zeros((32, 40, 2), np.float32)
    flow[..., 0] = 0.5                                  # one full-resolution luma pixel
    got = warp_packed_lanczos(src, flow, 3)
    np.testing.assert_allclose(got[:, :-2, 0], src[:, :-2, 1], atol=1e-6)   # phase 0 <- phase 1
    np.testing.assert_allclose(got[:, :-2, 1], src[:, 1:-1, 0], atol=1e-6)  # phase 1 <- next phase 0
    flow[..., 0], flow[..., 1] = 0.37, -0.21
    for a in (3, 4):
        diff = np.abs(warp_packed_lanczos(src, flow, a) - cv2_warp(src, flow))[6:-6, 6:-6]
        assert diff.mean() < 2e-3 and diff.max() < 2e-2
    with pytest.raises(ValueError):
        warp_packed_lanczos(src, flow, 5)


def test_warp_tensors_leaves_a_still_state_untouched() -> None:
    """When every flow is zero the state, hidden features and count come back as they were
    (no interpolation, no copy); when something moved they are warped."""
    import torch

    from streamdn.models.motion import StateWarper

    rng = np.random.default_rng(7)
    tex = _texture(rng, 64, 96)
    packed = np.stack([tex[0::2, 0::2], tex[0::2, 1::2], tex[1::2, 0::2], tex[1::2, 1::2],
                       np.full((32, 48), 0.5), np.full((32, 48), 0.5)], -1).astype(np.float32)
    cur = torch.from_numpy(packed).permute(2, 0, 1)[None]
    hidden, count = torch.rand(1, 4, 32, 48), torch.full((1, 1, 32, 48), 5.0)
    warper = StateWarper()
    state, h, c = warper.warp_tensors(cur, cur.clone(), hidden, count)
    assert torch.equal(state, cur) and h is hidden and c is count
    moved = torch.from_numpy(np.ascontiguousarray(np.roll(packed, 3, axis=1))).permute(2, 0, 1)[None]
    state, h, c = warper.warp_tensors(cur, moved, hidden, count)
    assert not torch.equal(state, moved)
    assert float((state - cur)[..., 6:-6, 6:-6].abs().mean()) < float((moved - cur)[..., 6:-6, 6:-6].abs().mean()) / 4
