"""The still-image networks: architecture and figures, weight files, the still path in full RGB,
video frames through the FrameModel API, and training (batches, a tiny run, resuming)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdn import Denoiser
from streamdn.data.pictures import picture_batch, validation_pictures
from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import frame_from_bgr, planes_to_rgb, rgb_to_planes
from streamdn.jobs.still import denoise_pixels
from streamdn.models import create_model, model_info
from streamdn.models.cards import ARCH_FIGURES
from streamdn.models.macs import count_params
from streamdn.models.network import load_weights, read_metadata, save_weights
from streamdn.models.photo import PHOTO_PRESETS, PhotoConfig, build_photo
from streamdn.models.picture import PhotoModel, load_photo_weights
from streamdn.tools.train import TrainConfig, _photo_macs, train


from test_train import one_thread  # noqa: F401,E402  (autouse: one torch thread, as the training tests)


def tiny_file(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    return save_weights(build_photo("photo_tiny"), tmp_path / "tiny.safetensors", "photo_tiny",  # type: ignore[arg-type]
                        {"family": "photo"})


@pytest.mark.parametrize("kind", ["ffdnet", "dncnn"])
def test_both_architectures_start_near_the_identity(kind: str) -> None:
    net = build_photo("x", {"kind": kind, "width": 8, "depth": 4}).eval()
    rgb = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        out = net(rgb, torch.full((2, 3, 8, 12), 0.05))
    assert out.shape == rgb.shape and out.dtype == torch.float32
    assert (out - rgb).abs().max() < 0.2   # a small residual: the last layer starts scaled down


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        PhotoConfig(kind="unet")
    with pytest.raises(ValueError, match="depth"):
        PhotoConfig(depth=1)
    with pytest.raises(KeyError, match="photo"):
        build_photo("nope")


@pytest.mark.parametrize("arch", ["photo", "photo_tiny"])
def test_registry_figures_match_the_counter(arch: str) -> None:
    net = build_photo(arch)
    assert ARCH_FIGURES[arch] == (_photo_macs(net), count_params(net))


def test_receptive_field_fits_the_tile_context() -> None:
    # An impulse's influence ends within `radius` pixels (the tiling's context comes from it).
    cfg = PHOTO_PRESETS["photo_tiny"]
    net = build_photo("photo_tiny").eval()
    for conv in net.modules():
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.constant_(conv.weight, 0.05)
    rgb = torch.zeros(1, 3, 64, 64)
    base = net(rgb, torch.zeros(1, 3, 32, 32))
    rgb[0, :, 32, 32] = 1.0
    with torch.no_grad():
        diff = (net(rgb, torch.zeros(1, 3, 32, 32)) - base).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert int((ys - 32).abs().max()) <= cfg.radius and int((xs - 32).abs().max()) <= cfg.radius


def test_weight_file_round_trip_and_family_checks(tmp_path: Path) -> None:
    path = tiny_file(tmp_path)
    assert read_metadata(path)["family"] == "photo"
    net, _ = load_photo_weights(path)
    ref = build_photo("photo_tiny")
    torch.manual_seed(1)
    ref = build_photo("photo_tiny")
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    model = create_model(str(path))
    assert isinstance(model, PhotoModel) and not model.info.temporal
    with pytest.raises(ModelNotFoundError, match="still-image"):
        load_weights(path)   # a video network's loader refuses it with a clear message
    from streamdn.models.fast import build

    video = save_weights(build("tdn_tiny"), tmp_path / "video.safetensors", "tdn_tiny")
    with pytest.raises(ModelNotFoundError, match="video network"):
        load_photo_weights(video)


def test_model_file_works_wherever_a_model_name_does(tmp_path: Path) -> None:
    path = tiny_file(tmp_path)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)
    with Denoiser(str(path)) as dn:
        out = dn(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    info = model_info("photo_tiny")
    assert info.kind == "network" and not info.temporal


def test_still_path_keeps_full_colour_resolution() -> None:
    # A clean picture with one-pixel colour detail: 4:2:0 cannot hold it, the RGB path does (the
    # low-noise blend hands a clean picture back; the video path loses its chroma detail).
    yy, xx = np.mgrid[0:64, 0:96]
    rgb = np.full((64, 96, 3), 128, np.uint8)
    rgb[..., 0] = np.where((xx + yy) % 2, 200, 60)
    rgb[..., 2] = np.where((xx + yy) % 2, 60, 200)
    with Denoiser("photo_tiny", strength=0.2) as dn:
        out, _, tiles = denoise_pixels(dn, rgb)
        video = dn.model.unpack(dn.model.forward(dn.model.pack(frame_from_bgr(rgb[..., ::-1].copy()), (0.2,) * 3)),
                                frame_from_bgr(rgb[..., ::-1].copy()))
    assert tiles == 1
    assert np.abs(out.astype(int) - rgb).max() <= 1
    back = planes_to_rgb(video.y, video.u, video.v, 8, np.uint8)
    assert np.abs(back.astype(int) - rgb).mean() > 20


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiles_match_one_piece_and_depth_is_kept(dtype: type) -> None:
    rng = np.random.default_rng(3)
    clean = np.clip(rng.normal(120, 40, (150, 230, 3)), 0, 255)
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255)
    pic = (noisy * (257 if dtype == np.uint16 else 1)).astype(dtype)
    with Denoiser("photo_tiny") as dn:
        whole, s1, n1 = denoise_pixels(dn, pic)
        tiled, s2, n2 = denoise_pixels(dn, pic, tile=128)
    assert (n1, n2) == (1, 4) and s1 == s2
    assert whole.dtype == dtype and whole.shape == pic.shape
    assert np.abs(whole.astype(np.int64) - tiled).max() <= (257 if dtype == np.uint16 else 1)


def test_video_frames_odd_sizes_and_no_state() -> None:
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (33, 47, 3), dtype=np.uint8) for _ in range(3)]
    with Denoiser("photo_tiny", strength=10.0) as dn:   # a fixed strength: no noise estimate carried either
        outs = [dn(f) for f in frames]
        again = dn(frames[0])
    assert all(o.shape == (33, 47, 3) for o in outs)
    assert np.array_equal(again, outs[0])   # no past


def test_rgb_planes_round_trip_at_other_depths() -> None:
    # Smooth colour (what 4:2:0 holds): the round trip is exact up to rounding, finer at more bits.
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float32)
    rgb = np.dstack([0.2 + 0.02 * xx, 0.7 - 0.02 * yy, 0.3 + 0.01 * (xx + yy)]).astype(np.float32)
    for depth, tol in ((8, 0.01), (10, 0.003), (16, 0.001)):
        y, u, v = rgb_to_planes(rgb, depth)
        back = planes_to_rgb(y, u, v, depth, np.float32)
        assert np.abs(back - rgb)[1:-1, 1:-1].max() < tol, depth


def test_photo_model_refuses_unknown_options() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        PhotoModel(build_photo("photo_tiny"), model_info("photo_tiny"), colour="yes")
    model = create_model("photo_tiny", fused=False, cut_threshold=10.0)   # video options: ignored
    assert isinstance(model, PhotoModel)


def test_picture_batches_are_a_pure_function_of_the_step() -> None:
    a, b, c = picture_batch(7, 2, 32), picture_batch(7, 2, 32), picture_batch(8, 2, 32)
    assert a["noisy"].shape == (2, 3, 32, 32) and a["sigma"].shape == (2, 3, 16, 16)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["noisy"], c["noisy"])
    assert 0.0 <= a["clean"].min() and a["clean"].max() <= 1.0


def test_validation_pictures_are_fixed_and_held_out() -> None:
    a = validation_pictures(("awgn20",))
    b = validation_pictures(("awgn20", "pg_lowlight"))
    assert [p.name for p in a] == ["natural0-awgn20", "natural1-awgn20"]
    assert np.array_equal(a[0].noisy, b[0].noisy)


def test_a_tiny_run_validates_resumes_and_exports(tmp_path: Path) -> None:
    pics = validation_pictures(("awgn20",))
    pics = [type(p)(p.name, p.clean[:96, :128], p.noisy[:96, :128], p.noise) for p in pics]
    cfg = TrainConfig(arch="photo_tiny", out=str(tmp_path / "run"), steps=30, epoch_steps=15, batch=4, crop=32,
                      lr=3e-3, warmup=5, workers=0, threads=1)
    best = train(cfg, quiet=True, clips=pics)
    meta = read_metadata(best)
    assert meta["family"] == "photo" and meta["arch"] == "photo_tiny"
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [s for s, _ in hist["val"]] == [15, 30]
    assert all(np.isfinite(v["awgn20"]["psnr"]) and v["awgn20"]["psnr"] > 10 for _, v in hist["val"])
    # Resuming a finished run adds nothing and keeps the best weights.
    again = train(cfg, quiet=True, clips=pics)
    assert again == best
    from streamdn.tools.train import export

    out = export(cfg, tmp_path / "mine.safetensors")
    assert "single pictures" in read_metadata(out)["trained_on"]
    assert isinstance(create_model(str(out)), PhotoModel)


def test_pictures_default_to_the_still_image_network_where_installed(tmp_path: Path, monkeypatch) -> None:
    from streamdn.jobs import still
    from streamdn.models import list_models

    installed = any(i.name == "photo" for i in list_models())
    assert still.still_model() == ("photo" if installed else "default")
    # With `photo` reported installed (here: its tiny test twin stands in), a picture with no
    # model chosen uses it, and says so.
    monkeypatch.setattr(still, "still_model", lambda: "photo_tiny")
    src = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    res = still.denoise_still(src, tmp_path / "out.png")
    assert res.model == "photo_tiny" and (tmp_path / "out.png").is_file()
    assert still.denoise_still(src, tmp_path / "fast.png", model="fast").model == "fast"


def test_the_dncnn_baseline_trains_too(tmp_path: Path) -> None:
    pics = validation_pictures(("awgn20",))[:1]
    pics = [type(p)(p.name, p.clean[:64, :64], p.noisy[:64, :64], p.noise) for p in pics]
    cfg = TrainConfig(arch="photo_dncnn", out=str(tmp_path / "run"), steps=2, epoch_steps=2, batch=2, crop=32,
                      warmup=1, workers=0, threads=1)
    meta = read_metadata(train(cfg, quiet=True, clips=pics))
    assert meta["arch"] == "photo_dncnn" and json.loads(meta["config"])["kind"] == "dncnn"


def test_a_clean_video_frame_passes_through_photo_unchanged() -> None:
    rng = np.random.default_rng(4)
    frame = frame_from_bgr(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    with Denoiser("photo_tiny", strength=0) as dn:
        out = dn(frame)
    for a, b in ((out.y, frame.y), (out.u, frame.u), (out.v, frame.v)):
        np.testing.assert_array_equal(a, b)   # no RGB round trip: the chroma keeps its detail


def test_a_noisy_video_frame_keeps_its_size_and_depth_through_photo() -> None:
    rng = np.random.default_rng(5)
    frame = frame_from_bgr(rng.integers(0, 256, (47, 63, 3), dtype=np.uint8))
    with Denoiser("photo_tiny", strength=15) as dn:
        out = dn(frame)
    assert (out.y.shape, out.u.shape, out.y.dtype) == (frame.y.shape, frame.u.shape, frame.y.dtype)
