"""Shared fixtures: the torch device for GPU tests and a factory of tiny generated videos."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The int8 models the tests build go to a folder of the session, not the user's cache (the
# test processes started by tests inherit it).
os.environ.setdefault("STREAMDN_CACHE_DIR", tempfile.mkdtemp(prefix="streamdn-test-cache-"))

from videos import Spec, make_video  # noqa: E402


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def slow_denoiser(seconds: float) -> object:
    """A default Denoiser whose model step takes at least `seconds` (drop-policy tests)."""
    import time

    from streamdn import Denoiser

    dn = Denoiser()
    step = dn.forward

    def slow(packed: object) -> object:
        time.sleep(seconds)
        return step(packed)

    dn.forward = slow  # type: ignore[method-assign]
    return dn


@pytest.fixture
def video(tmp_path: Path) -> Callable[..., Path]:
    """video(name="in.mp4", **Spec fields) -> path of a freshly written tiny clip."""

    def make(name: str = "in.mp4", **kw: object) -> Path:
        return make_video(tmp_path / name, Spec(**kw))  # type: ignore[arg-type]

    return make
