"""int8 inference of a recurrent network's convolutions with ONNX Runtime, for CPUs without
native bf16 (AVX2-only x86 and the like), where torch runs the network in fp32.

The network's trunk (its convolutions; the element-wise ends of the step stay in the Numba
kernels) is exported to ONNX with channels-last input and output (_Int8Graph: the layout the
step kernels write and read, so nothing is copied), every convolution in int8: the transposed
convolutions as 1x1 convolutions and a pixel shuffle, the head's output normalised per channel.
It is quantised statically: int8 weights per output channel, uint8 activations per tensor,
ranges calibrated (min-max) on what the trunk sees while the network itself (fp32) denoises
generated noisy scenes (streamdn.denoiser.int8_calibration). The model's input is the uint8
step input, which the step's kernel writes quantised; its output is the head's uint8 output
with a scale and offset per channel, which the step's tail applies as it reads it.
On CPUs whose int8 kernels saturate (x86 without VNNI) the first convolution may get uint8
weights (SATURATION_GAP). add_fake_quant / strip_fake_quant serve quantisation-aware training
([train] qat), which made the weights `fast` runs in int8 (models/weights/fast_int8.safetensors).

The quantised model depends only on the weights, the calibration, the ONNX Runtime version and
the CPU's kind of int8 arithmetic. It is built once (about 6 s for `fast` on a 2-core AMD EPYC
Zen 3, most of it calibration) and kept in the user's cache folder (STREAMDN_CACHE_DIR, else
$XDG_CACHE_HOME/streamdn, else ~/.cache/streamdn); where the cache cannot be written it is
rebuilt in memory each time.
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
from streamdn.kernels import tail_tables

if TYPE_CHECKING:
    from .fast import RecurrentDenoiser

# Part of the cache key: raise it whenever the export, the calibration (streamdn.denoiser's
# int8_calibration) or the quantisation changes.
RECIPE = 3
# On x86 CPUs without VNNI (AVX2) ONNX Runtime multiplies uint8 by int8 with an instruction that
# adds two products in 16 bits and saturates. The first convolution, whose input is the step
# input (large uint8 values are common there), can overflow so: `fast_mc` lost 0.6-0.8 dB to it
# (its head output 1.7 uint8 steps from the model's exact arithmetic on average; `fast` 0.03).
# Where the built model's gap exceeds this, the first convolution gets uint8 weights (zero point
# 128: the same values, through a kernel that does not saturate; about 3 ms more at 720p).
SATURATION_GAP = 0.25
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
    """A hash of what the int8 model depends on: weights, network config, recipe, ONNX Runtime
    and the CPU's kind of int8 arithmetic (which can change the first convolution's weights)."""
    import onnxruntime

    h = hashlib.sha256()
    h.update(json.dumps({"config": net.cfg.to_dict(), "recipe": RECIPE, "ort": onnxruntime.__version__,
                         "cpu": cpu_int8_kind()}, sort_keys=True).encode())
    for name, value in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def cpu_int8_kind() -> str:
    """"vnni" where the CPU adds uint8 x int8 products in 32 bits (AVX-512 VNNI or AVX-VNNI),
    "no-vnni" on other x86 CPUs (16-bit sums that can saturate), else the machine's name."""
    import platform

    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return machine
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return machine
    return "vnni" if {"avx512_vnni", "avx_vnni"} & set(flags) else "no-vnni"


def _as_1x1(up: torch.nn.ConvTranspose2d) -> torch.nn.Conv2d:
    """The 2x2 stride-2 transposed convolution `up` as a 1x1 convolution giving, for each input
    pixel, its 2x2 output pixels' channels in the order (row, column, channel), which
    _pixel_shuffle_nhwc puts in place."""
    w = up.weight.detach()                         # (in, out, 2, 2)
    c_in, c_out = w.shape[:2]
    conv = torch.nn.Conv2d(c_in, 4 * c_out, 1)
    with torch.no_grad():
        conv.weight.copy_(w.permute(2, 3, 1, 0).reshape(4 * c_out, c_in, 1, 1))
        conv.bias.copy_(up.bias.detach().repeat(4) if up.bias is not None else torch.zeros(4 * c_out))
    return conv


def _pixel_shuffle_nhwc(x: torch.Tensor, h: Any, w: Any, c: int) -> torch.Tensor:
    """(1, 4c, h, w) in the order of _as_1x1 -> (1, c, 2h, 2w). Done channels-last, it moves
    whole runs of 2c values (a transpose ONNX Runtime runs on uint8 at memory speed); its
    DepthToSpace on uint8 took 14 ms at 720p, longer than the convolution before it."""
    y = x.permute(0, 2, 3, 1).reshape(1, h, w, 2, 2 * c).permute(0, 1, 3, 2, 4).reshape(1, 2 * h, 2 * w, c)
    return y.permute(0, 3, 1, 2)


class _Int8Graph(torch.nn.Module):
    """The trunk as the int8 model computes it (the same function in fp32, up to rounding):
    channels-last (1, H, W, C) input and output, H and W multiples of 4 (of 2 without the
    eighth-resolution level); each transposed convolution as a 1x1 convolution and a pixel
    shuffle (ONNX Runtime has no int8 transposed convolution on the CPU: in fp32 it was a fifth
    of the int8 model's time); the head's output normalised per channel to [-1, 1] by
    `(y - offset) / scale`, folded into its weights, so that one uint8 range fits the residual
    (about +-0.3) and the gate logits (-4.5 to 7) alike. The caller applies scale and offset."""

    def __init__(self, net: RecurrentDenoiser, scale: torch.Tensor, offset: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.up = _as_1x1(net.up)
        self.up2 = _as_1x1(net.up2) if net.cfg.deep else None
        head = net.head
        self.head = torch.nn.Conv2d(head.in_channels, head.out_channels, 3, padding=1)
        with torch.no_grad():
            self.head.weight.copy_(head.weight / scale[:, None, None, None])
            self.head.bias.copy_((head.bias - offset) / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, relu = self.net, torch.nn.functional.relu
        h, w = x.shape[1], x.shape[2]
        x = x.permute(0, 3, 1, 2)
        f1 = relu(n.enc(x))
        d = relu(n.down(f1))
        if self.up2 is not None:
            e = relu(n.down2(d))
            for conv in n.mid2:
                e = relu(conv(e))
            d = d + _pixel_shuffle_nhwc(self.up2(e), h // 4, w // 4, self.up2.out_channels // 4)
        for conv in n.mid:
            d = relu(conv(d))
        u = _pixel_shuffle_nhwc(relu(self.up(d)), h // 2, w // 2, self.up.out_channels // 4)
        return self.head(u + f1).permute(0, 2, 3, 1)


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


def head_range(net: RecurrentDenoiser, calib: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scale and offset of `net`'s head output over the calibration inputs: the
    output's range is offset +- scale."""
    lo = hi = None
    with torch.no_grad():
        for x in calib:
            y = net.trunk(torch.from_numpy(x).permute(0, 3, 1, 2).float()).transpose(0, 1).flatten(1)
            ylo, yhi = y.min(dim=1).values, y.max(dim=1).values
            lo = ylo if lo is None else torch.minimum(lo, ylo)
            hi = yhi if hi is None else torch.maximum(hi, yhi)
    assert lo is not None and hi is not None
    return torch.clamp((hi - lo) / 2, min=1e-3), (hi + lo) / 2


def _unsigned_weights(graph: Any, conv: Any) -> None:
    """The int8 weights of `conv` as uint8 with zero point 128 (the same values)."""
    from onnx import numpy_helper

    dq = next(n for n in graph.node if conv.input[1] in n.output)
    inits = {t.name: t for t in graph.initializer}
    w = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int16)
    zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.int16)
    inits[dq.input[0]].CopyFrom(numpy_helper.from_array((w + 128).astype(np.uint8), dq.input[0]))
    inits[dq.input[2]].CopyFrom(numpy_helper.from_array((zp + 128).astype(np.uint8), dq.input[2]))


def _quantise(x: np.ndarray, scale: float, zero: float) -> np.ndarray:
    """x as the int8 model's uint8 input (ONNX QuantizeLinear: round half to even, saturate)."""
    return np.clip(np.rint(x / np.float32(scale)) + zero, 0, 255).astype(np.uint8)


def _rounding_gap(model: bytes, calib: list[np.ndarray]) -> float:
    """Mean |difference|, in uint8 steps of the head output, between ONNX Runtime's int8 kernels
    and the model's exact arithmetic (every QuantizeLinear and DequantizeLinear as written, in
    fp32) over some calibration inputs: about 0.03 where the kernels round as the model says."""
    import onnxruntime as ort

    sessions = []
    for exact in (False, True):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = torch.get_num_threads()
        if exact:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions.append(ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"]))
    gaps = [np.abs(sessions[0].run(None, {"x": x})[0].astype(np.int16) - sessions[1].run(None, {"x": x})[0]).mean()
            for x in calib[::3]]
    return float(np.mean(gaps))


def quantize(net: RecurrentDenoiser, calib: list[np.ndarray]) -> bytes:
    """The int8 ONNX model (serialised) of `net`'s trunk (_Int8Graph), calibrated on `calib`
    (min-max). Its input is the uint8 step input (the first QuantizeLinear is taken out:
    q = round(x / input_scale) + input_zero, metadata "streamdn.input_scale" and
    "streamdn.input_zero"), its output the head's uint8 output (the last DequantizeLinear is
    taken out; "streamdn.head_scale" and "streamdn.head_offset", JSON lists, turn it into the
    head output: y = q * head_scale + head_offset per channel)."""
    import onnx
    from onnx import numpy_helper

    channels = calib[0].shape[-1]
    scale, offset = head_range(net, calib)
    with tempfile.TemporaryDirectory(prefix="streamdn-int8-") as tmp:
        fp32, int8 = Path(tmp) / "trunk.onnx", Path(tmp) / "trunk-int8.onnx"
        module = _Int8Graph(net, scale, offset).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the exporter's notes on tracing and its deprecation: not the user's to read
            torch.onnx.export(module, (torch.zeros(1, 64, 64, channels),), str(fp32), input_names=["x"],
                              output_names=["y"], opset_version=17, dynamo=False,
                              dynamic_axes={"x": {1: "h", 2: "w"}, "y": {1: "h", 2: "w"}})
        quantize_file(fp32, int8, calib)
        model = onnx.load(str(int8))
    graph = model.graph
    out = graph.output[0]
    dq = next(n for n in graph.node if out.name in n.output)
    if dq.op_type != "DequantizeLinear":
        raise RuntimeError(f"the int8 model ends in {dq.op_type}, not a DequantizeLinear")
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    q_scale, q_zero = float(consts[dq.input[1]]), float(consts[dq.input[2]])
    graph.node.remove(dq)
    out.name = dq.input[0]
    out.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    step = scale.numpy().astype(np.float64) * q_scale
    # The input's QuantizeLinear goes too: the step's kernel writes the uint8 input itself.
    x = graph.input[0]
    feeds = {x.name} | {o for n in graph.node if n.op_type == "Transpose" and n.input[0] == x.name for o in n.output}
    xq = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in feeds)
    in_scale, in_zero = float(consts[xq.input[1]]), float(consts[xq.input[2]])
    graph.node.remove(xq)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == xq.output[0]:
                node.input[k] = xq.input[0]
    x.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    for info in graph.value_info:          # the transposed input is uint8 now too
        if info.name in feeds:
            info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    props = {"streamdn.head_scale": json.dumps(step.tolist()),
             "streamdn.head_offset": json.dumps((offset.numpy() - q_zero * step).tolist()),
             "streamdn.input_scale": repr(in_scale), "streamdn.input_zero": repr(in_zero)}
    onnx.helper.set_model_props(model, props)
    gap = _rounding_gap(model.SerializeToString(), [_quantise(c, in_scale, in_zero) for c in calib])
    if gap > SATURATION_GAP:
        _unsigned_weights(graph, next(n for n in graph.node if n.op_type == "Conv"))
        onnx.helper.set_model_props(model, {**props, "streamdn.first_conv": f"uint8 weights (int8 gap {gap:.2f} steps)"})
    return model.SerializeToString()


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
    """The trunk on ONNX Runtime: the (H, W, C) step input, uint8 as `input_scale` and
    `input_zero` say (`head`) or float32 (`__call__`), -> the head output (H, W, C'), uint8 with
    a per-channel scale and offset (`head`) or float32 (`__call__`).

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
        meta = self.session.get_modelmeta().custom_metadata_map
        self.scale = np.asarray(json.loads(meta["streamdn.head_scale"]), np.float32)
        self.offset = np.asarray(json.loads(meta["streamdn.head_offset"]), np.float32)
        self.input_scale = float(meta["streamdn.input_scale"])
        self.input_zero = float(meta["streamdn.input_zero"])
        # The step's tail looks the head's nonlinearities up (streamdn.kernels.step_tail_lut).
        # (step_tail_lut, step_tail_display_lut; a raw-state network's tail dequantises instead).
        self.tail_table = None if net.cfg.raw_state else tail_tables(self.scale, self.offset, display=net.cfg.motion)

    def head(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The uint8 head output of the uint8 step input `x` and its channels' scale and offset
        (y = q * scale + offset)."""
        h, w = x.shape[:2]
        m = 4 if self.deep else 2
        ph, pw = -h % m, -w % m
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
        q: Any = self.session.run(None, {"x": x[None]})[0][0]
        return (q[:h, :w] if (ph or pw) else q), self.scale, self.offset

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The float32 head output of the float32 step input `x`."""
        q, scale, offset = self.head(_quantise(x, self.input_scale, self.input_zero))
        return q * scale + offset


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
    int8 model's; gradients pass straight through. `dims`: the axes one scale spans ((1, 2, 3)
    for a Conv2d; (0,) for a transposed convolution, which the int8 model runs as a 1x1
    convolution with one output channel per output channel and position)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = torch.clamp(w.detach().abs().amax(dim=self.dims, keepdim=True), min=1e-8) / 127.0
        q = torch.clamp(torch.round(w / scale), -127.0, 127.0) * scale
        return w + (q - w).detach()


class _ChannelQuant(torch.nn.Module):
    """Fake uint8 quantisation of the head's output with a range per channel (running minimum
    and maximum, as _ActivationQuant): what the int8 model's per-channel normalised head output
    amounts to."""

    def __init__(self, channels: int, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.full((channels,), float("nan")))
        self.register_buffer("hi", torch.full((channels,), float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            flat = x.detach().transpose(0, 1).flatten(1).float()
            lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
            if torch.isnan(self.lo).any():
                self.lo.copy_(lo)
                self.hi.copy_(hi)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        lo, hi = self.lo.view(1, -1, 1, 1), self.hi.view(1, -1, 1, 1)
        scale = torch.clamp(hi - lo, min=2e-3) / 255.0
        zero = torch.round(-lo / scale)     # the uint8 value of lo is 0 (the range need not hold zero)
        q = (torch.clamp(torch.round(x / scale) + zero, 0.0, 255.0) - zero) * scale
        return x + (q - x).detach()


def _convs(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def add_fake_quant(net: RecurrentDenoiser) -> None:
    """Makes `net` compute as its int8 model does, for quantisation-aware training: the input of
    every convolution fake-quantised per tensor in uint8, the weights of every convolution per
    output channel in int8, the head's output per channel in uint8. Undo with strip_fake_quant;
    the state dict meanwhile holds the ranges and the float weights under parametrizations
    (checkpoints resume only into a network with fake quantisation)."""
    from torch.nn.utils import parametrize

    for _, conv in _convs(net):
        conv.add_module("input_quant", _ActivationQuant())
        conv.register_forward_pre_hook(_quantise_input)
        dims = (0,) if isinstance(conv, torch.nn.ConvTranspose2d) else (1, 2, 3)
        parametrize.register_parametrization(conv, "weight", _WeightQuant(dims))
    net.head.add_module("output_quant", _ChannelQuant(net.head.out_channels))
    net.head.register_forward_hook(_quantise_output)


def _quantise_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    quant = getattr(module, "input_quant", None)
    return None if quant is None else (quant(args[0]), *args[1:])


def _quantise_output(module: torch.nn.Module, _args: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
    return module.output_quant(out)


def strip_fake_quant(net: RecurrentDenoiser) -> RecurrentDenoiser:
    """A copy of `net` without fake quantisation: its float weights, as save_weights writes them."""
    from .fast import build

    state = {k.replace(".parametrizations.weight.original", ".weight"): v.detach().clone()
             for k, v in net.state_dict().items() if ".input_quant." not in k and ".output_quant." not in k}
    plain = build("fast", net.cfg.to_dict())
    plain.load_state_dict(state)
    return plain.to(next(net.parameters()).device)
