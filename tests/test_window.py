"""`window`: each frame merged with the frames before and after it (read ahead in files), then
the still-image network; the look-ahead through the Denoiser, the pipeline and segments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamdn.batch.segments import plan_segments, read_keyframes
from streamdn.config import load_config
from streamdn.denoiser import Denoiser
from streamdn.frames import AHEAD, AHEAD_ONLY, Frame, frame_from_bgr, with_lookahead
from streamdn.io.sinks import Sink
from streamdn.jobs.file import denoise_file
from streamdn.metrics import psnr
from streamdn.models import create_model, list_models, model_info
from streamdn.pipeline import Pipeline

HAS_WINDOW = any(m.name == "window" for m in list_models())


def scene(h: int = 64, w: int = 96, seed: int = 0, fine: float = 30.0) -> np.ndarray:
    """A clean (H, W, 3) uint8 BGR picture with detail at several scales (`fine`: the amplitude
    of a texture of 2.5-pixel period, 8-bit levels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 128 + 60 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0) + fine * np.sin((xx + 2 * yy) / 2.5)
    blobs = rng.uniform(-40, 40, (h // 8 + 1, w // 8 + 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
    base = np.clip(img + blobs, 0, 255)
    return np.stack([base, np.roll(base, 7, 1), 255 - base], -1).astype(np.uint8)


def noisy_clip(clean: list[np.ndarray], sigma: float = 20.0, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(c + rng.normal(0, sigma, c.shape), 0, 255).astype(np.uint8) for c in clean]


def frames_of(clip: list[np.ndarray]) -> list[Frame]:
    return [frame_from_bgr(b, index=i, pts=i) for i, b in enumerate(clip)]


# -- reading ahead ---------------------------------------------------------------------------------


def test_with_lookahead_hands_each_frame_the_next_ones_and_reads_no_further() -> None:
    frames = frames_of([np.full((8, 8, 3), i, np.uint8) for i in range(7)])
    frames[6].extra[AHEAD_ONLY] = True
    read: list[int] = []

    def source() -> Iterator[Frame]:
        for f in frames:
            read.append(f.index)
            yield f

    out = []
    for f in with_lookahead(source(), 2):
        assert max(read) <= f.index + 2           # never more than 2 frames ahead
        out.append((f.index, [a.index for a in f.extra[AHEAD]]))
    assert out == [(0, [1, 2]), (1, [2, 3]), (2, [3, 4]), (3, [4, 5]), (4, [5, 6]), (5, [6])]   # 6 only looked at


def test_window_models_are_listed_with_their_window() -> None:
    info = model_info("window_tiny")
    assert info.window == (4, 4) and info.temporal
    model = create_model("window_tiny", before=2, after=3)
    assert model.lookahead == 3 and model.info.window == (2, 3)
    with pytest.raises(Exception, match="after=40"):
        create_model("window_tiny", after=40)


@pytest.mark.skipif(not HAS_WINDOW, reason="the photo weights do not ship in this checkout")
def test_window_averages_a_still_scene_far_beyond_one_frame() -> None:
    clean = [scene()] * 9
    noisy = noisy_clip(clean)
    with Denoiser("photo", strength=20) as one:
        single = one(noisy[4])
    with Denoiser("window", strength=20) as dn:
        merged = dn.denoise_clip(noisy)[4]
    # 9 frames: the noise variance is cut 9-fold before the network (+9.5 dB for a plain mean).
    print(f"photo alone {psnr(clean[4], single):.2f} dB, window {psnr(clean[4], merged):.2f} dB")
    assert psnr(clean[4], merged) > psnr(clean[4], single) + 2.0


@pytest.mark.skipif(not HAS_WINDOW, reason="the photo weights do not ship in this checkout")
def test_a_still_shot_keeps_improving_past_the_window() -> None:
    clean = [scene(seed=5, fine=8.0)] * 30
    noisy = noisy_clip(clean, seed=2)
    with Denoiser("window", strength=20) as dn:
        long = dn.denoise_clip(noisy)
    with Denoiser(create_model("window", long_average=False), strength=20) as dn:
        short = dn.denoise_clip(noisy)
    at = [round(psnr(clean[0], long[t]), 2) for t in (8, 15, 25)]
    print(f"with the long average at frames 8/15/25: {at}; without: {psnr(clean[0], short[25]):.2f}")
    assert at[0] < at[1] < at[2]                              # still climbing past 9 frames
    assert at[2] > psnr(clean[0], short[25]) + 1.0


@pytest.mark.skipif(not HAS_WINDOW, reason="the photo weights do not ship in this checkout")
def test_a_panning_shot_keeps_improving_past_the_window() -> None:
    from streamdn.tools.temporal import pan_clip

    clean = list(pan_clip(scene(120, 160, seed=5, fine=8.0), 128, 96, 0.7, 30))   # 0.7 and 0.21 px/frame
    noisy = noisy_clip(clean, seed=2)
    with Denoiser("window", strength=20) as dn:
        long = dn.denoise_clip(noisy)
    with Denoiser(create_model("window", long_average=False), strength=20) as dn:
        short = dn.denoise_clip(noisy)
    at = [round(psnr(clean[t], long[t]), 2) for t in (8, 15, 25)]
    print(f"with the long average at frames 8/15/25: {at}; without: {psnr(clean[25], short[25]):.2f}")
    assert at[0] < at[1] < at[2]                              # the canvas follows the pan
    assert at[2] > psnr(clean[25], short[25]) + 1.0


@pytest.mark.skipif(not HAS_WINDOW, reason="the photo weights do not ship in this checkout")
def test_window_leaves_no_ghost_of_a_moving_object() -> None:
    bg = scene(seed=3)
    clean = []
    for t in range(9):
        img = bg.copy()
        img[20:36, 8 + 8 * t:24 + 8 * t] = (30, 220, 240)   # a square crossing 8 px per frame
        clean.append(img)
    noisy = noisy_clip(clean)
    with Denoiser("window", strength=20) as dn:
        out = dn.denoise_clip(noisy)[4]
    with Denoiser("photo", strength=20) as one:
        single = one(noisy[4])
    # Along the square's path (where it was before frame 4 and will be after), frame 4 shows
    # the background: no column of the merge may be worse than frame 4 denoised alone (a trail
    # of the square would cost 10 dB there).
    for x0 in range(0, 96, 8):
        part = (slice(20, 36), slice(x0, x0 + 8))
        assert psnr(clean[4][part], out[part]) > psnr(clean[4][part], single[part]) - 0.5, x0


def test_frames_after_a_cut_are_not_merged() -> None:
    a, b = scene(seed=1), 255 - scene(seed=2)[:, ::-1]   # another shot altogether
    noisy = noisy_clip([a] * 5 + [b] * 5)
    with Denoiser("window_tiny", strength=20) as dn:
        whole = dn.denoise_clip(noisy)
        before_cut = dn.denoise_clip(noisy[:5])
        after_cut = dn.denoise_clip(noisy[5:])
    np.testing.assert_array_equal(whole[4], before_cut[4])   # scene b never enters frame 4
    np.testing.assert_array_equal(whole[5], after_cut[0])    # nor scene a frame 5


def test_the_clip_api_looks_ahead_and_the_frame_api_does_not() -> None:
    noisy = noisy_clip([scene()] * 6)
    with Denoiser("window_tiny", strength=20) as dn:
        clip = dn.denoise_clip(noisy)
        dn.reset()
        one_by_one = [dn(f) for f in noisy]
        past_only = Denoiser(create_model("window_tiny", after=0), strength=20).denoise_clip(noisy)
    assert not np.array_equal(clip[0], one_by_one[0])      # frame 0 merged frames 1-4 in the clip
    for x, y in zip(one_by_one, past_only):
        np.testing.assert_array_equal(x, y)
    assert [o.shape for o in clip] == [n.shape for n in noisy]


class Collect(Sink):
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.written += 1


def test_the_pipeline_reads_ahead_for_a_window_model() -> None:
    noisy = noisy_clip([scene(seed=4)] * 7)
    with Denoiser("window_tiny", strength=20) as dn:
        expected = dn.denoise_clip(frames_of(noisy))
        dn.reset()
        sink = Collect()
        Pipeline(frames_of(noisy), [sink], denoiser=dn).run()
    assert [f.index for f in sink.frames] == list(range(7))
    for got, want in zip(sink.frames, expected):
        np.testing.assert_array_equal(got.y, want.y)
        assert AHEAD not in got.extra                        # no frame keeps the ones after it


def test_segments_read_past_their_end_and_join_as_the_whole_file(tmp_path: Path) -> None:
    from test_batch import make_gop_video, planes, run_cli

    clip = make_gop_video(tmp_path / "long.mp4", 8, frames=40, seed=5)
    cfg = load_config(values={"encode": {"lossless": True}, "model": {"name": "window_tiny", "strength": 12.0}})
    denoise_file(str(clip), str(tmp_path / "whole.mp4"), cfg, quiet=True)
    assert run_cli(str(clip), "-o", str(tmp_path / "out"), "--segments", "3", "--lossless", "--model",
                   "window_tiny", "--strength", "12", "-q") == 0
    whole, joined = planes(tmp_path / "whole.mp4"), planes(tmp_path / "out" / "long.mp4")
    assert len(whole) == len(joined) == 40
    cuts = [s.start_pts for s in plan_segments(read_keyframes(str(clip)), count=3)][1:]
    assert cuts
    for w, j in zip(whole, joined):
        np.testing.assert_array_equal(w, j)   # each frame saw the same window, split or not


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_WINDOW, reason="window needs its weights")
def test_window_on_cuda_matches_the_cpu() -> None:
    noisy = noisy_clip([scene(seed=6, fine=8.0)] * 6)
    with Denoiser("window", strength=20) as cpu, Denoiser("window", strength=20, device="cuda") as gpu:
        on_cpu, on_gpu = cpu.denoise_clip(noisy), gpu.denoise_clip(noisy)
    for a, b in zip(on_cpu, on_gpu):
        assert psnr(a, b) > 40                 # fp16 on the GPU, bf16 or fp32 here


def test_frames_read_ahead_are_cleaned_of_impulses_like_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    noisy = noisy_clip([scene(seed=7)] * 4, sigma=3.0)
    for img in noisy:
        grains = rng.random(img.shape[:2]) < 0.05
        img[grains] = np.where(rng.random((int(grains.sum()), 1)) < 0.5, 0, 255)
    seen: list[list[bool]] = []
    with Denoiser("window_tiny", impulses="on") as dn:
        real = dn.model.pack

        def spy(frame: Frame, sigmas: tuple[float, float, float]) -> object:
            seen.append([bool(f.extra.get("impulses_removed")) for f in (frame, *frame.extra.get(AHEAD, ()))])
            return real(frame, sigmas)

        monkeypatch.setattr(dn.model, "pack", spy)
        dn.denoise_clip(noisy)
    assert seen == [[True] * 4, [True] * 3, [True] * 2, [True]]   # each frame with those after it, all cleaned


def test_evaluate_hands_a_window_model_the_frames_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamdn.models.window import WindowModel
    from streamdn.tools.evaluate import EvalConfig, evaluate

    seen: list[int] = []
    real = WindowModel.pack

    def spy(self: WindowModel, frame: Frame, sigmas: tuple[float, float, float]) -> object:
        seen.append(len(frame.extra.get(AHEAD, ())))
        return real(self, frame, sigmas)

    monkeypatch.setattr(WindowModel, "pack", spy)
    cfg = EvalConfig(synthetic=1, size=(64, 48), frames=4, noise=("awgn20",), methods=("window_tiny",))
    results, _ = evaluate(cfg, quiet=True)
    assert seen[-4:] == [3, 2, 1, 0]      # after the untimed warm-up call, each frame with those after it
    assert {r["method"] for r in results["rows"]} == {"noisy", "window_tiny"}
