"""Torch tensors: the device tensor path (streamdn.tensors) agrees with the numpy/Numba path; on
CUDA the frame stays on the device; batches are independent images, clips one stream; tensors
are RGB by default."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamdn import Denoiser, SyntheticSource  # noqa: E402
from streamdn.config import SourceConfig  # noqa: E402
from streamdn.errors import ConfigError  # noqa: E402
from streamdn.frames import bgr_to_yuv420, yuv420_to_bgr  # noqa: E402
from streamdn.tensors import (TensorPath, denoise_tensor, rgb_to_yuv420, same_device,  # noqa: E402
                              takes_device_path, yuv420_to_rgb)


def _frames(n: int = 4, w: int = 66, h: int = 46) -> list[np.ndarray]:
    return [f.to_bgr() for f in SyntheticSource(SourceConfig(width=w, height=h, frames=n, sigma=15))]


def test_colour_conversion_matches_numpy() -> None:
    bgr = _frames(1)[0]
    y, u, v = bgr_to_yuv420(bgr)
    rgb = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float()
    ty, tu, tv = rgb_to_yuv420(rgb)
    for a, b in ((y, ty), (u, tu), (v, tv)):
        assert np.abs(a.astype(int) - b.numpy().astype(int)).max() <= 1
    back = yuv420_to_rgb(ty, tu, tv).permute(1, 2, 0).numpy()[..., ::-1]
    assert np.abs(back.astype(int) - yuv420_to_bgr(y, u, v).astype(int)).max() <= 2
    plain = yuv420_to_rgb(ty, tu, tv, chroma="bilinear").permute(1, 2, 0).numpy()[..., ::-1]
    # The bilinear NumPy path rounds the upsampled chroma to uint8 first (up to 1.5 levels),
    # beside the planes' own 1-level differences.
    assert np.abs(plain.astype(int) - yuv420_to_bgr(y, u, v, chroma="bilinear").astype(int)).max() <= 3


def test_tensor_path_agrees_with_cpu_path() -> None:
    a, b = Denoiser("tdn_tiny", device="cpu"), Denoiser("tdn_tiny", device="cpu")
    path = TensorPath(b.model, b.smooth_sigmas)
    for img in _frames():
        expected = a(img)
        got = denoise_tensor(path, torch.from_numpy(img.copy()), "bgr").numpy()
        diff = np.abs(expected.astype(int) - got.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 4


def test_tensor_path_needs_a_network() -> None:
    with pytest.raises(TypeError):
        TensorPath(Denoiser("tfilter").model, lambda s: s)


@pytest.mark.gpu
def test_cuda_tensors_stay_on_the_device() -> None:
    dn = Denoiser("fast", device="cuda")
    imgs = [torch.from_numpy(i[..., ::-1].copy()).cuda() for i in _frames(3, 128, 96)]   # RGB
    out = dn(imgs[0])
    assert out.device.type == "cuda" and out.dtype == torch.uint8 and out.shape == imgs[0].shape
    batch = torch.stack([i.permute(2, 0, 1).float() / 255 for i in imgs]).half()
    res = dn(batch)
    assert res.device.type == "cuda" and res.dtype == torch.float16 and res.shape == batch.shape
    cpu = Denoiser("fast", device="cpu")(imgs[0].cpu().numpy()[..., ::-1].copy())       # BGR
    assert np.abs(out.cpu().numpy().astype(int) - cpu[..., ::-1].astype(int)).mean() < 2.0


def _rgb_batch(n: int = 3, w: int = 48, h: int = 32, seed: int = 0) -> torch.Tensor:
    imgs = [f.to_bgr()[..., ::-1].copy()
            for f in SyntheticSource(SourceConfig(width=w, height=h, frames=n, sigma=20, seed=seed))]
    return torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in imgs])


@pytest.mark.parametrize("model", ["tdn_tiny", "tfilter", "classical:nlm-temporal"])
def test_a_batch_is_independent_images(model: str) -> None:
    batch = _rgb_batch(3)
    stream = _rgb_batch(4, seed=7)
    singles = torch.stack([Denoiser(model, device="cpu")(img) for img in batch])   # each alone, fresh
    with Denoiser(model, device="cpu") as dn, Denoiser(model, device="cpu") as ref:
        for f in stream[:3]:
            dn(f)
            ref(f)
        out = dn(batch)                                     # the stream's past is not used...
        assert out.shape == batch.shape and out.dtype == batch.dtype
        torch.testing.assert_close(out, singles, rtol=0, atol=0)
        torch.testing.assert_close(dn(stream[3]), ref(stream[3]), rtol=0, atol=0)   # ...nor changed


def test_a_batch_of_one_image_twice_gives_the_same_result() -> None:
    img = _rgb_batch(1)
    with Denoiser("tdn_tiny", device="cpu") as dn:
        torch.testing.assert_close(dn(torch.cat([img, img])), torch.cat([dn(img), dn(img)]), rtol=0, atol=0)


def test_denoise_clip_is_a_fresh_stream() -> None:
    clip = _rgb_batch(4)
    with Denoiser("tdn_tiny", device="cpu") as fresh:
        expected = torch.stack([fresh(f) for f in clip])
    with Denoiser("tdn_tiny", device="cpu") as dn:
        for f in _rgb_batch(3, seed=5):
            dn(f)                                            # a past the clip must not see
        out = dn.denoise_clip(clip)
        assert out.shape == clip.shape and out.dtype == clip.dtype
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        # consecutive frames, unlike a batch: the clip's frames depend on the ones before them
        assert not torch.equal(out[1:], dn(clip[1:]))
        as_list = dn.denoise_clip(list(clip))
        assert isinstance(as_list, list)
        torch.testing.assert_close(torch.stack(as_list), expected, rtol=0, atol=0)
        with pytest.raises(ConfigError, match="4-D"):
            dn.denoise_clip(clip[0])


def test_tensors_default_to_rgb_and_numpy_to_bgr() -> None:
    bgr = _frames(3)
    rgb_t = [torch.from_numpy(i[..., ::-1].copy()) for i in bgr]
    with Denoiser("tdn_tiny", device="cpu") as np_dn, Denoiser("tdn_tiny", device="cpu") as t_dn:
        for img, t in zip(bgr, rgb_t):
            np.testing.assert_array_equal(t_dn(t).numpy(), np_dn(img)[..., ::-1])


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_channel_order_applies_to_numpy_and_tensors(order: str) -> None:
    imgs = _frames(2)
    with Denoiser("tdn_tiny", device="cpu", channel_order=order) as a, \
            Denoiser("tdn_tiny", device="cpu", channel_order=order) as b:
        for img in imgs:
            np.testing.assert_array_equal(a(torch.from_numpy(img.copy())).numpy(), b(img))
    with pytest.raises(ConfigError, match="channel_order"):
        Denoiser("tfilter", channel_order="yuv")


def test_device_path_only_on_the_models_own_device() -> None:
    dev = torch.device
    assert takes_device_path(dev("cuda:0"), dev("cuda:0"))
    assert not takes_device_path(dev("cuda:1"), dev("cuda:0"))       # same type, another card
    assert not takes_device_path(dev("cuda:0"), dev("cuda:1"))
    assert takes_device_path(dev("cuda"), dev("cuda:1"), current=1)  # "cuda" is the current card
    assert not takes_device_path(dev("cuda"), dev("cuda:1"), current=0)
    assert takes_device_path(dev("cuda:0"), dev("cuda"), current=0)
    assert not takes_device_path(dev("cpu"), dev("cpu"))              # CPU tensors go through numpy
    assert not takes_device_path(dev("cuda:0"), dev("cpu"))
    assert same_device(dev("cpu"), dev("cpu")) and not same_device(dev("cpu"), dev("cuda:0"))


@pytest.mark.gpu
def test_cuda_batch_and_clip_on_the_device() -> None:
    batch = _rgb_batch(3, 128, 96).cuda()
    with Denoiser("fast", device="cuda") as dn:
        dn(batch[0])
        out = dn(batch)
        assert out.device.type == "cuda" and out.shape == batch.shape
        with Denoiser("fast", device="cuda") as fresh:
            torch.testing.assert_close(out[1], fresh(batch[1]), rtol=0, atol=1 / 255)
        clip = dn.denoise_clip(batch)
        assert clip.device.type == "cuda" and clip.shape == batch.shape
