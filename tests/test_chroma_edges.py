"""Chroma edges given back after the network (streamdn.models.chroma_edges and its kernel)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamdn.models import create_model
from streamdn.models.chroma_edges import _on_device, _on_host, restore_chroma_edges


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1).unsqueeze(0)


def _scene(h2: int = 48, w2: int = 64) -> np.ndarray:
    """A packed clean frame: a saturated disc and a bar on grey, the colour edges on luma edges."""
    yy, xx = np.mgrid[:h2, :w2]
    disc = ((yy - h2 / 2) ** 2 + (xx - w2 / 3) ** 2 < (h2 / 4) ** 2).astype(np.float32)
    bar = ((xx > 0.7 * w2) & (xx < 0.7 * w2 + 3)).astype(np.float32)
    frame = np.empty((h2, w2, 6), np.float32)
    frame[..., :4] = (0.5 - 0.2 * disc + 0.25 * bar)[..., None]
    frame[..., 4] = 0.5 - 0.15 * disc + 0.2 * bar
    frame[..., 5] = 0.5 + 0.3 * disc - 0.1 * bar
    return frame


def test_kernel_and_torch_agree() -> None:
    """The CPU kernel and the torch path (a GPU's) give the same result, odd sizes and both radii."""
    rng = np.random.default_rng(0)
    for h2, w2, radius in ((37, 53, 2), (20, 31, 1), (9, 6, 2)):
        out = rng.random((h2, w2, 6), dtype=np.float32)
        inp = out + rng.normal(0, 0.05, out.shape).astype(np.float32)
        sigma = np.full((h2, w2, 3), 0.05, np.float32)
        a = _on_host(_nchw(out), _nchw(inp), _nchw(sigma), radius, 0.1, 2.0)
        b = _on_device(_nchw(out), _nchw(inp), _nchw(sigma), radius, 0.1, 2.0)
        assert torch.allclose(a, b, atol=2e-6)
        assert torch.equal(a[:, :4], _nchw(out)[:, :4])   # the luma is the output's


def test_gives_back_smoothed_colour_edges_not_noise() -> None:
    """A 'network' that kept the luma but blurred the chroma: the colour edges come back (the
    chroma's error on them falls by more than half) and the flat parts keep their low noise."""
    clean = _scene()
    sigma = 8.0 / 255.0
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    out = clean.copy()
    out[..., 4:] = cv2.GaussianBlur(clean[..., 4:], (0, 0), 1.5) + rng.normal(0, 0.002, (48, 64, 2)).astype(np.float32)
    smap = np.full((48, 64, 3), sigma, np.float32)
    res = restore_chroma_edges(_nchw(out), _nchw(noisy), _nchw(smap))[0].permute(1, 2, 0).numpy()
    grad = cv2.morphologyEx(clean[..., 4], cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0.01
    edge = cv2.dilate(grad.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0

    def err(a: np.ndarray, mask: np.ndarray) -> float:
        return float(((a[..., 4:] - clean[..., 4:]) ** 2)[mask].mean())

    assert err(res, edge) < 0.5 * err(out, edge)
    assert err(res, ~edge) < err(out, ~edge) + 0.1 * sigma ** 2


def test_a_flat_noisy_picture_gets_no_noise_back() -> None:
    """Without colour edges, what the network removed is noise: it stays removed."""
    rng = np.random.default_rng(2)
    h2, w2 = 40, 56
    out = np.full((h2, w2, 6), 0.5, np.float32)
    out[..., :4] += cv2.GaussianBlur(rng.normal(0, 0.05, (h2, w2)).astype(np.float32), (0, 0), 3)[..., None]
    sigma = 10.0 / 255.0
    noisy = out + rng.normal(0, sigma, out.shape).astype(np.float32)
    res = restore_chroma_edges(_nchw(out), _nchw(noisy), _nchw(np.full((h2, w2, 3), sigma, np.float32)))
    moved = (res - _nchw(out))[:, 4:].pow(2).mean().sqrt().item()
    assert moved < 0.1 * sigma


def test_unchanged_where_the_network_changed_nothing() -> None:
    """A clean picture passed through (input = output) comes out exactly as it went in."""
    clean = _scene()
    res = restore_chroma_edges(_nchw(clean), _nchw(clean), _nchw(np.zeros((48, 64, 3), np.float32)))
    assert torch.equal(res, _nchw(clean))


def test_model_option_changes_only_the_chroma() -> None:
    """`chroma_edges=False` is the network's output as before; on, only the chroma differs."""
    from streamdn.denoiser import Denoiser
    from streamdn.frames import bgr_to_yuv420

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:64, :96]
    picture = np.full((64, 96, 3), 128.0)
    picture[(yy - 32) ** 2 + (xx - 40) ** 2 < 300] = (40, 40, 220)     # a red disc on grey
    frames = [bgr_to_yuv420(np.clip(picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8))
              for _ in range(3)]
    results = {}
    for on in (False, True):
        model = create_model("fast", device="cpu", dtype="fp32", backend="torch", chroma_edges=on)
        assert model.chroma_edges is on
        with Denoiser(model) as dn:
            results[on] = [dn(f) for f in frames]
    for off, on in zip(results[False], results[True]):
        assert np.array_equal(off[0], on[0])                     # the luma
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(results[False], results[True]))
    # A still-image network takes the video options and ignores them, as the others.
    create_model("photo_tiny", chroma_edges=True).close()


@pytest.mark.gpu
def test_cuda_matches_the_cpu_kernel() -> None:
    """On a GPU the torch path runs (fp32 and fp16 outputs) and agrees with the CPU kernel."""
    rng = np.random.default_rng(4)
    out = rng.random((45, 80, 6), dtype=np.float32)
    inp = out + rng.normal(0, 0.04, out.shape).astype(np.float32)
    sigma = np.full((45, 80, 3), 0.04, np.float32)
    host = restore_chroma_edges(_nchw(out), _nchw(inp), _nchw(sigma))
    dev = restore_chroma_edges(*(_nchw(a).cuda() for a in (out, inp, sigma)))
    assert dev.device.type == "cuda" and dev.dtype == torch.float32
    assert torch.allclose(dev.cpu(), host, atol=1e-5)
    half = restore_chroma_edges(_nchw(out).cuda().half(), _nchw(inp).cuda().half(), _nchw(sigma).cuda())
    assert half.dtype == torch.float16 and torch.allclose(half.float().cpu(), host, atol=2e-3)
