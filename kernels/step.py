"""The element-wise ends of one recurrent network step on the CPU, each fused into one pass.

`streamdn.models.fast.RecurrentDenoiser.forward` does the same in torch (the reference, used in
training and on CUDA); on the CPU that torch code is a dozen separate passes over the frame
(concatenation, motion cue, sigmoid, tanh on strided slices, the blend), about a fifth of the
step at 720p. These kernels read and write channels-last (H, W, C) float32 arrays, the
memory order of the network's channels_last NCHW tensors, so torch views them without a copy;
the tails also take the head's output as uint8 with a scale and offset per channel (what the
int8 backend hands back), dequantising it as they read it.

Channel layout of the network input (`step_input`): 6 current frame, 6 previous output,
3 noise map x 10, 1 motion cue, [1 log count (motion networks),] `hidden` recurrent channels.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

IN_CH = 6
SIGMA_CH = 3


@njit(inline="always", cache=True, nogil=True)
def _frame_channels(cur: np.ndarray, prev: np.ndarray, sigma: np.ndarray, i: int, j: int, spread: float,
                    out: np.ndarray, oi: int) -> None:
    """The first 16 input channels at pixel (i, j), written to out[oi, j]: current, previous,
    noise map x 10 and the motion cue, whose sigmas are scaled by `spread` (1 but for raw-state
    networks)."""
    sy = sigma[i, j, 0]
    su = sigma[i, j, 1]
    sv = sigma[i, j, 2]
    m = np.float32(0.0)
    for c in range(IN_CH):
        a = cur[i, j, c]
        b = prev[i, j, c]
        out[oi, j, c] = a
        out[oi, j, IN_CH + c] = b
        s = (sy if c < 4 else (su if c == 4 else sv)) * spread
        m += abs(a - b) / (s + np.float32(2e-3))
    out[oi, j, 12] = sy * np.float32(10.0)
    out[oi, j, 13] = su * np.float32(10.0)
    out[oi, j, 14] = sv * np.float32(10.0)
    out[oi, j, 15] = m * np.float32(0.25 / IN_CH)


@njit(inline="always", cache=True, nogil=True)
def _quantise_row(row: np.ndarray, out: np.ndarray, inv_scale: float, zero: float) -> None:
    """out[j, c] = round(row[j, c] * inv_scale) + zero clamped to [0, 255] (uint8), as ONNX's
    QuantizeLinear (ties rounded up rather than to even). A loop of its own so that it runs
    vectorised."""
    flat, dst = row.reshape(-1), out.reshape(-1)
    for n in range(flat.size):
        dst[n] = np.int32(min(max(flat[n] * inv_scale + zero, np.float32(0.0)), np.float32(255.0)) + np.float32(0.5))


@njit(parallel=True, cache=True, nogil=True)
def step_input(cur: np.ndarray, prev: np.ndarray, sigma: np.ndarray, hidden: np.ndarray,
               out: np.ndarray, inv_scale: float = 0.0, zero: float = 0.0) -> np.ndarray:
    """Builds the network input of one step.

    Args:
        cur: (H, W, 6) float32 packed noisy frame, [0, 1].
        prev: (H, W, 6) float32 previous output.
        sigma: (H, W, 3) float32 noise map (sigma of Y, U, V), [0, 1] units.
        hidden: (H, W, K) float32 recurrent state (K may be 0).
        out: (H, W, 16 + K) float32, written and returned; or uint8, written quantised as the
            int8 backend's model takes it: round(value * inv_scale) + zero, clamped to [0, 255]
            (inv_scale > 0; 0 for a float32 `out`).

    The motion cue is mean_c |cur_c - prev_c| / (sigma_c + 2e-3) * 0.25 with sigma_c the Y sigma
    for the four luma phases, as in RecurrentDenoiser.forward.
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    base = 2 * IN_CH + SIGMA_CH + 1
    qs, qz = np.float32(inv_scale), np.float32(zero)
    for i in prange(h):
        if qs > 0:   # a float32 row, then quantised into the output in one tight loop
            row = np.empty((1, w, out.shape[2]), np.float32)
            for j in range(w):
                _frame_channels(cur, prev, sigma, i, j, np.float32(1.0), row, 0)
                for c in range(k):
                    row[0, j, base + c] = hidden[i, j, c]
            _quantise_row(row[0], out[i], qs, qz)
        else:
            for j in range(w):
                _frame_channels(cur, prev, sigma, i, j, np.float32(1.0), out, i)
                for c in range(k):
                    out[i, j, base + c] = hidden[i, j, c]
    return out



@njit(inline="always", fastmath=True, cache=True, nogil=True)
def fast_tanh(x: float) -> float:
    """tanh by its [7/6] Pade approximant, clamped: absolute error below 1e-4 everywhere (it
    vectorises, unlike math.tanh/math.exp, which made the tail 5x slower: 20 ms vs 4 ms at 720p)."""
    x = min(max(x, np.float32(-9.0)), np.float32(9.0))
    x2 = x * x
    p = x * (np.float32(135135.0) + x2 * (np.float32(17325.0) + x2 * (np.float32(378.0) + x2)))
    q = np.float32(135135.0) + x2 * (np.float32(62370.0) + x2 * (np.float32(3150.0) + x2 * np.float32(28.0)))
    return max(min(p / q, np.float32(1.0)), np.float32(-1.0))


@njit(inline="always", fastmath=True, cache=True, nogil=True)
def fast_exp(x: float) -> float:
    """exp(x) for x clamped to [-40, 40], in plain arithmetic that vectorises (math.exp does not
    without Intel's SVML): exp(x / 64) by its degree-10 Taylor polynomial, squared six times.
    Relative error about 5e-6, so a gate near 1 keeps its complement (1 - alpha) to that
    relative precision."""
    u = min(max(x, np.float32(-40.0)), np.float32(40.0)) * np.float32(1.0 / 64.0)
    p = np.float32(1.0 / 3628800.0)
    p = p * u + np.float32(1.0 / 362880.0)
    p = p * u + np.float32(1.0 / 40320.0)
    p = p * u + np.float32(1.0 / 5040.0)
    p = p * u + np.float32(1.0 / 720.0)
    p = p * u + np.float32(1.0 / 120.0)
    p = p * u + np.float32(1.0 / 24.0)
    p = p * u + np.float32(1.0 / 6.0)
    p = p * u + np.float32(0.5)
    p = p * u + np.float32(1.0)
    p = p * u + np.float32(1.0)
    for _ in range(6):
        p = p * p
    return p


@njit(inline="always", cache=True, nogil=True)
def _head(head: np.ndarray, scale: np.ndarray, offset: np.ndarray, i: int, j: int, c: int) -> float:
    """Channel c of the head's output at (i, j): head * scale[c] + offset[c] (a uint8 head from
    the int8 backend is dequantised so; a float32 head comes with scale 1 and offset 0)."""
    return np.float32(head[i, j, c]) * scale[c] + offset[c]


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def step_tail(head: np.ndarray, head_scale: np.ndarray, head_offset: np.ndarray, cur: np.ndarray,
              prev: np.ndarray, has_prev: float, out: np.ndarray, hidden: np.ndarray) -> None:
    """Turns the network head's output into the step's output and new hidden state.

    Args:
        head: (H, W, 12 + K) float32 or uint8: 6 residual, 6 gate logits, K hidden
            pre-activations, each channel c read as head * head_scale[c] + head_offset[c].
        head_scale, head_offset: (12 + K,) float32 (ones and zeros for a float32 head).
        cur: (H, W, 6) float32 current frame.
        prev: (H, W, 6) float32 previous output.
        has_prev: 0.0 on the first frame of a stream (the gate is closed), else 1.0.
        out: (H, W, 6) float32, written: alpha * prev + (1 - alpha) * (cur + residual),
            alpha = sigmoid(gate) * has_prev.
        hidden: (H, W, K) float32, written: tanh of the hidden pre-activations.

    sigmoid(z) = (1 + tanh(z / 2)) / 2 and tanh use fast_tanh: alpha within 5e-5 and the hidden
    state within 1e-4 of the exact functions (far below one 10-bit step, 1e-3).
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    g = np.float32(0.5 * has_prev)
    for i in prange(h):
        for j in range(w):
            for c in range(IN_CH):
                z = _head(head, head_scale, head_offset, i, j, IN_CH + c)
                alpha = g * (np.float32(1.0) + fast_tanh(np.float32(0.5) * z))
                est = cur[i, j, c] + _head(head, head_scale, head_offset, i, j, c)
                out[i, j, c] = est + alpha * (prev[i, j, c] - est)
            for c in range(k):
                hidden[i, j, c] = fast_tanh(_head(head, head_scale, head_offset, i, j, 2 * IN_CH + c))


def tail_tables(scale: np.ndarray, offset: np.ndarray, display: bool = False) -> np.ndarray:
    """The table of step_tail_lut (display False) or step_tail_display_lut (display True) for a
    uint8 head with these per-channel scale and offset: row c holds, for each of the 256 values
    q, what the tail needs of channel c, z = q * scale[c] + offset[c]: z itself for the residual
    channels 0-5 (and the display residual 12-17), sigmoid(z) for the gate channels 6-11 (for a
    display network exp(-z), which its tail divides by the count), tanh(z) for the hidden
    channels after them. float32."""
    z = np.arange(256, dtype=np.float64)[None, :] * scale.astype(np.float64)[:, None] + offset.astype(np.float64)[:, None]
    table = z.copy()
    gates = z[IN_CH:2 * IN_CH]
    table[IN_CH:2 * IN_CH] = np.exp(-np.clip(gates, -40.0, 40.0)) if display else 1.0 / (1.0 + np.exp(-gates))
    first_hidden = (3 if display else 2) * IN_CH
    table[first_hidden:] = np.tanh(z[first_hidden:])
    return np.ascontiguousarray(table, dtype=np.float32)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def step_tail_lut(head: np.ndarray, table: np.ndarray, cur: np.ndarray, prev: np.ndarray, has_prev: float,
                  out: np.ndarray, hidden: np.ndarray) -> None:
    """step_tail for a uint8 head (the int8 backend's): its nonlinearities are looked up.

    Args:
        head: (H, W, 12 + K) uint8.
        table: (12 + K, 256) float32, tail_tables() of the head's scale and offset.
        cur, prev, has_prev, out, hidden: as step_tail.

    The same result as step_tail on the dequantised head, with exact sigmoid and tanh (a third
    of its time at 720p: 1.4 against 4.2 ms on a 2-core AMD EPYC Zen 3).
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    g = np.float32(has_prev)
    for i in prange(h):
        for j in range(w):
            for c in range(IN_CH):
                alpha = g * table[IN_CH + c, head[i, j, IN_CH + c]]
                est = cur[i, j, c] + table[c, head[i, j, c]]
                out[i, j, c] = est + alpha * (prev[i, j, c] - est)
            for c in range(k):
                hidden[i, j, c] = table[2 * IN_CH + c, head[i, j, 2 * IN_CH + c]]


@njit(inline="always", fastmath=True, cache=True, nogil=True)
def _carried_count(alpha_sum: float, count: float, max_count: float) -> float:
    """The effective frame count after a blend whose gates over the 6 channels sum to
    `alpha_sum`, the carried state having averaged `count` frames: 1 / (a^2 / count + (1 - a)^2),
    a the mean gate, capped at max_count."""
    am = alpha_sum * np.float32(1.0 / IN_CH)
    nc = np.float32(1.0) / (am * am / count + (np.float32(1.0) - am) * (np.float32(1.0) - am))
    return min(nc, np.float32(max_count))


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def step_tail_display_lut(head: np.ndarray, table: np.ndarray, cur: np.ndarray, prev: np.ndarray, count: np.ndarray,
                          has_prev: float, max_count: float, out: np.ndarray, state: np.ndarray,
                          new_count: np.ndarray, hidden: np.ndarray) -> None:
    """step_tail_display for a uint8 head (the int8 backend's), its exp and tanh looked up.

    Args:
        head: (H, W, 18 + K) uint8.
        table: (18 + K, 256) float32, tail_tables(scale, offset, display=True).
        cur, prev, count, has_prev, max_count, out, state, new_count, hidden: as step_tail_display.
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    g = np.float32(has_prev)
    for i in prange(h):
        for j in range(w):
            c0 = max(count[i, j, 0], np.float32(1e-3))
            inv = np.float32(1.0) / c0
            asum = np.float32(0.0)
            for c in range(IN_CH):
                alpha = g / (np.float32(1.0) + table[IN_CH + c, head[i, j, IN_CH + c]] * inv)
                est = cur[i, j, c] + table[c, head[i, j, c]]
                s = est + alpha * (prev[i, j, c] - est)
                state[i, j, c] = s
                out[i, j, c] = s + table[2 * IN_CH + c, head[i, j, 2 * IN_CH + c]]
                asum += alpha
            new_count[i, j, 0] = _carried_count(asum, c0, max_count)
            for c in range(k):
                hidden[i, j, c] = table[3 * IN_CH + c, head[i, j, 3 * IN_CH + c]]


@njit(parallel=True, cache=True, nogil=True)
def step_input_count(cur: np.ndarray, prev: np.ndarray, sigma: np.ndarray, count: np.ndarray,
                     hidden: np.ndarray, raw: bool, out: np.ndarray, inv_scale: float = 0.0,
                     zero: float = 0.0) -> np.ndarray:
    """step_input for motion networks: the same 16 channels, then log1p(count) * 0.25, then the
    `hidden` channels.

    Args:
        count: (H, W, 1) float32 effective frame count of the warped state.
        raw: a raw-state network: the motion cue's sigmas are scaled by sqrt(1 + 1 / max(count, 1))
            (the noise of a matching noisy past), as in RecurrentDenoiser.forward.
        out: (H, W, 17 + K) float32, written and returned; or uint8, quantised as in step_input.
    """
    h, w = cur.shape[0], cur.shape[1]
    qs, qz = np.float32(inv_scale), np.float32(zero)
    for i in prange(h):
        if qs > 0:   # a float32 row, then quantised into the output in one tight loop
            row = np.empty((1, w, out.shape[2]), np.float32)
            _count_row(cur, prev, sigma, count, hidden, raw, i, row, 0)
            _quantise_row(row[0], out[i], qs, qz)
        else:
            _count_row(cur, prev, sigma, count, hidden, raw, i, out, i)
    return out


@njit(inline="always", cache=True, nogil=True)
def _count_row(cur: np.ndarray, prev: np.ndarray, sigma: np.ndarray, count: np.ndarray, hidden: np.ndarray,
               raw: bool, i: int, out: np.ndarray, oi: int) -> None:
    """Row i of step_input_count's channels, written to out[oi]."""
    base = 2 * IN_CH + SIGMA_CH + 2
    for j in range(cur.shape[1]):
        f = np.float32(1.0)
        if raw:
            f = np.float32(np.sqrt(1.0 + 1.0 / max(count[i, j, 0], np.float32(1.0))))
        _frame_channels(cur, prev, sigma, i, j, f, out, oi)
        out[oi, j, 16] = np.float32(np.log1p(count[i, j, 0]) * 0.25)
        for c in range(hidden.shape[2]):
            out[oi, j, base + c] = hidden[i, j, c]


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def step_tail_raw(head: np.ndarray, head_scale: np.ndarray, head_offset: np.ndarray, cur: np.ndarray,
                  prev: np.ndarray, count: np.ndarray, has_prev: float, max_count: float, out: np.ndarray,
                  state: np.ndarray, new_count: np.ndarray, hidden: np.ndarray) -> None:
    """The end of a raw-state motion network's step (NetConfig.raw_state, as its forward does).

    Args:
        head: (H, W, 12 + K): 6 residual, 6 gate logits, K hidden pre-activations; head_scale,
            head_offset: its channels' dequantisation, as in step_tail.
        cur, prev: (H, W, 6) float32 current frame and warped carried average.
        count: (H, W, 1) float32 effective frame count of `prev`.
        has_prev: 0.0 on the first frame of a stream, else 1.0. max_count: the count's cap.
        out: (H, W, 6) written: state + residual (what is shown).
        state: (H, W, 6) written: cur + alpha * (prev - cur), alpha = sigmoid(gate + log(count))
            * has_prev (the gate's prior is the running average's weight count / (count + 1)).
        new_count: (H, W, 1) written: 1 / (a^2 / count + (1 - a)^2), a the channels' mean alpha,
            capped at max_count.
        hidden: (H, W, K) written: tanh of the hidden pre-activations.

    The gate uses fast_exp, accurate in relative terms (its complement 1 - alpha sets how fast a
    long average still moves, so it must stay precise near alpha = 1); tanh uses fast_tanh.
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    g = np.float32(has_prev)
    for i in prange(h):
        for j in range(w):
            c0 = max(count[i, j, 0], np.float32(1e-3))
            inv = np.float32(1.0) / c0
            asum = np.float32(0.0)
            for c in range(IN_CH):
                # sigmoid(z + log c) = 1 / (1 + exp(-z) / c)
                z = _head(head, head_scale, head_offset, i, j, IN_CH + c)
                alpha = g / (np.float32(1.0) + fast_exp(-z) * inv)
                a = cur[i, j, c]
                s = a + alpha * (prev[i, j, c] - a)
                state[i, j, c] = s
                out[i, j, c] = s + _head(head, head_scale, head_offset, i, j, c)
                asum += alpha
            new_count[i, j, 0] = _carried_count(asum, c0, max_count)
            for c in range(k):
                hidden[i, j, c] = fast_tanh(_head(head, head_scale, head_offset, i, j, 2 * IN_CH + c))


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def step_tail_display(head: np.ndarray, head_scale: np.ndarray, head_offset: np.ndarray, cur: np.ndarray,
                      prev: np.ndarray, count: np.ndarray, has_prev: float, max_count: float, out: np.ndarray,
                      state: np.ndarray, new_count: np.ndarray, hidden: np.ndarray) -> None:
    """The end of the step of a motion network that carries its cleaned estimate and shows it
    through a display residual (NetConfig.motion without raw_state, as its forward does).

    Args:
        head: (H, W, 18 + K): 6 residual, 6 gate logits, 6 display residual, K hidden
            pre-activations; head_scale, head_offset: its channels' dequantisation, as in step_tail.
        cur, prev: (H, W, 6) float32 current frame and warped carried estimate.
        count: (H, W, 1) float32 effective frame count of `prev`.
        has_prev: 0.0 on the first frame of a stream, else 1.0. max_count: the count's cap.
        out: (H, W, 6) written: state + display residual (what is shown).
        state: (H, W, 6) written: alpha * prev + (1 - alpha) * (cur + residual), alpha =
            sigmoid(gate + log(count)) * has_prev.
        new_count: (H, W, 1) written: 1 / (a^2 / count + (1 - a)^2), a the channels' mean alpha,
            capped at max_count.
        hidden: (H, W, K) written: tanh of the hidden pre-activations.
    """
    h, w = cur.shape[0], cur.shape[1]
    k = hidden.shape[2]
    g = np.float32(has_prev)
    for i in prange(h):
        for j in range(w):
            c0 = max(count[i, j, 0], np.float32(1e-3))
            inv = np.float32(1.0) / c0
            asum = np.float32(0.0)
            for c in range(IN_CH):
                z = _head(head, head_scale, head_offset, i, j, IN_CH + c)
                alpha = g / (np.float32(1.0) + fast_exp(-z) * inv)
                est = cur[i, j, c] + _head(head, head_scale, head_offset, i, j, c)
                s = est + alpha * (prev[i, j, c] - est)
                state[i, j, c] = s
                out[i, j, c] = s + _head(head, head_scale, head_offset, i, j, 2 * IN_CH + c)
                asum += alpha
            new_count[i, j, 0] = _carried_count(asum, c0, max_count)
            for c in range(k):
                hidden[i, j, c] = fast_tanh(_head(head, head_scale, head_offset, i, j, 3 * IN_CH + c))
