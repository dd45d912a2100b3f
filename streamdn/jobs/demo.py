"""`streamdn demo`: a synthetic noisy clip, denoised, written side by side (noisy | clean) with
PSNR before and after and the speed. Needs no camera and no input file."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from streamdn.config import RunConfig
from streamdn.denoiser import Denoiser
from streamdn.frames import Frame, FrameFormat, frame_from_bgr
from streamdn.jobs.file import progress_bar
from streamdn.metrics import psnr
from streamdn.pipeline import Pipeline, RunStats
from streamdn.io.sinks import FileSink, check_output_path
from streamdn.io.sources import SyntheticSource


@dataclass
class DemoResult:
    """Attributes: output path; mean RGB PSNR (dB) of the noisy and the denoised frames against
    the clean scene; the pipeline's stats."""

    output: str
    psnr_noisy: float
    psnr_denoised: float
    stats: RunStats


def run_demo(cfg: RunConfig, output: str = "streamdn-demo.mp4", *, overwrite: bool = True,
             quiet: bool = False, handle_signals: bool = False) -> DemoResult:
    """Runs the demo on cfg.source (synthetic) with cfg.model, writing `output`.

    `handle_signals` is passed to Pipeline.run: command-line programs set it so that Ctrl-C
    stops between two frames; by default the process's SIGINT handler is left alone.
    """
    check_output_path(output, overwrite=overwrite)
    src = SyntheticSource(replace(cfg.source, kind="synthetic"), max_frames=cfg.pipeline.frames)
    fmt = src.format
    side_fmt = FrameFormat(fmt.width * 2, fmt.height, 8, fmt.fps, fmt.time_base)
    before: list[float] = []
    after: list[float] = []
    with Denoiser.from_config(cfg.model) as dn, \
            FileSink(output, side_fmt, cfg.encode, meta=src.meta, overwrite=overwrite) as sink:
        bar = progress_bar(src.total_frames, "demo", quiet)

        def on_frame(noisy: Frame, clean: Frame) -> None:
            ref = noisy.extra["clean"]
            noisy_bgr, clean_bgr = noisy.to_bgr(), clean.to_bgr()
            before.append(psnr(ref, noisy_bgr))
            after.append(psnr(ref, clean_bgr))
            side = frame_from_bgr(np.hstack([noisy_bgr, clean_bgr]), noisy.index, noisy.pts, noisy.time_base)
            sink.write(side)
            bar.update(1)

        pipe = Pipeline(src, denoiser=dn, queue_size=cfg.pipeline.queue_size, on_frame=on_frame)
        stats = pipe.run(handle_signals=handle_signals)
        bar.close()
    return DemoResult(os.path.abspath(output), float(np.mean(before)), float(np.mean(after)), stats)
