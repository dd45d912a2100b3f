"""The examples in examples/ stay runnable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("args", [
    ["webcam_loop.py", "--synthetic", "--frames", "3"],
    ["file_pipeline.py", "--synthetic", "{tmp}/out.mp4"],
    ["torch_tensors.py"],
])
def test_example_runs(tmp_path: Path, args: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, str(EXAMPLES / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
