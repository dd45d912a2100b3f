"""`streamdn targets`: its flags and how it runs (the work itself is streamdn.tools.targets).

    streamdn targets --out docs/fast --bm3d-json docs/fast/bm3d.json
    streamdn targets --out docs/fast --rescore --bm3d-json bm3d.json     # measure nothing, recompute
"""

from __future__ import annotations

import argparse
import shlex

from streamdn.cli.args import EXIT_OK, parse_noises
from streamdn.tools.targets import NOISES, TargetsConfig, markdown, measure_targets, rescore


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn targets` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "targets", help="measure the network's quality targets on the validation clips (tables, figures)",
        description="Scores the network, the classical filters and the references on the fixed validation clips, "
                    "times the classical filters at 640x360, and writes targets.json, targets.md (each target with "
                    "its margin), flicker.png and crops.png to --out. Takes minutes.",
        epilog="examples: streamdn targets --out docs/fast --bm3d-json docs/fast/bm3d.json\n"
               "          streamdn train --validate bm3d --noises awgn20,awgn30,pg_lowlight --json bm3d.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for targets.json/.md, flicker.png, crops.png")
    p.add_argument("--net", default="fast", help="the network to judge (name or .safetensors; default %(default)s)")
    p.add_argument("--noises", default=",".join(NOISES), metavar="N1,N2",
                   help="validation noises (default %(default)s)")
    p.add_argument("--bm3d-json", metavar="FILE", help="BM3D figures from `streamdn train --validate bm3d --json FILE`")
    p.add_argument("--bm3d", action="store_true", help="run BM3D here instead (slow: minutes per noise)")
    p.add_argument("--rescore", action="store_true",
                   help="measure nothing: re-read OUT/targets.json, add --bm3d-json, rewrite the targets and tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines or tables")
    return p


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces a measuring run, for the report (defaults left out)."""
    words = ["streamdn", "targets", "--out", args.out]
    if args.net != "fast":
        words += ["--net", args.net]
    if args.noises != ",".join(NOISES):
        words += ["--noises", args.noises]
    if args.bm3d_json:
        words += ["--bm3d-json", args.bm3d_json]
    if args.bm3d:
        words.append("--bm3d")
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn targets` from parsed arguments; prints targets.md. Returns the exit code."""
    if args.rescore:
        report = rescore(args.out, args.bm3d_json)
    else:
        cfg = TargetsConfig(out=args.out, net=args.net, noises=parse_noises(args.noises), bm3d_json=args.bm3d_json,
                            bm3d=args.bm3d)
        report = measure_targets(cfg, command=_command(args), quiet=args.quiet)
    if not args.quiet:
        print(markdown(report))
    return EXIT_OK
