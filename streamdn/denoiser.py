"""Denoiser: one model on one device plus the temporal state of one stream. The public
embedding API; the pipeline uses nothing it does not offer."""

from __future__ import annotations

from types import TracebackType

from .errors import ConfigError, DeviceError, warn
from .frames import Frame
from .kernels import estimate_sigma
from .models import FrameModel, create_model, model_info


def resolve_device(spec: str) -> str:
    """Turns "auto" | "cpu" | "cuda" | "cuda:N" into a concrete device string.

    Raises:
        DeviceError: CUDA was asked for and is not available.
        ConfigError: the string is none of the forms above.
    """
    _check_device_syntax(spec)
    spec = spec.strip().lower()
    if spec == "cpu":
        return "cpu"
    import torch  # imported here: classical models and the CLI's help need no torch

    if not torch.cuda.is_available():
        if spec == "auto":
            return "cpu"
        raise DeviceError(f"--device {spec}: no CUDA device is available here; use --device cpu or auto.")
    if spec.startswith("cuda:") and int(spec[5:]) >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present.")
    return "cuda" if spec == "auto" else spec


def parse_strength(value: str | float | None) -> float | None:
    """'auto'/None -> None (estimate per frame); a number -> sigma in 8-bit units.

    Raises:
        ConfigError: not 'auto' and not a non-negative number.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        sigma = float(value)
    except ValueError as err:
        raise ConfigError(f"--strength '{value}' is not valid; use auto or a noise sigma in 8-bit "
                          f"units such as 10 or 25.") from err
    if not 0.0 <= sigma <= 255.0:
        raise ConfigError(f"--strength {value}: must be between 0 and 255 (8-bit sigma units).")
    return sigma


class Denoiser:
    """Denoises the frames of one stream, in order.

    Thread-safety: one Denoiser serves one stream from one thread at a time (its state is the
    stream's past). Use one Denoiser per stream; the three stage methods may run in three
    different threads as long as each is called in stream order (the pipeline does this).

    Example:
        >>> with Denoiser() as dn:
        ...     clean = dn(frame)
    """

    def __init__(self, model: str | FrameModel = "default", *, strength: str | float | None = "auto",
                 device: str = "auto", sigma_smoothing: float = 0.8) -> None:
        """Args:
            model: a registry name, "default", "classical:NAME", or a built FrameModel.
            strength: "auto" (blind, estimated per frame) or a noise sigma in 8-bit units.
            device: "auto" | "cpu" | "cuda" | "cuda:N" (networks only; filters run on the CPU).
            sigma_smoothing: weight of the past in the running average of estimated sigmas
                (0 = use each frame's estimate alone), which keeps the strength from flickering.
        """
        self.strength = parse_strength(strength)
        if isinstance(model, str):
            # Filters run on the CPU whatever was asked; networks go where the device says.
            if model_info(model).kind == "network":
                device = resolve_device(device)
            else:
                _check_device_syntax(device)
                if device.strip().lower() not in ("auto", "cpu"):
                    warn(f"model {model_info(model).name} is a CPU filter; --device {device} is ignored.")
                device = "cpu"
            model = create_model(model, device=device)
        self.model = model
        self.device = getattr(model, "device", "cpu")
        self.sigma_smoothing = sigma_smoothing
        self._sigmas: tuple[float, float, float] | None = None

    @property
    def name(self) -> str:
        return self.model.info.name

    def noise_sigmas(self, frame: Frame) -> tuple[float, float, float]:
        """The Y, U, V noise sigmas (8-bit units) used for `frame`: the fixed strength, or the
        blind estimate smoothed over recent frames."""
        if self.strength is not None:
            return (self.strength,) * 3
        maxv = float((1 << frame.bit_depth) - 1)
        to8 = 255.0 / maxv
        est = tuple(estimate_sigma(p, maxv) * to8 for p in (frame.y, frame.u, frame.v))
        if self._sigmas is None:
            self._sigmas = est  # type: ignore[assignment]
        else:
            a = self.sigma_smoothing
            self._sigmas = tuple(a * old + (1 - a) * new for old, new in zip(self._sigmas, est))  # type: ignore[assignment]
        return self._sigmas  # type: ignore[return-value]

    def pre(self, frame: Frame) -> object:
        """Stage 1: noise estimate and packing into the model's working data."""
        return self.model.pack(frame, self.noise_sigmas(frame))

    def infer(self, packed: object) -> object:
        """Stage 2: the model step (updates the temporal state)."""
        return self.model.forward(packed)

    def post(self, result: object, frame: Frame) -> Frame:
        """Stage 3: back to a Frame with `frame`'s timing and metadata."""
        return self.model.unpack(result, frame)

    def __call__(self, frame: Frame) -> Frame:
        """Denoises the next frame of the stream (all three stages)."""
        return self.post(self.infer(self.pre(frame)), frame)

    def reset(self) -> None:
        """Forgets the stream's past: call at a scene cut or before a new stream."""
        self.model.reset()
        self._sigmas = None

    def close(self) -> None:
        """Frees the model's device memory. Idempotent."""
        self.model.close()

    def __enter__(self) -> Denoiser:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _check_device_syntax(spec: str) -> None:
    s = spec.strip().lower()
    if s not in ("auto", "cpu", "cuda") and not (s.startswith("cuda:") and s[5:].isdigit()):
        raise ConfigError(f"--device '{spec}' is not valid; use auto, cpu, cuda or cuda:N.")
