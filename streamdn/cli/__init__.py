"""`streamdn COMMAND ...`: main() is the console entry point. It imports the commands
(streamdn.cli.app) only once it runs, so that a Ctrl-C at any moment, even while the libraries
load, ends with one line and exit code 130, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

EXIT_INTERRUPTED = 130   # as streamdn.cli.args, which is not imported this early


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `streamdn ARGV...` and returns the exit code: 0 done, 1 failed, 2 bad usage, 130
    stopped (Ctrl-C, SIGTERM, SIGHUP; see streamdn.cli.app.run)."""
    try:
        from streamdn.cli.app import run

        return run(argv)
    except KeyboardInterrupt:
        print("streamdn: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def __getattr__(name: str) -> Any:
    """build_parser, COMMANDS and EXAMPLES live in streamdn.cli.app (imported on first use)."""
    if name in ("build_parser", "COMMANDS", "EXAMPLES"):
        from streamdn.cli import app

        return getattr(app, name)
    raise AttributeError(f"module 'streamdn.cli' has no attribute '{name}'")


if __name__ == "__main__":
    sys.exit(main())
