"""streamdn: a real-time video denoiser.

Public API: Denoiser (one stream's model and state), Pipeline (the threaded loop), sources,
sinks, load_config and the model registry.
"""

from __future__ import annotations

__version__ = "0.1.0"

from streamdn.config import RunConfig, load_config
from streamdn.denoiser import Denoiser
from streamdn.errors import ConfigError, DeviceError, ModelNotFoundError, SinkError, SourceError, StreamdnError
from streamdn.frames import Frame, FrameFormat
from streamdn.models import create_model, list_models
from streamdn.pipeline import Pipeline, RunStats
from streamdn.io.sinks import FileSink, ListSink, NullSink
from streamdn.io.sources import FileSource, SyntheticSource, open_source

__all__ = [
    "ConfigError", "Denoiser", "DeviceError", "FileSink", "FileSource", "Frame", "FrameFormat", "ListSink",
    "ModelNotFoundError", "NullSink", "Pipeline", "RunConfig", "RunStats", "SinkError", "SourceError",
    "StreamdnError", "SyntheticSource", "create_model", "list_models", "load_config", "open_source",
]
