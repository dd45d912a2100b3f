"""The evaluation's human-readable outputs: results.md (tables), and report.html with a
quality-versus-speed plot (matplotlib) and side-by-side crops of every method (PNG)."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from streamdn.errors import ConfigError
from streamdn.metrics import REALTIME_FPS


@dataclass
class Crops:
    """The pictures of the report: one frame of the first clip per noise, same region each.

    Attributes:
        box: (x, y, w, h) of the region, in pixels.
        images: noise -> label ("clean", "noisy", a method) -> (h, w, 3) uint8 BGR crop.
    """

    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def check_report_dependencies() -> None:
    """Raises ConfigError (saying how to install it) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ConfigError("the eval report needs matplotlib: pip install 'streamdn[eval]', or set "
                          "report=False for results.json and results.md only.") from err


def _by_noise(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in results["summary"]:
        out.setdefault(row["noise"], []).append(row)
    return out


def _speed_note(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    return (f"fps: Denoiser calls only (pre + model + post, one stream, after a warm-up call), on "
            f"{env.get('device', '?')} (load average {env.get('load_avg', ['?'])[0]} at the end).")


def markdown(results: dict[str, Any]) -> str:
    """results.md: the settings, then one table per noise (mean over clips)."""
    cfg = results["config"]
    clips = results["clips"]
    lines = [
        "# streamdn eval",
        "",
        f"{len(clips)} clip(s) ({', '.join(c['name'] for c in clips)}), {clips[0]['frames']} frames, "
        f"{clips[0]['width']}x{clips[0]['height']}; strength {cfg['strength']}; noise seed {cfg['seed']}.",
        f"PSNR (dB) and SSIM on RGB per frame, averaged; flicker = mean |(out_t - out_t-1) - "
        f"(clean_t - clean_t-1)| in 8-bit units (lower is better). The 4:2:0 round trip of the clean "
        f"frames alone scores {np.mean([c['ceiling_psnr'] for c in clips]):.2f} dB, about the best a 4:2:0 output "
        f"can reach.",
        _speed_note(results),
        "",
    ]
    for noise, rows in _by_noise(results).items():
        lines += [f"## {noise}", "", "| method | PSNR dB | SSIM | flicker | fps |", "|---|---:|---:|---:|---:|"]
        for r in rows:
            fps = "-" if r["method"] == "noisy" else f"{r['fps']:.1f}"
            lines.append(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['flicker']:.2f} | {fps} |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(results: dict[str, Any], path: str) -> str:
    """Writes markdown(results) to `path`; returns path."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(markdown(results))
    return path


def plot_quality_speed(results: dict[str, Any], path: str) -> str:
    """A PNG with one panel per noise: PSNR against fps (log scale) for every method, the noisy
    input as a dashed line and real time (REALTIME_FPS) as a dotted one."""
    check_report_dependencies()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib import ticker

    groups = _by_noise(results)
    methods = list(dict.fromkeys(r["method"] for rows in groups.values() for r in rows if r["method"] != "noisy"))
    cmap = plt.get_cmap("tab20")
    style = {m: (cmap(i % 20), "osD^vPX<>"[i % 9]) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups) + 2.0, 4.6), squeeze=False)
    for ax, (noise, rows) in zip(axes[0], groups.items()):
        for r in rows:
            if r["method"] == "noisy":
                ax.axhline(r["psnr"], color="grey", linestyle="--", linewidth=1, label="_noisy")
                ax.annotate("noisy input", (0.01, r["psnr"]), xycoords=("axes fraction", "data"),
                            fontsize=8, color="grey", va="bottom")
                continue
            colour, marker = style[r["method"]]
            ax.scatter([max(r["fps"], 1e-2)], [r["psnr"]], s=45, color=colour, marker=marker, label=r["method"])
        ax.axvline(REALTIME_FPS, color="black", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"frames per second (log scale; dotted: {REALTIME_FPS:g} fps)")
        ax.set_ylabel("PSNR (dB, RGB)")
        ax.set_title(noise)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False, borderaxespad=0.2)
    fig.tight_layout(rect=(0, 0, 1 - 1.9 / (5.2 * len(groups) + 2.0), 0.95))
    fig.suptitle("quality vs speed, " + _speed_note(results)[:-1].split(", on ", 1)[-1], fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def crop_grid(images: dict[str, np.ndarray], scale: int = 2, columns: int = 4) -> np.ndarray:
    """Labelled tiles (each crop enlarged `scale` times, nearest neighbour) in rows of `columns`.

    Args:
        images: label -> (h, w, 3) uint8 BGR crop, all the same size, in display order.

    Returns:
        (H, W, 3) uint8 BGR picture.
    """
    tiles = []
    for label, img in images.items():
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        bar = np.full((22, big.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label[: big.shape[1] // 8], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.vstack([bar, big]))
    th, tw = tiles[0].shape[:2]
    blank = np.full((th, tw, 3), 255, np.uint8)
    while len(tiles) % columns:
        tiles.append(blank)
    rows = [np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles[i:i + columns]])
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_report(results: dict[str, Any], crops: Crops, out_dir: str) -> list[str]:
    """Writes quality_speed.png, crops_<noise>.png and report.html into out_dir. Returns paths."""
    plot = plot_quality_speed(results, os.path.join(out_dir, "quality_speed.png"))
    crop_files: dict[str, str] = {}
    for noise, images in crops.images.items():
        path = os.path.join(out_dir, f"crops_{_slug(noise)}.png")
        cv2.imwrite(path, crop_grid(images))
        crop_files[noise] = path
    page = os.path.join(out_dir, "report.html")
    with open(page, "w", encoding="utf-8") as fh:
        fh.write(_html(results, crops, os.path.basename(plot), {k: os.path.basename(v) for k, v in crop_files.items()}))
    return [page, plot, *crop_files.values()]


def _html(results: dict[str, Any], crops: Crops, plot: str, crop_files: dict[str, str]) -> str:
    e = html.escape
    md = markdown(results).split("\n")
    intro = " ".join(e(line) for line in md[2:6] if line)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>streamdn eval</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}",
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}",
             "</style></head><body><h1>streamdn eval</h1>", f"<p>{intro}</p>",
             f"<h2>Quality vs speed</h2><img src='{e(plot)}' alt='PSNR against fps per method'>"]
    best = {n: max((r["psnr"] for r in rows if r["method"] != "noisy"), default=None)
            for n, rows in _by_noise(results).items()}
    for noise, rows in _by_noise(results).items():
        parts.append(f"<h2>{e(noise)}</h2><table><tr><th>method</th><th>PSNR dB</th><th>SSIM</th>"
                     f"<th>flicker</th><th>fps</th></tr>")
        for r in rows:
            style = " style='font-weight:bold'" if r["psnr"] == best[noise] and r["method"] != "noisy" else ""
            fps = "-" if r["method"] == "noisy" else f"{r['fps']:.1f}"
            parts.append(f"<tr{style}><td>{e(r['method'])}</td><td>{r['psnr']:.2f}</td><td>{r['ssim']:.4f}</td>"
                         f"<td>{r['flicker']:.2f}</td><td>{fps}</td></tr>")
        parts.append("</table>")
        if noise in crop_files:
            x, y, w, h = crops.box
            parts.append(f"<p>Middle frame of {e(results['clips'][0]['name'])}, region x={x} y={y} {w}x{h}, "
                         f"enlarged 2x:</p><img src='{e(crop_files[noise])}' alt='crops for {e(noise)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
