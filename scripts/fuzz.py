#!/usr/bin/env python3
"""The long seeded fuzz run for release checks: damaged containers through the command line and
random arrays through the API (tests/test_fuzz.py::test_fuzz_long).

    python scripts/fuzz.py --cases 400 --seed 7
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=300, help="damaged inputs (and as many random arrays)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "STREAMDN_FUZZ_CASES": str(args.cases), "STREAMDN_FUZZ_SEED": str(args.seed)}
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "fuzz_long", "tests/test_fuzz.py"],
                           cwd=root, env=env)


if __name__ == "__main__":
    sys.exit(main())
