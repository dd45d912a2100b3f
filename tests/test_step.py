"""The fused CPU step kernels (streamdn.kernels.step) against the torch forward of the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdn.frames import Frame
from streamdn.kernels import step_input, step_input_count, step_tail, step_tail_raw
from streamdn.kernels.step import fast_tanh
from streamdn.models import create_model
from streamdn.models.fast import build


def _rand(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape, dtype=np.float32) * scale).astype(np.float32)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)


def _head_as(head: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`head` as the tails take it: float32 with scale 1 and offset 0, or uint8 with a range per
    channel (as the int8 backend hands it over); and the float head it stands for."""
    c = head.shape[-1]
    if dtype == "float32":
        return head, np.ones(c, np.float32), np.zeros(c, np.float32), head
    lo, hi = head.min(axis=(0, 1)), head.max(axis=(0, 1))
    scale = ((hi - lo) / 255.0).astype(np.float32)
    q = np.round((head - lo) / scale).clip(0, 255).astype(np.uint8)
    return q, scale, lo.astype(np.float32), q * scale + lo


@pytest.mark.parametrize("k", [0, 4])
def test_step_input_matches_the_torch_concatenation(k: int) -> None:
    h, w = 7, 10
    cur, prev = _rand((h, w, 6), 0), _rand((h, w, 6), 1)
    sigma, hidden = _rand((h, w, 3), 2, 0.1), _rand((h, w, k), 3)
    got = step_input(cur, prev, sigma, hidden, np.empty((h, w, 16 + k), np.float32))
    c, p, s, hd = (_nchw(a) for a in (cur, prev, sigma, hidden))
    sig6 = torch.cat([s[:, :1].expand(-1, 4, -1, -1), s[:, 1:]], 1)
    motion = ((c - p).abs() / (sig6 + 2e-3)).mean(1, keepdim=True) * 0.25
    want = torch.cat([c, p, s * 10.0, motion, hd], 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [0, 4])
def test_step_input_writes_the_int8_models_uint8_input(k: int) -> None:
    """With a uint8 output the kernels quantise as ONNX's QuantizeLinear: round(x / scale) + zero,
    half to even, clamped to [0, 255]."""
    h, w = 7, 10
    cur, prev = _rand((h, w, 6), 0), _rand((h, w, 6), 1)
    sigma, hidden = _rand((h, w, 3), 2, 0.1), _rand((h, w, k), 3) - 0.5
    scale, zero = 0.0073, 66.0
    plain = step_input(cur, prev, sigma, hidden, np.empty((h, w, 16 + k), np.float32))
    got = step_input(cur, prev, sigma, hidden, np.empty((h, w, 16 + k), np.uint8), 1.0 / scale, zero)
    want = np.clip(np.rint(plain / np.float32(scale)) + zero, 0, 255)
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1
    assert np.mean(got != want) < 1e-3                     # only ties may round the other way
    count = _rand((h, w, 1), 4, 50.0)
    plain = step_input_count(cur, prev, sigma, count, hidden, False, np.empty((h, w, 17 + k), np.float32))
    got = step_input_count(cur, prev, sigma, count, hidden, False, np.empty((h, w, 17 + k), np.uint8), 1.0 / scale,
                           zero)
    assert np.abs(got.astype(int) - np.clip(np.rint(plain / np.float32(scale)) + zero, 0, 255)).max() <= 1


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("has_prev", [0.0, 1.0])
def test_step_tail_matches_sigmoid_blend_and_tanh(has_prev: float, dtype: str) -> None:
    h, w, k = 6, 9, 4
    q, scale, offset, head = _head_as((_rand((h, w, 12 + k), 0) - 0.5) * 16.0, dtype)   # logits over [-8, 8]
    cur, prev = _rand((h, w, 6), 1), _rand((h, w, 6), 2)
    out, hidden = np.empty((h, w, 6), np.float32), np.empty((h, w, k), np.float32)
    step_tail(q, scale, offset, cur, prev, has_prev, out, hidden)
    hd = head.astype(np.float64)
    alpha = has_prev / (1.0 + np.exp(-hd[..., 6:12]))
    want = alpha * prev + (1 - alpha) * (cur + hd[..., :6])
    np.testing.assert_allclose(out, want, atol=2e-4)       # |prev - est| <= 5 here, alpha err <= 5e-5
    np.testing.assert_allclose(hidden, np.tanh(hd[..., 12:]), atol=1e-4)
    if has_prev == 0.0:
        np.testing.assert_allclose(out, cur + head[..., :6], atol=1e-6)


@pytest.mark.parametrize("has_prev", [0.0, 1.0])
def test_step_tail_lut_looks_up_what_step_tail_computes(has_prev: float) -> None:
    from streamdn.kernels import step_tail_lut, tail_tables

    h, w, k = 6, 9, 4
    q, scale, offset, head = _head_as((_rand((h, w, 12 + k), 0) - 0.5) * 16.0, "uint8")
    cur, prev = _rand((h, w, 6), 1), _rand((h, w, 6), 2)
    out, hidden = np.empty((h, w, 6), np.float32), np.empty((h, w, k), np.float32)
    step_tail_lut(q, tail_tables(scale, offset), cur, prev, has_prev, out, hidden)
    hd = head.astype(np.float64)
    alpha = has_prev / (1.0 + np.exp(-hd[..., 6:12]))
    np.testing.assert_allclose(out, alpha * prev + (1 - alpha) * (cur + hd[..., :6]), atol=2e-5)   # exact sigmoid
    np.testing.assert_allclose(hidden, np.tanh(hd[..., 12:]), atol=1e-6)
    want_out, want_hidden = np.empty_like(out), np.empty_like(hidden)
    step_tail(q, scale, offset, cur, prev, has_prev, want_out, want_hidden)
    np.testing.assert_allclose(out, want_out, atol=2e-4)


@pytest.mark.parametrize("has_prev", [0.0, 1.0])
def test_step_tail_display_lut_looks_up_what_step_tail_display_computes(has_prev: float) -> None:
    from streamdn.kernels import step_tail_display, step_tail_display_lut, tail_tables

    h, w, k = 6, 9, 4
    q, scale, offset, _ = _head_as((_rand((h, w, 18 + k), 0) - 0.5) * 16.0, "uint8")
    cur, prev = _rand((h, w, 6), 1), _rand((h, w, 6), 2)
    count = np.concatenate([np.zeros((h, 1, 1), np.float32), _rand((h, w - 1, 1), 3, 900.0)], 1)
    got = [np.empty((h, w, 6), np.float32), np.empty((h, w, 6), np.float32), np.empty((h, w, 1), np.float32),
           np.empty((h, w, k), np.float32)]
    want = [np.empty_like(a) for a in got]
    step_tail_display_lut(q, tail_tables(scale, offset, display=True), cur, prev, count, has_prev, 1000.0, *got)
    step_tail_display(q, scale, offset, cur, prev, count, has_prev, 1000.0, *want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4)


def test_fast_tanh_error_bound() -> None:
    from numba import njit

    @njit
    def many(xs: np.ndarray) -> np.ndarray:
        out = np.empty_like(xs)
        for i in range(xs.size):
            out[i] = fast_tanh(xs[i])
        return out

    xs = np.linspace(-30, 30, 200001).astype(np.float32)
    err = np.abs(many(xs).astype(np.float64) - np.tanh(xs.astype(np.float64)))
    assert err.max() < 1e-4
    assert np.all(np.abs(many(xs)) <= 1.0)


@pytest.mark.parametrize("h,w", [(48, 64), (37, 51)])
def test_fused_network_step_matches_torch_forward(h: int, w: int) -> None:
    rng = np.random.default_rng(0)
    fused, plain = create_model("fast", dtype="fp32"), create_model("fast", dtype="fp32", fused=False)
    assert fused.fused and not plain.fused
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(5):
        base = 60 + 120 * ((xx + 2 * t) % 17) / 17.0 + 30 * (yy > h // 2)
        y = np.clip(base + rng.normal(0, 12, (h, w)), 0, 255).astype(np.uint8)
        ch, cw = (h + 1) // 2, (w + 1) // 2
        u = np.clip(128 + rng.normal(0, 6, (ch, cw)), 0, 255).astype(np.uint8)
        v = np.clip(120 + rng.normal(0, 6, (ch, cw)), 0, 255).astype(np.uint8)
        f = Frame(y=y, u=u, v=v, index=t)
        a = fused.forward(fused.pack(f, (12.0, 6.0, 6.0)))
        b = plain.forward(plain.pack(f, (12.0, 6.0, 6.0)))
        assert a.shape == b.shape
        # Over 5 recurrent steps the fast_tanh error stays far below an 8-bit step (1/255).
        assert float((a - b).abs().max()) < 1e-3
        oa, ob = fused.unpack(a, f), plain.unpack(b, f)
        assert np.abs(oa.y.astype(int) - ob.y.astype(int)).max() <= 1


def test_trunk_leaves_training_graphs_intact() -> None:
    net = build("tdn_tiny")
    x = torch.rand(1, 16 + net.cfg.hidden, 8, 8, requires_grad=True)
    net.trunk(x).sum().backward()                            # no in-place op on a saved tensor
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_step_input_count_adds_the_log_count_before_hidden() -> None:
    h, w, k = 5, 8, 4
    cur, prev = _rand((h, w, 6), 0), _rand((h, w, 6), 1)
    sigma, hidden, count = _rand((h, w, 3), 2, 0.1), _rand((h, w, k), 3), _rand((h, w, 1), 4, 50.0)
    got = step_input_count(cur, prev, sigma, count, hidden, False, np.empty((h, w, 17 + k), np.float32))
    plain = step_input(cur, prev, sigma, hidden, np.empty((h, w, 16 + k), np.float32))
    np.testing.assert_allclose(got[..., :16], plain[..., :16], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[..., 16], np.log1p(count[..., 0]) * 0.25, rtol=1e-5)
    np.testing.assert_allclose(got[..., 17:], hidden)
    raw = step_input_count(cur, prev, sigma, count, hidden, True, np.empty((h, w, 17 + k), np.float32))
    spread = np.sqrt(1.0 + 1.0 / np.maximum(count[..., 0], 1.0))
    sig6 = np.concatenate([np.repeat(sigma[..., :1], 4, -1), sigma[..., 1:]], -1) * spread[..., None]
    want = (np.abs(cur - prev) / (sig6 + 2e-3)).mean(-1) * 0.25
    np.testing.assert_allclose(raw[..., 15], want, rtol=1e-5)
    np.testing.assert_allclose(np.delete(raw, 15, -1), np.delete(got, 15, -1))


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("has_prev", [0.0, 1.0])
def test_step_tail_raw_matches_the_raw_state_forward(has_prev: float, dtype: str) -> None:
    h, w, k = 6, 9, 4
    q, scale, offset, head = _head_as((_rand((h, w, 12 + k), 0) - 0.5) * 16.0, dtype)
    cur, prev = _rand((h, w, 6), 1), _rand((h, w, 6), 2)
    count = np.concatenate([np.zeros((h, 1, 1), np.float32), _rand((h, w - 1, 1), 3, 900.0)], 1)
    out, state = np.empty((h, w, 6), np.float32), np.empty((h, w, 6), np.float32)
    new_count, hidden = np.empty((h, w, 1), np.float32), np.empty((h, w, k), np.float32)
    step_tail_raw(q, scale, offset, cur, prev, count, has_prev, 1000.0, out, state, new_count, hidden)
    hd, c = head.astype(np.float64), np.maximum(count.astype(np.float64), 1e-3)
    alpha = has_prev / (1.0 + np.exp(-(hd[..., 6:12] + np.log(c))))
    want_state = cur + alpha * (prev - cur)
    np.testing.assert_allclose(state, want_state, atol=1e-5)
    np.testing.assert_allclose(out, want_state + hd[..., :6], atol=1e-5)
    a = alpha.mean(-1, keepdims=True)
    np.testing.assert_allclose(new_count, np.minimum(1.0 / (a * a / c + (1 - a) ** 2), 1000.0), rtol=1e-4)
    np.testing.assert_allclose(hidden, np.tanh(hd[..., 12:]), atol=1e-4)
    if has_prev == 0.0:
        np.testing.assert_allclose(new_count, 1.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("has_prev", [0.0, 1.0])
def test_step_tail_display_matches_the_motion_forward(has_prev: float, dtype: str) -> None:
    from streamdn.kernels import step_tail_display

    h, w, k = 6, 9, 4
    q, scale, offset, head = _head_as((_rand((h, w, 18 + k), 0) - 0.5) * 16.0, dtype)
    cur, prev = _rand((h, w, 6), 1), _rand((h, w, 6), 2)
    count = np.concatenate([np.zeros((h, 1, 1), np.float32), _rand((h, w - 1, 1), 3, 900.0)], 1)
    out, state = np.empty((h, w, 6), np.float32), np.empty((h, w, 6), np.float32)
    new_count, hidden = np.empty((h, w, 1), np.float32), np.empty((h, w, k), np.float32)
    step_tail_display(q, scale, offset, cur, prev, count, has_prev, 1000.0, out, state, new_count, hidden)
    hd, c = head.astype(np.float64), np.maximum(count.astype(np.float64), 1e-3)
    alpha = has_prev / (1.0 + np.exp(-(hd[..., 6:12] + np.log(c))))
    want_state = alpha * prev + (1 - alpha) * (cur + hd[..., :6])
    np.testing.assert_allclose(state, want_state, atol=1e-5)
    np.testing.assert_allclose(out, want_state + hd[..., 12:18], atol=1e-5)
    a = alpha.mean(-1, keepdims=True)
    np.testing.assert_allclose(new_count, np.minimum(1.0 / (a * a / c + (1 - a) ** 2), 1000.0), rtol=1e-4)
    np.testing.assert_allclose(hidden, np.tanh(hd[..., 18:]), atol=1e-4)


@pytest.mark.parametrize("raw", [True, False])
def test_fused_motion_step_matches_torch_forward(raw: bool) -> None:
    from streamdn.models.network import NetworkModel
    from streamdn.models.registry import ModelInfo

    torch.manual_seed(0)
    net = build("tdn_tiny", {"motion": True, "raw_state": raw})
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.05)               # a gate that is not the bare prior
    info = ModelInfo(name="raw", kind="network", summary="test")
    # The step alone: the long average on its canvas would add decisions (a measure accepted or
    # not) that a difference of 1e-7 between the two paths can flip (seen with OpenCV 4.10).
    fused = NetworkModel(net, info, dtype="fp32", long_average=False)
    plain = NetworkModel(net, info, dtype="fp32", fused=False, long_average=False)
    assert fused.fused and not plain.fused
    rng = np.random.default_rng(1)
    h, w = 40, 56
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(6):
        base = 60 + 120 * ((xx + t) % 13) / 13.0 + 30 * (yy > h // 2)
        y = np.clip(base + rng.normal(0, 12, (h, w)), 0, 255).astype(np.uint8)
        u = np.clip(128 + rng.normal(0, 6, (h // 2, w // 2)), 0, 255).astype(np.uint8)
        v = np.clip(120 + rng.normal(0, 6, (h // 2, w // 2)), 0, 255).astype(np.uint8)
        f = Frame(y=y, u=u, v=v, index=t)
        a = fused.forward(fused.pack(f, (12.0, 6.0, 6.0)))
        b = plain.forward(plain.pack(f, (12.0, 6.0, 6.0)))
        assert float((a - b).abs().max()) < 1e-3
        assert float((fused._state[2] - plain._state[2]).abs().max()) < 1e-2 * t + 1e-3   # counts
