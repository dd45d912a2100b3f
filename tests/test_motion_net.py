"""The motion-compensated recursion: the state warp, the count-driven gate, adapting plain
weights, the NetworkModel's carried state and a training step."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamdn.frames import frame_from_bgr
from streamdn.kernels import pack_yuv420
from streamdn.models.fast import MAX_COUNT, adapt_state_dict, build
from streamdn.models.motion import FlowEstimator, StateWarper, packed_luma_u8, warp_features, warp_packed
from streamdn.models.network import NetworkModel
from streamdn.models.registry import ModelInfo

INFO = ModelInfo("test", "network", "test", temporal=True)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (0, 0), 1.5)


def _packed(bgr: np.ndarray) -> np.ndarray:
    f = frame_from_bgr(bgr)
    return pack_yuv420(f.y, f.u, f.v, 1.0 / 255.0, np.empty((f.height // 2, f.width // 2, 6), np.float32))


def test_warp_by_zero_flow_is_the_identity() -> None:
    p = _packed(_texture(48, 64))
    flow = np.zeros(p.shape[:2] + (2,), np.float32)
    np.testing.assert_allclose(warp_packed(p, flow), p, atol=1e-6)


def test_warp_packed_moves_luma_at_full_resolution() -> None:
    """A one-pixel shift of the picture is half a packed pixel: the warp must reproduce the
    shifted picture's packing (the four phases trade places), not interpolate each phase."""
    img = _texture(64, 96)
    a, b = _packed(img), _packed(np.roll(img, 1, axis=1))       # b: content moved right by 1 px
    flow = np.zeros(a.shape[:2] + (2,), np.float32)
    flow[..., 0] = -0.5                                          # content of b at x was at x - 1 px in a
    warped = warp_packed(a, flow)
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(warped[inner][..., :4], b[inner][..., :4], atol=1e-5)


def test_warp_features_marks_the_outside() -> None:
    x = np.ones((8, 8, 1), np.float32)
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = 3.0
    out = warp_features(x, flow, outside=0.0)
    assert out.shape == x.shape
    assert np.all(out[:, :4] == 1.0) and np.all(out[:, 6:] == 0.0)


def test_flow_finds_a_shift() -> None:
    img = _texture(96, 128, seed=3)
    a, b = packed_luma_u8(_packed(img)), packed_luma_u8(_packed(np.roll(img, 4, axis=1)))
    flow = FlowEstimator()(b, a)          # b's content was 2 packed px to the left in a
    assert abs(float(np.median(flow[8:-8, 8:-8, 0])) + 2.0) < 0.25
    assert abs(float(np.median(flow[8:-8, 8:-8, 1]))) < 0.25


@pytest.mark.parametrize("size", [(6, 5), (11, 30), (1, 1)])
def test_flow_of_pictures_too_small_for_dis(size: tuple[int, int]) -> None:
    # DIS refuses pictures under 12 pixels both ways: a frame under 24 pixels is padded for it.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size).astype(np.uint8)
    flow = FlowEstimator()(a, a)
    assert flow.shape == (*size, 2) and np.isfinite(flow).all()


def test_motion_model_on_a_tiny_stream() -> None:
    from streamdn import Denoiser

    rng = np.random.default_rng(1)
    with Denoiser("fast_mc", device="cpu") as dn:
        outs = [dn((rng.random((20, 22, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    assert all(o.shape == (20, 22, 3) for o in outs)


def _inputs(n: int = 2, h: int = 16, w: int = 16) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    cur = torch.rand(n, 6, h, w, generator=g)
    prev = torch.rand(n, 6, h, w, generator=g)
    sigma = torch.full((n, 3, h, w), 0.05)
    return cur, prev, sigma


def test_adapted_weights_start_as_the_plain_network() -> None:
    """With count 1 the prior adds nothing and the new weights start at zero: the adapted
    motion network gives the plain network's output, and its count follows the gate."""
    torch.manual_seed(0)
    plain = build("tdn_tiny").eval()
    motion = build("tdn_tiny", {"motion": True}).eval()
    motion.load_state_dict(adapt_state_dict(plain, motion))
    cur, prev, sigma = _inputs()
    hidden = torch.zeros(2, plain.cfg.hidden, 16, 16)
    with torch.no_grad():
        a = plain(cur, sigma, prev, hidden, 1.0)
        b = motion(cur, sigma, prev, hidden, 1.0, torch.ones(2, 1, 16, 16))
    torch.testing.assert_close(b.out, a.out)
    torch.testing.assert_close(b.state, a.state)
    am = a.alpha.mean(1, keepdim=True)
    torch.testing.assert_close(b.count, 1.0 / (am * am + (1 - am) ** 2))
    assert a.count is None and torch.equal(a.state, a.out)


def test_raw_state_adaptation_keeps_the_first_frame_and_carries_the_noisy_average() -> None:
    """A display-residual motion network folded into a raw-state one gives the same first
    frame; after it, the carried state is the blend of the (warped) past with the noisy frame
    itself, and what is shown is that state plus the residual."""
    torch.manual_seed(0)
    src = build("tdn_tiny", {"motion": True}).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0.0, 0.05)
    raw = build("tdn_tiny", {"motion": True, "raw_state": True}).eval()
    raw.load_state_dict(adapt_state_dict(src, raw))
    assert raw.head.out_channels == src.head.out_channels - 6
    cur, prev, sigma = _inputs()
    hidden = torch.zeros(2, src.cfg.hidden, 16, 16)
    with torch.no_grad():
        a = src(cur, sigma, cur, hidden, 0.0)
        b = raw(cur, sigma, cur, hidden, 0.0)
        torch.testing.assert_close(b.out, a.out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.state, cur)             # first frame: the state is the frame
        count = torch.full((2, 1, 16, 16), 3.0)
        c = raw(cur, sigma, prev, hidden, 1.0, count)
    torch.testing.assert_close(c.state, c.alpha * prev + (1 - c.alpha) * cur)
    assert float((c.out - c.state).abs().max()) > 0.0


def test_count_is_the_running_average_when_the_gate_keeps_its_prior() -> None:
    """Gate logits of zero make alpha = count / (count + 1): the count goes up by one a frame,
    which is the plain running average of every frame so far."""
    net = build("tdn_tiny", {"motion": True}).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    cur, prev, sigma = _inputs()
    hidden = torch.zeros(2, net.cfg.hidden, 16, 16)
    count = torch.zeros(2, 1, 16, 16)
    with torch.no_grad():
        for n in range(1, 6):
            step = net(cur, sigma, prev, hidden, 1.0 if n > 1 else 0.0, count)
            torch.testing.assert_close(step.count, torch.full_like(count, float(n)), rtol=1e-4, atol=1e-4)
            count = step.count
        big = net(cur, sigma, prev, hidden, 1.0, torch.full_like(count, 5 * MAX_COUNT)).count
    assert float(big.max()) <= MAX_COUNT


def test_network_model_carries_the_count_and_resets_at_a_cut() -> None:
    torch.manual_seed(0)
    model = NetworkModel(build("tdn_tiny", {"motion": True}), INFO, dtype="fp32")
    img = _texture(48, 64)
    counts = []
    for t in range(5):
        frame = frame_from_bgr(np.roll(img, t, axis=1), index=t)
        out = model.unpack(model.forward(model.pack(frame, (4.0, 2.0, 2.0))), frame)
        assert out.y.shape == frame.y.shape
        counts.append(float(model._state[2][..., 4:-4, 4:-4].mean()))
    assert counts[0] == 1.0 and all(b > a for a, b in zip(counts, counts[1:]))
    other = frame_from_bgr(np.full((48, 64, 3), 20, np.uint8), index=5)
    model.forward(model.pack(other, (4.0, 2.0, 2.0)))
    assert float(model._state[2].max()) == 1.0          # a scene cut restarts the average
    twin = model.clone()
    assert twin._state is None and twin._warper is not model._warper


def test_motion_training_step_has_finite_gradients() -> None:
    from streamdn.tools.train import TrainConfig, clip_loss

    torch.manual_seed(0)
    net = build("tdn_tiny", {"motion": True})
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(2, 5, 6, 16, 16, generator=g)
    batch = {"clean": clean, "noisy": (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1),
             "sigma": torch.full((2, 5, 3, 16, 16), 0.05)}
    loss = clip_loss(net, batch, TrainConfig(motion=True, bf16=False))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    # The count input and the display residual are trained too.
    assert float(net.enc.weight.grad[:, 16].abs().sum()) > 0
    assert float(net.head.weight.grad[12:18].abs().sum()) > 0


@pytest.mark.parametrize("n", [1, 3])
def test_state_warper_on_tensors_keeps_shapes(n: int) -> None:
    cur, prev, _ = _inputs(n)
    hidden = torch.rand(n, 4, 16, 16)
    count = torch.full((n, 1, 16, 16), 3.0)
    s, h, c = StateWarper().warp_tensors(cur, prev, hidden, count)
    assert s.shape == prev.shape and h.shape == hidden.shape and c.shape == count.shape
    assert s.dtype == h.dtype == c.dtype == torch.float32


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _run(model: NetworkModel, frames: list[np.ndarray]) -> list[np.ndarray]:
    from streamdn.denoiser import Denoiser

    with Denoiser(model, strength=20) as dn:
        return [dn(f) for f in frames]


def _still_shot(net: torch.nn.Module, rng: np.random.Generator) -> tuple[float, float, float]:
    """36 noisy frames (sigma 20) of a still texture through the network with its long average
    and without: (PSNR of the last frame with, without, and of frame 20 with). The first frames
    agree exactly."""
    clean = _texture(96, 128, seed=3)
    still = [np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8) for _ in range(36)]
    on = _run(NetworkModel(net, INFO), still)
    off = _run(NetworkModel(net, INFO, long_average=False), still)
    assert np.array_equal(on[0], off[0])
    return _psnr(on[-1], clean), _psnr(off[-1], clean), _psnr(on[20], clean)


def _pan_shot(net: torch.nn.Module, rng: np.random.Generator, variants: dict[str, object]) -> dict[str, float]:
    """A 36-frame sub-pixel pan (0.8 and 0.24 px/frame) through the network with each
    `long_average` variant: PSNR of the last frame away from the edge the pan brings in new."""
    from streamdn.tools.temporal import pan_clip

    pan = list(pan_clip(_texture(140, 180, seed=4), 128, 96, 0.8, 36))
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in pan]
    inner = (slice(8, -8), slice(8, -8))
    score = {name: _psnr(_run(NetworkModel(net, INFO, long_average=la), noisy)[-1][inner], pan[-1][inner])  # type: ignore[arg-type]
             for name, la in variants.items()}
    print(score)
    return score


def test_long_average_keeps_a_still_shot_improving_and_follows_a_pan() -> None:
    """fast_mc with its long average (the default: on a canvas that follows the camera) against
    without: the same first frame, a still shot that keeps improving well past what the network
    alone reaches, and a sub-pixel pan that improves as much, where the still-block average
    (follow=False) restarts every frame and leaves it as the network makes it."""
    from streamdn.models.network import LongAverage, load_weights
    from streamdn.models.registry import create_model

    net, _ = load_weights("models/weights/fast_mc.safetensors")
    assert create_model("fast_mc").long_average == LongAverage()
    rng = np.random.default_rng(0)
    p_on, p_off, p_on20 = _still_shot(net, rng)
    assert p_on > p_off + 0.5
    assert p_on > p_on20 + 0.3            # still improving
    score = _pan_shot(net, rng, {"follow": True, "still": LongAverage(follow=False), "none": False})
    assert abs(score["still"] - score["none"]) < 0.3    # nothing stands still: restarts everywhere
    assert score["follow"] > score["none"] + 1.0


def test_plain_fast_keeps_averaging_on_a_still_shot_and_a_pan() -> None:
    """`fast` (no flow) with the long average that follows the camera, guided by phase
    correlation: a still shot keeps improving past the network alone, a pan too, and a batch of
    independent pictures is left as the network makes it."""
    from streamdn.models.network import LongAverage, load_weights
    from streamdn.models.registry import create_model

    net, _ = load_weights("models/weights/fast.safetensors")
    assert create_model("fast").long_average == LongAverage()
    rng = np.random.default_rng(1)
    p_on, p_off, p_on20 = _still_shot(net, rng)
    print(f"still: {p_on:.2f} against {p_off:.2f} dB")
    assert p_on > p_off + 1.0 and p_on > p_on20 + 0.3
    score = _pan_shot(net, rng, {"follow": True, "none": False})
    assert score["follow"] > score["none"] + 1.0
    # A batch (N > 1) has no stream to average over.
    model = NetworkModel(net, INFO)
    x = torch.rand(2, 6, 16, 16)
    from streamdn.models.network import Packed

    sig = torch.full((2, 3, 16, 16), 0.05)
    a = model.forward(Packed(x, sig, True, 10.0))
    model.long_average = None
    model.reset()
    assert torch.equal(a, model.forward(Packed(x, sig, True, 10.0)))


def test_plain_fast_runs_on_the_mean_early_and_leaves_no_trail() -> None:
    """`fast` runs on the long average itself (with the noise map of what it sees): a still
    shot gains within its first frames (a blend of the average into the output alone waits for
    the average to ripen), and a subject crossing the picture neither blurs nor leaves a trail
    behind it (where the average restarts)."""
    from streamdn.models.network import load_weights
    from streamdn.tools.temporal import masked_psnr, object_clip, trail_masks

    net, _ = load_weights("models/weights/fast.safetensors")
    rng = np.random.default_rng(2)
    clean = _texture(96, 128, seed=6)
    still = [np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8) for _ in range(9)]
    on = _run(NetworkModel(net, INFO), still)
    off = _run(NetworkModel(net, INFO, long_average=False), still)
    print(f"still, frame 8: {_psnr(on[8], clean):.2f} against {_psnr(off[8], clean):.2f} dB")
    assert _psnr(on[8], clean) > _psnr(off[8], clean) + 1.0
    # (On frames this small the camera's measure is noisy; a subject as big as this one pulls it.)
    shot, cover = object_clip(_texture(264, 352, seed=7), _texture(264, 352, seed=8), 320, 240, 2.0, 24)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in shot]
    trail = trail_masks(cover)
    on, off = _run(NetworkModel(net, INFO), noisy), _run(NetworkModel(net, INFO, long_average=False), noisy)
    for t in (12, 23):
        subject = cover[t] > 0.5
        scores = [(masked_psnr(o[t], shot[t], m), masked_psnr(f[t], shot[t], m))
                  for m in (trail[t], subject) for o, f in [(on, off)]]
        print(f"frame {t}: trail {scores[0][0]:.2f} against {scores[0][1]:.2f}, "
              f"subject {scores[1][0]:.2f} against {scores[1][1]:.2f} dB")
        for with_mean, alone in scores:
            assert with_mean > alone - 0.5


def test_plain_fast_recursion_follows_the_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a pan, `fast`'s recursion takes its previous output moved along the camera's move
    the canvas measured: the picture the pan brought in lately (seen too few frames for the
    long average) is cleaner than with the previous output left where it was."""
    from streamdn.models.network import load_weights
    from streamdn.tools.temporal import pan_clip

    net, _ = load_weights("models/weights/fast.safetensors")
    rng = np.random.default_rng(3)
    shot = list(pan_clip(_texture(300, 420, seed=9), 320, 240, 2.0, 16))
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in shot]
    follows = _run(NetworkModel(net, INFO), noisy)
    monkeypatch.setattr(NetworkModel, "_follow_camera", lambda self, prev: prev)
    stays = _run(NetworkModel(net, INFO), noisy)
    edge = (slice(None), slice(-24, None))                      # the last 12 frames' new picture
    a, b = _psnr(follows[-1][edge], shot[-1][edge]), _psnr(stays[-1][edge], shot[-1][edge])
    print(f"incoming edge: {a:.2f} against {b:.2f} dB")
    assert a > b + 0.5


def test_plain_fast_long_average_option() -> None:
    from streamdn.errors import ConfigError
    from streamdn.models.registry import create_model

    assert create_model("fast", long_average=False).long_average is None
    with pytest.raises(ConfigError, match="long_average"):
        create_model("fast", long_average="bogus")


@pytest.mark.gpu
def test_plain_fast_on_cuda_keeps_no_host_canvas_unless_asked() -> None:
    from streamdn.models.network import LongAverage
    from streamdn.models.registry import create_model

    assert create_model("fast", device="cuda").long_average is None
    assert create_model("fast", device="cuda", long_average=True).long_average == LongAverage()
    assert create_model("fast_mc", device="cuda").long_average == LongAverage()


@pytest.mark.gpu
def test_plain_fast_on_cuda_runs_on_the_mean_when_asked() -> None:
    """With long_average=True on CUDA, `fast` runs on the host canvas's mean and its recursion
    follows the camera as on the CPU: a still shot and a pan gain over the network alone
    (fp16 there)."""
    from streamdn.models.registry import create_model

    net_on = create_model("fast", device="cuda", long_average=True)
    net_off = create_model("fast", device="cuda")
    rng = np.random.default_rng(4)
    clean = _texture(96, 128, seed=3)
    still = [np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8) for _ in range(24)]
    on, off = _run(net_on, still), _run(net_off, still)
    assert _psnr(on[-1], clean) > _psnr(off[-1], clean) + 1.0
    from streamdn.tools.temporal import pan_clip

    pan = list(pan_clip(_texture(140, 180, seed=4), 128, 96, 0.8, 24))
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in pan]
    inner = (slice(8, -8), slice(8, -8))
    a = _run(create_model("fast", device="cuda", long_average=True), noisy)[-1]   # (_run closes its model)
    b = _run(create_model("fast", device="cuda"), noisy)[-1]
    assert _psnr(a[inner], pan[-1][inner]) > _psnr(b[inner], pan[-1][inner]) + 1.0


def test_long_average_kernel_matches_the_torch_path() -> None:
    """The CPU's Numba long average (fused) against the torch version (fused=False), with a
    ramp short enough that it is blended in from the second frame."""
    from streamdn.models.network import LongAverage, load_weights

    net, _ = load_weights("models/weights/fast_mc.safetensors")
    la = LongAverage(ramp=(1.0, 2.0), follow=False)
    rng = np.random.default_rng(1)
    clean = _texture(48, 64, seed=5)
    frames = [np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    fused, plain = NetworkModel(net, INFO, long_average=la), NetworkModel(net, INFO, long_average=la, fused=False)
    assert fused.fused and not plain.fused
    a, b = _run(fused, frames), _run(plain, frames)
    off = _run(NetworkModel(net, INFO, long_average=False), frames)
    assert not np.array_equal(a[-1], off[-1])            # it is blended in
    for x, y in zip(a, b):
        assert np.abs(x.astype(int) - y).max() <= 2
