"""`streamdn bench`: the JSON document's schema on a tiny generated clip and on a file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streamdn import ConfigError
from streamdn.cli.bench import add_parser, run
from streamdn.tools.bench import BenchConfig, bench

REQUIRED = {"size", "fps", "baseline_fps", "ratio", "model_fps", "stages_ms", "device", "threads", "peak_rss_mb",
            "latency_ms"}


def test_schema_classical() -> None:
    r = bench(BenchConfig(synthetic=(64, 48), frames=6, model="classical:gaussian", model_seconds=0.05))
    assert REQUIRED <= set(r)
    assert r["size"] == [64, 48] and r["frames"] == 6
    assert r["fps"] > 0 and r["baseline_fps"] > 0
    assert r["ratio"] == pytest.approx(r["fps"] / r["baseline_fps"], rel=1e-2)
    assert set(r["model_fps"]) == {"native"}
    assert set(r["stages_ms"]) == {"decode", "pack", "forward", "unpack", "encode"}
    assert set(r["latency_ms"]) == {"p50", "p95", "p99"}
    assert r["threads"]["cores"] >= 1 and r["peak_rss_mb"] > 0
    assert r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
    assert json.loads(json.dumps(r)) == r     # plain data: the --json document holds all of it


def test_library_errors_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="frames=1"):
        bench(BenchConfig(frames=1))
    with pytest.raises(ConfigError, match="noise"):
        bench(BenchConfig(synthetic=(64, 48), frames=4, noise="awgn"))


def test_network_dtypes_on_a_file(video: Callable[..., Path]) -> None:
    r = bench(BenchConfig(input=str(video(frames=5)), frames=5, model="tdn_tiny", device="cpu", model_seconds=0.05))
    assert r["model_kind"] == "network"
    assert {"fp32", "bf16"} <= set(r["model_fps"]) and "cpu" in r["model_fps_by_device"]


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--synthetic", "64x48", "--frames", "4", "--model", "classical:median",
                              "--model-seconds", "0.05", "--json"])
    assert run(args) == 0
    assert REQUIRED <= set(json.loads(capsys.readouterr().out))
    with pytest.raises(ConfigError, match="--synthetic 'big': use WxH"):
        run(parser.parse_args(["bench", "--synthetic", "big"]))
    with pytest.raises(ConfigError, match="--noise"):
        run(parser.parse_args(["bench", "--synthetic", "64x48", "--noise", "awgn"]))
