"""The trained networks behind the FrameModel API: packing with streamdn.kernels, the recurrent
step on a device in the right dtype, unpacking; and the safetensors weight files they load from."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from streamdn.errors import ConfigError, ModelNotFoundError, warn
from streamdn.frames import Frame
from streamdn.kernels import (block_noise_stats, fit_noise_curve, frame_difference, is_scene_cut, long_average,
                              mean_input, mean_output, noise_map, pack_yuv420, packed_luma, step_input,
                              step_input_count, step_tail, step_tail_display, step_tail_display_lut, step_tail_lut,
                              step_tail_raw, unpack_yuv420)

from .chroma_edges import Scratch, restore_chroma_edges
from .fast import IN_CH, MAX_COUNT, SIGMA_CH, RecurrentDenoiser, build
from .mosaic import LongAverage, MosaicAverage, ShiftGuess, shift_packed
from .motion import StateWarper
from .registry import FrameModel, ModelInfo

FORMAT = "streamdn-net-1"   # the metadata "format" key of our weight files
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def save_weights(net: RecurrentDenoiser, path: str | Path, arch: str, extra: dict[str, str] | None = None) -> Path:
    """Writes a self-describing safetensors file: the state dict plus metadata "format", "arch"
    and "config" (JSON of the NetConfig), and any `extra` string metadata."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "arch": arch, "config": json.dumps(net.cfg.to_dict()), **(extra or {})}
    state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a streamdn weight file (no tensors are read).

    Raises:
        ModelNotFoundError: the file is missing, not safetensors, or not a streamdn network.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"weights file '{path}' does not exist; pass a .safetensors file written by "
                                 f"`streamdn train` or a name from `streamdn models`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for a bad header
        raise ModelNotFoundError(f"'{path}' is not a readable safetensors file ({err}); weights must be "
                                 f".safetensors written by `streamdn train`.") from err
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise ModelNotFoundError(f"'{path}' holds no streamdn network (metadata 'format' is "
                                 f"{meta.get('format')!r}, expected {FORMAT!r}).")
    return meta


def load_weights(path: str | Path) -> tuple[RecurrentDenoiser, dict[str, str]]:
    """Builds the video network a weight file describes and loads its tensors (safetensors only:
    no pickle is ever read). Returns the network (float32, CPU, eval mode) and the metadata.

    Raises:
        ModelNotFoundError: see read_metadata; a still-image network's file
            (streamdn.models.picture.load_photo_weights reads those); or the tensors do not fit
            the architecture.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("family", "video") != "video":
        raise ModelNotFoundError(f"'{path}' holds a still-image network ('{meta['arch']}'), not a video network; "
                                 f"use it to denoise pictures, or give a video network here.")
    try:
        # Files written before NetConfig.deep existed have no eighth-resolution level, whatever
        # their preset has now.
        net = build(meta["arch"], {"deep": 0, **json.loads(meta.get("config", "{}"))})
        net.load_state_dict(load_file(str(path)))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelNotFoundError(f"'{path}': the weights do not match architecture '{meta['arch']}' "
                                 f"({err}); re-export them with `streamdn train`.") from err
    return net.eval(), meta


# Below these luma noise levels (the frame's blind sigma, 8-bit units) the output leans back to
# the input; chosen on training-style clips (python docs/fast/low_noise_blend.py).
LOW_NOISE_BLEND = (0.5, 3.0)

# A moving camera is measured against the long average's canvas on every 2nd frame (MosaicAverage).
MOSAIC_MEASURE_EVERY = 2
# Without a flow (`fast`), a frame is placed by phase correlation between measures only where it
# agrees with the move measured last within this (px): a steady pan of a photograph (about a
# third of the frames on coffee at 1.3 px/frame, same PSNR as measuring every frame). On the
# bench's synthetic clip (each frame resampled bilinearly, so its sharpness changes with the
# sub-pixel phase) its estimate is off by up to 0.45 px and every frame is measured.
SHIFT_AGREE = 0.15

# A plain recurrent network (`fast`) runs on the long average rather than on the noisy frame,
# with the noise map of what it sees (streamdn.kernels.mean_input): the average is taken in
# from MEAN_INPUT[0] to MEAN_INPUT[1] frames, counted as the fewest any sample within
# MEAN_INPUT_REACH x MEAN_INPUT_REACH of it holds (chroma grid), so the few frames a moving
# subject's texture happens to match, and the edge of what the mean rejected, do not blur it
# or leave a trail. Validation clips awgn20 / awgn30 / pg_lowlight, ramps 3-6 / 4-8 / 5-10 /
# 6-12: 33.31 / 33.23 / 33.13 / 33.03 dB on awgn20, 32.06 / 32.01 / 31.94 / 31.86 on
# pg_lowlight; a textured subject crossing a texture of the same kind (320x240, 2 px/frame),
# its trail against the network alone: -0.3..-0.7 / 0.0 / - / +0.1 dB. The reach of 5 against
# 1 (ramp 3-6): the `temporal` object shots' trails +0.7 / 0.0 dB (chelsea / coffee), their
# subjects +0.3 / +0.4, a pan of 3 px/frame -0.24 / -0.14 (its incoming edge starts later).
MEAN_INPUT = (4.0, 8.0)
MEAN_INPUT_REACH = 5


# A plain network's still-camera average (no flow): the camera counts as still although phase
# correlation found a move (of a pixel or more) where no move lines the frames up with under this
# fraction of the error of that move (NetworkModel._camera_moves). The `temporal` shots at 320x240
# and 576x384: a subject crossing a still background 0.92-0.98, pans of 0.5 px/frame 0.995-1.002,
# of 1 px/frame 1.09-1.10.
STILL_MARGIN = 0.99


def low_noise_weight(sigma_y: float, blend: tuple[float, float]) -> float:
    """The weight of a network's output against its input for a frame of luma noise `sigma_y`
    (8-bit units) under the low-noise blend (s0, s1): 0 up to s0, 1 from s1 on (always 1 when s1
    is 0: no blend; inf: 1)."""
    s0, s1 = blend
    return min(1.0, max(0.0, (sigma_y - s0) / max(s1 - s0, 1e-6))) if s1 > 0.0 else 1.0


class _StateBuffers:
    """The arrays a fused CPU step writes and the next step reads (hidden state, carried
    estimate, count), in two sets used in turn: a step writes one set while the state it reads
    is in the other, and by then nothing refers to the set of two steps ago. Fresh arrays of
    several megabytes each step cost their page faults again every time (about 2 ms a 720p
    step). Arrays the caller gets back are never taken from here."""

    def __init__(self) -> None:
        self._sets: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        self._turn = 0

    def next_step(self) -> None:
        """Changes to the other set (before a step writes its arrays)."""
        self._turn ^= 1

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The current set's float32 array `name` of `shape` (uninitialised)."""
        arrays = self._sets[self._turn]
        a = arrays.get(name)
        if a is None or a.shape != shape:
            a = arrays[name] = np.empty(shape, np.float32)
        return a


@dataclass
class Packed:
    """The network's input for one frame: what NetworkModel.pack makes from a Frame and
    NetworkModel.forward takes. Other packers (the torch tensor path, streamdn.tensors) build
    it from tensors already on the device.

    Attributes:
        cur: (1, 6, H2, W2) float32 on the model's device, channels_last, in [0, 1]: the four
            luma phases of each 2x2 block (pixel_unshuffle order), then U and V.
        sigma: (1, 3, H2, W2) the noise map (Y, U, V sigma per packed sample), [0, 1] units.
        cut: a scene cut before this frame: the step forgets the past.
        sigma_y: the frame's luma noise sigma in 8-bit units (the low-noise blend goes by it);
            inf switches the blend off for this frame.
    """

    cur: torch.Tensor
    sigma: torch.Tensor
    cut: bool
    sigma_y: float = math.inf


@dataclass
class _MeanInput:
    """A network's input made from the long average (NetworkModel._mean_input): on the device,
    `inp` and its noise map `sigma`; on the host, the input again, the frames it is worth, and
    the average with its count (for the output's blends)."""

    inp: torch.Tensor
    sigma: torch.Tensor
    host_inp: np.ndarray
    frames: np.ndarray
    avg: np.ndarray
    count: np.ndarray


class NetworkModel(FrameModel):
    """A RecurrentDenoiser on one device with the state of one stream.

    State: the previous output and hidden features, kept on the device in `forward`; cleared by
    reset(), at a detected scene cut and when the frame size changes.
    """

    impulse_filter = True

    def __init__(self, net: RecurrentDenoiser, info: ModelInfo, *, device: str = "cpu", dtype: str = "auto",
                 signal_dependent: bool = True, cut_threshold: float = 25.0, fused: bool = True,
                 low_noise_blend: tuple[float, float] = LOW_NOISE_BLEND,
                 long_average: LongAverage | None | bool | str = "auto", backend: str = "torch",
                 int8_net: RecurrentDenoiser | None = None, chroma_edges: bool = True) -> None:
        """Args:
            net: the network (its weights are moved to `device`).
            info: what `streamdn models` shows.
            device: "cpu", "cuda" or "cuda:N" (already resolved).
            dtype: compute dtype of the convolutions: "auto" (fp16 on CUDA, bf16 on CPUs with
                native bf16, else fp32), "fp32", "bf16" or "fp16". The recursive blend is float32.
            signal_dependent: shape the noise map by a per-frame fit of noise variance against
                brightness (docs/design.md §3); False gives a flat map from the per-plane sigmas.
            cut_threshold: a luma change (mean |difference|, 8-bit units) above 1.2 sigma plus
                this counts as a scene cut and resets the state (is_scene_cut).
            fused: on the CPU, run the step's element-wise ends as Numba kernels (faster; the
                same result as the torch forward).
            low_noise_blend: (s0, s1) in 8-bit units. When the frame's luma noise sigma is
                below s1, the output leans back to the input: weight of the network's output
                clip((sigma - s0) / (s1 - s0), 0, 1), so a clean picture passes through and
                faint noise is only partly removed (the network alone smooths fine detail away
                there). The recurrence keeps the network's own output. (0, 0) switches it off.
            long_average: the long average blended into the output (LongAverage; True: its
                defaults; False or None: none; "auto": its defaults, but for a plain recurrent
                network on CUDA, where the canvas would run on the host and cap a GPU's frame
                rate, LongAverage(follow=False): the mean of a still camera, on the device,
                restarted while the camera moves): for motion networks with a display residual (`fast_mc`), and
                for plain recurrent ones (`fast`), where it follows the camera (MosaicAverage,
                one stream at a time, guided by ShiftGuess), the network runs on it
                (MEAN_INPUT) and its recursion follows the camera's measured move; left out for
                batches and `follow=False`. Motion networks without a display residual ignore it.
            backend: what runs the convolutions of the fused CPU step: "torch" (in `dtype`) or
                "int8" (ONNX Runtime, streamdn.models.int8: the `int8` extra; faster on CPUs
                without native bf16: docs/backends.md). create_model's "auto" picks one
                (_auto_backend). Streams only: batches and the unfused forward run in torch.
            int8_net: the network the int8 backend quantises instead of `net` (weights trained
                for int8, of the same configuration); None: `net`.
            chroma_edges: give back the colour edges the network smoothed where the luma shows
                them (streamdn.models.chroma_edges; the shown output only, not the carried state).
        """
        self.info = info
        self.device = device
        self.dtype = _resolve_dtype(dtype, device)
        self.signal_dependent = signal_dependent
        self.cut_threshold = cut_threshold
        self.net: RecurrentDenoiser | None = net.eval().to(device).to(memory_format=torch.channels_last)
        # On the CPU the element-wise ends of the step run fused in Numba (about a fifth of the
        # step at 720p in torch); `fused=False` keeps the plain torch forward.
        # The fused kernels implement the plain recursion's step and both motion steps.
        self.fused = fused and device == "cpu"
        self.backend = _check_backend(backend, device, self.fused)
        self._int8: Any = None   # the int8 trunk (streamdn.models.int8.Int8Trunk), made at first use
        if int8_net is not None and int8_net.cfg != net.cfg:
            raise ConfigError(f"model '{info.name}': the int8 weights are of another network configuration.")
        self._int8_net = int8_net.eval() if int8_net is not None else None
        # Whether a failure to prepare int8 falls back to torch (with a warning): when the
        # backend was picked by "auto" rather than asked for (create_network sets it).
        self._int8_fallback = False
        self._warper = StateWarper() if net.cfg.motion else None
        if long_average == "auto":
            # On CUDA a plain network keeps the mean of a still camera only (on the device; the
            # canvas that follows the camera runs on the host and would cap a GPU's frame rate).
            long_average = LongAverage(follow=False) if device.startswith("cuda") and not net.cfg.motion else True
        elif isinstance(long_average, str):
            raise ConfigError(f"long_average={long_average!r}: give True, False, \"auto\" or a LongAverage.")
        if long_average is True:
            long_average = LongAverage()
        self.long_average = long_average if (long_average and (net.has_display or not net.cfg.motion)) else None
        self._avg: tuple[torch.Tensor, torch.Tensor] | None = None   # the long average and its count
        self._moved_last = False   # the camera moved at the last frame (the still camera's average)
        self._last_luma_full: torch.Tensor | None = None   # the last frame's luma, for _camera_moves
        # The long average on a canvas that follows the camera (one stream at a time), made at
        # its first use: `long_average` may be changed between streams.
        self._mosaic: MosaicAverage | None = None
        self._shift = ShiftGuess() if self._warper is None else None   # its first guess, without a flow
        s0, s1 = (float(v) for v in low_noise_blend)
        if not 0.0 <= s0 <= s1:
            raise ConfigError(f"low_noise_blend {low_noise_blend}: need 0 <= s0 <= s1 (8-bit sigma units).")
        self.low_noise_blend = (s0, s1)
        # (estimate, hidden[, count]) carried from the previous frame, at the padded size.
        self._state: tuple[torch.Tensor, ...] | None = None
        self._buffers = _StateBuffers()   # what the fused steps write and carry
        self._last_luma: np.ndarray | None = None
        self.chroma_edges = chroma_edges
        self._chroma_scratch = Scratch()   # restore_chroma_edges' work planes on the CPU

    # -- the three stages --------------------------------------------------------------------

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> Packed:
        """Frame + per-plane sigmas (8-bit units) -> packed tensors on the device."""
        packed, smap = pack_with_noise_map(frame, sigmas, self.signal_dependent)
        cut = self._is_cut(frame, sigmas[0])
        cur = torch.from_numpy(packed).permute(2, 0, 1).unsqueeze(0)   # NCHW view, channels_last memory
        sigma = torch.from_numpy(smap).permute(2, 0, 1).unsqueeze(0)
        if self.device != "cpu":
            cur, sigma = cur.to(self.device, non_blocking=True), sigma.to(self.device, non_blocking=True)
        # The low-noise blend goes by the luma sigma, except after impulse removal (Denoiser): that
        # frame reads nearly clean, but the impulses the median missed are the network's to remove.
        level = math.inf if frame.extra.get("impulses_removed") else float(sigmas[0])
        return Packed(cur, sigma, cut, level)

    def forward(self, packed: Packed) -> torch.Tensor:
        """One recurrent step; returns the (1, 6, H2, W2) float32 output (unclamped)."""
        if self.net is None:
            raise ConfigError(f"model '{self.info.name}' was closed; create a new Denoiser to continue.")
        cur, sigma = packed.cur, packed.sigma
        h2, w2 = cur.shape[-2:]
        # The U-Net halves the size once: pad odd packed sizes by replication, crop after.
        ph, pw = h2 % 2, w2 % 2
        if ph or pw:
            cur = F.pad(cur, (0, pw, 0, ph), mode="replicate")
            sigma = F.pad(sigma, (0, pw, 0, ph), mode="replicate")
        count = None
        first = packed.cut or self._state is None or self._state[0].shape != cur.shape
        mean = self._mean_input(cur, sigma, first) if self._runs_on_mean(cur) else None
        if mean is not None:
            cur, sigma = mean.inp, mean.sigma
        if first:
            prev, hidden = self.net.init_state(cur)
            has_prev = 0.0
            if self._warper is not None:
                count = self.net.zero_count(cur)
                self._warper.reset()
        else:
            prev, hidden = self._state[:2]
            has_prev = 1.0
            if mean is not None:
                prev = self._follow_camera(prev)
            if self._warper is not None:
                prev, hidden, count = self._warper.warp_tensors(cur, prev, hidden, self._state[2])
        # Whether the step's output is only read here (the long average's blend copies it),
        # so that it may be written into the state buffers.
        internal = mean is not None or (self.long_average is not None and self.long_average.follow
                                        and cur.shape[0] == 1)
        if self.fused:
            self._buffers.next_step()
        if self.fused and count is not None:
            out, state, hidden, count = self._fused_step_motion(cur, sigma, prev, hidden, count, has_prev, internal)
            self._state = (state, hidden, count)
        elif self.fused:
            out, hidden = self._fused_step(cur, sigma, prev, hidden, has_prev, internal)
            self._state = (out, hidden)
        else:
            with torch.inference_mode(), _autocast(self.device, self.dtype):
                step = self.net(cur, sigma, prev, hidden, has_prev, count)
            out, hidden = step.out, step.hidden
            self._state = (step.state, hidden) if step.count is None else (step.state, hidden, step.count)
        if mean is not None:
            out = self._mean_output(out, mean, packed.sigma_y)
        elif self.long_average is not None:
            out = self._blend_long_average(out, cur, sigma, first=has_prev == 0.0)
        if self.chroma_edges:
            # What the network took from the chroma, where the luma explains it (the shown result
            # only: the state above is the network's own).
            out = restore_chroma_edges(out, cur, sigma, scratch=self._chroma_scratch)
        out = out[..., :h2, :w2]
        w = low_noise_weight(packed.sigma_y, self.low_noise_blend)
        if w < 1.0:
            # One weight for the frame, from the luma sigma: the blind chroma sigmas read low
            # wherever chroma noise is smooth (camera noise after JPEG and 4:2:0: 0.5-0.8 against
            # 11-15 in luma), and a per-sample map reads zero on clipped black and white.
            out = torch.lerp(packed.cur, out, w)
        return out

    def unpack(self, result: torch.Tensor, frame: Frame) -> Frame:
        """(1, 6, H2, W2) output -> a Frame with `frame`'s size, depth, timing and metadata."""
        arr = result[0].permute(1, 2, 0)
        if arr.device.type != "cpu":
            arr = arr.cpu()
        y, u, v = np.empty_like(frame.y), np.empty_like(frame.u), np.empty_like(frame.v)
        unpack_yuv420(arr.numpy(), (1 << frame.bit_depth) - 1, y, u, v)
        return frame.with_planes(y, u, v)

    def _blend_long_average(self, out: torch.Tensor, cur: torch.Tensor, sigma: torch.Tensor,
                            first: bool) -> torch.Tensor:
        """Updates the long average (LongAverage) with the current frame and blends it into `out`
        where it has averaged long enough: on a canvas that follows the camera (MosaicAverage,
        one stream), or where the state's flow was exactly zero (still blocks), or, for a plain
        network (one stream), while the camera stands still (_camera_moves)."""
        la = self.long_average
        assert la is not None
        if la.follow and cur.shape[0] == 1:
            if self._mosaic is None:
                # The first guess places the frame between measures (`temporal` shots, pans of
                # 0.5-3 px/frame: within 0.02 dB of measuring every frame with the state's flow;
                # every 3rd frame lost up to 0.2 dB).
                self._mosaic = MosaicAverage(la, measure_every=MOSAIC_MEASURE_EVERY)
            self._mosaic.blend = la
            return self._blend_mosaic(out, cur, sigma, first)
        if self._warper is None and cur.shape[0] != 1:
            return out   # streams in a batch: no camera test for each, no plain network's average
        cur = cur.float()
        if first or self._avg is None or self._avg[0].shape != cur.shape:
            if cur.device.type == "cpu" and cur.shape[0] == 1:   # arrays the Numba kernel writes in place
                self._avg = (_nchw(_hwc(cur).copy()), _nchw(np.ones(cur.shape[-2:] + (1,), np.float32)))
            else:
                self._avg = (cur.clone(), torch.ones_like(cur[:, :1]))
            if self._shift is not None and cur.shape[0] == 1:
                self._shift.reset()
                self._last_luma_full = None
                self._camera_moves(cur)   # keeps this frame for the next one's guess
                self._moved_last = False
            return out
        if self.fused and cur.shape[0] == 1 and self._warper is not None:
            # On the CPU: one Numba pass (streamdn.kernels.long_average), the same as below.
            flow = self._warper.last_flow(0)
            if flow is None:
                flow = np.zeros(cur.shape[-2:] + (2,), np.float32)
            avg, count = self._avg
            lo, hi = la.match
            r0, r1 = la.ramp
            long_average(_hwc(cur), _hwc(sigma.float()), flow, _hwc(avg), _hwc(count), _hwc(out), la.k, r0, r1,
                         lo, hi, la.box, MAX_COUNT)
            return out
        # Kept where the picture is still only (there the flow is exactly zero, so the mean needs
        # no warp and is never re-interpolated); anywhere that moved it restarts from this frame.
        # Without a flow (a plain recurrent network not following the camera, one stream) the
        # mean restarts everywhere while the camera moves, and the match test restarts what
        # else moved.
        avg, count = self._avg
        if self._warper is not None:
            count = count * self._warper.still_mask(cur)
        elif self._shift is not None:
            # A plain network has no flow to tell still blocks by: while the camera moves (phase
            # correlation with the previous frame, two frames in a row: on small noisy frames a
            # single guess can be off) the mean restarts everywhere, else a slow pan's flat
            # parts, which match within the noise, would be averaged across the move.
            moves = self._camera_moves(cur)
            if moves and self._moved_last:
                count = torch.zeros_like(count)
            self._moved_last = moves
        sig6 = torch.cat([sigma[:, :1].expand(-1, 4, -1, -1), sigma[:, 1:]], 1).float()
        # A matching mean differs from the frame by noise of sigma * sqrt(1 + 1 / count).
        d = ((cur - avg).abs() / (sig6 * torch.sqrt(1.0 + 1.0 / count.clamp(min=1.0)) + 2e-3)).mean(1, keepdim=True)
        d = F.avg_pool2d(d, la.box, 1, la.box // 2, count_include_pad=False)
        lo, hi = la.match
        kept = count * ((hi - d) / (hi - lo)).clamp(0.0, 1.0)
        avg = (kept * avg + cur) / (kept + 1.0)
        count = (kept + 1.0).clamp(max=MAX_COUNT)
        self._avg = (avg, count)
        r0, r1 = la.ramp
        w = count / (count + la.k) * ((count - r0) / (r1 - r0)).clamp(0.0, 1.0)
        return torch.lerp(out, avg, w)

    def _camera_moves(self, cur: torch.Tensor) -> bool:
        """Whether the camera moved from the previous frame (True for a first frame): phase
        correlation of the half-resolution lumas (ShiftGuess, on the host) found a move of
        ShiftGuess.SNAP_GUESS px or more, and no move does not line the previous frame's luma up
        with this one's clearly better than that move to the nearest pixel (STILL_MARGIN; a move
        that rounds to none counts as a move). A textured subject moving over a still background
        can win the correlation; then the background, which no move lines up better, keeps the
        camera still."""
        assert self._shift is not None
        phases = cur.detach()[:, :4].float()
        # The luma at full resolution from its four phases (pixel_unshuffle order), kept where the
        # frame is (on a GPU only the half-resolution luma comes to the host).
        luma = F.pixel_shuffle(phases, 2)[0, 0]
        last, self._last_luma_full = self._last_luma_full, luma
        guess = self._shift.of_luma(np.ascontiguousarray(phases.mean(1)[0].cpu().numpy()))
        if guess is None or last is None or last.shape != luma.shape:
            return True
        if not guess[:2, 2].any():
            return False   # under ShiftGuess.SNAP_GUESS
        dx, dy = (int(math.copysign(math.floor(abs(float(m)) + 0.5), float(m))) for m in guess[:2, 2])
        h, w = luma.shape
        if dx == 0 and dy == 0:
            return True   # a move of under a pixel (a slow pan) cannot be told from a subject's
        if abs(dx) >= w // 2 or abs(dy) >= h // 2:
            return True
        ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
        here = luma[ys, xs]
        moved = last[ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]
        # Still where no move is clearly better (a pan of half a pixel a frame lines up as badly
        # at 0 as at 1 px: that is a move).
        return float((here - last[ys, xs]).abs().mean()) >= STILL_MARGIN * float((here - moved).abs().mean())

    def _runs_on_mean(self, cur: torch.Tensor) -> bool:
        """Whether the network runs on the long average (a plain recurrent network, one stream,
        following the camera) rather than on the frame."""
        la = self.long_average
        return la is not None and la.follow and self._warper is None and cur.shape[0] == 1

    def _mean_input(self, cur: torch.Tensor, sigma: torch.Tensor, first: bool) -> _MeanInput:
        """The long average on its canvas (MosaicAverage, on the host; the camera's move guessed
        by phase correlation with the previous frame, ShiftGuess, and measured on the frame
        against the canvas) and the network's input made from it (streamdn.kernels.mean_input)."""
        la = self.long_average
        assert la is not None and self._shift is not None
        if self._mosaic is None:
            # Phase correlation is a coarser guess than a flow (and a moving subject can pull it):
            # between measures only where it agrees with the move measured last.
            self._mosaic = MosaicAverage(la, measure_every=MOSAIC_MEASURE_EVERY, agree=SHIFT_AGREE)
        self._mosaic.blend = la
        frame, smap = (_hwc(t.detach().float().cpu()) for t in (cur, sigma))
        h2, w2 = frame.shape[:2]
        if first:
            self._shift.reset()
        luma = packed_luma(frame)
        guess: np.ndarray | None
        if not first and self._mosaic.measure_due():
            # Measured whatever the guess says: the move measured last starts the measure.
            self._shift.remember(luma)
            guess = np.eye(3)
            guess[:2, 2] = self._mosaic.last_move
        else:
            guess = self._shift(frame, luma)
        avg, count = self._mosaic.average(frame, smap, (2 * h2, 2 * w2), guess, first, luma)
        inp, inp_sigma = np.empty_like(frame), np.empty_like(smap)
        frames = np.empty_like(count)
        reach = np.ones((MEAN_INPUT_REACH, MEAN_INPUT_REACH), np.uint8)
        fewest = cv2.erode(count[..., 0], reach, borderType=cv2.BORDER_REPLICATE)[..., None]
        mean_input(frame, smap, avg, count, fewest, MEAN_INPUT[0], MEAN_INPUT[1], inp, inp_sigma, frames)
        inp_t, sigma_t = _nchw(inp), _nchw(inp_sigma)
        if inp_t.device != cur.device:
            inp_t, sigma_t = inp_t.to(cur.device), sigma_t.to(cur.device)
        return _MeanInput(inp_t, sigma_t, inp, frames, avg, count)

    def _follow_camera(self, prev: torch.Tensor) -> torch.Tensor:
        """The recursion's previous output moved along the camera's move onto this frame
        (models.mosaic.shift_packed) where the canvas measured it reliably (MosaicAverage.
        frame_move), so that the recursion keeps averaging on a pan as on a still shot; as it
        is elsewhere (the recursion's gate then restarts what moved)."""
        move = self._mosaic.frame_move if self._mosaic is not None else None
        if move is None or not move.any() or prev.shape[0] != 1:
            return prev
        moved = _nchw(shift_packed(_hwc(prev.detach().float().cpu()), float(move[0]), float(move[1])))
        return moved if moved.device == prev.device else moved.to(prev.device)

    def _mean_output(self, out: torch.Tensor, mean: _MeanInput, sigma_y: float) -> torch.Tensor:
        """The network's output on the mean (streamdn.kernels.mean_output): the low-noise blend
        by the noise left in its input per pixel, then the long average blended in where it has
        averaged long enough (a network's output keeps a bias that the plain mean has not)."""
        la = self.long_average
        assert la is not None
        host = _hwc(out.detach().float().cpu())   # the carried state: left as it is
        res = np.empty(host.shape, np.float32)
        s0, s1 = self.low_noise_blend
        mean_output(host, mean.host_inp, mean.frames, mean.avg, mean.count, sigma_y, s0, s1, la.k,
                    la.ramp[0], la.ramp[1], res)
        res_t = _nchw(res)
        return res_t if res_t.device == out.device else res_t.to(out.device)

    def _blend_mosaic(self, out: torch.Tensor, cur: torch.Tensor, sigma: torch.Tensor, first: bool) -> torch.Tensor:
        """The long average on its canvas (MosaicAverage), on the host; the camera's move first
        guessed from the state's flow (its median: exactly none where most blocks kept zero
        motion, and a still camera is then measured on every few frames only)."""
        assert self._mosaic is not None and self._warper is not None
        host = [_hwc(t.detach().float().cpu()) for t in (cur, sigma, out)]
        host[2] = host[2].copy()   # the output may share memory with the carried state
        h2, w2 = host[0].shape[:2]
        # The flow is in half-resolution pixels from this frame to the previous state (None:
        # every block kept zero motion).
        flow = self._warper.last_flow(0)
        guess = np.eye(3)
        if flow is not None and flow.shape[:2] == (h2, w2):
            sample = flow[::4, ::4]
            guess[0, 2], guess[1, 2] = 2.0 * float(np.median(sample[..., 0])), 2.0 * float(np.median(sample[..., 1]))
        self._mosaic.step(host[0], host[1], host[2], (2 * h2, 2 * w2), guess, first)
        res = _nchw(host[2])
        return res if res.device == out.device else res.to(out.device)

    def _fused_step(self, cur: torch.Tensor, sigma: torch.Tensor, prev: torch.Tensor, hidden: torch.Tensor,
                    has_prev: float, internal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The CPU step with the element-wise ends in Numba (streamdn.kernels.step_input and
        step_tail, one pass each) and the convolutions in torch; same result as the network's
        forward (tested). `internal`: the output is not handed to the caller (it goes into the
        state buffers, as the hidden state always does)."""
        assert self.net is not None
        _, _, h, w = cur.shape
        k = self.net.cfg.hidden
        int8 = self._int8_trunk()
        x = np.empty((h, w, 2 * IN_CH + SIGMA_CH + 1 + k), np.uint8 if int8 else np.float32)
        step_input(_hwc(cur), _hwc(prev), _hwc(sigma), _hwc(hidden), x, *_input_quantisation(int8))
        y, y_scale, y_offset = self._trunk(x)
        out = self._buffers.array("out", (h, w, IN_CH)) if internal else np.empty((h, w, IN_CH), np.float32)
        new_hidden = self._buffers.array("hidden", (h, w, k))
        if int8 is not None:   # a uint8 head: its nonlinearities looked up
            step_tail_lut(y, int8.tail_table, _hwc(cur), _hwc(prev), has_prev, out, new_hidden)
        else:
            step_tail(y, y_scale, y_offset, _hwc(cur), _hwc(prev), has_prev, out, new_hidden)
        return _nchw(out), _nchw(new_hidden)

    def _int8_trunk(self) -> Any:
        """The int8 trunk (streamdn.models.int8.Int8Trunk) when the int8 backend runs, made at
        first use; None on torch (also after a fallback from an int8 that `auto` picked)."""
        if self.backend == "int8" and self._int8 is None:
            from .int8 import Int8Trunk

            try:
                self._int8 = Int8Trunk(self._int8_net or self.net)
            except Exception as err:   # a broken ONNX Runtime install, an exporter that fails: torch does the job
                if not self._int8_fallback:
                    raise
                warn(f"the int8 backend could not be prepared ({type(err).__name__}: {err}); running the network "
                     f"in torch (--backend torch skips int8).")
                self.backend = "torch"
        return self._int8

    def _trunk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fused step's convolutions on the model's backend: the (H, W, C) step input
        (float32 for torch; uint8 for the int8 backend, see _input_quantisation) -> the head
        output (H, W, C') (a channels-last view; float32 from torch, uint8 from the int8
        backend) and its channels' scale and offset (C',) float32, which the step's tail applies."""
        assert self.net is not None
        int8 = self._int8_trunk()
        if int8 is not None:
            return int8.head(x)
        with torch.inference_mode(), _autocast(self.device, self.dtype):
            y = self.net.trunk(_nchw(x))
        c = y.shape[1]
        return _hwc(y.float()), np.ones(c, np.float32), np.zeros(c, np.float32)

    def _fused_step_motion(self, cur: torch.Tensor, sigma: torch.Tensor, prev: torch.Tensor, hidden: torch.Tensor,
                           count: torch.Tensor, has_prev: float, internal: bool = False) -> tuple[torch.Tensor, ...]:
        """_fused_step for motion networks (streamdn.kernels.step_input_count, then step_tail_raw
        or, with a display residual, step_tail_display). Returns output, carried state, hidden
        state and count (`internal`: as _fused_step's)."""
        assert self.net is not None
        _, _, h, w = cur.shape
        k = self.net.cfg.hidden
        raw = self.net.cfg.raw_state
        int8 = self._int8_trunk()
        x = np.empty((h, w, 2 * IN_CH + SIGMA_CH + 2 + k), np.uint8 if int8 else np.float32)
        cnt = _hwc(count)
        step_input_count(_hwc(cur), _hwc(prev), _hwc(sigma), cnt, _hwc(hidden), raw, x, *_input_quantisation(int8))
        y, y_scale, y_offset = self._trunk(x)
        buffers = self._buffers
        state = buffers.array("state", (h, w, IN_CH))
        out = buffers.array("out", (h, w, IN_CH)) if internal else np.empty((h, w, IN_CH), np.float32)
        new_count, new_hidden = buffers.array("count", (h, w, 1)), buffers.array("hidden", (h, w, k))
        if int8 is not None and int8.tail_table is not None:   # a uint8 head: exp and tanh looked up
            step_tail_display_lut(y, int8.tail_table, _hwc(cur), _hwc(prev), cnt, has_prev, MAX_COUNT, out, state,
                                  new_count, new_hidden)
        else:
            tail = step_tail_raw if raw else step_tail_display
            tail(y, y_scale, y_offset, _hwc(cur), _hwc(prev), cnt, has_prev, MAX_COUNT, out, state, new_count,
                 new_hidden)
        return _nchw(out), _nchw(state), _nchw(new_hidden), _nchw(new_count)

    def is_scene_cut(self, score: float, sigma_y: float) -> bool:
        """Whether a luma change of `score` (mean |difference| with the previous frame, 8-bit
        units) at luma noise `sigma_y` (8-bit units) is a scene cut for this model
        (streamdn.kernels.is_scene_cut with its cut_threshold)."""
        return is_scene_cut(score, sigma_y, self.cut_threshold)

    def reset(self) -> None:
        self._state = None
        self._avg = None
        if self._mosaic is not None:
            self._mosaic.reset()
        if self._shift is not None:
            self._shift.reset()
        self._last_luma = None
        if self._warper is not None:
            self._warper.reset()

    def clone(self) -> NetworkModel:
        """The same network (shared, not copied) and settings with no temporal state."""
        twin = copy.copy(self)
        if self._warper is not None:
            twin._warper = StateWarper()   # the flow estimator keeps per-call buffers: one each
        twin._mosaic = None
        twin._buffers = _StateBuffers()
        twin._chroma_scratch = Scratch()
        twin._shift = ShiftGuess() if self._warper is None else None
        twin.reset()
        return twin

    def close(self) -> None:
        """Drops the network and state; frees cached CUDA memory. Idempotent."""
        self._state = None
        self._buffers = _StateBuffers()
        self._chroma_scratch = Scratch()
        self._last_luma = None
        self._last_luma_full = None
        self._int8 = None
        if self.net is not None:
            self.net = None
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()

    # -- helpers ------------------------------------------------------------------------------

    def _is_cut(self, frame: Frame, sigma_y: float) -> bool:
        """Compares the luma with the previous frame's on a sparse grid (pack runs in stream order)."""
        last, self._last_luma = self._last_luma, frame.y
        if last is None or last.shape != frame.y.shape or last.dtype != frame.y.dtype:
            return False
        score = frame_difference(frame.y, last, 4) * 255.0 / ((1 << frame.bit_depth) - 1)
        return self.is_scene_cut(score, sigma_y)


def pack_with_noise_map(frame: Frame, sigmas: tuple[float, float, float],
                        signal_dependent: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A frame packed for the networks, (H2, W2, 6) float32 in [0, 1] (streamdn.kernels.pack_yuv420),
    and its noise map, (H2, W2, 3) float32: the sigmas of Y, U, V (8-bit units, given) in [0, 1]
    units, shaped by brightness with the frame's fitted noise curve when `signal_dependent`."""
    maxv = float((1 << frame.bit_depth) - 1)
    h2, w2 = (frame.height + 1) // 2, (frame.width + 1) // 2
    packed = pack_yuv420(frame.y, frame.u, frame.v, 1.0 / maxv, np.empty((h2, w2, 6), np.float32))
    curve = noise_curve(frame) if signal_dependent else np.array([1.0, 0.0, 0.0])
    sig = np.asarray(sigmas, np.float32) / np.float32(255.0)
    return packed, noise_map(packed, sig, curve, np.empty((h2, w2, 3), np.float32))


NOISE_BLOCK = 16   # luma pixels per side of the blocks the noise statistics are taken on
_STATS_KEY = "luma_block_stats"   # frame.extra: (the luma plane they were taken on, the statistics)


def luma_block_stats(frame: Frame) -> np.ndarray | None:
    """The per-block noise statistics of a frame's luma (streamdn.kernels.block_noise_stats on
    NOISE_BLOCK-pixel blocks), or None for a frame narrower than one block. Taken once per luma
    plane: the blind noise estimate (streamdn.Denoiser.estimate_sigmas) and the noise curve of
    the map (noise_curve) both need them, so the first keeps them in `frame.extra` for the
    second (a frame given new planes takes them afresh)."""
    h, w = frame.y.shape
    if h < NOISE_BLOCK or w < NOISE_BLOCK:
        return None
    cached = frame.extra.get(_STATS_KEY)
    if isinstance(cached, tuple) and cached[0] is frame.y:
        return cached[1]
    stats = block_noise_stats(frame.y, NOISE_BLOCK, np.empty((h // NOISE_BLOCK, w // NOISE_BLOCK, 2), np.float32))
    frame.extra[_STATS_KEY] = (frame.y, stats)
    return stats


def noise_curve(frame: Frame) -> np.ndarray:
    """The luma noise variance against brightness, fitted on 16x16 blocks (flat below 32 px)."""
    h, w = frame.y.shape
    if h < 2 * NOISE_BLOCK or w < 2 * NOISE_BLOCK:
        return np.array([1.0, 0.0, 0.0])
    stats = luma_block_stats(frame)
    assert stats is not None
    return fit_noise_curve(stats, float((1 << frame.bit_depth) - 1))


def _input_quantisation(int8: Any) -> tuple[float, float]:
    """step_input's (inv_scale, zero) for the int8 trunk `int8` (its uint8 input), or (0, 0): a
    float32 input for torch."""
    return (1.0 / int8.input_scale, int8.input_zero) if int8 is not None else (0.0, 0.0)


def _hwc(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) CPU tensor -> its (H, W, C) float32 array (a view when channels_last)."""
    return t[0].permute(1, 2, 0).contiguous().numpy()


def _nchw(a: np.ndarray) -> torch.Tensor:
    """(H, W, C) float32 array -> a (1, C, H, W) channels_last tensor sharing its memory."""
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    names = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.float16
        return torch.bfloat16 if _cpu_has_bf16() else torch.float32
    if dtype not in names:
        raise ConfigError(f"dtype '{dtype}' is not valid; use auto, fp32, bf16 or fp16.")
    return names[dtype]


def _check_backend(backend: str, device: str, fused: bool) -> str:
    """`backend` ("torch" or "int8"; "auto", which create_model resolves first, is torch here)
    once checked against the device and the installed packages."""
    if backend not in ("auto", "torch", "int8"):
        raise ConfigError(f"backend '{backend}' is not valid; use auto, torch or int8.")
    if backend == "auto":
        return "torch"
    if backend == "int8":
        if device != "cpu" or not fused:
            raise ConfigError("the int8 backend runs the fused CPU step only: use device cpu (and fused=True), "
                              "or backend torch.")
        from .int8 import INSTALL_HINT, available

        if not available():
            raise ConfigError(f"the int8 backend needs ONNX Runtime: {INSTALL_HINT}, or use backend torch.")
    return backend


def int8_pays() -> bool:
    """Whether the int8 backend is worth using here: ONNX Runtime installed and a CPU without
    native bf16. With native bf16 torch runs the network about as fast (2-core AMD EPYC Zen 5,
    1280x720: bf16 and int8 trunks both about 32 fps) or faster (Intel Xeon with AMX: 36.7
    against 17.4)."""
    from .int8 import available

    return available() and not _cpu_has_bf16()


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: str, dtype: torch.dtype) -> torch.autocast:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=dtype, enabled=dtype != torch.float32)


def create_network(arch: str, info: ModelInfo, weights: str | Path | None = "default", **options: object) -> NetworkModel:
    """A NetworkModel for a registered architecture.

    Args:
        arch: a preset of streamdn.models.fast.PRESETS.
        info: its registry entry.
        weights: "default" (the shipped models/weights/<arch>.safetensors, random init if none
            ships), None (random init, for tests), or a path to a .safetensors file.
        **options: NetworkModel options (device, dtype, backend, signal_dependent, ...), and
            int8_weights: a weight file for the int8 backend (its int8_net).
    """
    weights = resolve_weights(arch, weights)
    if weights is None:
        torch.manual_seed(0)
        net = build(arch)
    else:
        net, _ = load_weights(weights)
    int8_weights = options.pop("int8_weights", None)
    asked = options.get("backend", "auto")
    options["backend"] = _auto_backend(options, int8_weights is not None)
    if int8_weights is not None and options["backend"] == "int8" and Path(int8_weights) != Path(str(weights)):
        options["int8_net"] = load_weights(int8_weights)[0]     # weights of their own for int8
    model = NetworkModel(net, info, **options)  # type: ignore[arg-type]
    model._int8_fallback = asked == "auto"
    return model


def _auto_backend(options: dict[str, object], int8_trained: bool) -> object:
    """The backend create_model's "auto" (the default) means: int8 for shipped weights validated
    in int8 (their card's [int8] weights) in a fused CPU step at the default dtype on a CPU where
    int8 pays (int8_pays), else torch. Any other value as given."""
    backend = options.get("backend", "auto")
    if backend != "auto":
        return backend
    default_step = (options.get("device", "cpu") == "cpu" and options.get("dtype", "auto") == "auto"
                    and options.get("fused", True))
    return "int8" if int8_trained and default_step and int8_pays() else "torch"


def resolve_weights(arch: str, weights: str | Path | None) -> str | Path | None:
    """The weight file a registered network loads: "default" is the shipped
    models/weights/<arch>.safetensors, or None (random init) when none ships; anything else as given."""
    if weights == "default":
        shipped = WEIGHTS_DIR / f"{arch}.safetensors"
        return shipped if shipped.is_file() else None
    return weights


def load_network(path: str | Path, **options: object) -> NetworkModel:
    """A NetworkModel from a user's .safetensors file of a video network (streamdn.models.cards
    sends still-image networks' files to streamdn.models.picture)."""
    net, meta = load_weights(path)
    options["backend"] = _auto_backend(options, False)   # a user's weights: int8 when asked for
    return NetworkModel(net, info_from_metadata(path, meta), **options)  # type: ignore[arg-type]


def info_from_metadata(path: str | Path, meta: dict[str, str]) -> ModelInfo:
    """The ModelInfo of a weight file, from its metadata."""
    val = meta.get("val_psnr")
    macs = meta.get("macs_per_px")
    params = meta.get("params")
    return ModelInfo(
        name=str(path), kind="network", temporal=meta.get("family", "video") == "video",
        summary=meta.get("summary") or f"{meta['arch']} network from {Path(path).name}",
        macs_per_px=float(macs) if macs else None, params=int(params) if params else None,
        trained_on=meta.get("trained_on"), val_psnr=float(val) if val and math.isfinite(float(val)) else None,
    )


def time_step(arch: str = "fast", width: int = 1280, height: int = 720, dtype: str = "bf16", *,
              threads: int = 2, frames: int = 20, device: str = "cpu") -> float:
    """Frames per second of the network step alone (no packing, no noise estimate) on a random
    (height, width) frame after 3 warm-up steps; the figure docs/design.md §3 budgets.

    Example:
        python -c "from streamdn.models.network import time_step; print(time_step('fast', dtype='bf16'))"
    """
    import time

    torch.set_num_threads(threads)
    net = build(arch).eval().to(device).to(memory_format=torch.channels_last)
    h2, w2 = (height + 1) // 2, (width + 1) // 2
    h2, w2 = h2 + h2 % 2, w2 + w2 % 2
    cur = torch.rand(1, 6, h2, w2, device=device).contiguous(memory_format=torch.channels_last)
    sigma = torch.full((1, 3, h2, w2), 0.05, device=device).contiguous(memory_format=torch.channels_last)
    prev, hidden = net.init_state(cur)
    with torch.inference_mode(), _autocast(device, _resolve_dtype(dtype, device)):
        for i in range(frames + 3):
            if i == 3:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
            prev, hidden = net(cur, sigma, prev, hidden, 1.0)[:2]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)
