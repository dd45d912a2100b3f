"""The live quality ladder: the controller's decisions on made-up timings (steps down when slow,
no flapping around a borderline, steps up after sustained headroom, a pinned model never
changes), rung switches in the pipeline's stages, the reduced-size rungs, and a short live run
in which a rung that turns slow is left, as --stats records."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamdn import Denoiser, SyntheticSource
from streamdn.cli import main
from streamdn.config import ModelConfig, SourceConfig, load_config
from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import Frame
from streamdn.io.camera import PacedSource
from streamdn.jobs import live as live_job
from streamdn.jobs.ladder import (WARMUP_TIMED, Ladder, LadderController, LadderPolicy, Rung, build_rung, noise_factor,
                                  parse_rungs, usage_text)
from streamdn.pipeline import WARMUP_FRAMES

FPS = 30.0
MS = 1e-3
Costs = Callable[[int, float], float]   # (rung, time) -> seconds per frame


def simulate(ctl: LadderController, cost: Costs, seconds: float, fps: float = FPS) -> list[tuple[float, int, str]]:
    """Frames arrive at `fps`; each takes cost(rung, t) and the ones arriving meanwhile are
    dropped. Returns the switches as (time, new rung, reason)."""
    interval, t, prev = 1.0 / fps, 0.0, None
    switches = []
    while t < seconds:
        rung = ctl.rung
        c = cost(rung, t)
        dropped = 0 if prev is None else round((t - prev) / interval) - 1
        new = ctl.observe(t + c, rung, c, c, dropped)
        if new is not None:
            switches.append((t + c, new, ctl.reason))
        prev = t
        t = max(t + interval, math.ceil((t + c) / interval - 1e-9) * interval)
    return switches


def controller(n: int = 3, **policy: float) -> LadderController:
    return LadderController([f"r{i}" for i in range(n)], LadderPolicy(**policy), interval_s=1 / FPS)


# -- the controller --------------------------------------------------------------------------------

def test_calibration_keeps_the_best_rung_that_fits() -> None:
    ctl = controller()
    switches = simulate(ctl, lambda r, t: (40, 20, 5)[r] * MS, 3.0)
    assert [s[1] for s in switches] == [1]                      # r0 is over 80 % of 33 ms, r1 fits
    assert switches[0][2].startswith("calibration: r0 takes 40 ms")
    assert ctl.phase == "running" and ctl.calibration_s is not None and ctl.calibration_s < 1.5
    assert set(ctl.calibration) == {"r0", "r1"}                 # r2 was not needed


def test_priors_skip_rungs_too_slow_anyway() -> None:
    ctl = controller(5, start_slack=2.0)
    ctl.set_priors([40 * MS, 20 * MS, 12 * MS, 5 * MS, 1 * MS])
    # Started on r0 (40 ms in the warm-up, within twice the budget here). The machine is three
    # times slower than in the warm-up: r1 (60 ms) is skipped, beyond twice the budget; r2 (36 ms
    # predicted, within twice the budget) is timed and does not fit.
    switches = simulate(ctl, lambda r, t: 3 * (40, 20, 12, 5, 1)[r] * MS, 3.0)
    assert [s[1] for s in switches] == [2, 3]


def test_calibration_starts_below_rungs_the_warm_up_rules_out() -> None:
    ctl = controller(5)
    ctl.set_priors([300 * MS, 60 * MS, 16 * MS, 9 * MS, 4 * MS])   # budget 27 ms
    assert ctl.rung == 2 and ctl.reason.startswith("calibration starts at r2")
    switches = simulate(ctl, lambda r, t: (300, 60, 20, 9, 4)[r] * MS, 3.0)
    assert switches == [] and ctl.phase == "running"
    assert set(ctl.calibration) == {"r2"}                       # r0 and r1 never dropped a frame


def test_calibration_starts_on_the_best_rung_whose_warm_up_fits() -> None:
    ctl = controller(5)
    ctl.set_priors([90 * MS, 30 * MS, 20 * MS, 9 * MS, 4 * MS])    # budget 27 ms: r1 is over it
    assert ctl.rung == 2 and "r1 took 30 ms" in ctl.reason


def test_the_streams_first_frames_are_not_judged() -> None:
    # Every stage's first frames are slow (threads start, frames pile up): r0 fits afterwards.
    ctl = controller()
    switches = simulate(ctl, lambda r, t: ((60 if t < 0.25 else 20), 10, 5)[r] * MS, 3.0)
    assert switches == [] and ctl.phase == "running" and ctl.calibration["r0"] == pytest.approx(20 * MS)
    # With one frame left out, as after a switch, the slow start would have sent it down.
    ctl = controller(startup_settle=1)
    assert [s[1] for s in simulate(ctl, lambda r, t: ((60 if t < 0.25 else 20), 10, 5)[r] * MS, 3.0)] == [1]


def test_steps_down_quickly_when_falling_behind() -> None:
    ctl = controller()
    switches = simulate(ctl, lambda r, t: ((20 if t < 3.0 else 60), 10, 5)[r] * MS, 8.0)
    assert len(switches) == 1
    when, rung, reason = switches[0]
    assert rung == 1 and 3.0 < when < 4.5
    assert reason.startswith("falling behind on r0: ")


def test_steps_down_on_dropped_frames() -> None:
    ctl = controller()
    ctl.observe(0.0, 0, 0.0, 0.0)
    for i in range(1, 60):   # fast enough, yet every other frame is missing (e.g. the sinks are slow)
        new = ctl.observe(i / 15, 0, 10 * MS, 10 * MS, dropped=1)
        if new is not None:
            break
    assert new == 1 and "frames dropped" in ctl.reason


def test_no_flapping_around_a_borderline() -> None:
    rng = np.random.default_rng(0)
    ctl = controller()
    # 25 ms in the calibration, then anywhere from 70 % to 94 % of the frame interval.
    switches = simulate(ctl, lambda r, t: (25 * MS if t < 1 else float(rng.uniform(0.7, 0.94)) / FPS), 120.0)
    assert switches == []
    assert ctl.rung == 0


def test_busy_machine_on_and_off_does_not_flap() -> None:
    """The machine is three times slower for 7 s out of every 14: the controller steps down when
    it is, and up again only after a sustained margin, each failure of the upper rung keeping it
    off twice as long as the one before."""
    ctl = controller(2)
    slow = lambda t: 3.0 if int(t // 7) % 2 else 1.0   # noqa: E731
    switches = simulate(ctl, lambda r, t: (15, 5)[r] * MS * slow(t), 600.0)
    ups = [w for w, r, _ in switches if r == 0]
    downs = [w for w, r, _ in switches if r == 1]
    assert len(switches) <= 16                          # the load changes 86 times in 600 s
    assert all(b[0] - a[0] >= 5.0 for a, b in zip(switches, switches[1:]) if b[1] == 0)   # a step up needs 5 s
    gaps = [b - a for a, b in zip(downs, ups[1:] if ups and ups[0] < downs[0] else ups)]
    assert gaps == sorted(gaps) or len(gaps) < 3        # held off for longer and longer


def test_steps_up_after_sustained_headroom() -> None:
    ctl = controller(2)
    # Busy (three times slower) for the first 2 s: the calibration settles on r1; then idle.
    switches = simulate(ctl, lambda r, t: (15, 4)[r] * MS * (3.0 if t < 2.0 else 1.0), 30.0)
    assert [s[1] for s in switches] == [1, 0]
    up_at, _, reason = switches[1]
    assert 10.0 <= up_at <= 13.0          # not before r0's hold (10 s) and 5 s of headroom
    assert reason.startswith("headroom: r0 predicted at")
    assert ctl.phase == "running"         # the trial of r0 found it fits


def test_failed_trial_goes_back_down_at_once() -> None:
    ctl = controller(2, remeasure_s=20.0)
    # r0 is slow in the calibration and when tried again: each trial ends within a second.
    switches = simulate(ctl, lambda r, t: (45, 4)[r] * MS, 200.0)
    ups = [w for w, r, _ in switches if r == 0]
    for up in ups:
        back = next(w for w, r, _ in switches if r == 1 and w > up)
        assert back - up < 1.0
        assert [reason for w, _, reason in switches if w == back][0].startswith("trial: r0")
    assert 1 <= len(ups) <= 5


def test_pinned_model_never_changes() -> None:
    for ctl in (LadderController(["fast"]), LadderController(["fast", "fast@0.5"], pinned=True)):
        assert simulate(ctl, lambda r, t: 200 * MS, 20.0) == []
        assert ctl.rung == 0 and ctl.phase == "pinned"


# -- rungs -----------------------------------------------------------------------------------------

def test_parse_rungs() -> None:
    assert parse_rungs("fast_mc, fast,fast@0.5") == (Rung("fast_mc"), Rung("fast"), Rung("fast", 0.5))
    assert Rung("fast", 0.75).name == "fast@0.75" and Rung("tfilter").name == "tfilter"
    with pytest.raises(ConfigError, match="from 0.1 to 1"):
        parse_rungs("fast@2")
    with pytest.raises(ConfigError, match="number"):
        parse_rungs("fast@half")
    with pytest.raises(ConfigError, match="twice"):
        parse_rungs("fast,fast@1")
    with pytest.raises(ConfigError, match="at least one"):
        parse_rungs(" , ")
    with pytest.raises(ModelNotFoundError):
        parse_rungs("fast,nope")


def test_reduced_size_rung_returns_frames_of_the_right_size() -> None:
    assert noise_factor((640, 480), (320, 240)) == pytest.approx(0.5, abs=0.01)
    rng = np.random.default_rng(0)
    for w, h, depth in ((67, 45, 8), (64, 48, 10)):
        cw, ch = (w + 1) // 2, (h + 1) // 2
        mid, maxv = 1 << (depth - 1), (1 << depth) - 1
        dtype = np.uint8 if depth == 8 else np.uint16
        noise = 20.0 * (1 << (depth - 8))

        def plane(shape: tuple[int, int]) -> np.ndarray:
            return np.clip(np.rint(mid + rng.normal(0, noise, shape)), 0, maxv).astype(dtype)  # noqa: B023

        dn = build_rung(Rung("fast", 0.5), ModelConfig())
        assert dn.name == "fast@0.5"
        for i in range(3):
            frame = Frame(plane((h, w)), plane((ch, cw)), plane((ch, cw)), bit_depth=depth, index=i)
            out = dn(frame)
        assert out.y.shape == (h, w) and out.u.shape == out.v.shape == (ch, cw)
        assert out.y.dtype == dtype and out.bit_depth == depth
        assert out.y.astype(float).std() < frame.y.astype(float).std() / 3     # denoised, not just resized


def grey_frames(n: int, w: int = 64, h: int = 48) -> list[Frame]:
    return list(SyntheticSource(SourceConfig(width=w, height=h, frames=n, sigma=25.0)))


def run_stages(ladder: Ladder, frame: Frame) -> np.ndarray:
    return ladder.unpack(ladder.forward(ladder.pack(frame)), frame).to_bgr()


def test_a_switch_starts_the_new_rung_afresh_in_stream_order() -> None:
    frames = grey_frames(6)
    ctl = LadderController(["a", "b"], pinned=True)
    ladder = Ladder([("a", Denoiser(strength=25)), ("b", Denoiser(strength=25))], ctl)
    reference = Denoiser(strength=25)
    expected = [reference(f).to_bgr() for f in frames]
    for f, e in zip(frames[:4], expected):
        assert np.array_equal(run_stages(ladder, f), e)
    # Frame 4 is packed on "a"; the switch comes before frame 5 is packed, while 4 is in flight.
    packed4 = ladder.pack(frames[4])
    ctl.rung, ctl.reason = 1, "test"
    packed5 = ladder.pack(frames[5])
    out4 = ladder.unpack(ladder.forward(packed4), frames[4]).to_bgr()
    out5 = ladder.unpack(ladder.forward(packed5), frames[5]).to_bgr()
    assert np.array_equal(out4, expected[4])                          # finished on "a", with its past
    assert np.array_equal(out5, Denoiser(strength=25)(frames[5]).to_bgr())   # "b" starts as a new stream
    assert ladder.name == "b" and ladder.rung_position == (2, 2)
    assert [(s.frame, s.old, s.new, s.reason) for s in ladder.switches] == [(5, "a", "b", "test")]
    assert ladder.frames == [5, 1]


def test_preview_keys_reach_every_rung() -> None:
    ladder = Ladder([("a", Denoiser()), ("b", Denoiser())], LadderController(["a", "b"]))
    ladder.gain = 1.25
    ladder.enabled = False
    assert [d.gain for d in ladder.denoisers] == [1.25, 1.25]
    assert [d.enabled for d in ladder.denoisers] == [False, False]
    frame = grey_frames(1)[0]
    assert ladder.unpack(ladder.forward(ladder.pack(frame)), frame) is frame   # passed through


def test_usage_text() -> None:
    usage = {"fast": {"frames": 90, "seconds": 0.5, "share": 0.05},
             "fast@0.5": {"frames": 1710, "seconds": 9.5, "share": 0.95}}
    assert usage_text(usage) == "fast@0.5 95 % (1710 frames), fast 5 % (90 frames)"


# -- live runs -------------------------------------------------------------------------------------

class SlowFrom:
    """Wraps a Denoiser's forward stage: from frame `start` on, each step takes `seconds` more."""

    def __init__(self, dn: Denoiser, start: int, seconds: float) -> None:
        self.count, self.start, self.seconds = 0, start, seconds
        self.step = dn.forward
        dn.forward = self   # type: ignore[method-assign]

    def __call__(self, packed: object) -> object:
        self.count += 1
        if self.count > self.start:
            time.sleep(self.seconds)
        return self.step(packed)


def test_a_rung_that_turns_slow_is_left_and_stats_record_it(tmp_path: Path) -> None:
    slow, quick = Denoiser("tdn_tiny"), Denoiser("tdn_tiny")
    # slow from the stream's 10th frame on: the ladder's warm-up runs its frames twice, then the
    # pipeline's warm-up runs WARMUP_FRAMES small frames and one full-size frame on the rung in use
    SlowFrom(slow, start=2 * (1 + WARMUP_TIMED) + WARMUP_FRAMES + 1 + 9, seconds=0.12)
    policy = LadderPolicy(calib_frames=6, min_dwell_s=0.3, window_s=0.6)
    ladder = Ladder([("slow", slow), ("quick", quick)], LadderController(["slow", "quick"], policy), fps=25.0)
    cfg = load_config(None, [], {"live": {"preview": "off"}})
    src = PacedSource(SyntheticSource(SourceConfig(width=64, height=48, frames=70, fps=25.0)))
    stats_path = tmp_path / "live.json"
    result = live_job.run_live(cfg, src, stats_path=str(stats_path), denoiser=ladder)
    data = json.loads(stats_path.read_text())["ladder"]
    assert data["rungs"] == ["slow", "quick"] and data["pinned"] is False
    assert "slow" in data["calibration_ms"]                             # timed, and it fitted
    [switch] = data["switches"]
    assert switch["from"] == "slow" and switch["to"] == "quick"
    assert switch["reason"].startswith("falling behind on slow")
    assert switch["frame"] > 14 and switch["time_s"] > 0
    usage = data["usage"]
    assert usage["slow"]["frames"] >= 14 and usage["quick"]["frames"] > 0
    assert sum(u["frames"] for u in usage.values()) == result.stats.frames
    assert sum(u["share"] for u in usage.values()) == pytest.approx(1.0, abs=1e-3)
    assert result.ladder == data and result.stats.model in ("slow", "quick")


def test_live_command_uses_the_ladder_unless_a_model_is_named(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    stats = tmp_path / "live.json"
    base = ["live", "--synthetic", "--size", "48x32", "--frames", "12", "--preview", "off", "--stats", str(stats)]
    assert main([*base, "--set", "live.rungs='fast@0.5,classical:gaussian'"]) == 0
    data = json.loads(stats.read_text())
    assert data["ladder"]["rungs"] == ["fast@0.5", "classical:gaussian"]
    assert data["ladder"]["calibration_ms"] and not data["ladder"]["pinned"]
    assert sum(u["frames"] for u in data["ladder"]["usage"].values()) == data["frames"]
    assert "rungs used: " in capsys.readouterr().err
    assert main([*base, "--model", "classical:gaussian", "-q"]) == 0
    data = json.loads(stats.read_text())
    assert data["ladder"]["rungs"] == ["classical:gaussian"] and data["ladder"]["pinned"]
    assert data["ladder"]["switches"] == [] and data["model"] == "classical:gaussian"
    assert main([*base, "--set", "live.rungs='fast@3'", "-q"]) == 2
    assert "fast@3" in capsys.readouterr().err


def test_which_runs_get_the_ladder() -> None:
    live = PacedSource(SyntheticSource(SourceConfig(width=32, height=24, frames=1)))
    file = SyntheticSource(SourceConfig(width=32, height=24, frames=1))   # not paced: never falls behind

    def names(source: Any, model: str, **values: Any) -> list[str]:
        cfg = load_config(None, [], {"model": {"name": model}, "live": {"rungs": "tfilter,classical:mean", **values}})
        ladder = live_job.live_denoiser(cfg, source)
        ladder.close()
        return ladder.names if ladder.controller is not None else [f"pinned {ladder.name}"]

    assert names(live, "default") == ["tfilter", "classical:mean"]
    assert names(live, "auto", ladder=False) == ["tfilter", "classical:mean"]
    assert names(live, "default", ladder=False) == ["pinned fast"]
    assert names(live, "classical:median") == ["pinned classical:median"]
    assert names(file, "default") == ["pinned fast"]
    assert names(file, "auto") == ["pinned tfilter"]
