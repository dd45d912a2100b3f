"""Atomic output files: everything streamdn writes appears under its name only when complete
(a hidden temporary file beside it, then a rename), so an interruption never leaves a
half-written file and an existing one is never half-replaced."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
import tempfile
from pathlib import Path
from typing import Any


def temp_path_for(path: str | Path) -> str:
    """Creates an empty hidden temporary file beside `path` (.NAME.xxxxxxxx.tmp.EXT, with the
    usual permissions for new files) and returns its path. The extension is kept so that
    writers that choose a format by extension (FFmpeg) still can."""
    folder, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    return tmp


def temp_glob_for(path: str | Path) -> str:
    """The glob pattern (relative to the folder of `path`, its name escaped) of the temporary
    files temp_path_for makes."""
    name = os.path.basename(path)
    return f".{glob.escape(name)}.*.tmp{glob.escape(os.path.splitext(name)[1])}"


def write_atomically(path: str | Path, write: Callable[[str], object]) -> None:
    """Calls `write(tmp)` on a temporary file beside `path` (temp_path_for), then renames it to
    `path`: an interruption never leaves a half-written file, and the temporary file is removed
    whatever happens."""
    tmp = temp_path_for(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | Path, data: Any) -> None:
    """Writes `data` as indented JSON, atomically (to the null device: nothing is written)."""
    if os.path.exists(path) and not os.path.isfile(path) and os.path.samefile(path, os.devnull):
        return

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")

    write_atomically(path, write)
