"""The work behind `streamdn eval` (flags: streamdn.cli.evaluate): PSNR, SSIM, temporal flicker
and speed of denoisers on clean clips with noise synthesised from fixed seeds, every method run
through streamdn.Denoiser (the product's path). Writes results.json, results.md and, with
streamdn.tools.report, report.html."""

from __future__ import annotations

import dataclasses
import os
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from streamdn.atomic import write_json
from streamdn.config import read_toml
from streamdn.denoiser import Denoiser, parse_strength
from streamdn.errors import ConfigError, StreamdnError
from streamdn.frames import Frame, bgr_to_yuv420, frame_from_bgr, with_lookahead, yuv420_to_bgr
from streamdn.jobs.file import progress_bar
from streamdn.metrics import FlickerMeter, psnr, ssim
from streamdn.data.noise import NoiseSpec, add_noise_uint8, parse_noise
from streamdn.io.sources import FileSource
from streamdn.data.synthetic import MovingScene, SceneConfig
from streamdn.tools.report import Crops, write_markdown, write_report

SYNTHETIC_SEED = 1000   # validation scenes use seeds 1000, 1001, ... (tuning used 0 and 1)
MIN_SIZE = 16           # the smallest clip side evaluated (SSIM's window is 11x11)
NOISY = "noisy"         # the pseudo-method row: the noisy input as the denoiser sees it


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. Loaded from the [eval] table of a TOML file (configs/eval.toml), with
    values given on top (load_eval_config).

    Attributes:
        clips: clean video files; empty means synthetic clips.
        synthetic: number of synthetic clean clips (MovingScene seeds 1000, 1001, ...).
        noise: noise names for streamdn.data.noise.parse_noise (awgn20, pg_lowlight, sp5, ...).
        methods: model names (tfilter, fast, classical:nlm, ffmpeg:atadenoise, ...).
        frames: frames per clip.
        size: (width, height) of synthetic clips, or the size clips are resized to; None keeps
            clip sizes (synthetic: 640x360).
        strength: "auto" (blind estimate, as the product runs), "oracle" (each plane's true
            noise sigma, measured against the clean frame) or the RGB noise sigma in 8-bit units
            (as `streamdn denoise --strength`).
        device: where networks run ("auto", "cpu", "cuda", "cuda:N").
        seed: base of every noise seed.
        report: also write report.html, the plot and the crops (needs matplotlib).
    """

    clips: tuple[str, ...] = ()
    synthetic: int = 0
    noise: tuple[str, ...] = ("awgn20", "pg_lowlight")
    methods: tuple[str, ...] = ("tfilter", "classical:gaussian", "classical:bilateral")
    frames: int = 30
    size: tuple[int, int] | None = None
    strength: str = "auto"
    device: str = "auto"
    seed: int = 0
    report: bool = True


@dataclass
class Clip:
    """A clean clip: name, (H, W, 3) uint8 BGR frames and frame rate (frames/s)."""

    name: str
    frames: list[np.ndarray]
    fps: float = 30.0


class _OracleDenoiser(Denoiser):
    """Told each plane's true noise sigma (frame.extra["oracle_sigmas"]) instead of estimating."""

    def noise_sigmas(self, frame: Frame) -> tuple[float, float, float]:
        return frame.extra["oracle_sigmas"]  # type: ignore[return-value]


def load_eval_config(path: str | None, **values: Any) -> EvalConfig:
    """The [eval] table of `path` (if given), then the EvalConfig `values` given that are not None.

    Raises:
        ConfigError: unreadable file, unknown key or bad value; the message names the key.
    """
    valid = [f.name for f in dataclasses.fields(EvalConfig)]
    merged: dict[str, Any] = {}
    if path is not None:
        table = read_toml(path, "eval config").get("eval", {})
        for key, value in table.items():
            if key not in valid:
                raise ConfigError(f"{path}: [eval] has no key '{key}'; valid keys: {', '.join(valid)}.")
            merged[key] = tuple(value) if isinstance(value, list) else value
    for key, value in values.items():
        if key not in valid:
            raise ConfigError(f"load_eval_config: {key}= is not an EvalConfig field; valid: {', '.join(valid)}.")
        if value is not None:
            merged[key] = value
    cfg = EvalConfig(**merged)
    _check(cfg)
    return cfg


def _check(cfg: EvalConfig) -> None:
    if bool(cfg.clips) == bool(cfg.synthetic):
        raise ConfigError(f"eval: clips={list(cfg.clips)} and synthetic={cfg.synthetic}: give either clean video "
                          "files (clips) or a number of generated clips (synthetic), not both and not neither.")
    if cfg.frames < 2:
        raise ConfigError(f"eval: frames={cfg.frames}: give at least 2 frames (flicker compares neighbours).")
    if not cfg.noise or not cfg.methods:
        raise ConfigError(f"eval: noise={list(cfg.noise)} methods={list(cfg.methods)}: give at least one of each.")
    for name in cfg.noise:
        try:
            parse_noise(name)
        except ValueError as err:
            raise ConfigError(f"eval: noise: {err}") from err
    if cfg.strength != "oracle":
        parse_strength(cfg.strength)
    if cfg.size is not None and min(cfg.size) < MIN_SIZE:
        raise ConfigError(f"eval: size={cfg.size}: width and height must be at least {MIN_SIZE}.")


# -- clips and noise ---------------------------------------------------------------------------

def load_clips(cfg: EvalConfig) -> list[Clip]:
    """The clean clips: decoded files (resized to cfg.size if given) or synthetic scenes."""
    if cfg.synthetic:
        w, h = cfg.size or (640, 360)
        clips = []
        for i in range(cfg.synthetic):
            scene = MovingScene(SceneConfig(w, h, seed=SYNTHETIC_SEED + i))
            clips.append(Clip(f"synthetic-{SYNTHETIC_SEED + i}", [scene.render(t) for t in range(cfg.frames)]))
        return clips
    clips = []
    for path in cfg.clips:
        with FileSource(path, max_frames=cfg.frames) as src:
            frames = [f.to_bgr() for f in src]
            fps = float(src.format.fps or 30)
        if cfg.size is not None:
            frames = [cv2.resize(f, cfg.size, interpolation=cv2.INTER_AREA) for f in frames]
        if len(frames) < 2:
            raise ConfigError(f"clip '{path}' has {len(frames)} frame(s); evaluation needs at least 2.")
        h, w = frames[0].shape[:2]
        if min(w, h) < MIN_SIZE:
            raise ConfigError(f"clip '{path}' is {w}x{h}; evaluation needs at least {MIN_SIZE}x{MIN_SIZE} "
                              f"(SSIM compares 11x11 windows): pass --size to resize it, e.g. --size 64x64.")
        clips.append(Clip(os.path.basename(path), frames, fps))
    return clips


def noisy_frames(clip: Clip, index: int, noise: str, seed: int) -> list[Frame]:
    """The clip with noise added in RGB, as 4:2:0 Frames; each carries the true per-plane noise
    sigma (8-bit units) in extra["oracle_sigmas"]. Deterministic in (seed, index, noise)."""
    spec: NoiseSpec = parse_noise(noise)
    rng = np.random.default_rng([seed, index, zlib.crc32(noise.encode())])
    tb = 1 / Fraction(clip.fps).limit_denominator(1001)
    frames = []
    for t, clean in enumerate(clip.frames):
        noisy = add_noise_uint8(clean, spec, rng)
        frame = frame_from_bgr(noisy, index=t, pts=t, time_base=tb)
        ref = bgr_to_yuv420(clean)
        frame.extra["oracle_sigmas"] = tuple(float(np.std(p.astype(np.float64) - r))
                                             for p, r in zip((frame.y, frame.u, frame.v), ref))
        frames.append(frame)
    return frames


def crop_box(clean: np.ndarray, width: int = 160, height: int = 112) -> tuple[int, int, int, int]:
    """The (x, y, w, h) region of `clean` with the most gradient energy (detail shows denoising
    best); deterministic."""
    h, w = clean.shape[:2]
    cw, ch = min(width, w), min(height, h)
    grey = cv2.cvtColor(clean, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    summed = cv2.boxFilter(energy, -1, (cw, ch), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = summed[: h - ch + 1, : w - cw + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(x), int(y), cw, ch


# -- running -----------------------------------------------------------------------------------

def make_denoiser(method: str, cfg: EvalConfig) -> Denoiser:
    """The Denoiser a method is evaluated with (oracle strength uses the true sigmas)."""
    if cfg.strength == "oracle":
        return _OracleDenoiser(method, strength="auto", device=cfg.device)
    return Denoiser(method, strength=cfg.strength, device=cfg.device)


def score(method: str, frames: list[Frame], clean: list[np.ndarray], cfg: EvalConfig,
          on_frame: Any = None, keep: int | None = None) -> tuple[dict[str, float], np.ndarray | None]:
    """Runs one method over one noisy clip.

    Args:
        method: a model name, or NOISY for the input itself.
        frames: noisy Frames; clean: the (H, W, 3) uint8 BGR references.
        on_frame: called once per frame (progress).
        keep: index of the output frame to return (for the report's crops).

    Returns:
        ({"psnr": dB, "ssim": [-1, 1], "flicker": 8-bit units, "fps": frames/s}, kept BGR frame).
        fps counts only the Denoiser calls (pre + model + post, one thread calling), after a
        warm-up call that is not timed; NOISY has fps 0.
    """
    dn = None if method == NOISY else make_denoiser(method, cfg)
    try:
        if dn is not None:
            dn(frames[0])      # JIT compilation, allocations, first-call costs: not timed
            dn.reset()
        busy = 0.0
        ps, ss, meter, kept = [], [], FlickerMeter(), None
        # (a windowed model merges the frames after each one too)
        stream = with_lookahead(frames, dn.lookahead) if dn is not None and dn.lookahead else frames
        for t, (frame, ref) in enumerate(zip(stream, clean)):
            if dn is None:
                out = frame
            else:
                start = time.perf_counter()
                out = dn(frame)
                busy += time.perf_counter() - start
            bgr = yuv420_to_bgr(out.y, out.u, out.v, out.bit_depth)
            ps.append(psnr(ref, bgr))
            ss.append(ssim(ref, bgr))
            meter.add(ref, bgr)
            if t == keep:
                kept = bgr
            if on_frame is not None:
                on_frame()
    finally:
        if dn is not None:
            dn.close()
    fps = len(frames) / busy if busy > 0 else 0.0
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "flicker": meter.value, "fps": fps}, kept


def _check_methods(cfg: EvalConfig) -> None:
    """Builds each method once so a missing model or dependency fails before any work."""
    for method in cfg.methods:
        try:
            make_denoiser(method, cfg).close()
        except StreamdnError:
            raise
        except ImportError as err:
            raise ConfigError(f"method '{method}' cannot be built: {err}. Install the extra it needs, "
                              f"e.g. pip install 'streamdn[eval]'.") from err


def evaluate(cfg: EvalConfig, *, quiet: bool = False) -> tuple[dict[str, Any], Crops]:
    """Runs every method on every clip x noise. Returns the results (the results.json data) and
    the crops for the report."""
    _check(cfg)
    _check_methods(cfg)
    clips = load_clips(cfg)
    rows: list[dict[str, Any]] = []
    crops = Crops()
    total = sum(len(c.frames) for c in clips) * len(cfg.noise) * (len(cfg.methods) + 1)
    bar = progress_bar(total, "eval", quiet)
    try:
        for ci, clip in enumerate(clips):
            keep = len(clip.frames) // 2 if ci == 0 else None
            if keep is not None:
                crops.box = crop_box(clip.frames[keep])
            for noise in cfg.noise:
                frames = noisy_frames(clip, ci, noise, cfg.seed)
                for method in (NOISY, *cfg.methods):
                    bar.set_postfix_str(f"{clip.name} {noise} {method}", refresh=False)
                    result, kept = score(method, frames, clip.frames, cfg, lambda: bar.update(1), keep)
                    rows.append({"clip": clip.name, "noise": noise, "method": method, "frames": len(frames),
                                 **_rounded(result)})
                    if kept is not None:
                        x, y, w, h = crops.box
                        images = crops.images.setdefault(noise, {"clean": clip.frames[keep][y:y + h, x:x + w]})
                        images[method] = kept[y:y + h, x:x + w]
    finally:
        bar.close()
    results = {
        "config": _config_dict(cfg),
        "environment": environment(),
        "clips": [{"name": c.name, "width": c.frames[0].shape[1], "height": c.frames[0].shape[0],
                   "frames": len(c.frames), "ceiling_psnr": round(_ceiling(c), 4)} for c in clips],
        "rows": rows,
        "summary": summarise(rows),
    }
    return results, crops


def _rounded(r: dict[str, float]) -> dict[str, float]:
    digits = {"psnr": 4, "ssim": 5, "flicker": 4, "fps": 2}
    return {k: round(v, digits[k]) for k, v in r.items()}


def _ceiling(clip: Clip) -> float:
    """Mean PSNR of the clean frames after the 4:2:0 round trip: the best any method can score."""
    return float(np.mean([psnr(f, yuv420_to_bgr(*bgr_to_yuv420(f))) for f in clip.frames]))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per noise x method, the mean over clips of psnr, ssim, flicker and fps (input order)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["noise"], r["method"]), []).append(r)
    return [{"noise": n, "method": m, "clips": len(g),
             **_rounded({k: float(np.mean([r[k] for r in g])) for k in ("psnr", "ssim", "flicker", "fps")})}
            for (n, m), g in groups.items()]


def environment() -> dict[str, Any]:
    """Where the speeds were measured: device, cores, threads, versions, load average."""
    from importlib.metadata import version

    from streamdn.tools.bench import machine

    device, threads, facts = machine()
    facts.pop("load_avg_before", None)
    return {"streamdn": version("streamdn"), "device": device, "threads": threads, **facts,
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def _config_dict(cfg: EvalConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def check_out_dir(out_dir: str) -> None:
    """Refuses an output folder that exists as something else (a file, a device).

    Raises:
        ConfigError: `out_dir` exists and is not a folder.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out '{out_dir}' exists and is not a folder; give a folder name (it is created "
                          f"if missing).")


def write_results(results: dict[str, Any], crops: Crops, out_dir: str, *, report: bool = True) -> list[str]:
    """Writes results.json, results.md and (report=True) report.html with its plot and crops.
    Returns the paths written: results.json, results.md, then the report's files.

    Raises:
        ConfigError: `out_dir` exists and is not a folder (check_out_dir).
    """
    check_out_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "results.json")
    write_json(path, results)
    written = [path, write_markdown(results, os.path.join(out_dir, "results.md"))]
    if report:
        written += write_report(results, crops, out_dir)
    return written
