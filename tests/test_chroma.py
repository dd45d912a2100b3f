"""Full-resolution chroma from the luma (streamdn.kernels.chroma) and the conversions that use it."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.frames import (_YUV_TO_BGR_F32, CHROMA_EPS, bgr_to_yuv420, planes_to_rgb, rgb_to_planes,
                             yuv420_to_bgr)
from streamdn.kernels.chroma import WORK_PLANES, chroma_from_luma, yuv420_to_bgr_guided
from streamdn.metrics import psnr

EPS8 = CHROMA_EPS * 255.0 ** 2


def _reference(y: np.ndarray, u: np.ndarray, v: np.ndarray, eps: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The guided fit written plainly, pixel by pixel, in float64."""
    h, w = y.shape
    h2, w2 = u.shape
    yp = np.pad(y.astype(np.float64), ((0, h % 2), (0, w % 2)), mode="edge")
    yl = yp.reshape(h2, 2, w2, 2).mean((1, 3))

    def box(a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        for i in range(h2):
            for j in range(w2):
                out[i, j] = a[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1].mean()
        return out

    def up(a: np.ndarray) -> np.ndarray:
        out = np.empty((h, w))
        for r in range(h):
            for c in range(w):
                fy, fx = r / 2.0 - 0.25, c / 2.0 - 0.25          # centre-sited 4:2:0 samples
                i0, j0 = int(np.floor(fy)), int(np.floor(fx))
                ty, tx = fy - i0, fx - j0
                ii = [min(max(i0, 0), h2 - 1), min(max(i0 + 1, 0), h2 - 1)]
                jj = [min(max(j0, 0), w2 - 1), min(max(j0 + 1, 0), w2 - 1)]
                out[r, c] = ((1 - ty) * ((1 - tx) * a[ii[0], jj[0]] + tx * a[ii[0], jj[1]])
                             + ty * ((1 - tx) * a[ii[1], jj[0]] + tx * a[ii[1], jj[1]]))
        return out

    res = []
    my = box(yl)
    var = np.maximum(box(yl * yl) - my * my, 0.0) + eps
    for c in (u.astype(np.float64), v.astype(np.float64)):
        mc = box(c)
        a = (box(yl * c) - my * mc) / var
        b = mc - a * my
        full = up(box(a)) * y + up(box(b))
        fp = np.pad(full, ((0, h % 2), (0, w % 2)), mode="edge")
        res.append(full + up(c - fp.reshape(h2, 2, w2, 2).mean((1, 3))))
    return res[0], res[1]


def _colour_edges(h: int, w: int, seed: int = 0) -> np.ndarray:
    """BGR uint8: saturated colour patches with sharp edges and shading, the kind of picture
    whose 4:2:0 round trip loses the most."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(12):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, min(h, w) / 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img *= (0.7 + 0.3 * np.sin(xx / 7.0))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(8, 12), (9, 13), (20, 31)])
@pytest.mark.parametrize("radius", [1, 2])
def test_kernel_matches_the_plain_fit(shape: tuple[int, int], radius: int) -> None:
    rng = np.random.default_rng(3)
    h, w = shape
    y = rng.integers(16, 236, shape).astype(np.uint8)
    u = rng.integers(16, 240, ((h + 1) // 2, (w + 1) // 2)).astype(np.uint8)
    v = rng.integers(16, 240, u.shape).astype(np.uint8)
    ou, ov = np.empty(shape, np.float32), np.empty(shape, np.float32)
    chroma_from_luma(y, u, v, EPS8, radius, np.empty((WORK_PLANES,) + u.shape, np.float32), ou, ov)
    ru, rv = _reference(y, u, v, EPS8, radius)
    np.testing.assert_allclose(ou, ru, atol=2e-3, rtol=0)
    np.testing.assert_allclose(ov, rv, atol=2e-3, rtol=0)
    # The fused conversion: the same chroma, converted and rounded.
    bgr = yuv420_to_bgr_guided(y, u, v, EPS8, radius, _YUV_TO_BGR_F32,
                               np.empty((WORK_PLANES,) + u.shape, np.float32), np.empty(shape + (3,), np.uint8))
    yuv = np.dstack([y.astype(np.float64), ru, rv])
    want = np.clip(np.floor(yuv @ _YUV_TO_BGR_F32[:, :3].T.astype(np.float64) + _YUV_TO_BGR_F32[:, 3] + 0.5), 0, 255)
    assert np.abs(bgr.astype(int) - want.astype(int)).max() <= 1


def test_colour_edges_come_back_sharper_than_bilinear() -> None:
    img = _colour_edges(96, 128)
    planes = bgr_to_yuv420(img)
    plain, guided = psnr(img, yuv420_to_bgr(*planes, chroma="bilinear")), psnr(img, yuv420_to_bgr(*planes))
    assert guided > plain + 3.0, (plain, guided)
    # Each 2x2 block keeps its colour: the result's block means stay nearer the planes it came
    # from than the bilinear result's.
    y, u, v = planes
    ou, ov = np.empty(y.shape, np.float32), np.empty(y.shape, np.float32)
    chroma_from_luma(y, u, v, EPS8, 1, np.empty((WORK_PLANES,) + u.shape, np.float32), ou, ov)
    import cv2

    bu = cv2.resize(u.astype(np.float32), (y.shape[1], y.shape[0]), interpolation=cv2.INTER_LINEAR)

    def block_err(full: np.ndarray) -> float:
        return float(np.abs(full.reshape(u.shape[0], 2, u.shape[1], 2).mean((1, 3)) - u).mean())

    assert block_err(ou) < 0.5 * block_err(bu)


def test_a_grey_picture_stays_grey() -> None:
    rng = np.random.default_rng(1)
    grey = np.repeat(rng.integers(0, 256, (40, 60, 1)), 3, axis=2).astype(np.uint8)
    y, u, v = bgr_to_yuv420(grey)
    assert (u == 128).all() and (v == 128).all()
    ou, ov = np.empty(y.shape, np.float32), np.empty(y.shape, np.float32)
    chroma_from_luma(y, u, v, EPS8, 1, np.empty((WORK_PLANES,) + u.shape, np.float32), ou, ov)
    assert np.abs(ou - 128).max() < 1e-3 and np.abs(ov - 128).max() < 1e-3


def test_deep_planes_take_the_same_fit() -> None:
    rgb = _colour_edges(64, 80, seed=2)[..., ::-1]
    y, u, v = rgb_to_planes(rgb, 16)
    plain = planes_to_rgb(y, u, v, 16, np.uint8)
    guided = planes_to_rgb(y, u, v, 16, np.uint8, chroma="luma")
    assert psnr(rgb, guided) > psnr(rgb, plain) + 3.0
    # 16-bit planes give what their 8-bit rounding gives, within rounding.
    y8, u8, v8 = rgb_to_planes(rgb, 8)
    assert np.abs(guided.astype(int) - planes_to_rgb(y8, u8, v8, 8, np.uint8, chroma="luma").astype(int)).mean() < 0.6


def test_an_unknown_upsampling_is_refused() -> None:
    from streamdn.errors import ConfigError

    y = np.zeros((4, 4), np.uint8)
    c = np.zeros((2, 2), np.uint8)
    with pytest.raises(ConfigError, match="bicubic"):
        yuv420_to_bgr(y, c, c, chroma="bicubic")
