"""The `streamdn` command line: one module per command, the help listing, exit codes, Ctrl-C
handled between two frames by every command that runs a pipeline, and the batch library that
the `batch` command wraps (arguments, not flags)."""

from __future__ import annotations

import ast
import json
import re
import signal
from pathlib import Path

import pytest

from streamdn.batch import scheduler
from streamdn.batch.executors import InlineExecutor, ProcessExecutor, make_executor
from streamdn.batch.tasks import Options, clean_leftovers
from streamdn.cli import COMMANDS, build_parser, main
from streamdn.config import load_config
from streamdn.errors import ConfigError, SourceError
from streamdn.io.sinks import FileSink, partial_name
from videos import Spec, make_video, probe

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["denoise", "demo", "live", "models", "batch", "eval", "bench", "train", "finetune", "targets", "temporal"]


def test_help_lists_every_command_in_order_with_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    listing = out[out.index("COMMAND"):]
    rows = re.findall(r"^    (\w+)\s+(\S.*)$", listing, flags=re.M)   # "    name   help"
    assert [name for name, _ in rows] == ORDER
    assert all(len(text) > 10 for _, text in rows)


def test_each_command_module_builds_its_own_parser_and_handles_it() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ORDER                                  # type: ignore[union-attr]
    for module, name in zip(COMMANDS, ORDER):
        assert sub.choices[name].get_default("handler") is module.run  # type: ignore[index]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("raised, code", [(ConfigError("bad value; fix it."), 2),
                                          (SourceError("unreadable; check it."), 1),
                                          (KeyboardInterrupt(), 130)])
def test_main_maps_errors_to_one_line_and_an_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], raised: BaseException,
                                                       code: int) -> None:
    from streamdn.cli import models

    def fail(_args: object) -> int:
        raise raised

    monkeypatch.setattr(models, "run", fail)
    assert main(["models"]) == code
    err = capsys.readouterr().err
    assert err.startswith("streamdn: ") and err.count("\n") == 1 and "Traceback" not in err


def test_models_lists_the_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    from streamdn.models import DEFAULT_MODEL

    assert main(["models", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert DEFAULT_MODEL in names and "classical:median" in names
    assert main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["name", "kind"]
    assert sum("(default)" in row for row in table) == 1


def test_demo_writes_a_side_by_side_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.mp4"
    assert main(["demo", "-o", str(out), "--frames", "4", "--size", "64x48", "-q"]) == 0
    info = probe(out)
    assert (info["frames"], info["width"], info["height"]) == (4, 128, 48)
    assert "PSNR denoised" in capsys.readouterr().out


# -- Ctrl-C: the commands ask the pipeline to handle it between two frames ---------------------


@pytest.fixture
def handlers_seen(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The SIGINT handler in force each time a FileSink writes a frame (from the main thread)."""
    seen: list[object] = []
    real = FileSink.write

    def write(self: FileSink, frame: object) -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        real(self, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(FileSink, "write", write)
    return seen


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    clip = make_video(tmp_path / "in.mp4", Spec(frames=4))
    return {
        "denoise": ["denoise", str(clip), "-o", str(tmp_path / "d.mp4")],
        "demo": ["demo", "-o", str(tmp_path / "demo.mp4"), "--frames", "3", "--size", "64x48"],
        "live": ["live", "--synthetic", "--size", "64x48", "--frames", "3", "--preview", "off",
                 "--record", str(tmp_path / "rec.mp4")],
        "batch": ["batch", str(clip), "-o", str(tmp_path / "b")],
    }


@pytest.mark.parametrize("command", ["denoise", "demo", "live", "batch"])
def test_commands_defer_ctrl_c_to_a_frame_boundary(tmp_path: Path, handlers_seen: list[object], command: str) -> None:
    before = signal.getsignal(signal.SIGINT)
    assert main([*_commands(tmp_path)[command], "-q"]) == 0
    assert handlers_seen and all(h is not before for h in handlers_seen)
    assert signal.getsignal(signal.SIGINT) is before   # restored afterwards


def test_the_library_leaves_ctrl_c_alone(tmp_path: Path, handlers_seen: list[object]) -> None:
    before = signal.getsignal(signal.SIGINT)
    clip = make_video(tmp_path / "in.mp4", Spec(frames=4))
    item = scheduler.Item(str(clip), str(tmp_path / "o" / "in.mp4"))
    report = scheduler.run_batch([item], load_config(), InlineExecutor(), Options(), quiet=True)
    assert report.count("done") == 1
    assert handlers_seen and all(h is before for h in handlers_seen)


# -- the batch library: plain arguments, reports, no flags -------------------------------------


def test_make_executor_takes_plain_arguments() -> None:
    inline = make_executor()
    assert isinstance(inline, InlineExecutor) and inline.workers == 1 and not inline.handle_signals
    assert isinstance(make_executor(workers=1, handle_signals=True), InlineExecutor)
    pool = make_executor(workers=2, handle_signals=True)
    try:
        assert isinstance(pool, ProcessExecutor) and pool.workers == 2 and pool.handle_signals
    finally:
        pool.close()
    with pytest.raises(ConfigError, match=r"^workers=0: "):
        make_executor(workers=0)


@pytest.mark.parametrize("kwargs, message", [({"warmup": -1}, "warmup=-1"), ({"segments": 0}, "segments=0"),
                                             ({"segment_seconds": 0.0}, "segment_seconds=0.0")])
def test_options_out_of_range_name_the_argument(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}: "):
        Options(**kwargs)  # type: ignore[arg-type]


def test_batch_flags_are_checked_by_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", Spec(frames=2))
    assert main(["batch", str(clip), "-o", str(tmp_path / "o"), "--warmup-frames", "-1"]) == 2
    assert "--warmup-frames -1" in capsys.readouterr().err


def test_interrupted_batch_exits_130_and_drops_unfinished_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from streamdn.cli import batch as batch_cli

    clip = make_video(tmp_path / "in.mp4", Spec(frames=2))
    out = tmp_path / "o"
    leftovers = [Path(partial_name(str(out / "in.mp4"))), out / ".in.mp4.x1y2.tmp.mp4"]
    stats = tmp_path / "stats.json"

    def interrupted(items: list[scheduler.Item], *_a: object, report: scheduler.BatchReport, **_k: object) -> None:
        report.files += [scheduler.FileReport(i.input, i.output) for i in items]   # pending
        for path in leftovers:                                                     # what Ctrl-C left
            path.write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_cli, "run_batch", interrupted)
    assert main(["batch", str(clip), "-o", str(out), "-q", "--stats", str(stats)]) == 130
    assert "run the same batch again to resume" in capsys.readouterr().err
    assert not [p for p in leftovers if p.exists()]
    assert json.loads(stats.read_text())["interrupted"] is True


def test_write_report_leaves_neighbours_alone(tmp_path: Path) -> None:
    """The report is written through a hidden temporary file: a user's NAME.tmp is not taken."""
    mine = tmp_path / "stats.json.tmp"
    mine.write_text("the user's file")
    report = scheduler.BatchReport([scheduler.FileReport("a.mp4", "o/a.mp4", "done", frames=3)], frames=3)
    scheduler.write_report(str(tmp_path / "stats.json"), report, load_config())
    assert json.loads((tmp_path / "stats.json").read_text())["frames"] == 3
    assert mine.read_text() == "the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "stats.json.tmp"]


def test_clean_leftovers_matches_names_with_glob_characters(tmp_path: Path) -> None:
    ours, other = tmp_path / ".take[1].mp4.ab12.tmp.mp4", tmp_path / ".take1.mp4.ab12.tmp.mp4"
    ours.write_bytes(b"x")
    other.write_bytes(b"x")
    clean_leftovers(str(tmp_path / "take[1].mp4"))
    assert not ours.exists() and other.exists()


def _strings(path: Path) -> list[str]:
    """The text of every string literal in a module (f-strings by their literal parts)."""
    return [n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_the_batch_library_speaks_of_arguments_not_flags() -> None:
    """Only streamdn/cli names command-line flags; a `shell command` quoted in a message may."""
    flags = []
    for path in sorted((ROOT / "streamdn" / "batch").glob("*.py")):
        for text in _strings(path):
            unquoted = re.sub(r"`[^`]*`", "", text)
            flags += [f"{path.name}: {m}" for m in re.findall(r"(?<![\w-])--[a-z][\w-]*", unquoted)]
    assert flags == []
