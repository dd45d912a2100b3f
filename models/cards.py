"""Registry entries of the trained networks (video: `fast`, `fast_mc`, `quality`, `tdn_tiny`; still
pictures: `photo`, `photo_tiny`; files, merging a window of frames: `window`, `window_tiny`), filled
from their
model cards in weights/<name>.toml where one ships, and the loader of .safetensors weight files.
Importing this module does not import torch: streamdn.models.network is imported when a network
is built or a weight file read."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from .registry import FileLoader, FrameModel, ModelInfo, register, register_file_loader

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# MAC/px and parameters of each architecture, as streamdn.models.macs counts them
# (tests/test_network.py checks these against the counter).
ARCH_FIGURES: dict[str, tuple[float, int]] = {
    "fast": (6048.0, 118768),
    "fast_mc": (6426.0, 120286),
    "quality": (38160.0, 554324),
    "tdn_tiny": (705.0, 4422),
    "photo": (96453.0, 386528),
    "photo_tiny": (1035.0, 4168),
}
PHOTO_ARCHS = ("photo", "photo_tiny")   # the still-image networks (streamdn.models.photo)
TEST_ARCHS = ("tdn_tiny", "photo_tiny")   # listed with random weights, for tests

# The keyword options of NetworkModel (streamdn.models.network; tests/test_network.py checks the
# two agree): what create_model takes for a network besides `weights`.
NETWORK_OPTIONS = ("device", "dtype", "backend", "signal_dependent", "cut_threshold", "fused", "low_noise_blend",
                   "long_average", "chroma_edges")

# Windowed models (streamdn.models.window): the still-image network each runs over the mean.
WINDOW_ARCHS = {"window": "photo", "window_tiny": "photo_tiny"}
WINDOW_OPTIONS = ("before", "after")

SUMMARIES = {
    "fast": "recurrent gated U-Net, three scales, ~6k MAC/px, run on a long average that follows the camera: the CPU model",
    "fast_mc": "fast with a motion-compensated recursion (warped state, frame count): sharper, ~1.3-1.4x the time",
    "quality": "recurrent gated U-Net, ~38k MAC/px (GPU)",
    "tdn_tiny": "tiny recurrent network for tests (random weights)",
    "photo": "still-image network (FFDNet-style, full-resolution RGB, ~96k MAC/px): photographs",
    "photo_tiny": "tiny still-image network for tests (random weights)",
    "window": "files: each frame merged with the 4 before and 4 after it (aligned), then photo; ~1 s per 720p frame on 2 cores",
    "window_tiny": "window over photo_tiny, for tests (random weights)",
}


def read_card(name: str) -> dict[str, Any]:
    """The parsed weights/<name>.toml model card, or {} when none ships."""
    path = WEIGHTS_DIR / f"{name}.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def _info(name: str) -> ModelInfo:
    card = read_card(name)
    macs, params = ARCH_FIGURES[name]
    val = card.get("validation", {})
    trained = (WEIGHTS_DIR / f"{name}.safetensors").is_file()
    return ModelInfo(
        name=name, kind="network", temporal=name not in PHOTO_ARCHS,
        summary=SUMMARIES[name] + ("" if trained or name in TEST_ARCHS else " (no weights shipped: random init)"),
        macs_per_px=float(card.get("macs_per_px", macs)), params=int(card.get("params", params)),
        trained_on=card.get("training", {}).get("noise"),
        val_psnr=val.get("psnr_awgn20"),
    )


def _window_factory(name: str) -> Any:
    base = WINDOW_ARCHS[name]
    val = read_card(name).get("validation", {}).get("psnr_awgn20")   # its own card: video clips, not pictures
    info = replace(_info(base), name=name, temporal=True, summary=SUMMARIES[name], window=(4, 4), val_psnr=val)

    @register(info, options=(*NETWORK_OPTIONS, *WINDOW_OPTIONS, "weights"))
    def factory(**kw: Any) -> FrameModel:
        from .picture import create_photo_model
        from .window import WindowModel

        window = {k: kw.pop(k) for k in WINDOW_OPTIONS if k in kw}
        long_average = kw.pop("long_average", True)
        weights = kw.pop("weights", "default" if base not in TEST_ARCHS else None)
        photo = create_photo_model(base, _info(base), weights, **kw)
        before, after = window.get("before", 4), window.get("after", 4)
        return WindowModel(photo, replace(info, window=(int(before), int(after))), before=before, after=after,
                           long_average=bool(long_average))

    factory.__name__ = name
    return factory


def _factory(name: str) -> Any:
    info = _info(name)

    @register(info, options=(*NETWORK_OPTIONS, "weights"))
    def factory(**kw: Any) -> FrameModel:
        weights = kw.pop("weights", "default" if name not in TEST_ARCHS else None)
        if name in PHOTO_ARCHS:
            from .picture import create_photo_model

            return create_photo_model(name, info, weights, **kw)
        from .network import create_network  # torch is imported only when a network is built

        # [int8] weights in the card: the shipped weights run in int8 by default where it pays,
        # from that file (weights fine-tuned for int8, or the shipped file itself).
        int8_file = read_card(name).get("int8", {}).get("weights")
        if weights == "default" and int8_file and (WEIGHTS_DIR / int8_file).is_file():
            kw["int8_weights"] = WEIGHTS_DIR / int8_file
        return create_network(name, info, weights, **kw)

    factory.__name__ = name
    return factory


fast = _factory("fast")
if (WEIGHTS_DIR / "fast_mc.safetensors").is_file():
    fast_mc = _factory("fast_mc")
tdn_tiny = _factory("tdn_tiny")
if (WEIGHTS_DIR / "quality.safetensors").is_file():  # listed only once trained weights ship
    quality = _factory("quality")
if (WEIGHTS_DIR / "photo.safetensors").is_file():
    photo = _factory("photo")
photo_tiny = _factory("photo_tiny")
if (WEIGHTS_DIR / "photo.safetensors").is_file():
    window = _window_factory("window")
window_tiny = _window_factory("window_tiny")


def _file_info(path: str) -> ModelInfo:
    from .network import info_from_metadata, read_metadata

    return info_from_metadata(path, read_metadata(path))


def _file_model(path: str, **options: Any) -> FrameModel:
    from .network import load_network, read_metadata

    if read_metadata(path).get("family") == "photo":
        from .picture import load_photo_model

        return load_photo_model(path, **options)
    return load_network(path, **options)


register_file_loader(".safetensors", FileLoader(info=_file_info, create=_file_model, options=NETWORK_OPTIONS))
