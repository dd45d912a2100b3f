"""Typed run configuration: one frozen dataclass per stage, composed into RunConfig and loaded
from TOML (configs/*.toml) with `section.key=value` overrides on top."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdn.errors import ConfigError


# -- value checks (each config dataclass checks its values when it is built) ---------------------

def _bad(section: str, key: str, value: Any, what: str) -> ConfigError:
    return ConfigError(f"[{section}] {key} = {value!r}: {what}.")


def _number(section: str, key: str, value: Any, low: float | None = None, high: float | None = None, *,
            above: bool = False, optional: bool = False) -> None:
    """Checks a number: finite, >= low (> low when `above`), <= high; None when `optional`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(section, key, value, "give a number")
    if not math.isfinite(value):
        raise _bad(section, key, value, "give a finite number")
    too_low = low is not None and (value <= low if above else value < low)
    if too_low or (high is not None and value > high):
        if low is not None and high is not None:
            what = (f"give a number above {low:g} and up to {high:g}" if above
                    else f"give a number from {low:g} to {high:g}")
        elif low is not None:
            what = f"give a number {'>' if above else '>='} {low:g}"
        else:
            what = f"give a number <= {high:g}"
        raise _bad(section, key, value, what)


def _choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _bad(section, key, value, f"use one of {', '.join(choices)}")


def _text(section: str, key: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise _bad(section, key, value, "give a non-empty name")


def check_strength(value: Any, section: str = "model", key: str = "strength") -> None:
    """'auto' or an RGB noise sigma from 0 to 255 in 8-bit units (as streamdn.denoiser.parse_strength).

    Raises:
        ConfigError: anything else, NaN and infinities included.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return
    try:
        sigma = float(value)
    except (TypeError, ValueError) as err:
        raise _bad(section, key, value, "use 'auto' or a noise sigma in 8-bit units such as 10 or 25") from err
    if not 0.0 <= sigma <= 255.0:   # False for NaN too
        raise _bad(section, key, value, "give 'auto' or a noise sigma between 0 and 255 (8-bit units)")


def check_device(value: Any, section: str = "model", key: str = "device") -> None:
    """auto, cpu, cuda or cuda:N (whether the device exists is checked when a model is built)."""
    s = str(value).strip().lower()
    if s not in ("auto", "cpu", "cuda") and not (s.startswith("cuda:") and s[5:].isdigit()):
        raise _bad(section, key, value, "use auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from when no input path is given (the demo and tests)."""

    kind: str = "synthetic"      # "synthetic" | "file"
    path: str | None = None      # file or URL for kind = "file"
    width: int = 640             # synthetic scene size in pixels
    height: int = 360
    fps: float = 30.0
    frames: int = 90             # synthetic clip length
    noise: str = "gaussian"      # a streamdn.data.noise type: gaussian, poisson, poisson_gaussian, salt_pepper, speckle
    sigma: float = 20.0          # noise strength in 8-bit units (see streamdn.data.noise)
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("source", "kind", self.kind, ("synthetic", "file"))
        _number("source", "width", self.width, 2)
        _number("source", "height", self.height, 2)
        _number("source", "fps", self.fps, 0, 1000, above=True)
        _number("source", "frames", self.frames, 1)
        _number("source", "sigma", self.sigma, 0, 255)
        _number("source", "seed", self.seed, 0)


@dataclass(frozen=True)
class ModelConfig:
    """The denoiser: which model, how strong, where it runs."""

    name: str = "default"        # registry name (streamdn models), "classical:NAME", or a weights path
    strength: str = "auto"       # "auto" (estimated per frame) or the RGB noise sigma in 8-bit units, e.g. "15"
    device: str = "auto"         # "auto" | "cpu" | "cuda" | "cuda:N"
    impulses: str = "auto"       # salt-and-pepper removal before the model: "auto" | "on" | "off"
    backend: str = "auto"        # a recurrent network's convolutions on the CPU: "auto" | "torch" | "int8" (docs/backends.md)

    def __post_init__(self) -> None:
        _text("model", "name", self.name)
        check_strength(self.strength)
        check_device(self.device)
        _choice("model", "impulses", self.impulses, ("auto", "on", "off"))
        _choice("model", "backend", self.backend, ("auto", "torch", "int8"))


@dataclass(frozen=True)
class EncodeConfig:
    """The file sink's encoder."""

    codec: str = "auto"          # "auto" follows the container (libx264; libvpx-vp9 for .webm) or any FFmpeg encoder
    crf: int | None = None       # quality; None = the codec's default used by streamdn (x264: 18)
    preset: str | None = None    # encoder speed preset; None = "veryfast" for x264
    lossless: bool = False       # FFV1 in .mkv, x264 qp 0 otherwise
    pix_fmt: str = "auto"        # "auto" keeps 4:2:0 at the source's bit depth where the codec allows
    threads: int = 0             # encoder threads, 0 = FFmpeg decides

    def __post_init__(self) -> None:
        _text("encode", "codec", self.codec)
        _number("encode", "crf", self.crf, 0, 63, optional=True)   # the codec's own range: plan_encoder
        _text("encode", "preset", self.preset, optional=True)
        _text("encode", "pix_fmt", self.pix_fmt)
        _number("encode", "threads", self.threads, 0, 256)


@dataclass(frozen=True)
class PipelineConfig:
    """How the stages run."""

    queue_size: int = 4          # frames in flight between two stages
    frames: int | None = None    # stop after this many frames (None = all)
    decode_threads: int = 0      # 0 = FFmpeg decides

    def __post_init__(self) -> None:
        _number("pipeline", "queue_size", self.queue_size, 1, 1024)
        _number("pipeline", "frames", self.frames, 1, optional=True)
        _number("pipeline", "decode_threads", self.decode_threads, 0, 256)


@dataclass(frozen=True)
class LiveConfig:
    """`streamdn live`: where frames come from and go to in real time."""

    camera: str = "0"            # camera index or device path
    size: str | None = None      # requested capture size "WxH" (None: the camera's default)
    fps: float | None = None     # requested capture rate
    fourcc: str = "MJPG"         # requested capture compression ("" keeps the camera's default)
    target_latency_ms: float = 100.0   # frames older than this are dropped when a newer one waits
    camera_timeout: float = 10.0  # seconds a camera that stops delivering is waited for (0: until stopped)
    preview: str = "auto"        # "split" | "side" | "off" | "auto" (split when a display exists)
    virtual_camera: bool = False
    record: str | None = None    # also record the clean video to this file
    stream: str | None = None    # also stream it to this URL (udp://, srt://, rtsp://, rtmp://)
    # With model "default" or "auto": start on the best of `rungs` the machine keeps up with
    # (timed on the stream's first frames) and change rung while running rather than fall behind.
    ladder: bool = True
    rungs: str = "fast_mc,fast,fast@0.75,fast@0.5,classical:gaussian"   # best first; MODEL[+int8][@SCALE]

    def __post_init__(self) -> None:
        _text("live", "camera", self.camera)
        _text("live", "rungs", self.rungs)
        if self.size is not None:
            parse_size(self.size, what="[live] size")
        _number("live", "fps", self.fps, 0, 1000, above=True, optional=True)
        _number("live", "target_latency_ms", self.target_latency_ms, 0, above=True)
        _number("live", "camera_timeout", self.camera_timeout, 0)
        _choice("live", "preview", self.preview, ("auto", "split", "side", "off"))


@dataclass(frozen=True)
class RunConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    live: LiveConfig = field(default_factory=LiveConfig)


SECTIONS: dict[str, type] = typing.get_type_hints(RunConfig)


def _allowed_types(tp: Any) -> tuple[type, ...]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return tuple(t for t in typing.get_args(tp))
    return (tp,)


def _coerce(where: str, key: str, value: Any, tp: Any) -> Any:
    allowed = _allowed_types(tp)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is type(None):
            continue
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is bool and isinstance(value, bool):
            return value
        if t is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"{where}: [{key.split('.')[0]}] {key.split('.')[1]} = {value!r} should be {names}.")


def _build(section: str, cls: type, values: dict[str, Any], where: str) -> Any:
    valid = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in valid:
            raise ConfigError(f"{where}: [{section}] has no key '{key}'; valid keys: {', '.join(valid)}.")
        kwargs[key] = _coerce(where, f"{section}.{key}", value, valid[key])
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


def _parse_override(text: str) -> tuple[str, str, Any]:
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. model.strength=15.")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as libx264 is a string
    return section, key, value


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Reads a TOML file.

    Raises:
        ConfigError: missing or unreadable file, or invalid TOML; the message names the file.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: {what} not found; presets are in configs/.") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what} ({err.strerror}).") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}).") from err


def merge(base: dict[str, dict[str, Any]], section: str, key: str, value: Any) -> None:
    base.setdefault(section, {})[key] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """Loads a RunConfig.

    Args:
        path: a TOML file with [source], [model], [encode], [pipeline] tables, or None.
        overrides: "section.key=value" strings (TOML values; bare words are strings).
        values: {section: {key: value}} applied last (the CLI's explicit flags).

    Raises:
        ConfigError: unreadable file, unknown section or key, or a value of the wrong type;
            the message names the file, the section and the valid keys.
    """
    data: dict[str, dict[str, Any]] = {}
    where = "config"
    if path is not None:
        where = str(path)
        loaded = read_toml(path)
        for section, table in loaded.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{section}' must be a table such as [{section}].")
            for key, value in table.items():
                merge(data, section, key, value)
    for text in overrides or []:
        merge(data, *_parse_override(text))
    for section, table in (values or {}).items():
        for key, value in table.items():
            merge(data, section, key, value)
    built = {}
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section [{section}]; valid sections: {', '.join(SECTIONS)}.")
        built[section] = _build(section, SECTIONS[section], table, where)
    return RunConfig(**built)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data (saved beside outputs and in --stats)."""
    return dataclasses.asdict(cfg)


def parse_size(text: str, *, what: str = "size", minimum: int = 2) -> tuple[int, int]:
    """'1280x720' -> (1280, 720).

    Args:
        text: "WxH" (case-insensitive x).
        what: the argument's name as the caller knows it, for the message ("--size", "size").
        minimum: the smallest width and height accepted.

    Raises:
        ConfigError: not two integers joined by x, or either under `minimum`.
    """
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"{what} '{text}': use WxH, e.g. 1280x720.") from err
    if w < minimum or h < minimum:
        raise ConfigError(f"{what} '{text}': width and height must be at least {minimum}.")
    return w, h
