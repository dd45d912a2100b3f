"""The targets report: margins from a table, what counts as real time, the figures, and rescoring
(no measuring) through `streamdn targets --rescore`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdn.cli.targets import add_parser, run
from streamdn.data.clips import ValClip
from streamdn.errors import ConfigError
from streamdn.tools import targets as tg


def _row(psnr: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": 0.9, "flicker": 2.0}


TABLE = {
    "fast": {"awgn20": _row(32.0), "awgn30": _row(30.0), "pg_lowlight": _row(31.0), "sp5": _row(34.0)},
    "bm3d": {"awgn20": _row(32.4), "awgn30": _row(31.0), "pg_lowlight": _row(30.5)},
    "classical:bilateral": {"awgn20": _row(29.5), "awgn30": _row(27.0), "pg_lowlight": _row(28.5)},
    "classical:mean": {"awgn20": _row(31.0)},                        # better, but 27 fps: not real time
    "ffmpeg:atadenoise": {"awgn20": _row(31.5)},                     # better, but not real time
    "median3x3": {"sp5": _row(34.5)},
}
SPEEDS = {"classical:bilateral": 40.0, "classical:mean": 27.0, "ffmpeg:atadenoise": 20.0}


def test_margins_and_verdicts() -> None:
    got = {t["target"]: t for t in tg.targets(TABLE, SPEEDS, "fast")}
    assert got["awgn20: fast within 0.5 dB of BM3D (true sigma)"]["met"]           # -0.4 >= -0.5
    assert not got["awgn30: fast within 0.5 dB of BM3D (true sigma)"]["met"]       # -1.0
    assert got["pg_lowlight: fast above BM3D (true noise)"]["margin_db"] == 0.5
    rt = got["awgn20: fast >= best real-time classical + 3 dB"]
    assert rt["reference_method"] == "classical:bilateral" and rt["margin_db"] == -0.5 and not rt["met"]
    assert got["sp5: fast >= 3x3 median"]["margin_db"] == -0.5
    assert "camera_lowlight: fast >= best real-time classical + 3 dB" not in got     # no figures, no target


def test_real_time_is_30_fps_as_in_the_eval_report() -> None:
    """One threshold: a filter at 27 fps is not real time here (nor on the eval plot)."""
    from streamdn.metrics import REALTIME_FPS
    from streamdn.tools import report

    assert REALTIME_FPS == 30.0 and tg.REALTIME_FPS == report.REALTIME_FPS == REALTIME_FPS
    at_30 = {t["target"]: t for t in tg.targets(TABLE, {**SPEEDS, "classical:mean": 30.0}, "fast")}
    assert at_30["awgn20: fast >= best real-time classical + 3 dB"]["reference_method"] == "classical:mean"
    md = tg.markdown({"net": "fast", "noises": [], "table": {}, "speeds": SPEEDS, "targets": [],
                      "command": "x", "machine": "y"})
    assert "| method | fps | real time (>= 30) |" in md
    assert "| classical:mean | 27.0 | no |" in md and "| classical:bilateral | 40.0 | yes |" in md


def test_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (4, 80, 96, 3)).astype(np.uint8)
    clip = ValClip("natural1-awgn20", clean, clean, "awgn20")
    outs = {"noisy": list(clean), "fast": list(clean)}
    boxes = tg.crops_figure(clip, outs, tmp_path / "crops.png", frames=(1, 3), size=32, zoom=2)
    assert [b["frame"] for b in boxes] == [1, 3]
    assert all(0 <= b["x"] <= 96 - 32 and 0 <= b["y"] <= 80 - 32 for b in boxes)
    grid = cv2.imread(str(tmp_path / "crops.png"))
    tile = 32 * 2 + 4
    assert grid.shape == (22 + 2 * tile, 3 * tile, 3)          # header + 2 frames; clean + 2 methods
    np.testing.assert_array_equal(grid[22 + 2:22 + 4, 2:4], clean[1][boxes[0]["y"]:boxes[0]["y"] + 1,
                                                                      boxes[0]["x"]:boxes[0]["x"] + 1].repeat(2, 0).repeat(2, 1))
    curves = {"natural1-awgn20": {"noisy": [float("nan"), 20.0], "fast": [float("nan"), 2.0]}}
    tg.flicker_figure(curves, "natural1-awgn20", tmp_path / "flicker.png")
    assert cv2.imread(str(tmp_path / "flicker.png")).shape == (int(3.6 * 110), 7 * 110, 3)


def test_rescore_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = {"net": "fast", "noises": ["awgn20"], "table": {"fast": {"awgn20": _row(32.0)}}, "speeds": {},
              "targets": [], "command": "x", "machine": "y"}
    (tmp_path / "targets.json").write_text(json.dumps(report))
    bm3d = tmp_path / "bm3d.json"
    bm3d.write_text(json.dumps({"bm3d": {"awgn20": _row(32.2), "mean": _row(32.2)}}))   # as --validate writes
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    assert run(parser.parse_args(["targets", "--out", str(tmp_path), "--rescore", "--bm3d-json", str(bm3d)])) == 0
    again = json.loads((tmp_path / "targets.json").read_text())
    assert again["table"]["bm3d"] == {"awgn20": _row(32.2)}          # the "mean" entry is not a noise
    assert [(t["target"], t["margin_db"], t["met"]) for t in again["targets"]] == [
        ("awgn20: fast within 0.5 dB of BM3D (true sigma)", 0.3, True)]
    md = (tmp_path / "targets.md").read_text()
    assert "| bm3d | 32.20 | 0.9000 | 2.00 |" in md and md in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm3d.json", "targets.json", "targets.md"]
    with pytest.raises(ConfigError, match="targets.json"):
        tg.rescore(tmp_path / "nothing-here")


def test_measuring_checks_its_noises_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="noises"):
        tg.measure_targets(tg.TargetsConfig(out=str(tmp_path), noises=("awgn",)))
    with pytest.raises(ConfigError, match="include awgn20"):
        tg.measure_targets(tg.TargetsConfig(out=str(tmp_path), noises=("sp5",)))
    assert list(tmp_path.iterdir()) == []
