"""The model registry: factories registered by name, one `create_model` to build them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamdn.errors import ModelNotFoundError
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
    """

    name: str
    kind: str
    summary: str
    temporal: bool = False
    macs_per_px: float | None = None
    params: int | None = None
    trained_on: str | None = None
    val_psnr: float | None = None


class FrameModel(ABC):
    """A denoiser step split into the pipeline's three stages.

    `pack` (pre) turns a Frame and its per-plane noise sigmas into the model's working data,
    `forward` (model) denoises it and updates the temporal state, `unpack` (post) turns the
    result back into a Frame. The three are called in this order once per frame, each from at
    most one thread at a time; `forward` calls must come in stream order.
    """

    info: ModelInfo
    device: str = "cpu"
    impulse_filter: bool = False   # True: the Denoiser removes impulse noise before pack (see Denoiser)

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


Factory = Callable[..., FrameModel]
_REGISTRY: dict[str, tuple[Factory, ModelInfo]] = {}
DEFAULT_MODEL = "fast"


def register(info: ModelInfo) -> Callable[[Factory], Factory]:
    """Decorator: registers a factory under info.name."""

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[info.name] = (factory, info)
        return factory

    return wrap


def list_models() -> list[ModelInfo]:
    """Every registered model, sorted by name."""
    return [info for _, info in sorted(_REGISTRY.values(), key=lambda fi: fi[1].name)]


def _is_weights_path(name: str) -> bool:
    return name.lower().endswith(".safetensors")


def model_info(name: str) -> ModelInfo:
    """The ModelInfo of a registered name ("default" included) or of a .safetensors weight file.

    Raises:
        ModelNotFoundError: the name is not registered (the message lists the known names), or
            the weight file is missing or not a streamdn network.
    """
    if _is_weights_path(name):
        from .network import info_from_metadata, read_metadata  # imports torch: only for files

        return info_from_metadata(name, read_metadata(name))
    key = DEFAULT_MODEL if name == "default" else name
    if key not in _REGISTRY:
        known = ", ".join(i.name for i in list_models())
        raise ModelNotFoundError(f"model '{name}' is not registered; known: {known}. "
                                 f"See `streamdn models`, or pass a path to a .safetensors weight file.")
    return _REGISTRY[key][1]


def create_model(name: str = "default", **overrides: Any) -> FrameModel:
    """Builds a registered model, or a network from a weight file.

    Args:
        name: a registry name, "default", "classical:NAME", or a path to a .safetensors file
            written by `streamdn train` (its metadata names the architecture).
        **overrides: passed to the factory (e.g. device="cpu").

    Raises:
        ModelNotFoundError: the name is not registered (the message lists the known names), or
            the weight file is missing or not a streamdn network.
    """
    if _is_weights_path(name):
        from .network import load_network

        return load_network(name, **overrides)
    factory, _ = _REGISTRY[model_info(name).name]
    return factory(**overrides)
