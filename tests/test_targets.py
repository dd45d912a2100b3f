"""The targets report: margins from a table, the figures, and --rescore (no measuring)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streamdn.tools import targets as tg
from streamdn.data.clips import ValClip


def _row(psnr: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": 0.9, "flicker": 2.0}


TABLE = {
    "fast": {"awgn20": _row(32.0), "awgn30": _row(30.0), "pg_lowlight": _row(31.0), "sp5": _row(34.0)},
    "bm3d": {"awgn20": _row(32.4), "awgn30": _row(31.0), "pg_lowlight": _row(30.5)},
    "classical:bilateral": {"awgn20": _row(29.5), "awgn30": _row(27.0), "pg_lowlight": _row(28.5)},
    "ffmpeg:atadenoise": {"awgn20": _row(31.5)},                     # better, but not real time
    "median3x3": {"sp5": _row(34.5)},
}
SPEEDS = {"classical:bilateral": 40.0, "ffmpeg:atadenoise": 20.0}


def test_margins_and_verdicts() -> None:
    got = {t["target"]: t for t in tg.targets(TABLE, SPEEDS, "fast")}
    assert got["awgn20: fast within 0.5 dB of BM3D (true sigma)"]["met"]           # -0.4 >= -0.5
    assert not got["awgn30: fast within 0.5 dB of BM3D (true sigma)"]["met"]       # -1.0
    assert got["pg_lowlight: fast above BM3D (true noise)"]["margin_db"] == 0.5
    rt = got["awgn20: fast >= best real-time classical + 3 dB"]
    assert rt["reference_method"] == "classical:bilateral" and rt["margin_db"] == -0.5 and not rt["met"]
    assert got["sp5: fast >= 3x3 median"]["margin_db"] == -0.5


def test_figures_and_rescore(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (4, 80, 96, 3)).astype(np.uint8)
    clip = ValClip("natural1-awgn20", clean, clean, "awgn20")
    outs = {"noisy": list(clean), "fast": list(clean)}
    boxes = tg.crops_figure(clip, outs, tmp_path / "crops.png", frames=(1, 3), size=32, zoom=2)
    assert len(boxes) == 2 and (tmp_path / "crops.png").stat().st_size > 0
    curves = {"natural1-awgn20": {"noisy": [float("nan"), 20.0], "fast": [float("nan"), 2.0]}}
    tg.flicker_figure(curves, "natural1-awgn20", tmp_path / "flicker.png")
    assert (tmp_path / "flicker.png").stat().st_size > 0
    scores = tg.score_clip(clip, list(clean))
    assert np.isnan(scores["flicker"][0]) and scores["flicker"][1] == 0.0 and scores["psnr"][0] > 90
    report = {"net": "fast", "noises": ["awgn20"], "table": {"fast": {"awgn20": _row(32.0)}}, "speeds": {},
              "targets": [], "command": "x", "machine": "y"}
    (tmp_path / "targets.json").write_text(json.dumps(report))
    bm3d = tmp_path / "bm3d.json"
    bm3d.write_text(json.dumps({"bm3d": {"awgn20": _row(32.2), "mean": _row(32.2)}}))   # as --validate writes
    assert tg.main(["--out", str(tmp_path), "--rescore", "--bm3d-json", str(bm3d)]) == 0
    again = json.loads((tmp_path / "targets.json").read_text())
    assert again["table"]["bm3d"] == {"awgn20": _row(32.2)} and again["targets"][0]["met"]
    assert "| bm3d | 32.20 |" in (tmp_path / "targets.md").read_text()
