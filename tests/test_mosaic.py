"""The long average that follows the camera (streamdn.models.mosaic): its resampling, a still
shot kept at whole pixels, a sub-pixel pan tracked and averaged, no ghost of a moving subject,
a cut that restarts it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamdn.kernels import pack_yuv420
from streamdn.kernels.motion import luma_plane, packed_luma
from streamdn.models.mosaic import MosaicAverage, PhaseCorrelation, ShiftGuess, shift_read
from streamdn.models.network import LongAverage

BLEND = LongAverage(k=8.0, ramp=(5.0, 20.0))
SIGMA = 20.0 / 255.0


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-to-fine grey picture, (h, w) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((h // 16 + 2, w // 16 + 2)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.0)
    return np.clip(0.2 + 0.6 * coarse + 1.5 * (fine - fine.mean()), 0.0, 1.0)


def pan(big: np.ndarray, h: int, w: int, x: float, y: float) -> np.ndarray:
    """The (h, w) view of `big` whose pixel (0, 0) lies at (x + 8, y + 8) of it (sub-pixel:
    resampled from 4x by area, as a camera sees it)."""
    up = cv2.resize(big, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    x0, y0 = int(round((x + 8) * 4)), int(round((y + 8) * 4))
    return cv2.resize(up[y0:y0 + 4 * h, x0:x0 + 4 * w], (w, h), interpolation=cv2.INTER_AREA)


def packed(luma: np.ndarray) -> np.ndarray:
    """A grey frame packed as the models take it (chroma at the middle)."""
    h, w = luma.shape
    chroma = np.full((h // 2, w // 2), 0.5, np.float32)
    return pack_yuv420(luma, chroma, chroma, 1.0, np.empty((h // 2, w // 2, 6), np.float32))


def luma_of(p: np.ndarray) -> np.ndarray:
    return luma_plane(p, np.empty((2 * p.shape[0], 2 * p.shape[1]), np.float32))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def run(frames: list[np.ndarray], results: list[np.ndarray], seed: int = 1,
        moves: list[tuple[float, float]] | None = None, measure_every: int = 1,
        agree: float | None = None) -> tuple[MosaicAverage, list[np.ndarray]]:
    """Each clean frame with noise through the mosaic, with `results` standing for the model's
    output and `moves` for the frame-to-frame motion as the frames' alignment guesses it
    ((x, y) px, off by 0.2 px); returns the mosaic and the blended outputs' lumas."""
    rng = np.random.default_rng(seed)
    m = MosaicAverage(BLEND, measure_every=measure_every, agree=agree)
    outs = []
    for t, (clean, res) in enumerate(zip(frames, results)):
        guess = None
        if moves is not None:
            guess = np.array([[1, 0, moves[t][0] + 0.2], [0, 1, moves[t][1] - 0.2], [0, 0, 1]], np.float64)
        cur = packed(np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32))
        sigma = np.full(cur.shape[:2] + (3,), SIGMA, np.float32)
        out = packed(res)
        m.step(cur, sigma, out, clean.shape, guess, False)
        outs.append(luma_of(out))
    return m, outs


@pytest.mark.parametrize("dy, dx", [(0.0, 0.0), (2.0, -3.0), (-1.5, 0.25), (3.7, -2.2), (30.5, 40.25)])
def test_shift_read_resamples_as_opencv_does(dy: float, dx: float) -> None:
    src = picture(60, 80)
    for taps, flag in ((4, cv2.INTER_LANCZOS4), (0, cv2.INTER_LINEAR)):
        ours = shift_read(src, dy, dx, 40, 50, taps)
        ref = cv2.warpAffine(src, np.float32([[1, 0, dx], [0, 1, dy]]), (50, 40),
                             flags=flag | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        # OpenCV rounds positions to 1/32 px: a few thousandths at most on this picture.
        assert np.abs(ours - ref).max() < 6e-3, (taps, dy, dx)
    if dy == int(dy) and dx == int(dx):
        inside = src[int(dy):int(dy) + 40, int(dx):int(dx) + 50] if dy >= 0 and dx >= 0 else None
        if inside is not None:
            np.testing.assert_array_equal(shift_read(src, dy, dx, 40, 50), inside)   # whole pixels: a copy


def test_a_still_shot_is_averaged_at_whole_pixels_as_the_plain_mean() -> None:
    clean = picture(96, 128)
    blurred = cv2.GaussianBlur(clean, (0, 0), 1.0)      # a result that lost fine detail
    m, outs = run([clean] * 30, [blurred] * 30)
    assert (m.moved == 0).all()                      # never resampled
    # 30 frames: the plain mean's noise is sigma / sqrt(30) (36.9 dB), far below the blur's error (26 dB).
    print(f"result alone {psnr(blurred, clean):.2f} dB, with the long average {psnr(outs[-1], clean):.2f} dB")
    assert psnr(outs[-1], clean) > psnr(blurred, clean) + 4.0
    assert psnr(outs[-1], clean) > psnr(outs[10], clean) + 1.0   # still climbing


@pytest.mark.parametrize("measure_every, agree", [(1, None), (2, None), (2, 0.15)])
def test_a_sub_pixel_pan_is_tracked_and_averaged_as_a_still_shot(measure_every: int, agree: float | None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    big = picture(200, 260, seed=4)
    speed = (0.7, 0.3)
    frames = [pan(big, 96, 128, speed[0] * t, speed[1] * t) for t in range(30)]
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames]
    measures = []
    ecc = cv2.findTransformECC
    monkeypatch.setattr(cv2, "findTransformECC", lambda *a: measures.append(1) or ecc(*a))
    m, outs = run(frames, blurred, moves=[speed] * 30, measure_every=measure_every, agree=agree)
    # The camera's motion measured to a quarter of a pixel over 29 frames (20 px); between
    # measures, the guess's error (0.2 px here) for one frame at most.
    np.testing.assert_allclose(m.moved, [speed[0] * 29, speed[1] * 29], atol=0.25 + 0.2 * (measure_every > 1))
    # Measured on every frame against the canvas, or on every other one once it has settled; a
    # guess 0.2 px off the true move (the helper's) agrees with the move measured last within
    # 0.15 only now and then (the measure's own error): most frames measured.
    if measure_every == 1:
        assert len(measures) >= 26
    elif agree is None:
        assert 13 <= len(measures) <= 18, len(measures)
    else:
        assert len(measures) >= 20, len(measures)
    _, still = run([frames[-1]] * 30, [blurred[-1]] * 30)
    inner = (slice(8, -8), slice(8, -8))   # away from the edge the pan brings in new
    gain = psnr(outs[-1][inner], frames[-1][inner]) - psnr(blurred[-1][inner], frames[-1][inner])
    gap = psnr(still[-1][inner], frames[-1][inner]) - psnr(outs[-1][inner], frames[-1][inner])
    print(f"pan: +{gain:.2f} dB over the result alone, {gap:.2f} dB under the still shot")
    # Two Lanczos resamplings (onto the canvas and back) soften this picture's finest texture
    # (1 px grain) a little: 1.05 dB here, 0.4-0.8 dB on the photographs of `streamdn temporal`.
    assert gain > 3.0 and gap < 1.5


def test_a_moving_subject_leaves_no_ghost() -> None:
    bg, other = picture(96, 128, seed=2), picture(32, 32, seed=9)
    frames, covered = [], []
    for t in range(24):
        f = bg.copy()
        x0 = 4 + 4 * t
        f[30:62, x0:x0 + 32] = other   # a textured square crossing
        frames.append(f)
        covered.append(x0)
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames]
    m, outs = run(frames, blurred)
    assert (m.moved == 0).all()     # the subject does not pull the camera's measure
    # Where the square was in the 8 frames before the last and is no more, the last frame shows
    # the background: no worse than the result alone (a ghost would cost 10 dB and more).
    trail = (slice(30, 62), slice(covered[-9], covered[-1]))
    print(f"trail {psnr(outs[-1][trail], frames[-1][trail]):.2f} dB, result alone {psnr(blurred[-1][trail], frames[-1][trail]):.2f}")
    assert psnr(outs[-1][trail], frames[-1][trail]) > psnr(blurred[-1][trail], frames[-1][trail]) - 0.3


def test_a_cut_starts_a_new_canvas() -> None:
    a, b = picture(64, 96, seed=5), picture(64, 96, seed=6)
    m, _ = run([a] * 10, [a] * 10)
    cur = packed(b)
    out = packed(cv2.GaussianBlur(b, (0, 0), 1.0))
    before = out.copy()
    m.step(cur, np.full(cur.shape[:2] + (3,), SIGMA, np.float32), out, b.shape, None, True)
    np.testing.assert_array_equal(out, before)    # nothing of scene a blended into b
    assert (m.moved == 0).all()


def test_a_turning_camera_is_not_averaged_into_a_blur() -> None:
    # 0.25 degrees a frame about the centre: too little per frame for the residual flow to see,
    # 2 px at the corners within 10 frames. The affine measure finds the turn and restarts.
    big = picture(240, 320, seed=7)
    frames = []
    for t in range(30):
        rot = cv2.getRotationMatrix2D((160.0, 120.0), 0.25 * t, 1.0)
        frames.append(cv2.warpAffine(big, rot, (320, 240), flags=cv2.INTER_CUBIC)[24:216, 32:288].copy())
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames]
    _, outs = run(frames, blurred, moves=[(0.0, 0.0)] * 30)
    for t in (15, 29):
        print(f"frame {t}: {psnr(outs[t], frames[t]):.2f} dB, result alone {psnr(blurred[t], frames[t]):.2f}")
        assert psnr(outs[t], frames[t]) > psnr(blurred[t], frames[t]) - 0.3


def test_the_shift_guess_finds_a_pan_and_a_still_camera() -> None:
    """Phase correlation between noisy frames: a pan's move to within half a pixel (a first
    guess: the canvas's measure takes it from there), a still camera's near zero (exactly zero
    under SNAP_GUESS), nothing for the first frame."""
    big = picture(240, 300, seed=5)
    rng = np.random.default_rng(2)
    guess = ShiftGuess()

    def noisy(x: float, y: float) -> np.ndarray:
        f = pan(big, 128, 192, x, y)     # (pan: quarter-pixel steps)
        return packed(np.clip(f + rng.normal(0, SIGMA, f.shape), 0, 1).astype(np.float32))

    assert guess(noisy(0.0, 8.0)) is None
    for t in range(1, 6):
        m = guess(noisy(1.25 * t, 8.0 - 0.5 * t))
        assert m is not None
        # This frame's pixel (x, y) shows what the previous frame showed at (x + 1.25, y - 0.5).
        np.testing.assert_allclose(m[:2, 2], [1.25, -0.5], atol=0.5)
    still = ShiftGuess()
    still(noisy(3.0, 3.0))
    for _ in range(4):
        m = still(noisy(3.0, 3.0))
        assert m is not None and np.abs(m[:2, 2]).max() < 0.35   # the grain's noise on a small frame
    same = packed(pan(big, 128, 192, 3.0, 3.0))
    still(same)
    m = still(same)
    assert m is not None and (m[:2, 2] == 0).all()               # under SNAP_GUESS: exactly none


def test_the_shift_guess_leaves_its_lumas_alone() -> None:
    """The guess windows new arrays: neither the luma the canvas's measure takes next nor the
    previous frame's is changed (a windowed luma spoilt `fast`'s long average once: 32.5 dB on
    the awgn20 validation clips instead of 33.4), and a guess made from a remembered frame is the
    one made from a guessed frame."""
    big = picture(240, 300, seed=5)
    lumas = [packed_luma(packed(pan(big, 128, 192, 1.25 * t, 8.0 - 0.5 * t))) for t in range(4)]
    kept = [luma.copy() for luma in lumas]
    guess, remembering = ShiftGuess(), ShiftGuess()
    for t, luma in enumerate(lumas):
        got = guess(np.zeros(1), luma)
        if t == 0:
            assert got is None
            remembering.remember(luma)
            continue
        assert got is not None
        np.testing.assert_allclose(got, remembering(np.zeros(1), luma), atol=1e-9)
    for luma, before in zip(lumas, kept):
        np.testing.assert_array_equal(luma, before)


@pytest.mark.parametrize("size", [(96, 160), (90, 120), (75, 100), (45, 81)])
def test_phase_correlation_is_opencvs_and_right_on_odd_sizes(size: tuple[int, int]) -> None:
    """PhaseCorrelation.shift of two spectra: cv2.phaseCorrelate's answer where the DFT size is
    even, the true move within 0.4 px either way (OpenCV's is half a pixel off where
    the DFT size is odd: 75 and 45 rows, 81 columns)."""
    h, w = size
    rng = np.random.default_rng(4)
    big = picture(h + 40, w + 40, seed=2)
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    even = cv2.getOptimalDFTSize(h) % 2 == 0 and cv2.getOptimalDFTSize(w) % 2 == 0
    for dx, dy in [(0.0, 0.0), (1.0, 0.0), (-2.25, 1.5), (0.4, -2.8)]:
        shifted = cv2.warpAffine(big, np.float64([[1, 0, 20 + dx], [0, 1, 20 + dy]]), (w, h),
                                 flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        a = ((big[20:20 + h, 20:20 + w] + rng.normal(0, 0.02, (h, w))) * window).astype(np.float32)
        b = ((shifted + rng.normal(0, 0.02, (h, w))) * window).astype(np.float32)
        ours = PhaseCorrelation.shift(PhaseCorrelation.spectrum(a), PhaseCorrelation.spectrum(b))
        np.testing.assert_allclose(ours, [-dx, -dy], atol=0.4)   # the centroid: a first guess
        if even:
            np.testing.assert_allclose(ours, cv2.phaseCorrelate(a, b)[0], atol=1e-3)
    assert PhaseCorrelation.spectrum(np.zeros((h, w), np.float32)).shape == (
        cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w), 2)


@pytest.mark.parametrize("at", [(16.0, 12.0), (0.0, 2.0), (36.0, 30.0), (17.3, 12.6), (1.1, 2.9), (35.5, 29.2)])
def test_fused_write_back_is_the_numpy_one(at: tuple[float, float]) -> None:
    """A frame is added in one pass (canvas_add at whole chroma pixels, canvas_add_resampled at
    any other place) as the NumPy way adds it, at the canvas's edge and where it holds nothing
    too."""
    rng = np.random.default_rng(3)
    cur = rng.random((24, 32, 6)).astype(np.float32)
    cur[..., 4:] = rng.random((24, 32, 2))
    count = rng.uniform(0.0, 9.0, (24, 32)).astype(np.float32)
    canvases = []
    for fused in (True, False):
        m = MosaicAverage(BLEND)
        m._start(np.full((24, 32, 6), 0.3, np.float32), (48, 64))
        assert m._count is not None
        m._count[:, : m._count.shape[1] // 3] = 0.0          # part of the canvas holds nothing
        m._at = np.array(at)
        m._write_back(cur, count, fused=fused)
        canvases.append((m._y, m._u, m._v, m._count))
    for a, b in zip(*canvases):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


@pytest.mark.parametrize("at", [(16.0, 12.0), (0.0, 2.0), (36.0, 30.0), (17.3, 12.6), (-1.1, 2.9), (35.5, 29.2)])
def test_fused_read_is_the_numpy_one(at: tuple[float, float]) -> None:
    """The canvas read onto a frame in one pass (canvas_read) as the NumPy way reads it, the
    count cut to 0 where the read reaches the canvas's empty part or its edge."""
    rng = np.random.default_rng(4)
    m = MosaicAverage(BLEND)
    m._start(rng.random((24, 32, 6)).astype(np.float32), (48, 64))
    assert m._count is not None
    m._count[:] = rng.uniform(0.0, 9.0, m._count.shape)
    m._count[:, : m._count.shape[1] // 3] = 0.0
    m._at = np.array(at)
    cur = np.empty((24, 32, 6), np.float32)
    (a, ca), (b, cb) = m._read(cur, fused=True), m._read(cur, fused=False)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ca, cb, rtol=0, atol=2e-5)
    assert (ca > 0).any()
    if at[0] / 2.0 < 16.0:                   # the read reaches the empty part
        assert (ca == 0).any()


@pytest.mark.parametrize("jump", [(300.0, 0.0), (0.0, 250.0), (-400.0, -300.0), (5000.0, 5000.0)])
def test_a_wild_guess_restarts_the_canvas_and_never_fails(jump: tuple[float, float]) -> None:
    """A guess that puts the frame off the canvas (a phase correlation fooled by a dropped
    stretch of frames, say) is a failed measure: the canvas starts anew on that frame, as at a
    cut, and the stream goes on (it used to stop with OpenCV's "!ssize.empty()" in resize)."""
    big = picture(200, 260, seed=5)
    rng = np.random.default_rng(2)
    m = MosaicAverage(BLEND)
    for t in range(12):
        clean = pan(big, 96, 128, 0.0, 0.0)
        cur = packed(np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32))
        sigma = np.full(cur.shape[:2] + (3,), SIGMA, np.float32)
        guess = np.eye(3)
        if t == 10:
            guess[:2, 2] = jump
        avg, count = m.average(cur, sigma, clean.shape, guess if t else None, t == 0)
        assert avg.shape == cur.shape and np.isfinite(avg).all()
        if t == 9:
            assert count.min() > 5
        if t == 10:
            assert count.max() == 1.0          # started anew on this frame
            np.testing.assert_allclose(avg, cur, atol=1e-6)


def test_average_before_the_model_tracks_a_pan_measured_on_the_noisy_frames() -> None:
    """`average` (a model that runs on the mean: the move measured on the noisy frame, guessed
    by phase correlation, the frame after a guessed one measured from the move measured last)
    follows a sub-pixel pan and returns a mean that holds many frames and is cleaner than the
    frame; a still shot stays at whole pixels."""
    big = picture(200, 260, seed=5)
    for speed in ((0.0, 0.0), (0.7, 0.3)):
        frames = [pan(big, 96, 128, speed[0] * t, speed[1] * t) for t in range(30)]
        rng = np.random.default_rng(2)
        m, shift = MosaicAverage(BLEND, measure_every=2, agree=0.15), ShiftGuess()
        measured_anyway = 0
        for t, clean in enumerate(frames):
            cur = packed(np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32))
            sigma = np.full(cur.shape[:2] + (3,), SIGMA, np.float32)
            luma = packed_luma(cur)
            if t and m.measure_due():
                measured_anyway += 1
                shift.remember(luma)
                guess = np.eye(3)
                guess[:2, 2] = m.last_move
            else:
                guess = shift(cur, luma)
            avg, count = m.average(cur, sigma, clean.shape, guess, t == 0, luma)
        err = np.abs(m.moved - np.array(speed) * 29).max()
        print(f"speed {speed}: moved {m.moved}, error {err:.3f} px, {measured_anyway} frames measured anyway, "
              f"mean {psnr(luma_of(avg), clean):.2f} dB against the frame {psnr(luma_of(cur), clean):.2f}")
        assert err < 0.3
        assert np.median(count) > 15
        assert psnr(luma_of(avg), clean) > psnr(luma_of(cur), clean) + 8.0
        if speed == (0.0, 0.0):
            assert (m.moved == 0).all() and measured_anyway == 0
        else:   # (this pan steps by 0.5 and 0.75 px in turn: the guess often disagrees, and is measured)
            assert measured_anyway > 0


@pytest.mark.parametrize("dx, dy", [(2.0, -4.0), (1.3, 0.4), (-0.7, 2.25)])
def test_shift_packed_moves_luma_at_full_resolution_and_chroma_on_its_grid(dx: float, dy: float) -> None:
    from streamdn.models.mosaic import shift_packed

    rng = np.random.default_rng(6)
    src = rng.random((20, 24, 6)).astype(np.float32)
    out = shift_packed(src, dx, dy)
    luma = luma_plane(src, np.empty((40, 48), np.float32))
    np.testing.assert_allclose(luma_of(out), shift_read(luma, dy, dx, 40, 48), atol=1e-6)
    np.testing.assert_allclose(out[..., 4], shift_read(np.ascontiguousarray(src[..., 4]), dy / 2, dx / 2, 20, 24),
                               atol=1e-6)
    if (dx, dy) == (2.0, -4.0):                       # whole chroma samples: a copy inside
        np.testing.assert_array_equal(out[2:, :23], src[:18, 1:])


def test_frame_move_is_given_only_against_a_settled_canvas() -> None:
    """The camera's move from the previous frame (which a model's recursion may follow) is
    withheld while the canvas is young (placed by the rough first guess) and where it starts
    anew; a measured pan gives it."""
    big = picture(200, 260, seed=7)
    frames = [pan(big, 96, 128, 0.8 * t, 0.0) for t in range(14)]
    m, _ = run(frames[:1], [frames[0]])
    assert m.frame_move is None                         # started with this frame
    m, _ = run(frames[:2], frames[:2], moves=[(0.8, 0.0)] * 2)
    assert m.frame_move is None                         # one frame averaged: the guess alone
    m, _ = run(frames, frames, moves=[(0.8, 0.0)] * 14)
    assert m.frame_move is not None and abs(m.frame_move[0] - 0.8) < 0.3
