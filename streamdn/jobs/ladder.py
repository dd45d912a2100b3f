"""The quality ladder of `streamdn live`: models from the best to the cheapest, one chosen at the
start by timing the real stream, and changed while running so that the stream never falls behind.

A rung is a model at a processing scale, written MODEL[+int8][@SCALE]: "fast_mc", "fast",
"fast@0.5" (the network denoises the frame downscaled to half its width and height, and the
result is scaled back up), "fast_mc+int8" (its convolutions in int8 on ONNX Runtime, whatever
[model] backend says: streamdn.models.int8), "tfilter". Other rungs run on [model] backend
(auto: int8 for `fast` where it pays). +int8 rungs are left out where int8 would not pay:
without ONNX Runtime, and on CPUs with native bf16, where torch runs the network about as fast.
Three parts:

- ScaledModel: any FrameModel run on a downscaled copy of each frame (the reduced-size rungs).
- LadderController: the decisions, from per-frame timings alone (no threads, no clock of its
  own, so it is tested with made-up timings). Calibration tries the rungs from the best down and
  keeps the first whose time per frame fits the frame interval with a margin; afterwards it steps
  down as soon as a rung falls behind and steps up only after a sustained period with plenty of
  headroom, never to a rung that failed recently (each failure holds that rung off for twice as
  long as the one before).
- Ladder: one Denoiser per rung behind the pipeline's three stages. A switch happens where a
  frame is packed, so that pack, forward and unpack of a frame always use the same rung, and the
  new rung starts from a fresh temporal state and a fresh noise estimate, in stream order.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from streamdn.config import ModelConfig
from streamdn.denoiser import Denoiser, network_options, resolve_device
from streamdn.errors import ConfigError
from streamdn.frames import Frame, FrameFormat, warmup_frames
from streamdn.models import FrameModel, create_model, model_info

AUTO_MODELS = ("auto", "default")   # model names that let `streamdn live` use the ladder ([live] rungs)
# Warm-up frames timed per rung after an untimed first one (one frame's time varied by up to 1.4x
# between runs at 1280x720 on 2 cores: the median of three is steadier).
WARMUP_TIMED = 3


# -- rungs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rung:
    """A model (registry name) run at `scale` times the frame's width and height (1: full size),
    on `backend`: "auto" (the run's [model] backend) or "int8" (a recurrent network's
    convolutions on ONNX Runtime)."""

    model: str
    scale: float = 1.0
    backend: str = "auto"

    @property
    def name(self) -> str:
        name = self.model + ("+int8" if self.backend == "int8" else "")
        return name if self.scale == 1.0 else f"{name}@{self.scale:g}"


def parse_rungs(text: str, what: str = "[live] rungs") -> tuple[Rung, ...]:
    """'fast_mc,fast,fast+int8,fast@0.5' -> the rungs, best first.

    Raises:
        ConfigError: no rung, a scale that is not a number in (0.1, 1], a repeated rung, or
            +int8 after a model that is not a network.
        ModelNotFoundError: a model name that is not registered.
    """
    rungs: list[Rung] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        model, _, scale_text = part.partition("@")
        try:
            scale = float(scale_text) if scale_text else 1.0
        except ValueError as err:
            raise ConfigError(f"{what}: '{part}': the scale after @ must be a number such as 0.5.") from err
        if not 0.1 <= scale <= 1.0:
            raise ConfigError(f"{what}: '{part}': the scale must be from 0.1 to 1 (a share of the width and height).")
        model, plus, suffix = model.strip().partition("+")
        if plus and suffix.strip() != "int8":
            raise ConfigError(f"{what}: '{part}': after + only int8 is known (MODEL+int8[@SCALE]).")
        if model_info(model.strip()).kind != "network" and plus:
            raise ConfigError(f"{what}: '{part}': +int8 is for networks; {model.strip()} is a filter.")
        rung = Rung(model.strip(), scale, "int8" if plus else "auto")
        if rung in rungs:
            raise ConfigError(f"{what}: '{part}' is given twice.")
        rungs.append(rung)
    if not rungs:
        raise ConfigError(f"{what} = '{text}': give at least one model, e.g. 'fast,fast@0.5'.")
    return tuple(rungs)


def build_rung(rung: Rung, cfg: ModelConfig) -> Denoiser:
    """The Denoiser of a rung, with the strength, device and impulse handling of `cfg`."""
    backend = "int8" if rung.backend == "int8" else cfg.backend
    if rung.scale == 1.0:
        return Denoiser(rung.model, strength=cfg.strength, device=cfg.device, impulses=cfg.impulses, backend=backend)
    return Denoiser(scaled_model(rung.model, rung.scale, cfg.device, backend), strength=cfg.strength,
                    impulses=cfg.impulses)


# -- reduced-size processing -----------------------------------------------------------------------

def scaled_model(name: str, scale: float, device: str = "auto", backend: str = "auto") -> ScaledModel:
    """A registered model run at `scale` times the frame's width and height (see ScaledModel);
    reusable wherever a FrameModel is taken, e.g. streamdn.tools.train.validate."""
    if model_info(name).kind == "network":
        inner = create_model(name, device=resolve_device(device), **network_options(name, backend))
    else:
        inner = create_model(name)
    return ScaledModel(inner, scale)


def rung_model(rung: Rung | str, device: str = "auto") -> str | FrameModel:
    """What streamdn.tools.train.validate takes for a rung ("fast@0.5" or a Rung): the model's
    name at full size on the default backend, else the model (a ScaledModel below full size).

    Example:
        >>> from streamdn.tools.train import validate
        >>> validate(rung_model("fast@0.5"))["mean"]["psnr"]
    """
    r = parse_rungs(rung, what="rung")[0] if isinstance(rung, str) else rung
    if r.scale != 1.0:
        return scaled_model(r.model, r.scale, device, r.backend)
    if r.backend == "auto":
        return r.model
    return create_model(r.model, device=resolve_device(device), **network_options(r.model, r.backend))


def usable_rungs(rungs: Sequence[Rung]) -> tuple[Rung, ...]:
    """`rungs` without the int8 ones where int8 would not pay (streamdn.models.network.int8_pays);
    all of them when that leaves none."""
    from streamdn.models.network import int8_pays

    kept = tuple(r for r in rungs if r.backend != "int8" or int8_pays())
    return kept or tuple(rungs)


def reduced_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The processing size for `scale`: even, at least 16 x 16 (never above the frame's size)."""
    w = min(width, max(16, 2 * round(width * scale / 2)))
    h = min(height, max(16, 2 * round(height * scale / 2)))
    return w, h


def noise_factor(size: tuple[int, int], small: tuple[int, int]) -> float:
    """How much an INTER_AREA downscale from `size` to `small` (width, height) lowers the sigma of
    white noise (0.5 at half size), measured on seeded noise of that size."""
    noise = np.random.default_rng(0).standard_normal((size[1], size[0])).astype(np.float32)
    return float(cv2.resize(noise, small, interpolation=cv2.INTER_AREA).std() / noise.std())


@dataclass
class _Scaled:
    inner: Any             # the inner model's packed data, then its result
    small: Frame           # the downscaled noisy frame


class ScaledModel(FrameModel):
    """Runs `inner` on each frame downscaled by `scale` (cv2.INTER_AREA, which also averages the
    noise down: the sigmas the inner model gets are lowered to match) and brings the result back
    to the frame's size (bicubic: 0.3-0.4 dB above bilinear on the validation clips). Detail finer
    than the reduced size is lost; adding the upscaled correction (denoised minus noisy) to the
    full-size frame instead keeps it, but keeps the noise finer than that size as well: measured
    on the validation clips, 23.92 dB against 29.93 for fast at half size.
    """

    def __init__(self, inner: FrameModel, scale: float) -> None:
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"scale {scale}: give a share of the frame's size in (0, 1].")
        self.inner = inner
        self.scale = scale
        self.info = replace(inner.info, name=f"{inner.info.name}@{scale:g}", val_psnr=None)
        self.device = inner.device
        self.impulse_filter = inner.impulse_filter
        self._factors: dict[tuple[int, int], float] = {}

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> _Scaled:
        size = (frame.width, frame.height)
        small_size = reduced_size(frame.width, frame.height, self.scale)
        if small_size not in self._factors:
            self._factors[small_size] = noise_factor(size, small_size)
        k = self._factors[small_size]
        cw, ch = (small_size[0] + 1) // 2, (small_size[1] + 1) // 2
        small = frame.with_planes(_resize(frame.y, small_size, cv2.INTER_AREA),
                                  _resize(frame.u, (cw, ch), cv2.INTER_AREA),
                                  _resize(frame.v, (cw, ch), cv2.INTER_AREA))
        return _Scaled(self.inner.pack(small, (sigmas[0] * k, sigmas[1] * k, sigmas[2] * k)), small)

    def forward(self, packed: _Scaled) -> _Scaled:
        return _Scaled(self.inner.forward(packed.inner), packed.small)

    def unpack(self, result: _Scaled, frame: Frame) -> Frame:
        clean = self.inner.unpack(result.inner, result.small)
        maxv = (1 << frame.bit_depth) - 1
        planes = []
        for out, full in zip((clean.y, clean.u, clean.v), (frame.y, frame.u, frame.v)):
            plane = _resize(out, (full.shape[1], full.shape[0]), cv2.INTER_CUBIC)
            if maxv < np.iinfo(plane.dtype).max:
                np.minimum(plane, maxv, out=plane)   # bicubic overshoot past the white level
            planes.append(plane)
        return frame.with_planes(*planes)

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()

    def clone(self) -> ScaledModel:
        return ScaledModel(self.inner.clone(), self.scale)


def _resize(plane: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if (plane.shape[1], plane.shape[0]) == size:
        return plane.copy()
    return cv2.resize(np.ascontiguousarray(plane), size, interpolation=interpolation)


# -- the controller --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LadderPolicy:
    """When the controller switches (times in seconds; loads as shares of the frame interval).

    Attributes:
        margin: a rung fits when its median time per frame is at most this share of the frame
            interval (and its median latency within the target).
        down_load: while running, a median time per frame above this share of the interval
            (over `window_s`) steps down; so does a share of dropped frames above `drop_share`,
            or a median latency above the target.
        up_load: a step up needs the rung above to be predicted at no more than this share of
            the interval (and of the latency target), from `up_after_s` without drops.
        settle: frames after a switch left out of the measurements (the backlog of the old rung).
        startup_settle: the same at the start of the stream, where the stages' threads start
            and the first frames pile up (measured at 1280x720 on 2 cores: fast@0.5's first
            frames took 60, 60, 34, 28 ms, then 17-22).
        min_frames: the fewest measured frames a decision is made on.
        calib_frames: frames timed per rung in the calibration, taking at most calib_max_s.
        calib_slack: the calibration tries next the best rung predicted within this factor of
            the budget (the rungs between are skipped).
        start_slack: the calibration starts on the best rung whose warm-up time (before the
            clock starts, on grey frames, its stages one after another) is within this factor
            of the budget: in the stream the rung shares the cores with decoding and the sinks
            (a recording's encoder), so a rung near the budget there drops frames while it is
            timed (measured at 1280x720 on 2 cores: fast@0.75 took 23-25 ms in the warm-up and
            35-54 ms in the stream).
        min_dwell_s: the shortest time on a rung before stepping down again.
        up_after_s: the sustained period of headroom a step up needs.
        hold_s, max_hold_s: a rung that fell behind is not tried again for hold_s, doubled at
            each further failure, up to max_hold_s.
        up_drop_share: the most dropped frames a period of headroom may have.
        remeasure_s: the relative cost of a rung last measured longer ago than this may be
            out of date (it was slow while the machine was busy for a moment): with the current
            rung's own time within up_load, the rung above is tried again.
    """

    margin: float = 0.8
    down_load: float = 0.95
    up_load: float = 0.6
    drop_share: float = 0.1
    up_drop_share: float = 0.01
    settle: int = 1
    startup_settle: int = 4
    min_frames: int = 4
    calib_frames: int = 8
    calib_max_s: float = 1.0
    calib_slack: float = 2.0
    start_slack: float = 0.8
    window_s: float = 1.0
    min_dwell_s: float = 0.5
    up_after_s: float = 5.0
    hold_s: float = 10.0
    max_hold_s: float = 160.0
    remeasure_s: float = 30.0


@dataclass
class _Sample:
    t: float
    cost: float
    latency: float
    dropped: int


class LadderController:
    """Chooses the rung (an index into `names`, 0 the best) from what each frame cost.

    Call `observe` once per frame that came out, in stream order, with the rung it was denoised
    on; it returns the index of the rung to use from now on when that changes, else None. The
    phase is "calibrating" at first (rungs from the best down are timed on up to `calib_frames`
    frames each until one fits), then "running"; a step up starts a "trial" of the rung above,
    timed as in the calibration, which goes back down at once if it does not fit; "pinned"
    never changes.

    What it knows of the rungs it is not on is their relative cost: the costs measured before
    the run (set_priors), corrected by the ratio of each two rungs measured one after the other
    (a busier machine slows both alike). From that it skips rungs that would be too slow anyway
    when it steps down, and predicts the cost of the rung above before stepping up.
    """

    def __init__(self, names: Sequence[str], policy: LadderPolicy | None = None, *, interval_s: float = 1 / 30,
                 latency_s: float | None = None, pinned: bool = False) -> None:
        """Args:
            names: the rungs, best first.
            policy: the thresholds (LadderPolicy()).
            interval_s: the source's frame interval (the Ladder updates it from the frames).
            latency_s: the latency target for a frame's denoising (pack to unpack), or None.
            pinned: keep rung 0 whatever happens.
        """
        self.names = list(names)
        self.policy = policy or LadderPolicy()
        self.interval_s = interval_s
        self.latency_s = latency_s
        self.rung = 0
        self.phase = "pinned" if pinned or len(self.names) == 1 else "calibrating"
        self.reason = ""                               # why the last switch was made
        self.calibration: dict[str, float] = {}        # rung name -> median seconds per frame
        self.calibration_s: float | None = None        # how long the calibration took
        self._start: float | None = None
        self._switched = False                         # a switch was made (the stream's start is past)
        self._switched_at = 0.0
        self._seen = 0                                 # frames seen on the rung since the switch
        self._samples: deque[_Sample] = deque()
        self._rel: dict[int, float] = {}               # relative cost per rung (ratios matter)
        self._left: tuple[int, float] | None = None    # the rung last left and its cost then
        self._learned = False                          # the rung's cost was related to the last one's
        self._fails = [0] * len(self.names)
        self._hold_until = [-math.inf] * len(self.names)
        self._measured_at = [-math.inf] * len(self.names)   # when each rung was last timed

    def set_priors(self, costs: Sequence[float]) -> None:
        """Each rung's cost per frame measured before the run (seconds, e.g. the warm-up's); the
        calibration then starts on the best rung they do not rule out (LadderPolicy.start_slack)."""
        self._rel = {i: float(c) for i, c in enumerate(costs) if c > 0}
        if self.phase != "calibrating" or self._start is not None or not costs:
            return
        budget = self.policy.margin * self.interval_s
        start = next((i for i, c in enumerate(costs) if c <= self.policy.start_slack * budget), len(costs) - 1)
        if start:
            self.rung = start
            self.reason = (f"calibration starts at {self.names[start]}: in the warm-up "
                           + ", ".join(f"{self.names[i]} took {costs[i] * 1000:.0f} ms" for i in range(start))
                           + f" a frame, over {self.policy.start_slack:g} x the {budget * 1000:.0f} ms budget")

    # -- the decision --------------------------------------------------------------------------

    def observe(self, now: float, rung: int, cost_s: float, latency_s: float, dropped: int = 0) -> int | None:
        """Args:
            now: the time (seconds, any monotonic clock) the frame came out.
            rung: the rung it was denoised on.
            cost_s: its time per frame (the slowest of its pipeline stages).
            latency_s: from the start of its packing to the end of its unpacking.
            dropped: frames dropped (or never delivered by the source) just before it.

        Returns:
            The rung to switch to, or None to stay.
        """
        if self.phase == "pinned" or rung != self.rung:
            return None   # a frame denoised before the last switch says nothing about this rung
        if self._start is None:
            self._start = self._switched_at = now
        self._seen += 1
        settle = self.policy.settle if self._switched else self.policy.startup_settle
        if self._seen <= settle:
            return None
        self._samples.append(_Sample(now, cost_s, latency_s, dropped))
        self._measured_at[rung] = now
        horizon = max(self.policy.window_s, self.policy.up_after_s)
        while self._samples[0].t < now - horizon:
            self._samples.popleft()
        if not self._learned and len(self._samples) >= self.policy.min_frames:
            self._learn_cost()
        if self.phase in ("calibrating", "trial"):
            return self._judge(now)
        reason = self._falling_behind(now)
        return self._step_down(now, reason) if reason else self._step_up(now)

    def _median_cost(self, samples: Sequence[_Sample] | None = None) -> float:
        return statistics.median(s.cost for s in (self._samples if samples is None else samples))

    def _learn_cost(self) -> None:
        """Relates the rung's cost to the rung it came from (measured moments apart)."""
        self._learned = True
        cost = self._median_cost()
        if self._left is None:
            self._rel.setdefault(self.rung, cost)
            return
        left, left_cost = self._left
        self._rel[self.rung] = self._rel.get(left, left_cost) * cost / max(left_cost, 1e-9)

    def _predicted(self, rung: int, cost: float) -> float | None:
        """The cost per frame `rung` would have now, the current one costing `cost`; None if unknown."""
        if rung not in self._rel or self.rung not in self._rel:
            return None
        return cost * self._rel[rung] / self._rel[self.rung]

    def _fitting_below(self, cost: float, slack: float = 1.0) -> int:
        """The best rung below the current one predicted to fit the budget (times `slack`): the
        next unknown one, or the cheapest when none is predicted to fit."""
        budget = self.policy.margin * self.interval_s * slack
        for j in range(self.rung + 1, len(self.names)):
            predicted = self._predicted(j, cost)
            if predicted is None or predicted <= budget:
                return j
        return len(self.names) - 1

    def _judge(self, now: float) -> int | None:
        """Calibration and trial: does the rung fit, timed on its first frames? If not, the best
        rung below predicted to fit is next (the calibration goes on there; a trial ends)."""
        p = self.policy
        costs = [s.cost for s in self._samples]
        budget = p.margin * self.interval_s
        # Too slow to time any longer: two frames both far over the budget, or three whose
        # median is well over it (each frame timed costs drops).
        clearly_slow = ((len(costs) >= 2 and min(costs) > 1.5 * budget)
                        or (len(costs) >= 3 and statistics.median(costs) > 1.25 * budget))
        timed_out = now - self._switched_at >= p.calib_max_s and len(costs) >= 3
        if not (clearly_slow or len(costs) >= p.calib_frames or timed_out):
            return None
        cost = statistics.median(costs)
        latency = statistics.median(s.latency for s in self._samples)
        calibrating = self.phase == "calibrating"
        if calibrating:
            self.calibration[self.names[self.rung]] = cost
        if not self._learned:
            self._learn_cost()
        fits = cost <= budget and (self.latency_s is None or latency <= self.latency_s)
        if fits or self.rung == len(self.names) - 1:
            if calibrating:
                self.calibration_s = now - (self._start or now)
            self.phase = "running"
            # The running checks start afresh: frames dropped while slower rungs were timed are
            # not this rung's doing.
            self._samples.clear()
            self._switched_at = now
            return None
        self._hold(self.rung, now)
        why = (f"takes {cost * 1000:.0f} ms a frame, over {budget * 1000:.0f} ms" if cost > budget else
               f"latency {latency * 1000:.0f} ms over the {(self.latency_s or 0) * 1000:.0f} ms target")
        target = self._switch(self._fitting_below(cost, p.calib_slack), now,
                              f"{'calibration' if calibrating else 'trial'}: {self.names[self.rung]} {why}")
        if not calibrating:
            self.phase = "running"
        return target

    def _window(self, now: float, seconds: float) -> list[_Sample]:
        return [s for s in self._samples if s.t >= now - seconds]

    def _falling_behind(self, now: float) -> str | None:
        """Why the current rung does not keep up (over the last window_s), or None."""
        p = self.policy
        if self.rung == len(self.names) - 1 or now - self._switched_at < p.min_dwell_s:
            return None
        win = self._window(now, p.window_s)
        if len(win) < p.min_frames:
            return None
        cost = self._median_cost(win)
        dropped = sum(s.dropped for s in win)
        latency = statistics.median(s.latency for s in win)
        if cost > p.down_load * self.interval_s:
            return f"{cost * 1000:.0f} ms a frame for a {self.interval_s * 1000:.0f} ms frame interval"
        if dropped > p.drop_share * (dropped + len(win)):
            return f"{100 * dropped / (dropped + len(win)):.0f} % of the frames dropped"
        if self.latency_s is not None and latency > self.latency_s:
            return f"latency {latency * 1000:.0f} ms over the {self.latency_s * 1000:.0f} ms target"
        return None

    def _step_down(self, now: float, reason: str) -> int:
        cost = self._median_cost(self._window(now, self.policy.window_s))
        target = self._fitting_below(cost)
        self._hold(self.rung, now)
        return self._switch(target, now, f"falling behind on {self.names[self.rung]}: {reason}")

    def _step_up(self, now: float) -> int | None:
        p = self.policy
        up = self.rung - 1
        if up < 0 or now - self._switched_at < p.up_after_s or now < self._hold_until[up]:
            return None
        win = self._window(now, p.up_after_s)
        dropped = sum(s.dropped for s in win)
        if len(win) < p.min_frames or dropped > p.up_drop_share * (dropped + len(win)):
            return None
        cost = float(np.percentile([s.cost for s in win], 90))
        latency = float(np.percentile([s.latency for s in win], 90))
        predicted = self._predicted(up, cost)
        ratio = predicted / cost if predicted is not None and cost > 0 else 2.0
        stale = now - max(self._measured_at[up], self._start or now) > p.remeasure_s
        if stale:
            ratio = 1.0   # its relative cost may be out of date: time it again (a trial)
        if cost * ratio > p.up_load * self.interval_s:
            return None
        if self.latency_s is not None and latency * ratio > p.up_load * self.latency_s:
            return None
        self.phase = "trial"
        if stale:
            return self._switch(up, now, f"headroom: {self.names[self.rung]} at {cost * 1000:.0f} ms a frame for a "
                                         f"{self.interval_s * 1000:.0f} ms frame interval; timing "
                                         f"{self.names[up]} again")
        return self._switch(up, now, f"headroom: {self.names[up]} predicted at {cost * ratio * 1000:.0f} ms a "
                                     f"frame for a {self.interval_s * 1000:.0f} ms frame interval")

    def _hold(self, rung: int, now: float) -> None:
        """Keeps a rung that fell behind off for hold_s, doubled at each failure."""
        self._fails[rung] += 1
        hold = min(self.policy.hold_s * 2 ** (self._fails[rung] - 1), self.policy.max_hold_s)
        self._hold_until[rung] = now + hold

    def _switch(self, rung: int, now: float, reason: str) -> int:
        recent = list(self._samples)[-self.policy.min_frames:]   # what the rung costs as it is left
        self._left = (self.rung, self._median_cost(recent)) if recent else None
        self.rung, self.reason = rung, reason
        self._switched_at, self._seen, self._learned, self._switched = now, 0, False, True
        self._samples.clear()
        return rung


# -- the pipeline's stages ---------------------------------------------------------------------------

@dataclass
class _Work:
    rung: int
    data: object
    restart: bool
    bypass: bool
    started: float
    pack_s: float
    forward_s: float = 0.0


@dataclass
class Switch:
    """A rung switch: the first frame (its index in the stream) denoised on the new rung."""

    frame: int
    time_s: float       # seconds since the first frame was packed
    old: str
    new: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "time_s": round(self.time_s, 3), "from": self.old, "to": self.new,
                "reason": self.reason}


class Ladder:
    """One Denoiser per rung behind the pipeline's stages (pack, forward, unpack), with the
    controller choosing the rung. What the live preview reads and sets (enabled, gain, strength,
    name) applies to every rung; `name` is the rung in use.

    A switch is taken where a frame is packed: that frame and the ones after it are packed,
    stepped and unpacked on the new rung, whose temporal state starts afresh in the forward stage
    (the frames still in flight finish on the old one), as after a scene cut.
    """

    def __init__(self, rungs: Sequence[tuple[str, Denoiser]], controller: LadderController | None = None,
                 fps: float | None = None) -> None:
        """Args:
            rungs: (name, Denoiser) pairs, best first.
            controller: the decisions; None keeps the first rung (a pinned model).
            fps: the source's nominal frame rate (else measured from the frames' capture times).
        """
        if not rungs:
            raise ConfigError("a ladder needs at least one rung.")
        self.names = [n for n, _ in rungs]
        self.denoisers = [d for _, d in rungs]
        self.controller = controller
        self.switches: list[Switch] = []
        self.frames = [0] * len(rungs)
        self.priors: list[float] = []      # each rung's seconds per frame in the warm-up
        self._steady: list[float] = []     # after the calibration: capture to unpacked, seconds
        self._steady_dropped = 0
        self._nominal = 1.0 / fps if fps else None
        self._packing = 0
        self._first: float | None = None
        self._last_out: float | None = None
        self._last_index: int | None = None
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=60)
        if controller is not None and self._nominal:
            controller.interval_s = self._nominal

    @classmethod
    def pinned(cls, denoiser: Denoiser) -> Ladder:
        """A ladder of one rung: the Denoiser alone."""
        return cls([(denoiser.name, denoiser)])

    # -- what the preview reads and sets -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.names[self._packing]

    @property
    def device(self) -> str:
        return self.denoisers[0].device

    @property
    def rung_position(self) -> tuple[int, int] | None:
        """(the rung in use counted from 1, the number of rungs), or None for a pinned model."""
        return (self._packing + 1, len(self.names)) if len(self.names) > 1 and self.controller else None

    @property
    def enabled(self) -> bool:
        return self.denoisers[0].enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        for d in self.denoisers:
            d.enabled = value

    @property
    def gain(self) -> float:
        return self.denoisers[0].gain

    @gain.setter
    def gain(self, value: float) -> None:
        for d in self.denoisers:
            d.gain = value

    @property
    def strength(self) -> float | None:
        return self.denoisers[0].strength

    # -- the stages ------------------------------------------------------------------------------

    def pack(self, frame: Frame, restart: bool = False) -> _Work:
        """Stage 1: takes a pending switch, then packs on the rung in use. `restart`: this frame
        starts the temporal state and the noise estimate afresh (e.g. after a camera gap)."""
        t0 = time.monotonic()
        if self._first is None:
            self._first = t0
        want = self.controller.rung if self.controller is not None else self._packing
        if want != self._packing:
            reason = self.controller.reason if self.controller is not None else ""
            self.switches.append(Switch(frame.index, t0 - self._first, self.names[self._packing], self.names[want],
                                        reason))
            self._packing, restart = want, True
        dn = self.denoisers[self._packing]
        if restart:
            dn.reset_noise_level()
        data = dn.pack(frame)
        return _Work(self._packing, data, restart, not dn.enabled, t0, time.monotonic() - t0)

    def forward(self, work: _Work) -> _Work:
        """Stage 2: the model step of the frame's rung (a fresh state first after a switch)."""
        t0 = time.monotonic()
        dn = self.denoisers[work.rung]
        if work.restart:
            dn.model.reset()
        work.data = dn.forward(work.data)
        work.forward_s = time.monotonic() - t0
        return work

    def unpack(self, work: _Work, frame: Frame) -> Frame:
        """Stage 3: back to a Frame on the frame's rung; tells the controller what it cost."""
        t0 = time.monotonic()
        out = self.denoisers[work.rung].unpack(work.data, frame)
        now = time.monotonic()
        self.frames[work.rung] += 1
        self._last_out = now
        dropped = self._arrival(frame)
        c = self.controller
        if c is not None and c.phase != "calibrating":
            self._steady.append(now - frame.captured)
            self._steady_dropped += dropped
        if c is not None and not work.bypass:
            c.observe(now, work.rung, max(work.pack_s, work.forward_s, now - t0), now - work.started, dropped)
        return out

    def _arrival(self, frame: Frame) -> int:
        """The frames missing before this one (dropped, or never delivered) and, without a
        nominal frame rate, the controller's frame interval from the capture times."""
        last, self._last_index = self._last_index, frame.index
        dropped = frame.index - last - 1 if last is not None and frame.index > last else 0
        self._arrivals.append((frame.captured, frame.index))
        if self._nominal is None and self.controller is not None and len(self._arrivals) >= 10:
            steps = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(self._arrivals, list(self._arrivals)[1:])
                     if b[1] > a[1]]
            if steps:
                self.controller.interval_s = max(statistics.median(steps), 1e-3)
        return dropped

    # -- the rest of the Denoiser's API the pipeline uses ----------------------------------------

    def __call__(self, frame: Frame) -> Frame:
        """Denoises one frame on the rung in use (the pipeline's warm-up)."""
        return self.denoisers[self._packing](frame)

    def warmup(self, fmt: FrameFormat) -> float:
        """Runs every rung on 1 + WARMUP_TIMED frames of `fmt` with noise and a panning camera
        (streamdn.frames.warmup_frames: JIT, buffers, network kernels for each size, the moving
        stream's paths), then resets it and times the same frames again; the median time of the
        frames after the first (each frame's three stages one after another) is the controller's first
        idea of the rungs' costs. The sum, not the slowest stage: each stage uses every core, so
        in the pipeline the stages mostly take turns (measured at 1280x720 on 2 cores: the sum
        predicted 27 and 17 ms a frame for fast@0.75 and fast@0.5 where the stream took 35 and
        17; the slowest stage, 19 and 11). Returns the seconds it took."""
        start = time.perf_counter()
        frames = warmup_frames(fmt, 1 + WARMUP_TIMED)
        costs = []
        for dn in self.denoisers:
            for timed in (False, True):   # the first pass compiles what the moving frames need
                times = []
                for frame in frames:
                    t0 = time.perf_counter()
                    packed = dn.pack(frame)
                    result = dn.forward(packed)
                    dn.unpack(result, frame)
                    times.append(time.perf_counter() - t0)
                dn.reset()
            costs.append(statistics.median(times[1:]))
        self.priors = costs
        if self.controller is not None:
            self.controller.set_priors(costs)
        return time.perf_counter() - start

    def reset(self) -> None:
        for d in self.denoisers:
            d.reset()

    def reset_noise_level(self) -> None:
        self.denoisers[self._packing].reset_noise_level()

    def close(self) -> None:
        for d in self.denoisers:
            d.close()

    # -- what the run reports --------------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, float]]:
        """Per rung used: {"frames": n, "seconds": s, "share": its share of the run's time}."""
        end = self._last_out if self._last_out is not None else self._first
        if self._first is None or end is None:
            return {}
        spans: dict[str, float] = {}
        start, rung = 0.0, self.names[0]
        for s in self.switches:
            spans[rung] = spans.get(rung, 0.0) + s.time_s - start
            start, rung = s.time_s, s.new
        spans[rung] = spans.get(rung, 0.0) + max(0.0, end - self._first - start)
        total = sum(spans.values())
        out: dict[str, dict[str, float]] = {}
        for name, frames in zip(self.names, self.frames):
            if frames or spans.get(name):
                sec = spans.get(name, 0.0)
                out[name] = {"frames": frames, "seconds": round(sec, 3),
                             "share": round(sec / total, 4) if total > 0 else (1.0 if frames else 0.0)}
        return out

    def summary(self) -> dict[str, object]:
        """What --stats records: the rungs, the calibration, each switch and each rung's use."""
        c = self.controller
        return {
            "rungs": self.names,
            "pinned": c is None or c.phase == "pinned",
            "calibration_ms": {k: round(v * 1000, 2) for k, v in c.calibration.items()} if c else {},
            "calibration_s": round(c.calibration_s, 3) if c and c.calibration_s is not None else None,
            "warmup_ms": {n: round(v * 1000, 2) for n, v in zip(self.names, self.priors)},
            "switches": [s.as_dict() for s in self.switches],
            "usage": self.usage(),
            "after_calibration": self.steady(),
        }

    def steady(self) -> dict[str, object]:
        """After the calibration: frames, frames dropped (or not delivered) and the latency from
        capture to the end of denoising (p50, p95 in ms; the sinks' time is not included)."""
        lat = np.array(self._steady) * 1000.0
        n, d = len(self._steady), self._steady_dropped
        return {"frames": n, "dropped": d, "dropped_pct": round(100.0 * d / max(n + d, 1), 2),
                "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 95)} if n else {}}


def usage_text(usage: dict[str, dict[str, float]]) -> str:
    """'fast 95 % (1710 frames), fast@0.5 5 % (90 frames)', most used first."""
    ranked = sorted(usage.items(), key=lambda kv: -kv[1]["share"])
    return ", ".join(f"{name} {100 * u['share']:.0f} % ({int(u['frames'])} frames)" for name, u in ranked)


def make_ladder(names: Sequence[Rung], cfg: ModelConfig, *, fps: float | None, latency_s: float | None,
                policy: LadderPolicy | None = None) -> Ladder:
    """The ladder of `names` (best first) with a controller that calibrates on the stream."""
    rungs = [(r.name, build_rung(r, cfg)) for r in names]
    controller = LadderController([n for n, _ in rungs], policy, interval_s=1.0 / fps if fps else 1 / 30,
                                  latency_s=latency_s)
    return Ladder(rungs, controller, fps=fps)

