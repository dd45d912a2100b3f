"""The device tensor path (streamdn.tensors) agrees with the numpy/Numba path; on CUDA the
frame stays on the device."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamdn import Denoiser, SyntheticSource  # noqa: E402
from streamdn.config import SourceConfig  # noqa: E402
from streamdn.frames import bgr_to_yuv420, yuv420_to_bgr  # noqa: E402
from streamdn.tensors import TensorPath, denoise_tensor, rgb_to_yuv420, yuv420_to_rgb  # noqa: E402


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


def test_tensor_path_agrees_with_cpu_path() -> None:
    a, b = Denoiser("tdn_tiny", device="cpu"), Denoiser("tdn_tiny", device="cpu")
    path = TensorPath(b)
    for img in _frames():
        expected = a(img)
        got = denoise_tensor(b, path, torch.from_numpy(img.copy())).numpy()
        diff = np.abs(expected.astype(int) - got.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 4


def test_tensor_path_needs_a_network() -> None:
    with pytest.raises(TypeError):
        TensorPath(Denoiser("tfilter"))


@pytest.mark.gpu
def test_cuda_tensors_stay_on_the_device() -> None:
    dn = Denoiser("fast", device="cuda")
    imgs = [torch.from_numpy(i.copy()).cuda() for i in _frames(3, 128, 96)]
    out = dn(imgs[0])
    assert out.device.type == "cuda" and out.dtype == torch.uint8 and out.shape == imgs[0].shape
    batch = torch.stack([i.permute(2, 0, 1).float() / 255 for i in imgs]).half()
    res = dn(batch)
    assert res.device.type == "cuda" and res.dtype == torch.float16 and res.shape == batch.shape
    cpu = Denoiser("fast", device="cpu")(imgs[0].cpu().numpy())
    assert np.abs(out.cpu().numpy().astype(int) - cpu.astype(int)).mean() < 2.0
