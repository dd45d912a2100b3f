"""streamdn: a real-time video denoiser.

Public API: Denoiser (one stream's model and state), Pipeline (the threaded loop), Frame and
FrameFormat, sources and sinks (Source and Sink are the base classes to extend), denoise_file
(one file into another), load_config, the model registry and the errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

import os

# OpenMP threads (torch's and the Numba kernels') sleep when idle instead of spinning. streamdn
# runs several stages at once on few cores; spinning threads starve the other stages, and under
# that contention a parallel Numba kernel took 50 ms to start instead of 0.1 ms (measured on
# 2 cores). Set before torch or Numba loads the OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Numba's kernels on its OpenMP threading layer where it loads, TBB or Numba's own otherwise:
# Numba prefers TBB when the tbb package is installed (OpenVINO brings it), and with it a
# 1280x720 `fast` step took 5-10 % longer (AVX2 EPYC, alternating runs); one layer everywhere
# also keeps the run the tests see. A user's own NUMBA_THREADING_LAYER(_PRIORITY) wins.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")

from typing import TYPE_CHECKING, Any

from streamdn.errors import ConfigError, DeviceError, ModelNotFoundError, SinkError, SourceError, StreamdnError

# The public names, imported on first use (PEP 562): `import streamdn` stays light, so that the
# command line starts quickly and a Ctrl-C while it starts ends cleanly.
_LAZY = {
    "RunConfig": "streamdn.config", "load_config": "streamdn.config", "Denoiser": "streamdn.denoiser",
    "Frame": "streamdn.frames", "FrameFormat": "streamdn.frames", "CameraSource": "streamdn.io.camera",
    "FileSink": "streamdn.io.sinks", "ListSink": "streamdn.io.sinks", "NullSink": "streamdn.io.sinks",
    "Sink": "streamdn.io.sinks", "FileSource": "streamdn.io.sources", "Source": "streamdn.io.sources",
    "SyntheticSource": "streamdn.io.sources", "open_source": "streamdn.io.sources",
    "denoise_file": "streamdn.jobs.file", "create_model": "streamdn.models", "list_models": "streamdn.models",
    "model_info": "streamdn.models", "Pipeline": "streamdn.pipeline", "RunStats": "streamdn.pipeline",
}

if TYPE_CHECKING:
    from streamdn.config import RunConfig, load_config
    from streamdn.denoiser import Denoiser
    from streamdn.frames import Frame, FrameFormat
    from streamdn.io.camera import CameraSource
    from streamdn.io.sinks import FileSink, ListSink, NullSink, Sink
    from streamdn.io.sources import FileSource, Source, SyntheticSource, open_source
    from streamdn.jobs.file import denoise_file
    from streamdn.models import create_model, list_models, model_info
    from streamdn.pipeline import Pipeline, RunStats


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamdn' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CameraSource", "ConfigError", "Denoiser", "DeviceError", "FileSink", "FileSource", "Frame", "FrameFormat",
    "ListSink", "ModelNotFoundError", "NullSink", "Pipeline", "RunConfig", "RunStats", "Sink", "SinkError",
    "Source", "SourceError", "StreamdnError", "SyntheticSource", "create_model", "denoise_file", "list_models",
    "load_config", "model_info", "open_source",
]
