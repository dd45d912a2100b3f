"""The `streamdn` parser, made of one module per command, and the command runner that turns a
user's mistake into one line saying what is wrong and what to do and an exit code, never a
traceback. Each command module has add_parser(subparsers) and run(args) -> exit code.
streamdn.cli.main wraps it so that even a Ctrl-C during these imports ends cleanly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# OpenCV before PyAV: PyAV's wheel bundles X11/xcb libraries of the same names as those OpenCV's
# Qt window needs, and when PyAV loads them first the preview window never opens (it waits for
# the X server forever).
import cv2  # noqa: F401

from streamdn import __version__
from streamdn.cli import batch, bench, demo, denoise, evaluate, finetune, live, models, targets, temporal, train
from streamdn.cli.args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from streamdn.errors import ConfigError, DeviceError, ModelNotFoundError, StreamdnError

# The commands, in the order `streamdn --help` lists them: everyday use first, then batch work,
# then the tools for measuring and training models.
COMMANDS = (denoise, demo, live, models, batch, evaluate, bench, train, finetune, targets, temporal)

EXAMPLES = """examples:
  streamdn demo                                   # synthetic noisy clip -> streamdn-demo.mp4
  streamdn denoise noisy.mp4 -o clean.mp4         # blind, default model, x264 crf 18
  streamdn denoise in.mov -o out.mkv --lossless   # FFV1, every bit kept
  streamdn live --record clean.mp4                # camera 0, preview window, recording
  streamdn batch footage/ -o clean/               # every video below footage/
  streamdn finetune cam.mp4 -o cam.safetensors    # learn your camera's noise (no clean frames)
  streamdn models                                 # what --model accepts

`streamdn COMMAND --help` lists a command's flags.
"""


def build_parser() -> argparse.ArgumentParser:
    """The `streamdn` parser: one subcommand per module in COMMANDS, each with its handler
    (`args.handler`, the module's run)."""
    parser = argparse.ArgumentParser(
        prog="streamdn", description="Real-time video denoiser.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"streamdn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(handler=module.run)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Runs `streamdn ARGV...` and returns the exit code: 0 done, 1 failed, 2 bad usage (a
    ConfigError, an unknown model, a device that is not there), 130 stopped by Ctrl-C, SIGTERM
    or SIGHUP."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except (ConfigError, ModelNotFoundError, DeviceError) as err:
        print(f"streamdn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StreamdnError as err:
        print(f"streamdn: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("streamdn: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
