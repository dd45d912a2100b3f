"""streamdn: a real-time video denoiser.

Public API: Denoiser (one stream's model and state), Pipeline (the threaded loop), Frame and
FrameFormat, sources and sinks (Source and Sink are the base classes to extend), denoise_file
(one file into another), load_config, the model registry and the errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

from streamdn.config import RunConfig, load_config
from streamdn.denoiser import Denoiser
from streamdn.errors import ConfigError, DeviceError, ModelNotFoundError, SinkError, SourceError, StreamdnError
from streamdn.frames import Frame, FrameFormat
from streamdn.io.camera import CameraSource
from streamdn.io.sinks import FileSink, ListSink, NullSink, Sink
from streamdn.io.sources import FileSource, Source, SyntheticSource, open_source
from streamdn.jobs.file import denoise_file
from streamdn.models import create_model, list_models, model_info
from streamdn.pipeline import Pipeline, RunStats

__all__ = [
    "CameraSource", "ConfigError", "Denoiser", "DeviceError", "FileSink", "FileSource", "Frame", "FrameFormat",
    "ListSink", "ModelNotFoundError", "NullSink", "Pipeline", "RunConfig", "RunStats", "Sink", "SinkError",
    "Source", "SourceError", "StreamdnError", "SyntheticSource", "create_model", "denoise_file", "list_models",
    "load_config", "model_info", "open_source",
]
