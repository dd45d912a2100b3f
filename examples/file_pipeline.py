"""The whole threaded loop from Python: a file (or the synthetic scene) in, a file out.

    python examples/file_pipeline.py noisy.mp4 clean.mp4
    python examples/file_pipeline.py --synthetic clean.mp4
"""

from __future__ import annotations

import sys

from streamdn import Denoiser, FileSink, Pipeline, SyntheticSource, open_source
from streamdn.config import SourceConfig


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src = SyntheticSource(SourceConfig(frames=30)) if sys.argv[1] == "--synthetic" else open_source(sys.argv[1])
    with src, FileSink(sys.argv[2], src.format, meta=src.meta, overwrite=True) as sink, Denoiser() as dn:
        stats = Pipeline(src, [sink], denoiser=dn).run()
    print(f"{stats.frames} frames at {stats.fps:.1f} fps; latency p95 {stats.latency_ms['p95']:.0f} ms")


if __name__ == "__main__":
    main()
