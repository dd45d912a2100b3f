"""`streamdn eval`: output files and schema, determinism, options and their errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streamdn import ConfigError, ModelNotFoundError
from streamdn.tools.evaluate import EvalConfig, add_parser, evaluate, load_eval_config, run, write_results

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
    json.dumps(first)   # plain data only


def test_writes_files(tmp_path: Path) -> None:
    results, crops = evaluate(EvalConfig(**{**TINY, "methods": ("classical:median",)}), quiet=True)  # type: ignore[arg-type]
    report = pytest.importorskip("matplotlib") is not None
    written = write_results(results, crops, str(tmp_path / "out"), report=report)
    names = {Path(p).name for p in written}
    assert {"results.json", "results.md"} <= names
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"][1]["method"] == "classical:median"
    assert "| classical:median |" in (tmp_path / "out" / "results.md").read_text()
    assert {"report.html", "quality_speed.png", "crops_awgn20.png"} <= names
    assert "crops_awgn20.png" in (tmp_path / "out" / "report.html").read_text()


def test_oracle_strength_and_clips(video: Callable[..., Path]) -> None:
    path = video("clean.mp4", sigma=0.0, frames=5)
    cfg = EvalConfig(clips=(str(path),), frames=5, noise=("awgn10",), methods=("classical:bilateral",),
                     strength="oracle")
    results, _ = evaluate(cfg, quiet=True)
    assert results["clips"][0]["name"] == "clean.mp4"
    rows = {r["method"]: r for r in results["rows"]}
    assert rows["classical:bilateral"]["psnr"] > rows["noisy"]["psnr"]


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--synthetic"):
        load_eval_config(None)
    with pytest.raises(ConfigError, match="--noise"):
        load_eval_config(None, synthetic=1, noise=("awgn",))
    with pytest.raises(ConfigError, match="strength"):
        load_eval_config(None, synthetic=1, strength="loud")
    bad = tmp_path / "bad.toml"
    bad.write_text("[eval]\nmethod = ['tfilter']\n")
    with pytest.raises(ConfigError, match="valid keys"):
        load_eval_config(str(bad))
    with pytest.raises(ModelNotFoundError, match="known"):
        evaluate(EvalConfig(**{**TINY, "methods": ("classical:nope",)}), quiet=True)  # type: ignore[arg-type]


def test_config_file_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_eval_config(str(Path(__file__).parent.parent / "configs" / "eval.toml"), synthetic=1, frames=3)
    assert cfg.frames == 3 and cfg.methods
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--synthetic", "1", "--size", "64x48", "--frames", "3", "--noise", "sp5",
                              "--methods", "classical:median", "--out", str(tmp_path / "o"), "--no-report"])
    assert run(args) == 0
    assert "## sp5" in capsys.readouterr().out
    assert (tmp_path / "o" / "results.md").is_file() and not (tmp_path / "o" / "report.html").exists()
