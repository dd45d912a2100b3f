"""The model registry: factories registered by name, loaders of model files registered by suffix,
one `create_model` to build them. Knows no model or file format itself."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import Frame


@dataclass(frozen=True)
class ModelInfo:
    """What `streamdn models` shows about a model.

    Attributes:
        name: registry key.
        kind: "classical" (hand-written filter) or "network" (trained CNN).
        summary: one line.
        temporal: whether it carries state from frame to frame.
        macs_per_px: multiply-accumulates per input pixel (networks), None otherwise.
        params: trainable parameters (networks), None otherwise.
        trained_on: training noise, for networks with weights.
        val_psnr: validation PSNR (dB) from the model card, where measured.
        window: (frames before, frames after) the current one that a windowed model merges
            with it; None for the others (a recursion's past is not bounded).
    """

    name: str
    kind: str
    summary: str
    temporal: bool = False
    macs_per_px: float | None = None
    params: int | None = None
    trained_on: str | None = None
    val_psnr: float | None = None
    window: tuple[int, int] | None = None


class FrameModel(ABC):
    """A denoiser step split into the pipeline's three stages.

    `pack` turns a Frame and its per-plane noise sigmas into the model's working data,
    `forward` denoises it and updates the temporal state, `unpack` turns the
    result back into a Frame. The three are called in this order once per frame, each from at
    most one thread at a time; `forward` calls must come in stream order.
    """

    info: ModelInfo
    device: str = "cpu"
    impulse_filter: bool = False   # True: the Denoiser removes impulse noise before pack (see Denoiser)
    # Frames after the current one the model uses: a stream read ahead hands them to pack in
    # frame.extra["ahead"] (streamdn.frames.with_lookahead); 0: none (a causal model).
    lookahead: int = 0

    @abstractmethod
    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> Any:
        """sigmas: noise standard deviation of Y, U, V in 8-bit units."""

    @abstractmethod
    def forward(self, packed: Any) -> Any: ...

    @abstractmethod
    def unpack(self, result: Any, frame: Frame) -> Frame: ...

    def reset(self) -> None:
        """Forgets the temporal state (a cut, a new stream)."""

    def close(self) -> None:
        """Frees device memory."""

    def clone(self) -> FrameModel:
        """A model with the same settings (and weights, which may be shared) and its own
        temporal state, none yet: the Denoiser denoises independent images on it while this
        model keeps the stream's past.

        The default returns the model itself, which is right only for models without state;
        temporal models (info.temporal) override it.

        Raises:
            NotImplementedError: a temporal model that does not override clone().
        """
        if self.info.temporal:
            raise NotImplementedError(f"model '{self.info.name}' keeps temporal state and does not implement "
                                      f"clone(); override FrameModel.clone to denoise independent images with it.")
        return self


Factory = Callable[..., FrameModel]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    info: ModelInfo
    options: frozenset[str] | None   # the keyword options the factory takes; None: any


@dataclass(frozen=True)
class FileLoader:
    """How create_model and model_info open a model file with a given suffix.

    Attributes:
        info: path -> the file's ModelInfo (reads as little as it can).
        create: (path, **options) -> the model.
        options: the keyword options `create` takes.
    """

    info: Callable[[str], ModelInfo]
    create: Factory
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, _Entry] = {}
_FILE_LOADERS: dict[str, FileLoader] = {}
DEFAULT_MODEL = "fast"


def register(info: ModelInfo, options: tuple[str, ...] | None = None) -> Callable[[Factory], Factory]:
    """Decorator: registers a factory under info.name.

    Args:
        info: the entry `streamdn models` shows.
        options: the keyword options the factory takes. None: the names of its parameters,
            read from its signature (a factory with **kwargs then takes any option and checks
            them itself).
    """

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[info.name] = _Entry(factory, info, frozenset(options) if options is not None
                                      else _keyword_names(factory))
        return factory

    return wrap


def register_file_loader(suffix: str, loader: FileLoader) -> None:
    """Makes model names ending in `suffix` (".safetensors") paths of model files opened by
    `loader` (case-insensitive)."""
    _FILE_LOADERS[suffix.lower()] = loader


def list_models() -> list[ModelInfo]:
    """Every registered model, sorted by name."""
    return sorted((e.info for e in _REGISTRY.values()), key=lambda i: i.name)


def _file_loader(name: str) -> FileLoader | None:
    lower = name.lower()
    return next((loader for suffix, loader in _FILE_LOADERS.items() if lower.endswith(suffix)), None)


def model_info(name: str) -> ModelInfo:
    """The ModelInfo of a registered name ("default" included) or of a model file (a name
    ending in a suffix with a file loader, e.g. ".safetensors").

    Raises:
        ModelNotFoundError: the name is not registered (the message lists the known names), or
            the model file is missing or unreadable.
    """
    loader = _file_loader(name)
    if loader is not None:
        return loader.info(name)
    key = DEFAULT_MODEL if name == "default" else name
    if key not in _REGISTRY:
        known = ", ".join(i.name for i in list_models())
        files = " or ".join(sorted(_FILE_LOADERS)) or "model"
        raise ModelNotFoundError(f"model '{name}' is not registered; known: {known}. "
                                 f"See `streamdn models`, or pass a path to a {files} file.")
    return _REGISTRY[key].info


def create_model(name: str = "default", **options: Any) -> FrameModel:
    """Builds a registered model, or a model from a file.

    Args:
        name: a registry name, "default", "classical:NAME", or a path to a model file (for
            networks a .safetensors file written by `streamdn train`; its metadata names the
            architecture).
        **options: passed to the factory (e.g. device="cpu"); each must be one it takes.

    Raises:
        ModelNotFoundError: the name is not registered (the message lists the known names), or
            the model file is missing or unreadable.
        ConfigError: an option the model does not take (the message lists the valid ones).
    """
    loader = _file_loader(name)
    if loader is not None:
        _check_options(name, options, frozenset(loader.options))
        return loader.create(name, **options)
    entry = _REGISTRY[model_info(name).name]
    _check_options(entry.info.name, options, entry.options)
    return entry.factory(**options)


def _check_options(name: str, options: dict[str, Any], valid: frozenset[str] | None) -> None:
    if valid is None:
        return
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"model '{name}' has no option {', '.join(repr(k) for k in unknown)}; "
                          f"valid options: {', '.join(sorted(valid)) or 'none'}.")


def _keyword_names(factory: Factory) -> frozenset[str] | None:
    """The names a factory takes as keywords; None when it takes **kwargs."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params
                     if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
