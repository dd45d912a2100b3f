"""streamdn: a real-time video denoiser.

Public API: Denoiser (one stream's model and state), Pipeline (the threaded loop), sources,
sinks, load_config and the model registry.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import RunConfig, load_config
from .denoiser import Denoiser
from .errors import ConfigError, DeviceError, ModelNotFoundError, SinkError, SourceError, StreamdnError
from .frames import Frame, FrameFormat
from .models import create_model, list_models
from .pipeline import Pipeline, RunStats
from .sinks import FileSink, ListSink, NullSink
from .sources import FileSource, SyntheticSource, open_source

__all__ = [
    "ConfigError", "Denoiser", "DeviceError", "FileSink", "FileSource", "Frame", "FrameFormat", "ListSink",
    "ModelNotFoundError", "NullSink", "Pipeline", "RunConfig", "RunStats", "SinkError", "SourceError",
    "StreamdnError", "SyntheticSource", "create_model", "list_models", "load_config", "open_source",
]
