"""Denoiser: one model on one device plus the temporal state of one stream. The public
embedding API; the pipeline uses nothing it does not offer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from types import TracebackType
from typing import Any

import numpy as np

from streamdn.arrays import from_image, from_planes, from_tensor, is_tensor
from streamdn.config import ModelConfig
from streamdn.errors import ConfigError, DeviceError, warn
from streamdn.frames import AHEAD, PLANE_SIGMA_PER_RGB_SIGMA, Frame, with_lookahead  # noqa: F401  (PLANE_...: re-exported)
from streamdn.kernels import count_impulses, estimate_sigma, remove_impulses, sigma_from_block_stats
from streamdn.models import FrameModel, ModelInfo, create_model, model_info
from streamdn.models.int8 import set_calibration
from streamdn.models.network import NOISE_BLOCK, luma_block_stats


def network_options(name: str, backend: str = "auto") -> dict[str, str]:
    """The create_model options that put model `name` on `backend` ("auto", "torch" or "int8"):
    none for "auto" (create_model's default) and for filters (which have their own CPU code: int8
    is ignored, with a warning).

    Raises:
        ConfigError: an unknown backend.
    """
    if backend not in ("auto", "torch", "int8"):
        raise ConfigError(f"backend '{backend}': use auto, torch or int8.")
    if backend == "auto":
        return {}
    if model_info(name).kind != "network":
        if backend == "torch":
            return {}
        warn(f"model {model_info(name).name} is a filter; backend '{backend}' is ignored.")
        return {}
    return {"backend": backend}


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
        raise DeviceError(f"device '{spec}': no CUDA device is available here; use device 'cpu' or 'auto'.")
    if spec.startswith("cuda:") and int(spec[5:]) >= torch.cuda.device_count():
        raise DeviceError(f"device '{spec}': only {torch.cuda.device_count()} CUDA device(s) present; "
                          f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    return "cuda" if spec == "auto" else spec


def parse_strength(value: str | float | None) -> float | None:
    """'auto'/None -> None (estimate per frame); a number -> the RGB noise sigma in 8-bit units
    (PLANE_SIGMA_PER_RGB_SIGMA turns it into the Y, U, V planes' sigmas).

    Raises:
        ConfigError: not 'auto' and not a non-negative number.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        sigma = float(value)
    except ValueError as err:
        raise ConfigError(f"strength '{value}' is not valid; use 'auto' or a noise sigma in 8-bit "
                          f"units such as 10 or 25.") from err
    if not 0.0 <= sigma <= 255.0:
        raise ConfigError(f"strength {value}: must be between 0 and 255 (8-bit sigma units).")
    return sigma


_BYPASS = object()   # what the stages pass along while denoising is switched off

IMPULSE_THRESHOLD = 24.0      # 8-bit units outside the range of 7 of the 8 neighbours
IMPULSE_MIN_SHARE = 5e-3      # of luma pixels, isolated AND extreme, for "auto" to act


def remove_frame_impulses(frame: Frame, always: bool = False) -> Frame:
    """The frame with its impulse noise replaced by neighbour medians (streamdn.kernels.impulse),
    or the frame itself when it shows too little of it (and `always` is False).

    Evidence: luma pixels more than IMPULSE_THRESHOLD outside the range of 7 of their 8
    neighbours and at an extreme level (the darkest or brightest 10 %): more than IMPULSE_MIN_SHARE of the
    pixels. Gaussian or Poisson noise, even strong, almost never does that; dead/hot pixels and
    bit errors do. A night sky full of single-pixel stars could, which is what "off" is for."""
    maxv = float((1 << frame.bit_depth) - 1)
    thresh = IMPULSE_THRESHOLD * maxv / 255.0
    if not always:
        n = count_impulses(frame.y, thresh, 0.1 * maxv, 0.9 * maxv)
        if n <= IMPULSE_MIN_SHARE * frame.y.size:
            return frame
    # The frame has impulse noise: remove with a third of the threshold (a black pixel 10 levels
    # under a dark neighbourhood is a pepper grain here), twice (the first pass frees impulses
    # whose twin next to them hid them).
    planes = (frame.y, frame.u, frame.v)
    for _ in range(2):
        out = (np.empty_like(frame.y), np.empty_like(frame.u), np.empty_like(frame.v))
        if remove_impulses(*planes, thresh / 3.0, 0.1 * maxv, 0.9 * maxv, *out) == 0:
            break
        planes = out
    cleaned = frame.with_planes(*planes)
    # Tells the model the frame was impulsive: its noise estimate now reads low, but what the
    # median missed still needs the model (streamdn.models.network: no low-noise blend).
    cleaned.extra = {**frame.extra, "impulses_removed": True}
    return cleaned


Sigmas = tuple[float, float, float]


class Denoiser:
    """Denoises the frames of one stream, in order; also independent images and whole clips.

    What a call means depends on what it is given:

    - one image (a Frame, a numpy image, I420 planes, a 3-D torch tensor) is the next frame of
      this Denoiser's stream: the temporal models use the stream's past and update it;
    - a 4-D torch tensor (N, 3, H, W) is a batch of N independent images: each is denoised as a
      single image with no past, and the stream's state is neither used nor changed;
    - denoise_clip(frames) is one clip of consecutive frames, from a fresh stream.

    Channel order: numpy images are BGR (OpenCV's), torch tensors RGB (torchvision's), unless
    `channel_order` says otherwise for both.

    Thread-safety: one Denoiser serves one stream from one thread at a time (its state is the
    stream's past), so calls to it must not overlap: use one Denoiser per stream (or guard a
    shared one with a lock). Denoisers in different threads are independent. The three stage
    methods may run in three different threads as long as each is called in stream order (the
    pipeline does this).

    Example:
        >>> with Denoiser() as dn:            # default model and device
        ...     clean = dn(bgr_image)         # (H, W, 3) uint8 in, the same out
    """

    def __init__(self, model: str | FrameModel = "default", *, strength: str | float | None = "auto",
                 device: str = "auto", channel_order: str | None = None, sigma_smoothing: float = 0.8,
                 impulses: str = "auto", backend: str = "auto") -> None:
        """Args:
            model: a registry name, "default", "classical:NAME", or a built FrameModel.
            strength: "auto" (blind, estimated per frame and plane) or the noise sigma in 8-bit
                RGB units (Gaussian noise of that sigma on the RGB picture; the planes get
                PLANE_SIGMA_PER_RGB_SIGMA times it).
            device: "auto" | "cpu" | "cuda" | "cuda:N" (networks only; filters run on the CPU).
            channel_order: how images passed to __call__ order their channels: None (the
                default) reads numpy images as BGR (OpenCV) and torch tensors as RGB
                (torchvision); "bgr" or "rgb" sets the order of both.
            sigma_smoothing: weight of the past in the running average of estimated sigmas
                (0 = use each frame's estimate alone), which keeps the strength from flickering.
            impulses: salt-and-pepper handling before the model (models that ask for it: the
                networks and tfilter): "auto" replaces isolated extreme pixels by their
                neighbours' median in frames where more than 0.5 % of pixels are such impulses
                (streamdn.kernels.impulse), "on" in every frame, "off" never.
            backend: what runs a recurrent network's convolutions on the CPU (a model given by
                name; ignored for filters): "auto" (int8 for a model with weights trained for it,
                `fast`, on a CPU without native bf16 when ONNX Runtime is installed; else
                torch), "torch" or "int8" (ONNX Runtime, the `int8` extra; docs/backends.md).

        Raises:
            ConfigError: a bad strength, device, channel_order or impulses value.
            ModelNotFoundError: an unknown model name.
            DeviceError: CUDA asked for and not available.
        """
        if impulses not in ("auto", "on", "off"):
            raise ConfigError(f"impulses '{impulses}': use auto, on or off.")
        if backend not in ("auto", "torch", "int8"):
            raise ConfigError(f"backend '{backend}': use auto, torch or int8.")
        self.impulses = impulses
        self.strength = parse_strength(strength)
        if channel_order not in (None, "bgr", "rgb"):
            raise ConfigError(f"channel_order '{channel_order}': use None (numpy BGR, tensors RGB), 'bgr' or 'rgb'.")
        self.channel_order = channel_order
        self._count = -1
        self._tensor_path: Any = None     # streamdn.tensors.TensorPath of the stream, made on first use
        self._single_path: Any = None     # the same for independent images
        self._single_model: FrameModel | None = None
        if isinstance(model, str):
            # Filters run on the CPU whatever was asked; networks go where the device says.
            if model_info(model).kind == "network":
                device = resolve_device(device)
            else:
                _check_device_syntax(device)
                if device.strip().lower() not in ("auto", "cpu"):
                    warn(f"model {model_info(model).name} is a CPU filter; device '{device}' is ignored.")
                device = "cpu"
            model = create_model(model, device=device, **network_options(model, backend))
        self.model = model
        self.device = getattr(model, "device", "cpu")
        self.sigma_smoothing = sigma_smoothing
        self.enabled = True   # False passes frames through untouched (a live before/after toggle)
        self.gain = 1.0       # multiplies the sigmas used (live +/- keys); 1 = as estimated or given
        self._sigmas: Sigmas | None = None
        self._ahead_cache: OrderedDict[int, tuple[Frame, Frame]] = OrderedDict()   # see _prepared

    @classmethod
    def from_config(cls, cfg: ModelConfig, **options: Any) -> Denoiser:
        """The Denoiser a run's [model] config describes (name, strength, device, impulses);
        `options` are the other keyword arguments of Denoiser()."""
        return cls(cfg.name, strength=cfg.strength, device=cfg.device, impulses=cfg.impulses, backend=cfg.backend,
                   **options)

    @property
    def name(self) -> str:
        return self.model.info.name

    # -- noise sigmas ----------------------------------------------------------------------------

    def estimate_sigmas(self, frame: Frame) -> Sigmas:
        """The blind Y, U, V noise estimate of `frame` alone, in 8-bit units (no smoothing, no gain)."""
        maxv = float((1 << frame.bit_depth) - 1)
        to8 = 255.0 / maxv
        stats = luma_block_stats(frame)   # kept on the frame: the model's noise map reuses them
        y = estimate_sigma(frame.y, maxv) if stats is None else sigma_from_block_stats(stats, maxv, NOISE_BLOCK)
        return (y * to8, estimate_sigma(frame.u, maxv) * to8, estimate_sigma(frame.v, maxv) * to8)

    def noise_sigmas(self, frame: Frame) -> Sigmas:
        """The Y, U, V noise sigmas (8-bit units) used for the stream's next frame `frame`: the
        fixed strength, or the blind estimate smoothed over recent frames; times the live gain."""
        if self.strength is not None:
            return self.smooth_sigmas((0.0, 0.0, 0.0))
        return self.smooth_sigmas(self.estimate_sigmas(frame))

    def smooth_sigmas(self, estimate: Sigmas) -> Sigmas:
        """Turns one stream frame's blind estimate (8-bit units) into the sigmas to use: the fixed
        strength when one is set, else a running average over frames; times the live gain."""
        if self.strength is not None:
            return self.single_sigmas(estimate)
        if self._sigmas is None:
            self._sigmas = estimate
        else:
            a = self.sigma_smoothing
            self._sigmas = tuple(a * old + (1 - a) * new for old, new in zip(self._sigmas, estimate))  # type: ignore[assignment]
        return tuple(s * self.gain for s in self._sigmas)  # type: ignore[return-value, union-attr]

    def single_sigmas(self, estimate: Sigmas) -> Sigmas:
        """The sigmas for an image with no past (8-bit units): the fixed strength when one is set,
        else the image's own blind estimate; times the live gain. Changes no state."""
        if self.strength is not None:
            return tuple(self.strength * k * self.gain for k in PLANE_SIGMA_PER_RGB_SIGMA)  # type: ignore[return-value]
        return tuple(s * self.gain for s in estimate)  # type: ignore[return-value]

    # -- the pipeline's three stages (the stream) ------------------------------------------------

    def pack(self, frame: Frame) -> object:
        """Stage 1 (pack): noise estimate and packing into the model's working data.

        For a model that looks ahead (FrameModel.lookahead), the frames after this one in
        frame.extra["ahead"] (streamdn.frames.with_lookahead) are prepared as it is (impulses
        removed, each frame once) and handed on with it; the key is then taken off the frame."""
        ahead = frame.extra.pop(AHEAD, ())
        if not self.enabled:
            return _BYPASS
        if not self.lookahead:
            frame = self._without_impulses(frame, self.model)
            return self.model.pack(frame, self.noise_sigmas(frame))
        frame = self._prepared(frame)
        if ahead:
            frame = replace(frame, extra={**frame.extra, AHEAD: tuple(self._prepared(f) for f in ahead)})
        return self.model.pack(frame, self.noise_sigmas(frame))

    @property
    def lookahead(self) -> int:
        """Frames after the current one the model uses (0: a causal model)."""
        return int(getattr(self.model, "lookahead", 0))

    def _prepared(self, frame: Frame) -> Frame:
        """`frame` as the model takes it (impulses removed), made once for a frame that is also
        looked ahead at: the same object each time it is asked for."""
        hit = self._ahead_cache.get(id(frame))
        if hit is not None and hit[0] is frame:
            return hit[1]
        done = self._without_impulses(frame, self.model)
        self._ahead_cache[id(frame)] = (frame, done)
        while len(self._ahead_cache) > self.lookahead + 2:
            self._ahead_cache.popitem(last=False)
        return done

    def forward(self, packed: object) -> object:
        """Stage 2 (forward): the model step (updates the temporal state)."""
        if packed is _BYPASS:
            self.model.reset()   # the past no longer matches what will come after the toggle
            return _BYPASS
        return self.model.forward(packed)

    def unpack(self, result: object, frame: Frame) -> Frame:
        """Stage 3 (unpack): back to a Frame with `frame`'s timing and metadata."""
        if result is _BYPASS:
            return frame
        return self.model.unpack(result, frame)

    # -- the embedding API -----------------------------------------------------------------------

    def __call__(self, frame: Any) -> Any:
        """Denoises the next frame of the stream, or a batch of independent images, and returns
        the result in the caller's layout.

        Args:
            frame: the next frame of this stream: a streamdn.Frame; a numpy (H, W, 3) uint8
                image (BGR unless channel_order says "rgb"); a tuple of I420 planes (Y (H, W),
                U and V (ceil(H/2), ceil(W/2)), uint8 or 10-bit uint16); a torch tensor
                (H, W, 3) uint8 or (3, H, W) float in [0, 1] (RGB unless channel_order says
                "bgr"). Or a batch of independent images: a 4-D torch tensor (N, 3, H, W) float
                in [0, 1] (or (N, H, W, 3) uint8), each image denoised as a single image with no
                past, the stream's state neither used nor changed. For consecutive frames in
                one tensor, use denoise_clip.

        Returns:
            The denoised frame(s) in the same type, layout, dtype (and torch device).

        Raises:
            ConfigError: an unsupported type, shape or dtype.
        """
        if is_tensor(frame) and frame.ndim == 4:
            return self._batch(frame)
        _check_not_empty(frame)
        self._count += 1
        return self._denoise(frame, single=False)

    def denoise_clip(self, frames: Any) -> Any:
        """Denoises one clip of consecutive frames as one stream, starting from a fresh state
        (the Denoiser is reset first; afterwards its stream continues from the clip's last frame).

        Args:
            frames: a (T, 3, H, W) float tensor in [0, 1] (or (T, H, W, 3) uint8), a (T, H, W, 3)
                uint8 numpy array, or a sequence of frames in any single-frame layout __call__
                takes.

        Returns:
            The denoised clip: a tensor or array of the same shape, dtype (and device), or a list.

        Raises:
            ConfigError: a tensor or array that is not 4-D, or an unsupported frame.
        """
        self.reset()
        if is_tensor(frames) or isinstance(frames, np.ndarray):
            if frames.ndim != 4:
                raise ConfigError(f"denoise_clip takes a 4-D clip (T, 3, H, W) or (T, H, W, 3), not shape "
                                  f"{tuple(frames.shape)}; pass a single frame to the Denoiser itself.")
            if len(frames) == 0:
                return frames[:0]
            outs = self._clip_frames(list(frames))
            if isinstance(frames, np.ndarray):
                return np.stack(outs)
            import torch

            return torch.stack(outs)
        return self._clip_frames(list(frames))

    def _clip_frames(self, frames: list[Any]) -> list[Any]:
        """Each frame of a clip through __call__; a model that looks ahead is given the frames
        after each one (the clip is all there)."""
        if not self.lookahead:
            return [self(f) for f in frames]
        for f in frames:
            _check_not_empty(f)
        converted = [self._as_frame(f, t) for t, f in enumerate(frames)]
        outs = []
        for frame, (_, restore) in zip(with_lookahead([c[0] for c in converted], self.lookahead), converted):
            self._count += 1
            outs.append(restore(self._step(frame)))
        return outs

    def _as_frame(self, frame: Any, index: int) -> tuple[Frame, Any]:
        """A frame in any layout __call__ takes as a Frame, and the function that turns a result
        back into that layout."""
        if isinstance(frame, Frame):
            return frame, lambda f: f
        if isinstance(frame, np.ndarray):
            return from_image(frame, self._order(tensor=False), index)
        if isinstance(frame, tuple) and len(frame) == 3:
            return from_planes(frame, index)
        if is_tensor(frame):
            return from_tensor(frame, self._order(tensor=True), index)
        raise ConfigError(f"Denoiser takes a Frame, a numpy image, I420 planes or a torch tensor, not "
                          f"{type(frame).__name__}.")

    def reset(self) -> None:
        """Forgets the stream's past: call at a scene cut or before a new stream."""
        self.model.reset()
        self._ahead_cache.clear()
        self._count = -1
        if self._tensor_path is not None:
            self._tensor_path.reset()
        self._sigmas = None

    def reset_noise_level(self) -> None:
        """Forgets the running noise estimate alone (the next frame's blind estimate starts it
        afresh): for a source whose noise may have changed while the temporal state is reset
        elsewhere, e.g. a camera that came back after a gap (new exposure, new gain)."""
        self._sigmas = None

    def close(self) -> None:
        """Frees the model's device memory. Idempotent."""
        self.model.close()
        if self._single_model is not None and self._single_model is not self.model:
            self._single_model.close()

    def __enter__(self) -> Denoiser:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _order(self, tensor: bool) -> str:
        """The channel order of a numpy image (tensor False) or of a torch tensor."""
        if self.channel_order is not None:
            return self.channel_order
        return "rgb" if tensor else "bgr"

    def _without_impulses(self, frame: Frame, model: FrameModel) -> Frame:
        if self.impulses != "off" and getattr(model, "impulse_filter", False):
            return remove_frame_impulses(frame, always=self.impulses == "on")
        return frame

    def _step(self, frame: Frame) -> Frame:
        """The stream's next frame through the three stages."""
        return self.unpack(self.forward(self.pack(frame)), frame)

    def _step_single(self, frame: Frame) -> Frame:
        """An image with no past, on a model of its own (the stream's model is not touched)."""
        if not self.enabled:
            return frame
        model = self._single()
        model.reset()
        clean = self._without_impulses(frame, model)
        est = (0.0, 0.0, 0.0) if self.strength is not None else self.estimate_sigmas(clean)
        return model.unpack(model.forward(model.pack(clean, self.single_sigmas(est))), frame)

    def _single(self) -> FrameModel:
        """The model for independent images: a clone of the stream's (weights shared)."""
        if self._single_model is None:
            try:
                self._single_model = self.model.clone()
            except NotImplementedError as err:
                raise ConfigError(f"model '{self.name}' cannot denoise independent images ({err}); denoise "
                                  f"them one by one with a Denoiser each.") from err
        return self._single_model

    def _denoise(self, frame: Any, single: bool) -> Any:
        """One image in any layout: the stream's next frame, or (single) an image with no past."""
        _check_not_empty(frame)
        if is_tensor(frame) and self._on_model_device(frame):
            return self._denoise_on_device(frame, single)
        f, restore = self._as_frame(frame, 0 if single else self._count)
        return restore((self._step_single if single else self._step)(f))

    def _batch(self, batch: Any) -> Any:
        """(N, 3, H, W) or (N, H, W, 3) tensor: N independent images."""
        if len(batch) == 0:
            return batch.clone()
        import torch

        return torch.stack([self._denoise(img, single=True) for img in batch])

    def _on_model_device(self, t: Any) -> bool:
        """Whether tensor `t` is denoised where it lives: a network on the tensor's own device."""
        if (t.device.type == "cpu" or self.model.info.kind != "network" or hasattr(self.model, "pack_picture")
                or self.lookahead):
            return False   # (a still-image or windowed network takes the host path: it works in RGB)
        import torch

        from streamdn.tensors import takes_device_path

        model = torch.device(self.device)
        unindexed = t.device.index is None or model.index is None
        current = torch.cuda.current_device() if t.device.type == "cuda" and unindexed else 0
        return takes_device_path(t.device, model, current)

    def _denoise_on_device(self, t: Any, single: bool) -> Any:
        """A network on the tensor's device: the frame stays there (no host copy)."""
        from streamdn.tensors import TensorPath, denoise_tensor

        if not self.enabled:
            if not single:
                self.model.reset()   # as the bypass of the stages does
                if self._tensor_path is not None:
                    self._tensor_path.reset()
            return t.clone()
        if single:
            if self._single_path is None:
                self._single_path = TensorPath(self._single(), self.single_sigmas)
            self._single_path.model.reset()
            self._single_path.reset()
            return denoise_tensor(self._single_path, t, self._order(tensor=True))
        if self._tensor_path is None:
            self._tensor_path = TensorPath(self.model, self.smooth_sigmas)
        return denoise_tensor(self._tensor_path, t, self._order(tensor=True))


def _check_not_empty(frame: Any) -> None:
    """Refuses an image with no pixels (a zero width or height) before any model sees it.

    Raises:
        ConfigError: a zero-sized array, tensor, plane or Frame.
    """
    if isinstance(frame, Frame):
        arrays: tuple[Any, ...] = (frame.y,)
    elif isinstance(frame, tuple):
        arrays = frame
    elif isinstance(frame, np.ndarray) or is_tensor(frame):
        arrays = (frame,)
    else:
        return
    for a in arrays:
        shape = tuple(getattr(a, "shape", ()))
        if any(int(n) == 0 for n in shape):
            raise ConfigError(f"the image has no pixels (shape {shape}); give a frame at least 1x1 "
                              f"(e.g. an (H, W, 3) uint8 image).")


def _check_device_syntax(spec: str) -> None:
    s = spec.strip().lower()
    if s not in ("auto", "cpu", "cuda") and not (s.startswith("cuda:") and s[5:].isdigit()):
        raise ConfigError(f"device '{spec}' is not valid; use auto, cpu, cuda or cuda:N.")


# -- calibration of int8 models ---------------------------------------------------------------------

INT8_CALIB_SCENES = 6          # generated moving scenes (training-style, never the validation clips)
INT8_CALIB_FRAMES = 12         # frames of each
INT8_CALIB_SIZE = (256, 160)
INT8_CALIB_NOISES = ("awgn20", "pg_lowlight", "awgn30")   # taken in turn


def int8_calibration(net: Any) -> list[np.ndarray]:
    """(1, H, W, C) float32 trunk inputs of the recurrent network `net` (fp32, torch) denoising
    generated noisy moving scenes through a Denoiser, every other step: what its trunk sees in
    use, the long average included. What streamdn.models.int8 calibrates its ranges on; change
    it and raise streamdn.models.int8.RECIPE."""
    from streamdn.data.noise import add_noise_uint8, parse_noise
    from streamdn.data.synthetic import MovingScene, SceneConfig
    from streamdn.models.network import NetworkModel

    seen: list[np.ndarray] = []
    rng = np.random.default_rng(123)
    info = ModelInfo("int8-calibration", "network", "calibration of an int8 model")
    hook = net.enc.register_forward_pre_hook(
        lambda _m, a: seen.append(a[0].detach().float().permute(0, 2, 3, 1).contiguous().numpy()))
    try:
        for i in range(INT8_CALIB_SCENES):
            scene = MovingScene(SceneConfig(*INT8_CALIB_SIZE, seed=1000 + i))
            spec = parse_noise(INT8_CALIB_NOISES[i % len(INT8_CALIB_NOISES)])
            model = NetworkModel(net, info, device="cpu", dtype="fp32", backend="torch")
            with Denoiser(model, device="cpu") as dn:
                for t in range(INT8_CALIB_FRAMES):
                    dn(add_noise_uint8(scene.render(t), spec, rng))
    finally:
        hook.remove()
    return seen[::2]


set_calibration(int8_calibration)
