"""FileSink and the stats file: outputs appear only when complete, an existing file is refused
before anything is written, and temporary files are hidden, unique and never left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import pytest

from streamdn.config import SourceConfig
from streamdn.errors import SinkError
from streamdn.io.sinks import FileSink
from streamdn.io.sources import SyntheticSource
from streamdn.jobs.file import write_stats
from streamdn.pipeline import RunStats
from videos import Spec, make_video, probe


def tiny_source(frames: int = 3) -> SyntheticSource:
    return SyntheticSource(SourceConfig(width=32, height=24, frames=frames))


def test_existing_output_is_refused_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"keep me")
    before = out.stat()
    opened: list[str] = []
    real_open = av.open

    def recording_open(target: object, *args: object, **kwargs: object) -> object:
        if isinstance(target, str):                           # files, not in-memory probes
            opened.append(target)
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(av, "open", recording_open)
    with pytest.raises(SinkError, match="already exists.*overwrite=True"):
        FileSink(str(out), tiny_source().format)
    assert opened == []                                       # no encoder was started
    assert out.read_bytes() == b"keep me"
    assert out.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]      # no temporary file beside it


def test_output_that_appears_while_writing_is_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    src = tiny_source()
    sink = FileSink(str(out), src.format)
    for frame in src:
        sink.write(frame)
    out.write_bytes(b"someone else's")
    with pytest.raises(SinkError, match="appeared while"):
        sink.close()
    assert out.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_overwrite_replaces_on_close_only(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    src = tiny_source()
    with FileSink(str(out), src.format, overwrite=True) as sink:
        for frame in src:
            sink.write(frame)
        assert out.read_bytes() == b"old"                     # still the old file while encoding
        hidden = [n for n in os.listdir(tmp_path) if n != "clip.mp4"]
        assert len(hidden) == 1 and hidden[0].startswith(".clip.mp4.") and hidden[0].endswith(".tmp.mp4")
    assert probe(out)["frames"] == 3
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_output_equal_to_the_copied_input_is_refused(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", Spec(frames=3, audio=True))
    data = clip.read_bytes()
    with pytest.raises(SinkError, match="is the input"):
        FileSink(str(clip), tiny_source().format, copy_streams_from=str(clip), overwrite=True)
    assert clip.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_missing_folder_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="does not exist"):
        FileSink(str(tmp_path / "no" / "clip.mp4"), tiny_source().format)
    assert os.listdir(tmp_path) == []


def test_write_stats_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    mine = tmp_path / "stats.json.tmp"          # a user's file that happens to have that name
    mine.write_text("mine")
    write_stats(str(path), RunStats(frames=5), {"input": "in.mp4"})
    data = json.loads(path.read_text())
    assert data["frames"] == 5 and data["input"] == "in.mp4"
    assert mine.read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["stats.json", "stats.json.tmp"]


def test_write_stats_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stats.json"
    path.write_text("{}\n")

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(OSError, match="disk full"):
        write_stats(str(path), RunStats(), {})
    assert path.read_text() == "{}\n"                          # the old file is whole
    assert sorted(os.listdir(tmp_path)) == ["stats.json"]     # and no temporary file is left
