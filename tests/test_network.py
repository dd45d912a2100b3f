"""The temporal network: MAC counter, weight files, the NetworkModel behind the Denoiser API."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from streamdn import Denoiser
from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import Frame
from streamdn.kernels import is_scene_cut
from streamdn.models import create_model, list_models, model_info
from streamdn.models.cards import ARCH_FIGURES, NETWORK_OPTIONS
from streamdn.models.fast import PRESETS, build
from streamdn.models.macs import count_macs, count_params, network_macs
from streamdn.models.network import NetworkModel, Packed, load_weights, read_metadata, save_weights
from streamdn.tensors import TensorPath


def _frame(h: int, w: int, seed: int = 0, bit_depth: int = 8, index: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    maxv = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    ch, cw = (h + 1) // 2, (w + 1) // 2
    yy, xx = np.mgrid[0:h, 0:w]
    base = (0.3 + 0.4 * (xx + yy) / (h + w)) * maxv
    y = np.clip(base + rng.normal(0, 0.06 * maxv, (h, w)), 0, maxv).astype(dtype)
    u = np.clip(maxv / 2 + rng.normal(0, 0.04 * maxv, (ch, cw)), 0, maxv).astype(dtype)
    v = np.clip(maxv / 2 + rng.normal(0, 0.04 * maxv, (ch, cw)), 0, maxv).astype(dtype)
    return Frame(y=y, u=u, v=v, bit_depth=bit_depth, index=index)


def test_count_macs_of_known_layers() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 5))
    x = torch.zeros(1, 3, 4, 4)
    macs = count_macs(net, lambda: net(x), pixels=16)
    conv = 4 * 4 * 8 * 9 * 3          # output values x k*k*C_in
    tconv = 4 * 4 * 8 * 4 * 4         # input values x k*k*C_out
    linear = 5 * 4 * 8 * 8
    assert macs == (conv + tconv + linear) / 16
    assert count_params(net) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch", sorted(PRESETS))
def test_registry_figures_match_the_counter(arch: str) -> None:
    net = build(arch)
    assert ARCH_FIGURES[arch] == (network_macs(net), count_params(net))
    # MAC/px does not depend on the frame size used to count it.
    assert network_macs(net, 32, 48) == network_macs(net, 64, 64)


def test_fast_fits_its_budget() -> None:
    macs, _ = ARCH_FIGURES["fast"]
    # docs/design.md §3: about 5k MAC per input pixel; the eighth-resolution level added 936
    # (+18 %) for +0.3 dB on every validation noise (models/weights/fast.toml).
    assert 3000 <= macs <= 6500
    assert [i for i in list_models() if i.name == "fast"][0].macs_per_px == macs


def test_step_shapes_and_first_frame_gate() -> None:
    net = build("tdn_tiny").eval()
    cur = torch.rand(2, 6, 8, 12)
    sigma = torch.full((2, 3, 8, 12), 0.05)
    prev, hidden = net.init_state(cur)
    out, hidden2, alpha = net(cur, sigma, prev, hidden, 0.0)[:3]
    assert out.shape == cur.shape and out.dtype == torch.float32
    assert hidden2.shape == (2, PRESETS["tdn_tiny"].hidden, 8, 12)
    assert torch.all(alpha == 0)  # first frame: the past is not used
    alpha = net(cur, sigma, out, hidden2, 1.0).alpha
    assert torch.all((alpha > 0) & (alpha < 1))


def test_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = build("tdn_tiny")
    path = save_weights(net, tmp_path / "w.safetensors", "tdn_tiny", {"val_psnr": "30.5"})
    meta = read_metadata(path)
    assert meta["arch"] == "tdn_tiny" and meta["val_psnr"] == "30.5"
    loaded, _ = load_weights(path)
    for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    # --model path/to/file.safetensors
    info = model_info(str(path))
    assert info.kind == "network" and info.val_psnr == 30.5
    frame = _frame(20, 30)
    a = create_model(str(path), dtype="fp32")
    b = create_model("tdn_tiny", weights=str(path), dtype="fp32")
    ra = a.unpack(a.forward(a.pack(frame, (5.0, 3.0, 3.0))), frame)
    rb = b.unpack(b.forward(b.pack(frame, (5.0, 3.0, 3.0))), frame)
    np.testing.assert_array_equal(ra.y, rb.y)


def test_bad_weight_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        create_model(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelNotFoundError, match="safetensors"):
        model_info(str(junk))
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelNotFoundError, match="no streamdn network"):
        create_model(str(other))


@pytest.mark.parametrize("h,w", [(48, 64), (37, 51), (3, 5)])
@pytest.mark.parametrize("bit_depth", [8, 10])
def test_denoiser_with_network(h: int, w: int, bit_depth: int) -> None:
    with Denoiser("tdn_tiny", device="cpu") as dn:
        for t in range(3):
            f = _frame(h, w, seed=t, bit_depth=bit_depth, index=t)
            out = dn(f)
            assert out.y.shape == f.y.shape and out.u.shape == f.u.shape and out.v.shape == f.v.shape
            assert out.y.dtype == f.y.dtype and out.index == t
            assert int(out.y.max()) <= (1 << bit_depth) - 1


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_outputs_are_finite_and_reset_forgets(dtype: str) -> None:
    model = create_model("tdn_tiny", dtype=dtype)
    frames = [_frame(32, 40, seed=s, index=s) for s in range(4)]

    def run(frames: list[Frame]) -> list[torch.Tensor]:
        outs = []
        for f in frames:
            r = model.forward(model.pack(f, (8.0, 4.0, 4.0)))
            assert torch.isfinite(r).all()
            outs.append(r.clone())
        return outs

    first = run(frames[:2])
    model.reset()
    again = run(frames[:2])
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    later = run(frames[2:3])                     # with the past of frames 0, 1
    model.reset()
    alone = run(frames[2:3])                     # without it
    assert not torch.equal(later[0], alone[0])


def test_scene_cut_resets_the_state() -> None:
    model = create_model("tdn_tiny", dtype="fp32")
    bright = _frame(32, 32, seed=0)
    dark = Frame(y=bright.y // 4, u=bright.u, v=bright.v, index=1)
    model.forward(model.pack(bright, (4.0, 4.0, 4.0)))
    cut = model.forward(model.pack(dark, (4.0, 4.0, 4.0)))
    model.reset()
    fresh = model.forward(model.pack(dark, (4.0, 4.0, 4.0)))
    assert torch.equal(cut, fresh)


def test_close_is_idempotent() -> None:
    model = create_model("tdn_tiny")
    model.close()
    model.close()


@pytest.mark.gpu
def test_cuda_fp16_matches_cpu() -> None:
    frames = [_frame(64, 96, seed=s, index=s) for s in range(3)]
    cpu = create_model("tdn_tiny", device="cpu", dtype="fp32")
    gpu = create_model("tdn_tiny", device="cuda", dtype="auto")
    assert gpu.dtype == torch.float16
    for f in frames:
        a = cpu.unpack(cpu.forward(cpu.pack(f, (8.0, 4.0, 4.0))), f)
        b = gpu.unpack(gpu.forward(gpu.pack(f, (8.0, 4.0, 4.0))), f)
        assert np.abs(a.y.astype(int) - b.y.astype(int)).max() <= 2
    gpu.close()


@pytest.mark.parametrize("h,w", [(16, 16), (20, 28), (6, 10)])
def test_deep_level_starts_as_a_no_op_and_handles_odd_sizes(h: int, w: int) -> None:
    base = build("tdn_tiny")
    deep = build("tdn_tiny", {"deep": 8})
    missing, unexpected = deep.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(("down2.", "mid2.", "up2.")) for k in missing)
    cur = torch.rand(1, 6, h, w)
    sigma = torch.full((1, 3, h, w), 0.05)
    with torch.no_grad():
        a = base(cur, sigma, *base.init_state(cur))[0]
        b = deep(cur, sigma, *deep.init_state(cur))[0]
    assert torch.equal(a, b)
    assert network_macs(deep) > network_macs(base)


def test_deep_config_round_trips_through_weight_files(tmp_path: Path) -> None:
    net = build("tdn_tiny", {"deep": 8})
    path = save_weights(net, tmp_path / "d.safetensors", "tdn_tiny")
    again, meta = load_weights(path)
    assert again.cfg.deep == 8
    model = create_model(str(path), dtype="fp32")
    f = _frame(37, 51)
    out = model.unpack(model.forward(model.pack(f, (8.0, 4.0, 4.0))), f)
    assert out.y.shape == f.y.shape


def test_weight_files_without_the_deep_key_load_without_the_level(tmp_path: Path) -> None:
    """Files written before NetConfig.deep existed (no "deep" in their config) keep working."""
    from safetensors.torch import save_file

    net = build("fast", {"deep": 0})
    meta = {"format": "streamdn-net-1", "arch": "fast",
            "config": '{"width": 24, "inner": 48, "depth": 2, "hidden": 4}'}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "old.safetensors"), metadata=meta)
    again, _ = load_weights(tmp_path / "old.safetensors")
    assert again.cfg.deep == 0


def _clean_scene(h: int = 96, w: int = 128, frames: int = 4) -> list[Frame]:
    from streamdn.frames import frame_from_bgr
    from streamdn.data.synthetic import MovingScene, SceneConfig

    scene = MovingScene(SceneConfig(width=w, height=h, speed=0.5, objects=1, seed=3))
    return [frame_from_bgr(img, index=t) for t, img in enumerate(scene.frames(frames))]


def test_a_clean_picture_passes_through_and_noise_still_goes() -> None:
    frames = _clean_scene()
    with Denoiser("fast") as dn:
        out = [dn(f) for f in frames]
    for f, o in zip(frames, out):                # blind sigma ~0.3: the input comes back
        for a, b in ((f.y, o.y), (f.u, o.u), (f.v, o.v)):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    model = create_model("fast", low_noise_blend=(0.0, 0.0))   # without the blend it would not
    with Denoiser(model) as dn:
        raw = [dn(f) for f in frames]
    assert max(np.abs(f.y.astype(int) - o.y.astype(int)).max() for f, o in zip(frames, raw)) > 2
    rng = np.random.default_rng(0)
    noisy = [f.with_planes(*(np.clip(p + rng.normal(0, 15, p.shape), 0, 255).astype(np.uint8) for p in (f.y, f.u, f.v)))
             for f in frames]
    with Denoiser("fast") as dn:                 # real noise: the network's output unchanged
        blended = [dn(f).y for f in noisy]
    with Denoiser(create_model("fast", low_noise_blend=(0.0, 0.0))) as dn:
        plain = [dn(f).y for f in noisy]
    for a, b in zip(blended, plain):
        np.testing.assert_array_equal(a, b)


def test_low_noise_blend_weights_and_impulse_frames() -> None:
    model = create_model("fast")
    f = _clean_scene(frames=1)[0]
    assert model.pack(f, (1.75, 1.0, 1.0)).sigma_y == 1.75
    f.extra["impulses_removed"] = True           # the Denoiser's mark after impulse removal
    assert model.pack(f, (1.75, 1.0, 1.0)).sigma_y == float("inf")
    with pytest.raises(Exception, match="low_noise_blend"):
        create_model("fast", low_noise_blend=(3.0, 1.0))


def test_network_options_are_the_models_and_are_checked(tmp_path: Path) -> None:
    params = inspect.signature(NetworkModel).parameters.values()
    keywords = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(NETWORK_OPTIONS) == keywords - {"int8_net"}   # int8_net: the registry's, from the card's [int8] weights
    path = save_weights(build("tdn_tiny"), tmp_path / "w.safetensors", "tdn_tiny")
    with pytest.raises(ConfigError, match="'fp16'.*valid options: .*dtype"):
        create_model(str(path), fp16=True)
    with pytest.raises(ConfigError, match="'signal_dependant'"):
        create_model("tdn_tiny", signal_dependant=False)


def test_numpy_and_tensor_paths_take_the_same_cuts() -> None:
    # Two scenes: the tensor path (streamdn.tensors) and the numpy path find the cut at the same frame.
    def cuts(model: NetworkModel) -> list[bool]:
        seen: list[bool] = []
        step = model.forward

        def forward(packed: Packed) -> torch.Tensor:
            seen.append(packed.cut)
            return step(packed)

        model.forward = forward  # type: ignore[method-assign]
        return seen

    frames = [_frame(48, 64, seed=i % 3) for i in range(3)]
    dark = _frame(48, 64, seed=5)
    dark.y = (dark.y // 4).astype(np.uint8)
    frames += [dark, dark]
    a, b = create_model("tdn_tiny", dtype="fp32"), create_model("tdn_tiny", dtype="fp32")
    seen_a, seen_b = cuts(a), cuts(b)   # type: ignore[arg-type]
    path = TensorPath(b, lambda est: est)
    for f in frames:
        a.forward(a.pack(f, Denoiser("tfilter").estimate_sigmas(f)))
        path.step(torch.from_numpy(f.to_bgr()[..., ::-1].copy()).permute(2, 0, 1).float())
    assert seen_a == seen_b == [False, False, False, True, False]
    assert a.is_scene_cut(40.0, 10.0) == is_scene_cut(40.0, 10.0, a.cut_threshold)


@pytest.mark.parametrize("long_average", ["follow", "still", "none"])
@pytest.mark.parametrize("name", ["tdn_tiny", "fast_mc"])
def test_state_buffers_reused_in_turn_change_nothing(name: str, long_average: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused step writes its carried arrays into two sets of buffers used in turn: the same
    outputs as with fresh arrays every step, and an output handed back is never written again."""
    from streamdn.models import network
    from streamdn.models.mosaic import LongAverage

    la = {"follow": True, "still": LongAverage(follow=False), "none": False}[long_average]
    frames = [_frame(40, 48, seed=s % 3, index=s) for s in range(6)]

    def run() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        model = create_model(name, device="cpu", dtype="fp32", long_average=la)
        held, copies = [], []
        for f in frames:
            r = model.forward(model.pack(f, (12.0, 6.0, 6.0)))
            held.append(r)
            copies.append(r.clone())
        model.close()
        return held, copies

    held, copies = run()
    for r, c in zip(held, copies):
        assert torch.equal(r, c)                 # nothing handed back was overwritten later
    monkeypatch.setattr(network._StateBuffers, "array", lambda self, n, shape: np.empty(shape, np.float32))
    _, fresh = run()
    for c, f in zip(copies, fresh):
        assert torch.equal(c, f)
