"""`streamdn temporal`: its flags and how it runs (the work itself is streamdn.tools.temporal).

    streamdn temporal --models fast,tfilter --json temporal.json
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from streamdn.atomic import write_json
from streamdn.cli.args import EXIT_OK
from streamdn.errors import ConfigError
from streamdn.tools.temporal import TemporalConfig, measure, table


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn temporal` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "temporal", help="how many frames a denoiser averages: PSNR frame by frame on static and panning shots",
        description="Adds Gaussian noise afresh to every frame of a static shot and of slow sub-pixel pans over "
                    "held-out pictures and prints each method's RGB PSNR frame by frame, beside the plain mean "
                    "of the noisy frames so far. A recursion that keeps averaging climbs as the shot goes on. "
                    "Beside each pan, 'MODEL: static by frames in view' is the static shot's curve with every "
                    "pixel held to as many frames as its part of the picture has been in view: what a causal "
                    "model converging at its static pace can reach on the pan.",
        epilog="example: streamdn temporal --models fast,tfilter --speeds 0,0.5,1,2.5 --json temporal.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="fast,tfilter", metavar="M1,M2",
                   help="models or .safetensors files (default %(default)s)")
    p.add_argument("--speeds", default="0,0.5,1,2.5", metavar="S1,S2", help="pans in px/frame (default %(default)s)")
    p.add_argument("--objects", default="2", metavar="S1,S2",
                   help="speeds of an object crossing each static scene, px/frame; its trail (uncovered background) "
                        "is scored apart, where ghosts show (default %(default)s; 'none' for no such shot)")
    p.add_argument("--frames", type=int, default=40, metavar="N", help="frames per shot (default %(default)s)")
    p.add_argument("--sigma", type=float, default=20.0, help="Gaussian noise sigma, RGB 8-bit (default %(default)s)")
    p.add_argument("--strength", default="auto", help="the denoisers' strength (default: auto, blind)")
    p.add_argument("--chroma", choices=("420", "444"), default="420",
                   help="420: the clean shots as a decoded video holds them (default); 444: the pictures' full "
                        "chroma, which caps any 4:2:0 output at its round trip (shown as a line)")
    p.add_argument("--json", metavar="FILE.json", help="also write every curve here")
    return p


def _floats(flag: str, text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise ConfigError(f"{flag} '{text}': give numbers separated by commas, e.g. 0,0.5,1.") from err
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{flag} '{text}': give one or more numbers >= 0.")
    return values


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn temporal`; prints the table (and writes --json)."""
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise ConfigError(f"--models '{args.models}': give at least one model.")
    objects = () if args.objects.strip().lower() == "none" else _floats("--objects", args.objects)
    cfg = TemporalConfig(models=models, speeds=_floats("--speeds", args.speeds), objects=objects, frames=args.frames,
                         sigma=args.sigma, strength=args.strength, chroma=args.chroma)
    curves = measure(cfg)
    print(table(curves))
    if args.json:
        write_json(args.json, {"config": asdict(cfg), "curves": [asdict(c) for c in curves]})
        print(f"wrote {args.json}", file=sys.stderr)
    return EXIT_OK
