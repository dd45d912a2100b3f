"""Denoising models, their registry and shipped weights (installed as streamdn.models).

>>> from streamdn.models import create_model, list_models
>>> [m.name for m in list_models()]
"""

from . import cards, classical, ffmpeg, tfilter  # noqa: F401  (registers the models)
from .registry import DEFAULT_MODEL, FrameModel, ModelInfo, create_model, list_models, model_info, register

__all__ = ["DEFAULT_MODEL", "FrameModel", "ModelInfo", "create_model", "list_models", "model_info", "register"]
