"""`streamdn models`: the models --model accepts, as a table or JSON (the registry is
streamdn.models.list_models)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from streamdn.cli.args import EXIT_OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `models` to the `streamdn` subcommands."""
    p = subparsers.add_parser("models", help="list the models --model accepts",
                              description="List the models --model accepts: kind, multiply-accumulates per "
                                          "pixel, parameters and validation PSNR (dB).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    """Prints the model table (or JSON); returns the exit code."""
    from streamdn.models import DEFAULT_MODEL, list_models

    infos = list_models()
    if args.json:
        print(json.dumps([i.__dict__ for i in infos], indent=2))
        return EXIT_OK
    print(f"{'name':22} {'kind':10} {'MAC/px':>8} {'params':>8} {'val PSNR':>8}  summary")
    for i in infos:
        mark = " (default)" if i.name == DEFAULT_MODEL else ""
        macs = f"{i.macs_per_px:,.0f}" if i.macs_per_px else "-"
        params = f"{i.params:,}" if i.params else "-"
        vp = f"{i.val_psnr:.2f}" if i.val_psnr else "-"
        print(f"{i.name:22} {i.kind:10} {macs:>8} {params:>8} {vp:>8}  {i.summary}{mark}")
    print("\nval PSNR: RGB dB, blind, Gaussian sigma 20 - video networks on the validation clips, still-image "
          "networks on the validation pictures (`streamdn train --validate NAME [--pictures]`); the two sets differ.")
    return EXIT_OK
