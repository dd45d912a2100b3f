"""The int8 CPU backend (streamdn.models.int8 on ONNX Runtime): parity with torch on the
validation clips, the cache, odd sizes, the errors, and the live ladder's int8 rungs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from streamdn import ConfigError, Denoiser
from streamdn.config import ModelConfig
from streamdn.jobs.ladder import Rung, build_rung, parse_rungs, usable_rungs
from streamdn.models import create_model
from streamdn.models import int8 as int8_mod
from streamdn.models.int8 import available

needs_ort = pytest.mark.skipif(not available(), reason="ONNX Runtime (the int8 extra) is not installed")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test builds its int8 models into a cache of its own."""
    monkeypatch.setenv("STREAMDN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "int8"


def _noisy_frames(h: int, w: int, n: int, sigma: float = 20.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([128 + 60 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0) for c in range(3)], -1)
    return [np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8) for _ in range(n)]


@needs_ort
def test_int8_keeps_the_validation_figures_of_fast() -> None:
    """The parity check: the blind validation clips (320x192) within 0.15 dB of torch fp32."""
    from streamdn.data.clips import validation_clips
    from streamdn.tools.train import validate

    clips = validation_clips(noises=("awgn20", "pg_lowlight"))
    ref = validate(create_model("fast", device="cpu", dtype="fp32"), clips)
    got = validate(create_model("fast", device="cpu", backend="int8"), clips)
    for noise in ("awgn20", "pg_lowlight"):
        assert got[noise]["psnr"] >= ref[noise]["psnr"] - 0.15, (noise, got[noise], ref[noise])
        assert got[noise]["ssim"] >= ref[noise]["ssim"] - 0.02


@pytest.mark.parametrize("arch", ["fast", "tdn_tiny"])
def test_the_exported_graph_is_the_trunk_in_fp32(arch: str) -> None:
    """What the int8 model is made from computes the trunk itself: the transposed convolutions as
    1x1 convolutions and a channels-last pixel shuffle, the head normalised per channel."""
    import torch

    from streamdn.models.fast import build

    torch.manual_seed(0)
    net = build(arch).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.2)          # the eighth-resolution level starts as a no-op: wake it
        c = net.enc.in_channels
        x = torch.rand(1, 24, 40, c)
        want = net.trunk(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        scale, offset = int8_mod.head_range(net, [x.numpy()])
        normalised = int8_mod._Int8Graph(net, scale, offset)(x)
    assert float(normalised.abs().max()) == pytest.approx(1.0, abs=1e-4)   # each channel spans [-1, 1]
    torch.testing.assert_close(normalised * scale + offset, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


@needs_ort
def test_the_int8_model_hands_back_uint8_with_its_scale() -> None:
    import torch

    from streamdn.models.fast import build

    torch.manual_seed(0)
    net = build("tdn_tiny").eval()
    trunk = int8_mod.Int8Trunk(net, threads=1, log=None)
    x = np.random.default_rng(0).random((20, 28, net.enc.in_channels), dtype=np.float32)
    q, scale, offset = trunk.head(int8_mod._quantise(x, trunk.input_scale, trunk.input_zero))   # uint8 in and out
    assert q.dtype == np.uint8 and q.shape == (20, 28, net.head.out_channels)
    assert scale.shape == offset.shape == (net.head.out_channels,) and bool((scale > 0).all())
    with torch.no_grad():
        want = net.trunk(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(trunk(x), q * scale + offset)
    assert np.abs(trunk(x) - want).mean() < 0.1 * np.abs(want).mean() + 1e-3


@needs_ort
def test_the_int8_model_is_built_once_and_cached(_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _noisy_frames(48, 64, 3)
    with Denoiser("fast", device="cpu", backend="int8") as dn:
        first = [dn(f) for f in frames]
    cached = list(_cache.glob("trunk-*.onnx"))
    assert len(cached) == 1 and cached[0].stat().st_size > 10_000
    assert [p for p in _cache.iterdir() if p.name.startswith(".")] == []   # written atomically

    def fail(*_a: object) -> bytes:
        raise AssertionError("rebuilt although cached")
    monkeypatch.setattr(int8_mod, "quantize", fail)
    with Denoiser("fast", device="cpu", backend="int8") as dn:
        again = [dn(f) for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))   # the same model, the same output


@needs_ort
def test_an_unwritable_cache_builds_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STREAMDN_CACHE_DIR", str(blocker))   # the cache folder cannot be made
    with Denoiser("fast", device="cpu", backend="int8") as dn:
        out = dn(_noisy_frames(32, 48, 1)[0])
    assert out.shape == (32, 48, 3)


@needs_ort
@pytest.mark.parametrize("h,w", [(48, 64), (34, 46), (70, 98), (16, 16)])
def test_int8_runs_any_size_close_to_torch(h: int, w: int) -> None:
    """Packed sizes whose quarter is odd are padded for the exported graph and cropped back."""
    frames = _noisy_frames(h, w, 4, seed=h)
    outs = {}
    for backend in ("torch", "int8"):
        with Denoiser(create_model("fast", device="cpu", dtype="fp32", backend=backend)) as dn:
            outs[backend] = [dn(f) for f in frames]
    for a, b in zip(outs["torch"], outs["int8"]):
        assert a.shape == b.shape == (h, w, 3)
        assert np.abs(a.astype(int) - b).mean() < 2.0


@needs_ort
def test_fast_mc_runs_int8_when_asked() -> None:
    model = create_model("fast_mc", device="cpu", backend="int8")
    assert model.backend == "int8"
    with Denoiser(model) as dn:
        outs = [dn(f) for f in _noisy_frames(48, 64, 3)]
    assert outs[-1].shape == (48, 64, 3)


def test_backend_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="torch or int8"):
        create_model("fast", device="cpu", backend="fp8")
    with pytest.raises(ConfigError, match="torch or int8"):
        Denoiser("fast", device="cpu", backend="onnx")
    with pytest.raises(ConfigError, match="backend"):
        ModelConfig(backend="int4")
    monkeypatch.setattr(int8_mod, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install \"streamdn\[int8\]\""):
        create_model("fast", device="cpu", backend="int8")
    monkeypatch.undo()
    if available():
        with pytest.raises(ConfigError, match="fused CPU step"):
            create_model("fast", device="cpu", backend="int8", fused=False)
        with pytest.raises(ConfigError, match="torch only"):
            create_model("photo_tiny", device="cpu", backend="int8")


def test_a_filter_ignores_int8_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    with Denoiser("tfilter", backend="int8") as dn:
        assert dn(_noisy_frames(16, 16, 1)[0]).shape == (16, 16, 3)
    assert "is a filter; backend 'int8' is ignored" in capsys.readouterr().err


def test_int8_rungs_parse_and_name() -> None:
    rungs = parse_rungs("fast,fast+int8,fast+int8@0.5,classical:gaussian")
    assert rungs[1] == Rung("fast", 1.0, "int8") and rungs[2] == Rung("fast", 0.5, "int8")
    assert [r.name for r in rungs] == ["fast", "fast+int8", "fast+int8@0.5", "classical:gaussian"]
    assert parse_rungs(",".join(r.name for r in rungs)) == rungs
    with pytest.raises(ConfigError, match="only int8"):
        parse_rungs("fast+fp16")
    with pytest.raises(ConfigError, match="is a filter"):
        parse_rungs("tfilter+int8")
    with pytest.raises(ConfigError, match="twice"):
        parse_rungs("fast+int8,fast+int8")


def test_int8_rungs_are_left_out_where_they_do_not_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamdn.models.network as network

    rungs = parse_rungs("fast,fast+int8,fast@0.5,fast+int8@0.5")
    monkeypatch.setattr(network, "int8_pays", lambda: False)
    assert usable_rungs(rungs) == (rungs[0], rungs[2])
    assert usable_rungs(rungs[1:2]) == rungs[1:2]   # only int8 rungs: kept (and fail clearly if unusable)
    monkeypatch.setattr(network, "int8_pays", lambda: True)
    assert usable_rungs(rungs) == rungs


@needs_ort
def test_an_int8_rung_runs_int8() -> None:
    for text in ("fast+int8", "fast+int8@0.5"):
        dn = build_rung(parse_rungs(text)[0], ModelConfig(device="cpu"))
        inner = getattr(dn.model, "inner", dn.model)
        assert inner.backend == "int8", text
        assert dn(_noisy_frames(32, 48, 1)[0]).shape == (32, 48, 3)
        dn.close()


@needs_ort
def test_the_config_key_reaches_the_model(tmp_path: Path) -> None:
    from streamdn.models.network import int8_pays

    dn = Denoiser.from_config(ModelConfig(name="fast", device="cpu", backend="int8"))
    assert dn.model.backend == "int8"
    dn.close()
    assert Denoiser.from_config(ModelConfig(name="fast", device="cpu", backend="torch")).model.backend == "torch"
    auto = Denoiser.from_config(ModelConfig(name="fast", device="cpu")).model.backend
    assert auto == ("int8" if int8_pays() else "torch")
    assert os.environ["STREAMDN_CACHE_DIR"].startswith(str(tmp_path))


# -- quantisation-aware training ---------------------------------------------------------------

def test_fake_quantisation_rounds_as_int8_and_strips_to_the_float_weights() -> None:
    import torch

    from streamdn.models.fast import build
    from streamdn.models.int8 import add_fake_quant, strip_fake_quant

    torch.manual_seed(0)
    net = build("tdn_tiny")
    x = torch.rand(1, 2 * 6 + 3 + 1 + net.cfg.hidden, 16, 16)
    ref = net.trunk(x).detach()
    add_fake_quant(net)
    net.train()
    y = net.trunk(x)
    assert 0 < (y - ref).abs().max() < 0.5            # rounded, not broken
    y.sum().backward()                                  # gradients reach the float weights
    assert net.enc.parametrizations.weight.original.grad.abs().sum() > 0
    assert net.head.parametrizations.weight.original.grad.abs().sum() > 0   # the head is int8 too
    lo, hi = float(net.enc.input_quant.lo), float(net.enc.input_quant.hi)
    assert lo == pytest.approx(float(x.min())) and hi == pytest.approx(float(x.max()))
    head_lo, head_hi = net.head.output_quant.lo, net.head.output_quant.hi   # one range per head channel
    assert head_lo.shape == (net.head.out_channels,) and bool((head_lo < head_hi).all())
    assert torch.allclose(head_lo, y.detach().amin(dim=(0, 2, 3)), atol=0.02)
    net.eval()
    assert torch.equal(net.trunk(x), net.trunk(x))     # eval: the ranges stay put
    plain = strip_fake_quant(net)
    assert set(plain.state_dict()) == set(build("tdn_tiny").state_dict())
    assert torch.allclose(plain.trunk(x), ref)          # the same float weights (no step was taken)
    assert hasattr(net.enc, "parametrizations")        # the trained network keeps its own


def test_a_qat_run_writes_plain_float_weights(tmp_path: Path) -> None:
    import torch

    from streamdn.data.clips import ClipSpec, ValClip, noisy_clip, render_clip
    from streamdn.data.noise import NoiseSpec
    from streamdn.models.network import load_weights
    from streamdn.tools.train import TrainConfig, train

    cfg = TrainConfig(arch="tdn_tiny", bf16=False, qat=True, out=str(tmp_path / "run"), steps=2, epoch_steps=2,
                      batch=1, crop=32, val_frames=2, workers=0, threads=1)
    rng = np.random.default_rng(0)
    clean = render_clip(ClipSpec(frames=2, size=(32, 48), speed=1.0, objects=0), rng)
    best = train(cfg, quiet=True, clips=[ValClip("tiny", clean, noisy_clip(clean, NoiseSpec("gaussian", 20.0), rng),
                                                 "awgn20")])
    net, _ = load_weights(best)                        # plain keys: loads into a plain network
    assert not any("parametrizations" in k or "input_quant" in k for k in net.state_dict())
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert any("input_quant" in k for k in state["model"])   # the checkpoint keeps the ranges to resume
    train(cfg.__class__(**{**cfg.__dict__, "steps": 3}), quiet=True,
          clips=[ValClip("tiny", clean, noisy_clip(clean, NoiseSpec("gaussian", 20.0), rng), "awgn20")])
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)["step"] == 3


@needs_ort
def test_int8_weights_of_their_own_are_what_the_int8_backend_runs(tmp_path: Path) -> None:
    import torch

    from streamdn.models.fast import build
    from streamdn.models.network import NetworkModel
    from streamdn.models.registry import ModelInfo

    torch.manual_seed(0)
    net, other = build("tdn_tiny"), build("tdn_tiny")
    info = ModelInfo("tiny", "network", "test")
    frame = _noisy_frames(32, 48, 1)[0]
    outs = []
    for int8_net in (None, other, net):
        with Denoiser(NetworkModel(net, info, backend="int8", int8_net=int8_net)) as dn:
            outs.append(dn(frame))
    assert np.array_equal(outs[0], outs[2]) and not np.array_equal(outs[0], outs[1])
    with pytest.raises(ConfigError, match="another network configuration"):
        NetworkModel(net, info, backend="int8", int8_net=build("fast"))


def test_auto_picks_int8_for_weights_trained_for_it_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamdn.models.network as network

    monkeypatch.setattr(network, "int8_pays", lambda: True)
    assert create_model("fast", device="cpu").backend == "int8"            # [int8] weights in its card
    assert create_model("fast", device="cpu")._int8_net is not None
    assert create_model("fast", device="cpu", backend="torch").backend == "torch"
    assert create_model("fast", device="cpu", dtype="fp32").backend == "torch"   # a dtype asked for: torch
    assert create_model("fast", device="cpu", fused=False).backend == "torch"
    fast_mc = create_model("fast_mc", device="cpu")
    assert fast_mc.backend == "int8" and fast_mc._int8_net is not None      # its own [int8] weights
    assert create_model("models/weights/fast.safetensors", device="cpu").backend == "torch"   # a file: when asked
    assert create_model("fast", device="cpu", weights="models/weights/fast.safetensors").backend == "torch"
    monkeypatch.setattr(network, "int8_pays", lambda: False)
    assert create_model("fast", device="cpu").backend == "torch"


@needs_ort
def test_auto_falls_back_to_torch_when_int8_cannot_be_prepared(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import streamdn.models.network as network

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("onnxruntime is broken")
    monkeypatch.setattr(network, "int8_pays", lambda: True)
    monkeypatch.setattr(int8_mod, "Int8Trunk", broken)
    with Denoiser("fast", device="cpu") as dn:                    # auto picked int8
        assert dn.model.backend == "int8"
        assert dn(_noisy_frames(32, 48, 1)[0]).shape == (32, 48, 3)
        assert dn.model.backend == "torch"
    assert "int8 backend could not be prepared" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="broken"):              # asked for: the error stands
        Denoiser("fast", device="cpu", backend="int8")(_noisy_frames(32, 48, 1)[0])
