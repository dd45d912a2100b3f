"""`streamdn eval`: output files and schema, determinism, options and their errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streamdn import ConfigError, ModelNotFoundError
from streamdn.cli.evaluate import add_parser, run
from streamdn.tools.evaluate import EvalConfig, evaluate, load_eval_config, write_results

TINY = dict(synthetic=1, size=(64, 48), frames=4, noise=("awgn20",), methods=("classical:gaussian", "tfilter"))
ROW_KEYS = {"clip", "noise", "method", "frames", "psnr", "ssim", "flicker", "fps"}


def _quality(results: dict) -> list[tuple]:
    return [(r["clip"], r["noise"], r["method"], r["psnr"], r["ssim"], r["flicker"]) for r in results["rows"]]


def test_schema_and_determinism() -> None:
    cfg = EvalConfig(**TINY)  # type: ignore[arg-type]
    first, crops = evaluate(cfg, quiet=True)
    assert set(first) >= {"config", "environment", "clips", "rows", "summary"}
    assert first["clips"][0]["width"] == 64 and first["clips"][0]["frames"] == 4
    assert len(first["rows"]) == 3   # noisy + 2 methods
    for row in first["rows"]:
        assert set(row) == ROW_KEYS
    by_method = {r["method"]: r for r in first["rows"]}
    assert by_method["classical:gaussian"]["psnr"] > by_method["noisy"]["psnr"] + 1
    assert by_method["classical:gaussian"]["fps"] > 0
    assert 0 < by_method["noisy"]["ssim"] < by_method["classical:gaussian"]["ssim"] <= 1
    assert set(crops.images["awgn20"]) == {"clean", "noisy", "classical:gaussian", "tfilter"}
    second, _ = evaluate(cfg, quiet=True)
    assert _quality(first) == _quality(second)
    assert json.loads(json.dumps(first)) == first   # plain data only: results.json holds all of it


def test_writes_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import cv2

    results, crops = evaluate(EvalConfig(**{**TINY, "methods": ("classical:median",)}), quiet=True)  # type: ignore[arg-type]
    written = write_results(results, crops, str(tmp_path / "out"), report=True)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for p in written) == sorted(
        ["results.json", "results.md", "report.html", "quality_speed.png", "crops_awgn20.png"])
    assert json.loads((out / "results.json").read_text()) == results
    summary = {r["method"]: r for r in results["summary"]}
    md = (out / "results.md").read_text()
    for method in ("noisy", "classical:median"):
        r = summary[method]
        assert f"| {method} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['flicker']:.2f} |" in md
    assert "crops_awgn20.png" in (out / "report.html").read_text()
    grid = cv2.imread(str(out / "crops_awgn20.png"))
    x, y, w, h = crops.box
    assert (w, h) == (64, 48)                            # the whole 64x48 clip: smaller than the crop size
    assert grid.shape == (22 + 2 * h + 4, 4 * (2 * w + 4), 3)    # clean, noisy, median (+ a blank), 2x


def test_oracle_strength_and_clips(video: Callable[..., Path]) -> None:
    path = video("clean.mp4", sigma=0.0, frames=5)
    cfg = EvalConfig(clips=(str(path),), frames=5, noise=("awgn10",), methods=("classical:bilateral",),
                     strength="oracle")
    results, _ = evaluate(cfg, quiet=True)
    assert results["clips"][0]["name"] == "clean.mp4"
    rows = {r["method"]: r for r in results["rows"]}
    assert rows["classical:bilateral"]["psnr"] > rows["noisy"]["psnr"]


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synthetic"):
        load_eval_config(None)
    with pytest.raises(ConfigError, match="noise"):
        load_eval_config(None, synthetic=1, noise=("awgn",))
    with pytest.raises(ConfigError, match="frames=1"):
        load_eval_config(None, synthetic=1, frames=1)
    with pytest.raises(ConfigError, match="methodz"):
        load_eval_config(None, synthetic=1, methodz=("tfilter",))
    with pytest.raises(ConfigError, match="strength"):
        load_eval_config(None, synthetic=1, strength="loud")
    bad = tmp_path / "bad.toml"
    bad.write_text("[eval]\nmethod = ['tfilter']\n")
    with pytest.raises(ConfigError, match="valid keys"):
        load_eval_config(str(bad))
    with pytest.raises(ModelNotFoundError, match="known"):
        evaluate(EvalConfig(**{**TINY, "methods": ("classical:nope",)}), quiet=True)  # type: ignore[arg-type]


def test_config_file_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamdn.models import model_info

    cfg = load_eval_config(str(Path(__file__).parent.parent / "configs" / "eval.toml"), synthetic=1, frames=3)
    assert cfg.frames == 3 and cfg.synthetic == 1                      # values given override the file
    assert cfg.size == (640, 360) and cfg.noise == ("awgn20", "pg_lowlight") and len(cfg.methods) == 13
    for method in cfg.methods:
        model_info(method)                                              # every method it lists is known
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--synthetic", "1", "--size", "64x48", "--frames", "3", "--noise", "sp5",
                              "--methods", "classical:median", "--out", str(tmp_path / "o"), "--no-report"])
    assert run(args) == 0
    assert "## sp5" in capsys.readouterr().out
    assert (tmp_path / "o" / "results.md").is_file() and not (tmp_path / "o" / "report.html").exists()
