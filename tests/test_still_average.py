"""The long average of a still camera for a plain recurrent network (`fast` on CUDA by default, or
`long_average=LongAverage(follow=False)`): kept on the device, restarted while the camera moves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamdn.denoiser import Denoiser
from streamdn.models import create_model
from streamdn.models.mosaic import LongAverage


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.5)
    return np.clip(128 + 40 * base / base.std(), 0, 255)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _run(frames: list[np.ndarray], still: bool, device: str = "cpu") -> list[np.ndarray]:
    model = create_model("fast", device=device, backend="torch",
                         long_average=LongAverage(follow=False) if still else False)
    with Denoiser(model) as dn:
        return [dn(f.copy()) for f in frames]


def _noisy(clean: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(c + rng.normal(0, 20, c.shape), 0, 255).astype(np.uint8) for c in clean]


def test_still_camera_keeps_averaging() -> None:
    """A still shot: with the average the output keeps improving long after the network alone
    has stopped (frame 23: several dB above it)."""
    clean = [_texture(240, 320, 0).astype(np.uint8)] * 24
    noisy = _noisy(clean)
    alone, still = _run(noisy, False), _run(noisy, True)
    assert _psnr(still[23], clean[0]) > _psnr(alone[23], clean[0]) + 2.0
    assert _psnr(still[23], clean[0]) > _psnr(still[8], clean[0])
    assert np.array_equal(still[0], alone[0])      # nothing to average yet


def test_moving_camera_restarts_it() -> None:
    """A pan of 2 px/frame: the mean restarts on every frame, so the output is the network's."""
    big = _texture(240, 384, 2)
    clean = [big[:, 2 * t:2 * t + 320].astype(np.uint8) for t in range(12)]
    noisy = _noisy(clean)
    for a, b in zip(_run(noisy, False), _run(noisy, True)):
        assert np.array_equal(a, b)


def test_a_moving_subject_does_not_move_the_camera() -> None:
    """A textured subject crossing a still background can win the phase correlation; the
    background, which no move lines up better, keeps the camera still and the mean going
    (`streamdn temporal`'s object shot: the coffee picture crossing chelsea at 2 px/frame)."""
    pytest.importorskip("skimage")
    from streamdn.tools.temporal import _picture, object_clip, through_420

    clip, cover = object_clip(_picture("chelsea.png"), _picture("coffee.png"), 320, 240, 2.0, 24)
    clean = list(through_420(clip))
    noisy = _noisy(clean, seed=0)
    alone, still = _run(noisy, False), _run(noisy, True)
    background = cover[23] < 0.01
    assert _psnr(still[23][background], clean[23][background]) > _psnr(alone[23][background],
                                                                        clean[23][background]) + 1.0


@pytest.mark.gpu
def test_cuda_default_keeps_a_still_cameras_average() -> None:
    """On CUDA `fast` keeps the still camera's mean by default, on the device."""
    model = create_model("fast", device="cuda")
    assert model.long_average == LongAverage(follow=False)
    clean = [_texture(240, 320, 0).astype(np.uint8)] * 24
    noisy = _noisy(clean)
    with Denoiser(model) as dn:
        out = [dn(f.copy()) for f in noisy]
    assert _psnr(out[23], clean[0]) > _psnr(out[3], clean[0]) + 2.0
