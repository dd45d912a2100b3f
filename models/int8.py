"""int8 inference of a recurrent network's convolutions with ONNX Runtime, for CPUs without
native bf16 (AVX2-only x86 and the like), where torch runs the network in fp32.

The network's trunk (its convolutions; the element-wise ends of the step stay in the Numba
kernels) is exported to ONNX with channels-last input and output, so it takes the step input
the kernels write and hands back what they read without a copy, and quantised statically:
int8 weights per output channel, uint8 activations per tensor, ranges calibrated (min-max) on
what the trunk sees while the network itself (fp32) denoises generated noisy scenes
(streamdn.denoiser.int8_calibration). The head, the last convolution, keeps fp32 weights: its
output carries the residual and the gate logits of the recursion, and 8 bits there cost 0.8 dB
on the validation clips where every other layer together costs under 0.1 (docs/backends.md).
add_fake_quant / strip_fake_quant serve quantisation-aware training ([train] qat), which made
the weights `fast` runs in int8 (models/weights/fast_int8.safetensors).

The quantised model depends only on the weights, the calibration and the ONNX Runtime version.
It is built once (3.7 s for `fast` on a 2-core AMD EPYC Zen 3, most of it calibration) and kept
in the user's cache folder (STREAMDN_CACHE_DIR, else $XDG_CACHE_HOME/streamdn, else
~/.cache/streamdn); where the cache cannot be written it is rebuilt in memory each time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamdn.errors import ConfigError

if TYPE_CHECKING:
    from .fast import RecurrentDenoiser

# Part of the cache key: raise it whenever the export, the calibration (streamdn.denoiser's
# int8_calibration) or the quantisation changes.
RECIPE = 1
INSTALL_HINT = 'install ONNX Runtime with `pip install "streamdn[int8]"` (onnxruntime and onnx)'


def note(message: str) -> None:
    """One line on stderr about work the user waits for."""
    print(f"streamdn: {message}", file=sys.stderr)


def available() -> bool:
    """Whether ONNX Runtime and the onnx package (for quantising) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def cache_dir() -> Path:
    """The folder streamdn keeps built int8 models in."""
    if os.environ.get("STREAMDN_CACHE_DIR"):
        return Path(os.environ["STREAMDN_CACHE_DIR"]) / "int8"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamdn" / "int8"


def model_key(net: RecurrentDenoiser) -> str:
    """A hash of what the int8 model depends on: weights, network config, recipe, ONNX Runtime."""
    import onnxruntime

    h = hashlib.sha256()
    h.update(json.dumps({"config": net.cfg.to_dict(), "recipe": RECIPE, "ort": onnxruntime.__version__},
                        sort_keys=True).encode())
    for name, value in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class _ChannelsLast(torch.nn.Module):
    """The trunk with (N, H, W, C) input and output (transposes the runtime removes)."""

    def __init__(self, net: RecurrentDenoiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.trunk(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


Calibration = Callable[["RecurrentDenoiser"], list[np.ndarray]]
_calibration: Calibration | None = None


def set_calibration(source: Calibration) -> None:
    """Sets what calibrates new int8 models: a function of the network giving (1, H, W, C)
    float32 trunk inputs seen in use. streamdn.denoiser sets it (the network denoising generated
    scenes through a Denoiser); models sit below the data and the Denoiser, so cannot run it."""
    global _calibration
    _calibration = source


def quantize_file(src: Path, dst: Path, calib: list[np.ndarray], exclude: list[str] | None = None,
                  percentile: float | None = None) -> None:
    """ONNX Runtime's static QDQ int8 model of the ONNX file `src` (input "x"; int8 weights per
    output channel, uint8 activations per tensor) calibrated on `calib`: min-max ranges, or the
    `percentile` of each activation's histogram; the nodes in `exclude` keep fp32 weights."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"x": x}

    method = CalibrationMethod.MinMax if percentile is None else CalibrationMethod.Percentile
    extra = {} if percentile is None else {"CalibPercentile": percentile}
    # The quantiser logs advice meant for image classifiers on the root logger: not the user's to read.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                        nodes_to_exclude=exclude or [], extra_options=extra)
    finally:
        root.setLevel(level)


def quantize(net: RecurrentDenoiser, calib: list[np.ndarray]) -> bytes:
    """The int8 ONNX model (serialised) of `net`'s trunk, calibrated on `calib` (min-max), the
    head's weights fp32."""
    import onnx

    channels = calib[0].shape[-1]
    with tempfile.TemporaryDirectory(prefix="streamdn-int8-") as tmp:
        fp32, int8 = Path(tmp) / "trunk.onnx", Path(tmp) / "trunk-int8.onnx"
        module = _ChannelsLast(net).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the exporter's notes on tracing and its deprecation: not the user's to read
            torch.onnx.export(module, (torch.zeros(1, 64, 64, channels),), str(fp32), input_names=["x"],
                              output_names=["y"], opset_version=17, dynamo=False,
                              dynamic_axes={"x": {1: "h", 2: "w"}, "y": {1: "h", 2: "w"}})
        convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        quantize_file(fp32, int8, calib, exclude=convs[-1:])
        return int8.read_bytes()


def load_or_build(net: RecurrentDenoiser, log: Callable[[str], None] | None = None) -> bytes:
    """The int8 model of `net`: from the cache, else built (and cached when the cache is writable)."""
    path = cache_dir() / f"trunk-{model_key(net)}.onnx"
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError:
            pass
    if _calibration is None:
        raise ConfigError("no calibration for the int8 model: import streamdn.denoiser (or set one with "
                          "streamdn.models.int8.set_calibration), or use backend torch.")
    if log is not None:
        log(f"preparing the int8 network for this CPU (once; kept in {path.parent})")
    data = quantize(net, _calibration(net))
    try:
        from streamdn.atomic import write_atomically

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    except OSError:
        pass   # a read-only home: build it again next time
    return data


class Int8Trunk:
    """The trunk on ONNX Runtime: (H, W, C) float32 step input -> (H, W, C') float32 head output.

    The packed height and width must be even (the network pads them so); sizes whose quarter
    is odd are padded here by replication (the exported graph halves the size twice) and cropped.
    """

    def __init__(self, net: RecurrentDenoiser, threads: int | None = None,
                 log: Callable[[str], None] | None = note) -> None:
        if not available():
            raise ConfigError(f"the int8 backend needs ONNX Runtime: {INSTALL_HINT}, or use backend torch.")
        import onnxruntime as ort

        self.deep = bool(net.cfg.deep)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        # Threads that spin between calls would take the cores from the Numba kernels, the
        # decoder and the encoder running between two network steps.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(load_or_build(net, log), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        m = 4 if self.deep else 2
        ph, pw = -h % m, -w % m
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
        y: Any = self.session.run(None, {"x": x[None]})[0][0]
        return y[:h, :w] if (ph or pw) else y


# -- training for int8 (quantisation-aware) ---------------------------------------------------------

class _ActivationQuant(torch.nn.Module):
    """Fake uint8 quantisation of a tensor, per tensor, as the int8 model's QuantizeLinear and
    DequantizeLinear do, with its range a running minimum and maximum (updated in training mode);
    gradients pass straight through."""

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(float("nan")))
        self.register_buffer("hi", torch.tensor(float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min().float(), x.detach().max().float()
            if torch.isnan(self.lo):
                self.lo.copy_(lo)
                self.hi.copy_(hi)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)   # the range holds zero
        scale = torch.clamp(hi - lo, min=1e-8) / 255.0
        zero = torch.round(-lo / scale)
        q = (torch.clamp(torch.round(x / scale) + zero, 0.0, 255.0) - zero) * scale
        return x + (q - x).detach()


class _WeightQuant(torch.nn.Module):
    """Fake int8 quantisation of a convolution's weights per output channel (symmetric), as the
    int8 model's; gradients pass straight through. `axis`: the output-channel axis (0 for Conv2d,
    1 for ConvTranspose2d)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dims = tuple(d for d in range(w.dim()) if d != self.axis)
        scale = torch.clamp(w.detach().abs().amax(dim=dims, keepdim=True), min=1e-8) / 127.0
        q = torch.clamp(torch.round(w / scale), -127.0, 127.0) * scale
        return w + (q - w).detach()


def _convs(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def add_fake_quant(net: RecurrentDenoiser) -> None:
    """Makes `net` compute as its int8 model does, for quantisation-aware training: the input of
    every convolution (the head's too) fake-quantised per tensor in uint8, the weights of every
    convolution but the head per output channel in int8 (the head stays fp32, as in quantize).
    Undo with strip_fake_quant; the state dict meanwhile holds the ranges and the float weights
    under parametrizations (checkpoints resume only into a network with fake quantisation)."""
    from torch.nn.utils import parametrize

    convs = _convs(net)
    head = net.head
    for _, conv in convs:
        conv.add_module("input_quant", _ActivationQuant())
        conv.register_forward_pre_hook(_quantise_input)
        if conv is not head:
            parametrize.register_parametrization(
                conv, "weight", _WeightQuant(1 if isinstance(conv, torch.nn.ConvTranspose2d) else 0))


def _quantise_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    quant = getattr(module, "input_quant", None)
    return None if quant is None else (quant(args[0]), *args[1:])


def strip_fake_quant(net: RecurrentDenoiser) -> RecurrentDenoiser:
    """A copy of `net` without fake quantisation: its float weights, as save_weights writes them."""
    from .fast import build

    state = {k.replace(".parametrizations.weight.original", ".weight"): v.detach().clone()
             for k, v in net.state_dict().items() if ".input_quant." not in k}
    plain = build("fast", net.cfg.to_dict())
    plain.load_state_dict(state)
    return plain.to(next(net.parameters()).device)
