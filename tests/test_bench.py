"""`streamdn bench`: the JSON document's schema on a tiny generated clip and on a file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streamdn import ConfigError
from streamdn.cli.bench import add_parser, run
from streamdn.models.int8 import available as int8_available
from streamdn.tools.bench import BenchConfig, bench, text
from streamdn.tools.roofline import INT8_KERNELS, KERNELS, cpu_has_native_bf16, cpu_peaks, roofline

REQUIRED = {"size", "fps", "baseline_fps", "ratio", "model_fps", "stages_ms", "device", "threads", "peak_rss_mb",
            "latency_ms"}


def test_schema_classical() -> None:
    r = bench(BenchConfig(synthetic=(64, 48), frames=6, model="classical:gaussian", model_seconds=0.05))
    assert REQUIRED <= set(r)
    assert r["size"] == [64, 48] and r["frames"] == 6
    assert r["fps"] > 0 and r["baseline_fps"] > 0
    assert r["ratio"] == pytest.approx(r["fps"] / r["baseline_fps"], rel=1e-2)
    assert set(r["model_fps"]) == {"native"}
    ideal = 1.0 / (1.0 / r["baseline_fps"] + 1.0 / r["model_fps"]["native"])
    assert r["ideal_fps"] == pytest.approx(ideal, rel=1e-2) and r["of_ideal"] == pytest.approx(r["fps"] / ideal, rel=1e-2)
    assert "of the ideal" in text(r)
    assert set(r["stages_ms"]) == {"decode", "pack", "forward", "unpack", "encode"}
    assert set(r["latency_ms"]) == {"p50", "p95", "p99"}
    assert r["threads"]["cores"] >= 1 and r["peak_rss_mb"] > 0
    assert r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
    assert r["roofline"] is None and r["cpu_peak_gmacs"] is None
    assert r["backend"] is None and r["precision"] is None and r["macs_per_px"] is None
    assert "network alone" not in text(r) and "backend" not in text(r)
    assert json.loads(json.dumps(r)) == r     # plain data: the --json document holds all of it


def test_roofline_of_a_network() -> None:
    r = bench(BenchConfig(synthetic=(64, 48), frames=4, model="tdn_tiny", device="cpu", model_seconds=0.05,
                          peak_seconds=0.02))
    assert r["backend"] == "torch eager (oneDNN, channels_last)"
    assert r["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert r["macs_per_px"] == pytest.approx(705, rel=0.01)
    roof = r["roofline"]
    # int8 where ONNX Runtime is installed (any recurrent network runs on it when asked)
    assert set(roof) == set(r["model_fps_by_device"]["cpu"]) == {"fp32", "bf16"} | ({"int8"} if int8_available() else set())
    # The roofline is the network's step: timed without the long average the model blends in.
    assert r["long_average"] is True and set(r["network_fps"]) == set(roof)
    assert "network alone: its step without the long average" in text(r) and "(with the long average)" in text(r)
    for precision, x in roof.items():
        assert x["fps"] == r["network_fps"][precision]
        assert x["gmacs"] == pytest.approx(r["macs_per_px"] * 64 * 48 * x["fps"] / 1e9, rel=1e-3)
        if precision == "bf16" and not cpu_has_native_bf16():
            assert x["peak_gmacs"] is None and x["fraction"] is None and r["cpu_peak_gmacs"]["bf16"] is None
            continue
        kernels = r["cpu_peak_gmacs"][precision]
        assert set(kernels) == set(INT8_KERNELS if precision == "int8" else KERNELS) and min(kernels.values()) > 0
        assert x["peak_gmacs"] == max(kernels.values()) and kernels[x["peak_kernel"]] == x["peak_gmacs"]
        assert 0 < x["fraction"] < 1.5
        assert x["fraction"] == pytest.approx(x["gmacs"] / x["peak_gmacs"], rel=1e-3)
    assert "network alone fp32" in text(r) and "2048^3 GEMM: torch.matmul" in text(r)
    if "int8" in roof:   # the int8 peak is ONNX Runtime's, and the line compares the speed with fp32 too
        assert "ONNX Runtime int8 1x1 conv" in text(r) and "x fp32" in text(r)
    alone = r["model_fps"][r["precision"]]     # the model at the precision it runs in
    assert r["ideal_fps"] == pytest.approx(1.0 / (1.0 / r["baseline_fps"] + 1.0 / alone), rel=1e-2)
    assert json.loads(json.dumps(r)) == r


def test_network_alone_drops_the_long_average() -> None:
    from streamdn.models import create_model
    from streamdn.tools.bench import _network, has_long_average

    model = create_model("tdn_tiny", device="cpu")
    try:
        assert has_long_average(model)
        assert _network(model, False) is model and has_long_average(model)
        assert _network(model, True) is model and not has_long_average(model)
    finally:
        model.close()
    classical = create_model("classical:gaussian")
    assert not has_long_average(_network(classical, True))


def test_roofline_without_peak() -> None:
    roof = roofline(1000.0, 100, 50, {"fp32": 20.0, "bf16": 40.0}, {"fp32": None, "bf16": None})
    assert roof["fp32"] == {"fps": 20.0, "gmacs": 0.1, "peak_gmacs": None, "peak_kernel": None, "fraction": None}
    assert roof["bf16"]["gmacs"] == 0.2
    fp32 = roofline(1000.0, 100, 50, {"fp32": 20.0}, {"fp32": {"matmul": 0.2, "conv1x1": 0.4}})["fp32"]
    assert fp32["peak_gmacs"] == 0.4 and fp32["peak_kernel"] == "conv1x1" and fp32["fraction"] == 0.25


def test_cpu_peaks() -> None:
    import torch

    threads = torch.get_num_threads()
    peaks = cpu_peaks(0.01, size=128, threads=1)
    assert torch.get_num_threads() == threads     # the model's thread count is left as it was
    assert set(peaks["fp32"]) == set(KERNELS) and min(peaks["fp32"].values()) > 0
    assert (peaks["bf16"] is not None) == cpu_has_native_bf16()
    if int8_available():    # ONNX Runtime's uint8 x int8 products
        assert set(peaks["int8"]) == set(INT8_KERNELS) and min(peaks["int8"].values()) > 0
    else:
        assert peaks["int8"] is None
    assert cpu_peaks(0.0) == {"fp32": None, "bf16": None, "int8": None}     # 0 s: nothing measured


def test_library_errors_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="frames=1"):
        bench(BenchConfig(frames=1))
    with pytest.raises(ConfigError, match="noise"):
        bench(BenchConfig(synthetic=(64, 48), frames=4, noise="awgn"))


def test_network_dtypes_on_a_file(video: Callable[..., Path]) -> None:
    r = bench(BenchConfig(input=str(video(frames=5)), frames=5, model="tdn_tiny", device="cpu", model_seconds=0.05,
                          peak_seconds=0))
    assert r["model_kind"] == "network"
    assert {"fp32", "bf16"} <= set(r["model_fps"]) and "cpu" in r["model_fps_by_device"]


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--synthetic", "64x48", "--frames", "4", "--model", "classical:median",
                              "--model-seconds", "0.05", "--json"])
    assert run(args) == 0
    assert REQUIRED <= set(json.loads(capsys.readouterr().out))
    args = parser.parse_args(["bench", "--synthetic", "64x48", "--frames", "2", "--model", "tdn_tiny",
                              "--device", "cpu", "--model-seconds", "0.02", "--no-peak"])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "backend         torch eager (oneDNN, channels_last)" in out and "peak not measured" in out
    with pytest.raises(ConfigError, match="--synthetic 'big': use WxH"):
        run(parser.parse_args(["bench", "--synthetic", "big"]))
    with pytest.raises(ConfigError, match="--noise"):
        run(parser.parse_args(["bench", "--synthetic", "64x48", "--noise", "awgn"]))


def test_kernel_timings_cover_the_motion_recursion() -> None:
    from streamdn.tools.kernelbench import kernel_report, kernel_text

    r = kernel_report(64, 48, with_jit=False)
    ms = r["ms_per_call"]
    assert {"pack_yuv420 (8-bit)", "motion: flow (DIS + still blocks)", "motion: Lanczos warp of the state",
            "motion: long_average"} <= set(ms)
    assert all(v >= 0.0 for v in ms.values())
    assert "motion: flow (DIS + still blocks)" in kernel_text(r)
