"""The exception hierarchy: every error a user can cause is a StreamdnError with a message
that says what was wrong and what to do. Each also inherits the matching builtin."""

from __future__ import annotations

import sys


class StreamdnError(Exception):
    """Base class of every error streamdn raises on purpose."""


class ConfigError(StreamdnError, ValueError):
    """A bad option, config file or config value."""


class SourceError(StreamdnError, OSError):
    """An input that cannot be opened or decoded (missing, not a video, corrupt)."""


class SinkError(StreamdnError, OSError):
    """An output that cannot be written (exists, unwritable folder, encoder failure)."""


class ModelNotFoundError(StreamdnError, KeyError):
    """A model name that is not registered and is not a file."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DeviceError(StreamdnError, RuntimeError):
    """A device that was asked for but is not available."""


def warn(message: str) -> None:
    """Tells the user about something that did not stop the run (one line on stderr)."""
    print(f"streamdn: warning: {message}", file=sys.stderr)
