"""`streamdn train`: its flags and how it runs (the work itself is streamdn.tools.train).

    streamdn train --config configs/train-fast.toml          # resumes from runs/<name>/ckpt.pt if present
    streamdn train --validate fast tfilter --json val.json   # PSNR/SSIM/flicker on the fixed validation clips
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator
from typing import Any

from streamdn.atomic import write_json
from streamdn.cli.args import EXIT_INTERRUPTED, EXIT_OK, parse_noises
from streamdn.errors import ConfigError
from streamdn.tools.train import export, load_train_config, train, validate_models, validation_text


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn train` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "train", help="train a network (resumes an interrupted run)",
        description="Train a video network on generated clips, or a still-image network (--arch photo) on "
                    "generated pictures. Re-running the same command resumes from the "
                    "run folder's checkpoint. With --validate, score models on the fixed validation clips instead.",
        epilog="examples: streamdn train --config configs/train-fast.toml\n"
               "          streamdn train --config configs/train-photo.toml --images ~/.cache/streamdn/images\n"
               "          streamdn train --validate fast tfilter --noises awgn20,pg_lowlight",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE.toml", help="training settings, e.g. configs/train-fast.toml")
    p.add_argument("--arch", metavar="NAME",
                   help="network to train, replacing [train] arch: a video network (fast, fast_mc, quality, "
                        "tdn_tiny) or a still-image one (photo: FFDNet-style, photo_dncnn: DnCNN-style, photo_tiny)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one [train] value, e.g. --set steps=1000 (repeatable)")
    p.add_argument("--validate", nargs="+", metavar="MODEL",
                   help="print PSNR/SSIM/flicker of these models (names, .safetensors paths, 'noisy', or 'bm3d': "
                        "the per-frame BM3D reference given the true noise, needs the bm3d package; 'bm3d420': "
                        "the same through 4:2:0 frames in and out, as the video models) and exit")
    p.add_argument("--noises", metavar="N1,N2",
                   help="with --validate: noises of the clips (streamdn.data.noise.parse_noise names; default "
                        "awgn20,pg_lowlight, or with --pictures awgn20,awgn30,pg_lowlight,camera_lowlight,bayer_lowlight)")
    p.add_argument("--pictures", action="store_true",
                   help="with --validate: score single pictures through the still path (held-out images, plus the "
                        "held-out photographs of --images) instead of video clips")
    p.add_argument("--json", metavar="FILE.json", help="with --validate: also write the figures here")
    p.add_argument("--device", metavar="DEVICE",
                   help="with --validate: where the networks run: cpu (default), cuda or cuda:N (training "
                        "takes its device from [train] device, e.g. --set device=cuda)")
    p.add_argument("--export", metavar="FILE.safetensors",
                   help="copy the run's best weights here (with their validation figures) and exit")
    p.add_argument("--minutes", type=float, metavar="M",
                   help="stop after M minutes of training with a checkpoint (run again to resume)")
    p.add_argument("--images", metavar="DIR", action="append", default=[],
                   help="a folder of photographs to train on, besides the built-in images (repeatable; "
                        "scripts/get-training-images.sh builds one in ~/.cache/streamdn/images); replaces [train] "
                        "images. With --validate --pictures: its held-out photographs join the validation pictures")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def parse_set(items: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE items -> {key: value}; a value is read as TOML (1000, 2e-3, true, 'x'), else
    kept as the text given.

    Raises:
        ConfigError: an item without '='.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set '{item}': use KEY=VALUE, e.g. --set steps=1000.")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


def _validate(args: argparse.Namespace) -> int:
    from streamdn.denoiser import resolve_device

    device = resolve_device(args.device or "cpu")   # DeviceError (a usage error) where CUDA is missing
    if args.pictures:
        from streamdn.data.pictures import VAL_PICTURE_NOISES
        from streamdn.tools.picture_train import validate_picture_models

        noises = list(parse_noises(args.noises)) if args.noises else list(VAL_PICTURE_NOISES)
        table = validate_picture_models(args.validate, noises, args.images, device)
        print(validation_text(table, "validation pictures (still path)"))
    else:
        table = validate_models(args.validate, list(parse_noises(args.noises or "awgn20,pg_lowlight")), device)
        print(validation_text(table))
    if args.json:
        write_json(args.json, table)
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_sighup() -> Iterator[None]:
    """A closed terminal (SIGHUP) ends training like Ctrl-C and SIGTERM: a checkpoint, then exit
    code 130 (the same command resumes). Once: a second SIGHUP must not break the clean-up. Only
    this process acts on it (a worker forked from it ignores it); off the main thread, or where
    there is no SIGHUP, nothing changes."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            return
        signal.signal(hup, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(hup, stop)
    try:
        yield
    finally:
        signal.signal(hup, previous)


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn train` from parsed arguments; returns the exit code."""
    if args.validate:
        return _validate(args)
    if args.device:
        raise ConfigError(f"--device {args.device} goes with --validate; training runs on [train] device "
                          f"(e.g. --set device={args.device}).")
    overrides = parse_set(args.set)
    if args.images:
        overrides["images"] = args.images
    if args.arch:
        overrides["arch"] = args.arch
    cfg = load_train_config(args.config, overrides)
    if args.export:
        print(f"exported {export(cfg, args.export)}", file=sys.stderr)
        return EXIT_OK
    if args.minutes is not None and not args.minutes > 0:
        raise ConfigError(f"--minutes {args.minutes}: give a positive number of minutes.")
    try:
        with _stop_on_sighup():
            best = train(cfg, quiet=args.quiet, minutes=args.minutes)
    except KeyboardInterrupt:
        print("streamdn: interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"best weights: {best}" if best.is_file() else
          f"no best weights yet: the first validation comes at step {cfg.epoch_steps}", file=sys.stderr)
    return EXIT_OK
