"""The model registry knows no model or file format: file loaders register by suffix, options are
checked against what each factory takes, and importing the models imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamdn.errors import ConfigError, ModelNotFoundError
from streamdn.frames import Frame
from streamdn.models import FrameModel, ModelInfo, create_model, model_info, registry
from streamdn.models.registry import FileLoader, register_file_loader

ROOT = Path(__file__).resolve().parent.parent


def test_registry_imports_no_model_and_no_torch() -> None:
    tree = ast.parse((ROOT / "models" / "registry.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any("network" in m or "torch" in m or "cards" in m for m in imported), imported


def test_importing_the_models_imports_no_torch() -> None:
    code = ("import sys, streamdn.models as m; m.model_info('fast'); m.list_models(); "
            "print('torch' in sys.modules, 'streamdn.models.network' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


class _Echo(FrameModel):
    info = ModelInfo("echo", "classical", "returns its input")

    def __init__(self, path: str, level: int = 0) -> None:
        self.path, self.level = path, level

    def pack(self, frame: Frame, sigmas: tuple[float, float, float]) -> Frame:
        return frame

    def forward(self, packed: Frame) -> Frame:
        return packed

    def unpack(self, result: Frame, frame: Frame) -> Frame:
        return result


def test_file_loaders_are_registered_by_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._FILE_LOADERS, ".echo", FileLoader(  # type: ignore[attr-defined]
        info=lambda path: ModelInfo(path, "classical", "an echo file"), create=_Echo, options=("level",)))
    assert model_info("clips/a.ECHO").summary == "an echo file"
    model = create_model("clips/a.echo", level=2)
    assert isinstance(model, _Echo) and model.path == "clips/a.echo" and model.level == 2
    with pytest.raises(ConfigError, match="'levle'.*valid options: level"):
        create_model("clips/a.echo", levle=2)
    with pytest.raises(ModelNotFoundError, match=r"\.echo"):   # the message names the file kinds known
        model_info("nope")


def test_register_file_loader_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_FILE_LOADERS", {})
    register_file_loader(".ECHO2", FileLoader(info=lambda p: _Echo.info, create=_Echo))
    assert set(registry._FILE_LOADERS) == {".echo2"}  # type: ignore[attr-defined]
    with pytest.raises(ModelNotFoundError):
        model_info("x.safetensors")            # no loader for it here: an unknown name


def test_factory_options_come_from_its_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # type: ignore[attr-defined]
    info = ModelInfo("echo", "classical", "returns its input")
    registry.register(info)(lambda *, device="cpu", level=0: _Echo(device, level))
    assert create_model("echo", level=3).level == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="'size'.*valid options: device, level"):
        create_model("echo", size=3)
    registry.register(info)(lambda **kw: _Echo("any", **kw))   # **kwargs: the factory checks them itself
    with pytest.raises(TypeError):
        create_model("echo", size=3)


def test_stateless_models_clone_as_themselves_temporal_ones_must_say() -> None:
    echo = _Echo("x")
    assert echo.clone() is echo
    temporal = _Echo("y")
    temporal.info = ModelInfo("echo-t", "classical", "keeps a past", temporal=True)
    with pytest.raises(NotImplementedError, match="clone"):
        temporal.clone()


@pytest.mark.parametrize("name", ["tfilter", "classical:nlm-temporal", "classical:gaussian", "tdn_tiny"])
def test_clones_share_settings_not_state(name: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(60, 200, (32, 48)).astype(np.uint8)
    u = rng.integers(100, 150, (16, 24)).astype(np.uint8)
    frames = [Frame(y=y, u=u, v=u.copy(), index=i) for i in range(3)]

    def run(model: FrameModel, frame: Frame) -> np.ndarray:
        return model.unpack(model.forward(model.pack(frame, (8.0, 4.0, 4.0))), frame).y

    model, ref = create_model(name, device="cpu"), create_model(name, device="cpu")
    for f in frames[:2]:
        run(model, f)
        run(ref, f)
    twin = model.clone()
    np.testing.assert_array_equal(run(twin, frames[2]), run(create_model(name, device="cpu"), frames[2]))
    np.testing.assert_array_equal(run(model, frames[2]), run(ref, frames[2]))
