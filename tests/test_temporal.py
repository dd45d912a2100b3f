"""streamdn temporal: shots with real sub-pixel pans, the running-mean ceiling, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")

from streamdn.cli import main
from streamdn.tools.temporal import (TemporalConfig, frames_in_view, in_view_curve, measure, noisy_frames, pan_clip,
                                     running_mean_psnr, table)


def test_pan_moves_by_the_asked_amount() -> None:
    """Two frames 4 steps apart of a 0.25 px/frame pan are one whole pixel apart."""
    rng = np.random.default_rng(0)
    pic = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    clip = pan_clip(pic, 64, 48, 0.25, 5)
    assert clip.shape == (5, 48, 64, 3) and clip.dtype == np.uint8
    a, b = clip[0].astype(int), clip[4].astype(int)
    assert np.abs(b[:, :-2] - a[:, 1:-1]).mean() < np.abs(b[:, :-2] - a[:, :-2]).mean() / 3
    assert np.array_equal(pan_clip(pic, 64, 48, 0.0, 3)[0], pan_clip(pic, 64, 48, 0.0, 3)[2])


def test_frames_in_view_of_a_pan() -> None:
    """A pan brings the picture in at the right edge (speed px/frame) and at the bottom (0.3 x
    speed): at frame t a pixel has been in view as many frames as its picture has been there."""
    k = frames_in_view(10, 4, 2.0, 3)
    assert k.shape == (4, 10)
    # Columns from the right edge: 8-9 came in at this frame, 6-7 one frame before, 4-5 two.
    assert k[0].tolist() == [4, 4, 4, 4, 3, 3, 2, 2, 1, 1]
    # Rows: 0.6 px/frame, the bottom row came in at this frame.
    assert k[:, 0].tolist() == [4, 4, 2, 1]
    assert (frames_in_view(10, 4, 0.0, 3) == 4).all()
    assert (frames_in_view(10, 4, 1.0, 0) == 1).all()


def test_in_view_curve_mixes_the_static_curve_by_error() -> None:
    """A constant static curve stays constant; a climbing one is held back by the picture the pan
    brought in, by the mean squared error of the pixels' own frame counts."""
    assert np.allclose(in_view_curve([30.0] * 5, 64, 48, 3.0), 30.0)
    static = [20.0, 30.0, 40.0]
    curve = in_view_curve(static, 10, 4, 2.0)
    assert curve[0] == pytest.approx(20.0)
    # At frame 1, columns 8-9 and the bottom row came in: 16 of 40 pixels at frame 0's level.
    mse = (16 * 10 ** -2.0 + 24 * 10 ** -3.0) / 40
    assert curve[1] == pytest.approx(-10 * np.log10(mse))
    assert in_view_curve(static, 10, 1, 0.0) == pytest.approx(static)


def test_running_mean_gains_as_frames_add_up() -> None:
    clean = np.full((9, 32, 32, 3), 128, np.uint8)
    p = running_mean_psnr(clean, noisy_frames(clean, 20.0, 0))
    # Averaging N frames divides the noise variance by N: +10 log10(9) = 9.5 dB at frame 8.
    assert abs((p[8] - p[0]) - 10 * np.log10(9)) < 0.8


def test_measure_and_command(tmp_path: Path) -> None:
    cfg = TemporalConfig(models=("classical:mean",), speeds=(0.0, 1.0), frames=3, objects=(),
                         scenes=(("chelsea.png", 64, 48),))
    curves = measure(cfg)
    assert [(c.speed, c.method) for c in curves] == [(0.0, "mean of noisy frames"), (0.0, "classical:mean"),
                                                      (1.0, "classical:mean"),
                                                      (1.0, "classical:mean: static by frames in view")]
    assert all(len(c.psnr) == 3 and all(10 < v < 60 for v in c.psnr) for c in curves)
    assert "frame 2" in table(curves)
    out = tmp_path / "t.json"
    assert main(["temporal", "--models", "classical:mean", "--speeds", "0", "--frames", "2", "--objects", "none",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["curves"]) == 4 and data["config"]["frames"] == 2
    assert main(["temporal", "--speeds", "fast"]) == 2


def test_full_chroma_shows_the_420_ceiling() -> None:
    """With the pictures' full chroma the table carries the 4:2:0 round trip's ceiling, and a
    4:2:0 shot's clean frames are already what that round trip gives (no ceiling below 60 dB)."""
    base = dict(models=(), speeds=(0.0,), frames=2, objects=(), scenes=(("coffee.png", 96, 64),))
    full = measure(TemporalConfig(**base, chroma="444"))
    assert [c.method for c in full] == ["mean of noisy frames", "4:2:0 ceiling (clean frames through 4:2:0)"]
    assert 25 < full[1].psnr[0] < 50
    from streamdn.tools.temporal import through_420
    clip = through_420(pan_clip(np.full((80, 120, 3), 90, np.uint8), 32, 16, 0.0, 1))
    assert np.array_equal(through_420(clip), clip)
    with pytest.raises(Exception, match="chroma"):
        measure(TemporalConfig(**base, chroma="422"))


def test_moving_object_trail_catches_a_ghost() -> None:
    """The trail is the background the object uncovered in the last frames; a method that keeps
    the past there (a plain running mean) scores far worse on it than on the whole frame."""
    from streamdn.tools.temporal import _picture, masked_psnr, object_clip, trail_masks

    clean, cover = object_clip(_picture("chelsea.png"), _picture("coffee.png"), 96, 64, 2.0, 10)
    assert clean.shape == (10, 64, 96, 3) and cover.shape == (10, 64, 96)
    trail = trail_masks(cover)
    assert not trail[0].any() and trail[9].sum() > 0 and not (trail[9] & (cover[9] > 0.01)).any()
    ghost = clean[:10].astype(np.float64).mean(0)          # everything ever seen, averaged
    ghost8 = np.clip(ghost + 0.5, 0, 255).astype(np.uint8)
    assert masked_psnr(ghost8, clean[9], trail[9]) < masked_psnr(ghost8, clean[9], ~trail[9]) - 3
    assert masked_psnr(clean[9], clean[9], trail[9]) == 99.0
    curves = measure(TemporalConfig(models=("classical:mean",), speeds=(), objects=(2.0,), frames=3,
                                    scenes=(("chelsea.png", 96, 64),)))
    assert [c.method for c in curves] == ["classical:mean", "classical:mean: trail"]
