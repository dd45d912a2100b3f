#!/usr/bin/env python3
"""Soak test: runs the file pipeline (synthetic source -> Denoiser -> FileSink encoding) over a
long stream and records the process's resident memory (RSS) over time, to catch leaks.

    python scripts/soak.py                          # 20000 frames at 160x120 into /dev/null
    python scripts/soak.py --frames 50000 --output soak.mkv --model classical:gaussian

Prints RSS every --every frames and, at the end, the growth after the warm-up (the first
--warmup frames: JIT compilation, allocator pools, encoder buffers). Exit code 0 when the growth
is under --max-growth-mb, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil when installed, else /proc/self/status)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def soak(frames: int, width: int, height: int, output: str, model: str, every: int, warmup: int,
         quiet: bool = False) -> dict[str, object]:
    """Runs the pipeline over `frames` synthetic frames; returns the RSS samples and the growth."""
    from streamdn.config import EncodeConfig, SourceConfig
    from streamdn.denoiser import Denoiser
    from streamdn.io.sinks import FileSink
    from streamdn.io.sources import SyntheticSource
    from streamdn.pipeline import Pipeline

    samples: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    count = [0]

    def on_frame(noisy: object, clean: object) -> None:
        count[0] += 1
        n = count[0]
        if n % every == 0 or n == warmup:
            rss = rss_mb()
            samples.append((n, round(time.perf_counter() - start, 2), round(rss, 1)))
            if not quiet:
                print(f"frame {n:>7}  {time.perf_counter() - start:8.1f} s  RSS {rss:8.1f} MiB", flush=True)

    src = SyntheticSource(SourceConfig(width=width, height=height, frames=frames, sigma=15))
    with Denoiser(model) as dn, FileSink(output, src.format, EncodeConfig(preset="ultrafast"),
                                         overwrite=True) as sink:
        stats = Pipeline(src, [sink], denoiser=dn, on_frame=on_frame).run(handle_signals=True)
    after = [rss for n, _, rss in samples if n >= warmup]
    growth = round(after[-1] - after[0], 1) if len(after) >= 2 else 0.0
    return {"frames": stats.frames, "seconds": round(stats.seconds, 1), "fps": round(stats.fps, 1),
            "size": f"{width}x{height}", "model": stats.model, "output": output, "warmup_frames": warmup,
            "rss_start_mb": after[0] if after else None, "rss_end_mb": after[-1] if after else None,
            "rss_peak_mb": max(after) if after else None, "growth_after_warmup_mb": growth, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--size", default="160x120", metavar="WxH")
    p.add_argument("--output", default=os.devnull, help="where the encoded frames go (default /dev/null)")
    p.add_argument("--model", default="default")
    p.add_argument("--every", type=int, default=1000, help="print RSS every N frames")
    p.add_argument("--warmup", type=int, default=500, help="frames before the growth is measured")
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--json", metavar="FILE", help="also write the samples and the growth here")
    p.add_argument("--quiet", "-q", action="store_true")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    warmup = min(args.warmup, max(1, args.frames // 2))
    every = max(1, min(args.every, args.frames // 2 or 1))
    result = soak(args.frames, w, h, args.output, args.model, every, warmup, args.quiet)
    print(f"soak: {result['frames']} frames of {result['size']} in {result['seconds']} s ({result['fps']} fps), "
          f"model {result['model']}; RSS {result['rss_start_mb']} -> {result['rss_end_mb']} MiB after "
          f"{warmup} warm-up frames (growth {result['growth_after_warmup_mb']} MiB, peak {result['rss_peak_mb']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0 if result["growth_after_warmup_mb"] <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())
