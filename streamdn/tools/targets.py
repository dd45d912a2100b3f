"""The quality targets of the temporal network, measured on streamdn's fixed validation clips
(streamdn.data.clips.validation_clips) in one command (flags: streamdn.cli.targets):

    streamdn targets --out docs/fast [--bm3d-json val-bm3d.json]

Writes targets.json and targets.md (PSNR/SSIM/flicker per noise and method, the speed of the
classical filters at 640x360 on this machine, which of them count as real time, at least
streamdn.metrics.REALTIME_FPS, and each target with its margin), flicker.png (per-frame temporal
error on the clip with moving objects) and crops.png (enlarged moving edges, to look at ghosting).

Methods: the networks and filters blind (estimated strength) through Denoiser; "median3x3", a
plain 3x3 median of each RGB channel (the salt-and-pepper reference); "bm3d", per-frame BM3D given
the true noise (streamdn.tools.reference; minutes per noise, so it can be read from the JSON of
`streamdn train --validate bm3d --json FILE` instead of run again); "4:2:0 ceiling", the clean clip
through the 4:2:0 round trip every method here pays (saturated colours cost up to 12 dB).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamdn.atomic import write_json
from streamdn.data.clips import ValClip, validation_clips
from streamdn.errors import ConfigError
from streamdn.frames import frame_from_bgr
from streamdn.metrics import REALTIME_FPS, frame_scores
from streamdn.tools.train import clip_outputs

NOISES = ("awgn20", "awgn30", "pg_lowlight", "camera_lowlight", "sp5")
REALTIME_CANDIDATES = ("classical:gaussian", "classical:bilateral", "classical:median", "classical:mean",
                       "ffmpeg:atadenoise", "tfilter")
SPEED_SIZE = (640, 360)


@dataclass(frozen=True)
class TargetsConfig:
    """What `measure_targets` measures and where it writes.

    Attributes:
        out: folder for targets.json, targets.md, flicker.png and crops.png (created if missing).
        net: the network to judge (registry name or .safetensors path).
        noises: validation noises (streamdn.data.noise.parse_noise names).
        bm3d_json: BM3D figures to read instead of running BM3D: the JSON that
            streamdn.tools.train.validate_models(["bm3d"], ...) gives ({"bm3d": {noise: {...}}}), or
            a flat {noise: {"psnr", "ssim", "flicker"}}; None for none.
        bm3d: run BM3D here as well (minutes per noise; needs the bm3d package).
    """

    out: str
    net: str = "fast"
    noises: tuple[str, ...] = NOISES
    bm3d_json: str | None = None
    bm3d: bool = False


def _runner(method: str) -> Callable[[ValClip], list[np.ndarray]]:
    """A function giving the method's output frames ((H, W, 3) uint8 BGR) for a clip, in order."""
    if method == "4:2:0 ceiling":
        # The clean clip through the 4:2:0 conversion every method here goes through: the best
        # any of them can score (the RGB-domain median3x3-rgb does not pay it).
        return lambda clip: [frame_from_bgr(c).to_bgr() for c in clip.clean]
    if method == "median3x3":
        # A 3x3 median of each 4:2:0 plane: what a video filter (e.g. FFmpeg's median) does.
        def planes(clip: ValClip) -> list[np.ndarray]:
            out = []
            for n in clip.noisy:
                f = frame_from_bgr(n)
                out.append(f.with_planes(*(cv2.medianBlur(p, 3) for p in (f.y, f.u, f.v))).to_bgr())
            return out
        return planes
    if method == "median3x3-rgb":
        return lambda clip: [cv2.medianBlur(n, 3) for n in clip.noisy]
    return lambda clip: clip_outputs(method, clip)


def realtime_speed(method: str, frames: int = 20) -> float:
    """Denoiser calls per second at 640x360 on a noisy synthetic clip (after 3 warm-up frames)."""
    from streamdn.denoiser import Denoiser
    from streamdn.data.noise import add_noise_uint8, parse_noise
    from streamdn.data.synthetic import MovingScene, SceneConfig

    rng = np.random.default_rng(0)
    w, h = SPEED_SIZE
    clean = list(MovingScene(SceneConfig(width=w, height=h, speed=1.0, objects=2, seed=5)).frames(frames + 3))
    noisy = [frame_from_bgr(add_noise_uint8(c, parse_noise("awgn20"), rng), index=i) for i, c in enumerate(clean)]
    with Denoiser(method, device="cpu") as dn:
        for f in noisy[:3]:
            dn(f)
        t = time.perf_counter()
        for f in noisy[3:]:
            dn(f)
        return frames / (time.perf_counter() - t)


def measure(methods: list[str], noises: tuple[str, ...], bm3d: dict[str, Any] | None = None,
            quiet: bool = False) -> dict[str, Any]:
    """Scores every method on every noise's validation clips; returns the tables and per-frame
    flicker of each method on every clip (for the figure)."""
    clips = validation_clips(noises=noises)
    table: dict[str, dict[str, dict[str, float]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    outputs_for_crops: dict[str, list[np.ndarray]] = {}
    for method in methods:
        run = _runner(method)
        per: dict[str, list[dict[str, list[float]]]] = {}
        for clip in clips:
            if method.startswith("median3x3") and not clip.noise.startswith("sp"):
                continue
            t0 = time.perf_counter()
            outs = run(clip)
            s = frame_scores(clip.clean, outs)
            per.setdefault(clip.noise, []).append(s)
            curves.setdefault(clip.name, {})[method] = s["flicker"]
            if clip.name == CROP_CLIP:
                outputs_for_crops[method] = outs
            if not quiet:
                print(f"  {method:22} {clip.name:26} {np.mean(s['psnr']):6.2f} dB  ({time.perf_counter() - t0:.1f} s)",
                      file=sys.stderr)
        table[method] = {noise: {k: float(np.nanmean([v for s in ss for v in s[k]])) for k in ("psnr", "ssim", "flicker")}
                         for noise, ss in per.items()}
    if bm3d:
        table["bm3d"] = {k: v for k, v in bm3d.items() if k in noises}
    return {"table": table, "curves": curves, "crop_outputs": outputs_for_crops, "clips": clips}


CROP_CLIP = "natural1-awgn20"     # the held-out natural scene with camera motion and moving objects
FLICKER_CLIP = "natural1-awgn20"


def targets(table: dict[str, dict[str, dict[str, float]]], speeds: dict[str, float], net: str) -> list[dict[str, Any]]:
    """The network's quality targets with their measured margins (positive = met): within 0.5 dB
    of BM3D on AWGN (above it on Poisson-Gaussian), 3 dB above the best classical filter that runs
    at REALTIME_FPS or faster (`speeds`: method -> fps), and at least the 3x3 median on salt and
    pepper. Targets whose figures are missing from `table` are left out."""
    out: list[dict[str, Any]] = []
    p = lambda m, n: table.get(m, {}).get(n, {}).get("psnr")  # noqa: E731
    for noise, need in (("awgn20", -0.5), ("awgn30", -0.5), ("pg_lowlight", 0.0)):
        a, b = p(net, noise), p("bm3d", noise)
        if a is not None and b is not None:
            what = "within 0.5 dB of BM3D (true sigma)" if need < 0 else "above BM3D (true noise)"
            out.append({"target": f"{noise}: {net} {what}", "net": a, "reference": b,
                        "margin_db": round(a - b - need, 2), "met": a - b >= need})
    realtime = [m for m, fps in speeds.items() if fps >= REALTIME_FPS]
    for noise in ("awgn20", "awgn30", "pg_lowlight", "camera_lowlight"):
        scored = [(p(m, noise), m) for m in realtime if p(m, noise) is not None]
        a = p(net, noise)
        if scored and a is not None:
            best, who = max(scored)
            out.append({"target": f"{noise}: {net} >= best real-time classical + 3 dB", "net": a, "reference": best,
                        "reference_method": who, "margin_db": round(a - best - 3.0, 2), "met": a - best >= 3.0})
    a, b = p(net, "sp5"), p("median3x3", "sp5")
    if a is not None and b is not None:
        out.append({"target": f"sp5: {net} >= 3x3 median", "net": a, "reference": b, "margin_db": round(a - b, 2),
                    "met": a >= b})
    return out


def flicker_figure(curves: dict[str, dict[str, list[float]]], clip: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    noisy = curves[clip].get("noisy")
    for method, values in curves[clip].items():
        if method == "noisy":
            continue
        style = {"ls": "--", "color": "0.4"} if method == "4:2:0 ceiling" else {"marker": "o", "ms": 3}
        ax.plot(range(len(values)), values, label=method, **style)
    ax.set_xlabel("frame")
    ax.set_ylabel("flicker: mean |temporal-difference error| (8-bit)", fontsize=8)
    extra = f" (noisy input: {np.nanmean(noisy):.1f})" if noisy else ""
    ax.set_title(f"temporal error against the clean clip, {clip}{extra}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def crops_figure(clip: ValClip, outputs: dict[str, list[np.ndarray]], path: Path, frames: tuple[int, ...] = (5, 10, 15),
                 size: int = 64, zoom: int = 3) -> list[dict[str, Any]]:
    """Rows: frames; columns: clean, then each method; each tile the size x size window around the
    strongest motion of that frame (largest clean temporal difference), enlarged `zoom` times."""
    rows, boxes = [], []
    names = ["clean", *outputs]
    for t in frames:
        t = min(t, len(clip.clean) - 1)
        diff = np.abs(clip.clean[t].astype(np.float32) - clip.clean[t - 1].astype(np.float32)).mean(2)
        diff = cv2.blur(diff, (size // 2, size // 2))
        y, x = np.unravel_index(int(np.argmax(diff)), diff.shape)
        h, w = diff.shape
        y0, x0 = int(np.clip(y - size // 2, 0, h - size)), int(np.clip(x - size // 2, 0, w - size))
        boxes.append({"frame": t, "x": x0, "y": y0, "size": size})
        tiles = [clip.clean[t]] + [outputs[m][t] for m in outputs]
        row = [cv2.resize(img[y0:y0 + size, x0:x0 + size], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
               for img in tiles]
        rows.append(np.hstack([np.pad(r, ((2, 2), (2, 2), (0, 0)), constant_values=255) for r in row]))
    label_h = 22
    header = np.full((label_h, rows[0].shape[1], 3), 255, np.uint8)
    tile_w = size * zoom + 4
    for i, n in enumerate(names):
        cv2.putText(header, n, (i * tile_w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack([header, *rows]))
    return boxes


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Targets of the `{report['net']}` network (validation clips, blind)", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}", ""]
    for noise in report["noises"]:
        lines += [f"## {noise}", "", "| method | PSNR dB | SSIM | flicker |", "|---|---:|---:|---:|"]
        for method, res in report["table"].items():
            if noise in res:
                r = res[noise]
                lines.append(f"| {method} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['flicker']:.2f} |")
        lines.append("")
    lines += ["## Speed of the classical candidates at 640x360 (Denoiser calls/s, this machine)", "",
              f"| method | fps | real time (>= {REALTIME_FPS:g}) |", "|---|---:|---|"]
    for m, fps in report["speeds"].items():
        lines.append(f"| {m} | {fps:.1f} | {'yes' if fps >= REALTIME_FPS else 'no'} |")
    lines += ["", "## Targets", "", "| target | net dB | reference dB | margin dB | met |", "|---|---:|---:|---:|---|"]
    for t in report["targets"]:
        ref = f"{t['reference']:.2f}" + (f" ({t['reference_method']})" if "reference_method" in t else "")
        lines.append(f"| {t['target']} | {t['net']:.2f} | {ref} | {t['margin_db']:+.2f} | {'yes' if t['met'] else 'NO'} |")
    if "bm3d" in report["table"]:
        lines += ["", "bm3d and median3x3-rgb work on the RGB frames and never pay the 4:2:0 round trip that "
                  "every video path (this network, FFmpeg's filters on yuv420p) pays; docs/fast/bm3d_420.py "
                  "charges BM3D for it on a frame subset."]
    lines += ["", "Figures: flicker.png (per-frame temporal error), crops.png (moving edges, 3x).", ""]
    return "\n".join(lines)


def _bm3d_figures(path: str) -> dict[str, Any]:
    """{noise: {"psnr", "ssim", "flicker"}} from validate_models' JSON (`streamdn train --validate
    bm3d --json`, which nests them under "bm3d") or from a flat file.

    Raises:
        ConfigError: the file is missing or not JSON.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"bm3d_json='{path}': cannot read BM3D figures from it ({err}).") from err
    return doc.get("bm3d", doc)


def _write(out: Path, report: dict[str, Any]) -> str:
    """Writes targets.json and targets.md into `out`; returns the markdown."""
    text = markdown(report)
    write_json(out / "targets.json", report)
    (out / "targets.md").write_text(text)
    return text


def rescore(out: str | Path, bm3d_json: str | None = None) -> dict[str, Any]:
    """Measures nothing: re-reads OUT/targets.json, adds the BM3D figures of `bm3d_json` (if
    given), recomputes the targets and rewrites targets.json and targets.md. Returns the report.

    Raises:
        ConfigError: OUT/targets.json or bm3d_json cannot be read.
    """
    out = Path(out)
    try:
        report = json.loads((out / "targets.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"out='{out}': no readable targets.json to rescore ({err}); measure first.") from err
    if bm3d_json:
        bm3d = _bm3d_figures(bm3d_json)
        report["table"]["bm3d"] = {k: v for k, v in bm3d.items() if k in report["noises"]}
    report["targets"] = targets(report["table"], report["speeds"], report["net"])
    _write(out, report)
    return report


def measure_targets(cfg: TargetsConfig, command: str = "", quiet: bool = False) -> dict[str, Any]:
    """Measures everything (speeds, every method on every noise's validation clips) and writes
    targets.json, targets.md, flicker.png and crops.png into cfg.out. Takes minutes.

    Args:
        cfg: what to measure.
        command: how it was run, recorded in the report ("" for none).
        quiet: no progress lines on stderr.

    Returns:
        The report (the targets.json data): net, noises, table {method: {noise: {"psnr" dB,
        "ssim", "flicker" 8-bit units}}}, speeds {method: fps at 640x360}, targets, crop_boxes,
        command, machine.

    Raises:
        ConfigError: an unknown noise name, noises without the figures' noise (awgn20), or
            bm3d_json cannot be read.
    """
    from streamdn.data.noise import parse_noise
    from streamdn.tools.bench import machine

    for n in cfg.noises:
        try:
            parse_noise(n)
        except ValueError as err:
            raise ConfigError(f"noises: {err}") from err
    if CROP_CLIP.rpartition("-")[2] not in cfg.noises:
        raise ConfigError(f"noises={list(cfg.noises)}: include {CROP_CLIP.rpartition('-')[2]}, the noise of the "
                          "flicker and crops figures.")
    bm3d = _bm3d_figures(cfg.bm3d_json) if cfg.bm3d_json else None
    methods = ["4:2:0 ceiling", "noisy", cfg.net, *REALTIME_CANDIDATES, "median3x3", "median3x3-rgb"] + \
        (["bm3d"] if cfg.bm3d else [])
    if not quiet:
        print(f"speed of the classical candidates at {SPEED_SIZE[0]}x{SPEED_SIZE[1]} ...", file=sys.stderr)
    speeds = {m: round(realtime_speed(m), 1) for m in REALTIME_CANDIDATES}
    res = measure(methods, cfg.noises, bm3d, quiet=quiet)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    flicker_figure(res["curves"], FLICKER_CLIP, out / "flicker.png")
    crop_methods = {m: res["crop_outputs"][m] for m in ("noisy", cfg.net, "tfilter", "classical:bilateral")
                    if m in res["crop_outputs"]}
    clip = next(c for c in res["clips"] if c.name == CROP_CLIP)
    boxes = crops_figure(clip, crop_methods, out / "crops.png")
    device, threads, facts = machine()
    report = {"net": cfg.net, "noises": list(cfg.noises), "table": res["table"], "speeds": speeds,
              "targets": targets(res["table"], speeds, cfg.net), "crop_boxes": boxes, "command": command,
              "machine": f"{device}, torch {facts.get('torch')}, {facts.get('cpu_capability')}"}
    _write(out, report)
    return report
