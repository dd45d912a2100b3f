"""What the commands share: the model, encoding and config flags, how flags become a RunConfig,
and the exit codes."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from streamdn.config import RunConfig, load_config, parse_size
from streamdn.errors import ConfigError, SinkError

# Exit codes of every command (README: "Exit codes").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="model name (see `streamdn models`), classical:median, classical:gaussian, "
                                   "or a .safetensors file (default: the config's, else 'default'; 'auto' and "
                                   "'default' make `streamdn live` pick a rung of its quality ladder, a name pins "
                                   "that model; for a photograph 'default' is the still-image network 'photo' "
                                   "where installed, for a burst 'fast_mc')")
    g.add_argument("--strength", help="'auto' (estimate the noise per frame, default) or the noise sigma "
                                      "on the RGB picture in 8-bit units, e.g. 5 (light) to 40 (heavy)")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto: CUDA when present)")
    g.add_argument("--impulses", choices=("auto", "on", "off"),
                   help="salt-and-pepper (dead pixel, bit error) removal before the model: auto (default: "
                        "in frames that show it), on, off (e.g. a night sky of single-pixel stars)")
    g.add_argument("--backend", choices=("auto", "torch", "int8"),
                   help="what runs a video network's convolutions on the CPU: auto (default: int8 for fast on CPUs "
                        "without native bf16 when ONNX Runtime is installed, else torch), torch, or int8 (ONNX "
                        "Runtime; needs pip install \"streamdn[int8]\"; photographs run on torch)")


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file (see configs/); flags override it")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set pipeline.queue_size=8 (repeatable)")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def add_encode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("encoding")
    g.add_argument("--codec", help="FFmpeg video encoder (default: libx264; libvpx-vp9 for .webm)")
    g.add_argument("--crf", type=int, help="quality, lower is better (x264 default 18)")
    g.add_argument("--preset", help="encoder speed preset (x264 default veryfast)")
    g.add_argument("--lossless", action="store_true", default=None,
                   help="lossless: FFV1 in .mkv, x264 qp 0 in .mp4/.mov")
    g.add_argument("--pix-fmt", dest="pix_fmt", help="output pixel format (default: 4:2:0 at the source's bit depth)")


def config_from(args: argparse.Namespace) -> RunConfig:
    """The config file, then --set, then explicit flags (highest priority)."""
    values: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            values.setdefault(section, {})[key] = value

    for key in ("model", "strength", "device", "impulses", "backend"):
        put("model", "name" if key == "model" else key, getattr(args, key, None))
    for key in ("codec", "crf", "preset", "lossless", "pix_fmt"):
        put("encode", key, getattr(args, key, None))
    put("pipeline", "frames", getattr(args, "frames", None))
    for key in ("camera", "fps", "target_latency", "camera_timeout", "preview", "virtual_camera", "record", "stream"):
        put("live", "target_latency_ms" if key == "target_latency" else key, getattr(args, key, None))
    if getattr(args, "command", None) == "live":
        put("live", "size", getattr(args, "size", None))
    if getattr(args, "frames", None) is not None and args.frames <= 0:
        raise ConfigError(f"--frames {args.frames}: give a positive number of frames.")
    if getattr(args, "noise", None) is not None:
        put("source", "noise", args.noise)
    put("source", "sigma", getattr(args, "sigma", None))
    if getattr(args, "size", None) and getattr(args, "command", None) == "demo":
        w, h = parse_size(args.size, what="--size")
        put("source", "width", w)
        put("source", "height", h)
    try:
        return load_config(args.config, args.set, values)
    except ConfigError as err:   # a flag's bad value: name the flag, not the config key
        raise _as_flag_error(err, values) from err


_KEY_ERROR = re.compile(r"^.*?: \[(\w+)\] (\w+) = (.*?): (.*)$")
_FLAG_OF = {("model", "name"): "--model", ("model", "strength"): "--strength", ("model", "device"): "--device",
            ("model", "impulses"): "--impulses", ("model", "backend"): "--backend", ("encode", "codec"): "--codec", ("encode", "crf"): "--crf",
            ("encode", "preset"): "--preset", ("encode", "pix_fmt"): "--pix-fmt", ("pipeline", "frames"): "--frames",
            ("live", "fps"): "--fps", ("live", "target_latency_ms"): "--target-latency", ("live", "size"): "--size",
            ("live", "camera"): "--camera",
            ("live", "camera_timeout"): "--camera-timeout", ("source", "sigma"): "--sigma", ("source", "noise"): "--noise"}


def _as_flag_error(err: ConfigError, values: dict[str, dict[str, Any]]) -> ConfigError:
    """'config: [encode] crf = 99: give ...' -> '--crf 99: give ...' when a flag gave the value."""
    m = _KEY_ERROR.match(str(err))
    if m is None:
        return err
    section, key, _, what = m.groups()
    flag = _FLAG_OF.get((section, key))
    if flag is None or key not in values.get(section, {}):
        return err
    return ConfigError(f"{flag} '{values[section][key]}': {what}")


def refuse_existing(path: str | None, overwrite: bool, flag: str = "--overwrite") -> None:
    """The command line's wording of the library's refusal of an output: one that exists
    (without `overwrite`), or one that is not a regular file (a device, a FIFO, a folder),
    which nothing replaces. The null device is accepted: the frames are encoded and discarded.

    Raises:
        ConfigError: `path` exists and is not a regular file (nor the null device).
        SinkError: `path` is an existing file and `overwrite` is False.
    """
    from streamdn.io.sinks import not_regular_output

    if not path:
        return
    kind = not_regular_output(path)
    if kind is not None:
        raise ConfigError(f"output '{path}' is not a regular file: it is {kind}; give a video file name "
                          f"(or /dev/null to discard the frames). '{path}' was left untouched.")
    if not overwrite and os.path.isfile(path):
        raise SinkError(f"output '{path}' already exists; choose another name or pass {flag} to replace it.")


def check_run_options(cfg: RunConfig, outputs: list[str] | tuple[str, ...] = ()) -> None:
    """Checks what the config file and flags ask for before anything is read or written: the
    model exists, the device is there, and the encoder settings suit every output's container
    (codec, CRF range, preset, pixel format).

    Raises:
        ConfigError, ModelNotFoundError: a bad value (the message names it).
        DeviceError: CUDA asked for and absent (the command line treats it as a bad option).
    """
    from streamdn.denoiser import resolve_device
    from streamdn.io.encoding import plan_encoder
    from streamdn.io.sinks import is_devnull
    from streamdn.models import model_info

    model_info(cfg.model.name)
    if cfg.model.device.strip().lower().startswith("cuda"):   # auto and cpu need no check (nor torch)
        resolve_device(cfg.model.device)
    for path in outputs:
        if is_devnull(path):
            continue
        plan_encoder(path, cfg.encode, 8)


def parse_noises(text: str, flag: str = "--noises") -> tuple[str, ...]:
    """'awgn20,pg_lowlight' -> ("awgn20", "pg_lowlight"), each checked by streamdn.data.noise.

    Raises:
        ConfigError: no name, or a name parse_noise does not know.
    """
    from streamdn.data.noise import parse_noise

    noises = tuple(n.strip() for n in text.split(",") if n.strip())
    if not noises:
        raise ConfigError(f"{flag} '{text}': give at least one noise name, e.g. awgn20.")
    for n in noises:
        try:
            parse_noise(n)
        except ValueError as err:
            raise ConfigError(f"{flag}: {err}") from err
    return noises
