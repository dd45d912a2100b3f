"""Many files and long files: every video and picture (photograph or camera raw file) found in
files, folders and globs, cleaned with the same settings into a mirror of the input tree by an
executor (this process, local processes or Ray). Done outputs are skipped (so a killed batch
resumes), a failing file does not stop the others, long videos can be split at keyframes and
joined by stream copy. `streamdn batch` is the command line over this module (streamdn.cli.batch)."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from streamdn.atomic import write_json
from streamdn.batch.executors import Executor, Handle, InlineExecutor
from streamdn.batch.tasks import FILE, JOIN, SEGMENT, STILL, Options, Task, TaskResult, clean_leftovers, plan_file
from streamdn.config import RunConfig, to_dict
from streamdn.errors import ConfigError, StreamdnError
from streamdn.io.encoding import CONTAINERS
from streamdn.io.sinks import partial_name
from streamdn.io.sources import VIDEO_EXTENSIONS, file_kind
from streamdn.io.stills import RAW_EXTENSIONS, STILL_FORMATS, is_still
from streamdn.signals import StopRequest

# Pictures: what streamdn.io.stills reads (photographs and camera raw files).
PICTURE_EXTENSIONS = frozenset(STILL_FORMATS) | RAW_EXTENSIONS
# still_format -> the extension of every picture's output ("same" keeps a picture's own format
# and writes camera raw files as 16-bit TIFF).
STILL_OUTPUT_EXTENSIONS = {"png": ".png", "tiff": ".tif", "tif": ".tif", "jpg": ".jpg", "jpeg": ".jpg",
                           "webp": ".webp"}
STILL_FORMAT_CHOICES = ("same", "png", "tiff", "jpg", "webp")


@dataclass(frozen=True)
class Item:
    """One input (a video or a picture) and where its output goes (absolute paths)."""

    input: str
    output: str

    @property
    def kind(self) -> str:
        """"picture" (by its extension: a photograph or camera raw file) or "video"."""
        return "picture" if is_still(self.input) else "video"


@dataclass
class FileReport:
    """The outcome for one input: status is "done", "skipped" (output already there) or "failed";
    kind is "video" or "picture" (whose frames is 1 when done)."""

    input: str
    output: str
    status: str = "pending"
    reason: str | None = None
    frames: int = 0
    seconds: float = 0.0
    segments: int = 1
    kind: str = "video"


@dataclass
class BatchReport:
    """The whole batch: per-file outcomes, video frames written, wall time (s) and where it ran."""

    files: list[FileReport] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    backend: str = "local"
    workers: int = 1
    interrupted: bool = False

    def count(self, status: str) -> int:
        """Files with this status."""
        return sum(f.status == status for f in self.files)

    @property
    def pictures(self) -> int:
        """Pictures written."""
        return sum(f.status == "done" and f.kind == "picture" for f in self.files)

    @property
    def fps(self) -> float:
        """Video frames written per second of wall time (pictures' time included)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# -- finding the inputs ----------------------------------------------------------------------


def is_glob(text: str) -> bool:
    """True when `text` has glob wildcards (* ? [), i.e. find_inputs expands it."""
    return any(c in text for c in "*?[")


def _glob_root(pattern: str) -> str:
    """The folder a glob's matches are mirrored from: its leading part without wildcards."""
    parts = pattern.split(os.sep)
    return os.sep.join(parts[:next(i for i, p in enumerate(parts) if is_glob(p))]) or "."


def _walk(folder: str, outdir: str) -> list[str]:
    """Video and picture files under `folder`, recursively, skipping hidden names and the output
    folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(root, d)) != outdir)
        found += [os.path.join(root, f) for f in sorted(files)
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in _SEARCHED]
    return found


_SEARCHED = VIDEO_EXTENSIONS | PICTURE_EXTENSIONS


def output_name(rel: str, ext: str | None, still_format: str = "same") -> str:
    """The output's path relative to OUTDIR: the input's, with a new extension where needed.

    A video gets `ext` or, without it, keeps its own unless streamdn cannot write that container
    (then .mkv). A picture (streamdn.io.stills.is_still) gets the extension of `still_format`
    (see STILL_OUTPUT_EXTENSIONS); "same" keeps a JPEG, PNG, TIFF or WebP picture's own
    extension and writes a camera raw file as .tif (16 bits per channel).
    """
    stem, old = os.path.splitext(rel)
    if is_still(rel):
        if still_format == "same":
            return rel if old.lower() in STILL_FORMATS else stem + ".tif"
        return stem + STILL_OUTPUT_EXTENSIONS[still_format]
    if ext:
        return stem + (ext if ext.startswith(".") else f".{ext}")
    return rel if old.lower() in CONTAINERS else stem + ".mkv"


def check_output_choices(ext: str | None, still_format: str) -> None:
    """Checks the videos' `ext` and the pictures' `still_format` (see output_name).

    Raises:
        ConfigError: an unknown still_format, or an ext that names a picture format.
    """
    if still_format not in STILL_OUTPUT_EXTENSIONS and still_format != "same":
        raise ConfigError(f"still_format='{still_format}': give one of {', '.join(STILL_FORMAT_CHOICES)}.")
    if ext and ("." + ext.lstrip(".")).lower() in PICTURE_EXTENSIONS:
        raise ConfigError(f"ext='{ext}' is a picture format: ext sets the videos' container; the pictures' "
                          f"format is still_format (e.g. still_format='{ext.lstrip('.').lower()}').")


def find_inputs(inputs: list[str], outdir: str, *, ext: str | None = None,
                still_format: str = "same") -> tuple[list[Item], list[FileReport]]:
    """Expands files, folders (recursively) and globs into (input, output) pairs.

    Folders and globs are searched for videos (VIDEO_EXTENSIONS) and pictures
    (PICTURE_EXTENSIONS); a file named directly is taken whatever its extension (a picture by
    its extension, else a video). A folder's files keep their paths below it under OUTDIR; a
    glob's, their paths below its leading folder; a file goes to OUTDIR directly. Output names
    follow output_name (`ext` for videos, `still_format` for pictures). Hidden files and OUTDIR
    itself are skipped.

    Returns:
        The items, and a failed FileReport for each input that does not exist or whose output
        would be the input itself.

    Raises:
        ConfigError: nothing found, a bad ext or still_format, or two inputs would write the
            same output.
    """
    check_output_choices(ext, still_format)
    outdir = os.path.abspath(outdir)
    items: dict[str, Item] = {}
    missing: list[FileReport] = []
    for arg in inputs:
        if os.path.isdir(arg):
            pairs = [(p, os.path.relpath(p, arg)) for p in _walk(arg, outdir)]
        elif os.path.isfile(arg):
            pairs = [(arg, os.path.basename(arg))]
        elif is_glob(arg):
            root = _glob_root(arg)
            pairs = [(p, os.path.relpath(p, root)) for p in sorted(glob.glob(arg, recursive=True))
                     if os.path.isfile(p) and not os.path.abspath(p).startswith(outdir + os.sep)]
        elif os.path.exists(arg):
            kind = file_kind(os.stat(arg).st_mode)
            missing.append(FileReport(arg, "", "failed", f"input '{arg}' is not a regular file: it is {kind}; "
                                                         f"streamdn reads video files."))
            continue
        else:
            missing.append(FileReport(arg, "", "failed", f"input '{arg}' does not exist; check the path."))
            continue
        for path, rel in pairs:
            key = os.path.realpath(path)   # the same file named twice is cleaned once
            out = os.path.join(outdir, output_name(rel, ext, still_format))
            if os.path.realpath(out) == key:
                missing.append(FileReport(path, "", "failed", f"its output would be '{path}' itself; give an "
                                                              f"output folder other than the input's.",
                                          kind=Item(path, out).kind))
                continue
            clash = next((i for k, i in items.items() if i.output == out and k != key), None)
            if clash is not None:
                raise ConfigError(f"'{path}' and '{clash.input}' would both be written to '{out}'; "
                                  f"run them in separate batches or rename one.")
            items.setdefault(key, Item(os.path.abspath(path), out))
    if not items and not missing:
        raise ConfigError(f"no video found in {' '.join(inputs)} (nor any picture); folders and globs are "
                          f"searched for {' '.join(sorted(VIDEO_EXTENSIONS))} videos, "
                          f"{' '.join(sorted(STILL_FORMATS))} pictures and camera raw files (name files "
                          f"directly to take any other).")
    return list(items.values()), missing


# -- running ---------------------------------------------------------------------------------


def run_batch(items: list[Item], cfg: RunConfig, executor: Executor, opts: Options, *, quiet: bool = False,
              report: BatchReport | None = None, stop: StopRequest | None = None) -> BatchReport:
    """Cleans every item with `executor` (InlineExecutor, ProcessExecutor or RayExecutor).

    Videos are checked (header only) up front; each input is planned (keyframes read, parts
    found) only when the workers need more work, so the first tasks start at once. A picture is
    one task and counts as one frame on the progress bar. Segment tasks of a
    long file run in parallel; its join is submitted when all of them have succeeded. At most
    2 x `executor.workers` tasks are in flight.

    `stop` (streamdn.signals.stop_on_signals): once a stop signal is requested no task starts,
    the running ones are asked to stop (executor.stop) and Interrupted is raised.

    Returns:
        The report (also filled in place when `report` is given, e.g. to survive Ctrl-C).
    """
    from streamdn.jobs.file import progress_bar
    from streamdn.io.sources import FileSource

    report = report or BatchReport()
    report.backend, report.workers = executor.name, executor.workers
    start = time.perf_counter()
    reports: dict[str, FileReport] = {}
    todo: list[Item] = []
    total = 0
    for item in items:
        rep = reports[item.output] = FileReport(item.input, item.output, kind=item.kind)
        report.files.append(rep)
        if os.path.exists(item.output) and not opts.overwrite:
            rep.status, rep.reason = "skipped", "output already exists"
            continue
        if rep.kind == "picture":   # read whole by its task: a damaged one fails there
            total += 1
            todo.append(item)
            continue
        try:
            with FileSource(item.input) as src:
                total += src.total_frames or 0
        except (StreamdnError, OSError) as err:
            rep.status, rep.reason = "failed", str(err)
            continue
        except Exception as err:  # noqa: BLE001 - an unexpected failure fails this file only
            rep.status, rep.reason = "failed", f"{type(err).__name__}: {err}"
            continue
        todo.append(item)
    bar = progress_bar(total, "batch", quiet)
    live = [0]   # frames the task running in this process has shown on the bar so far

    def tick(n: int) -> None:
        live[0] += n
        bar.update(n)

    if isinstance(executor, InlineExecutor):   # the others report when a task ends
        executor.on_frame = tick
    queue: list[Task] = []
    joins: dict[str, Task] = {}
    waiting: dict[str, int] = {}   # segments still running, per output
    running: list[Handle] = []
    shown: dict[int, int] = {}     # frames a running task already showed on the bar
    limit = 2 * executor.workers
    try:
        while todo or queue or running:
            while todo and len(queue) < limit:
                item = todo.pop(0)
                try:
                    tasks, _ = plan_file(item.input, item.output, cfg, opts)
                except (StreamdnError, OSError) as err:
                    reports[item.output].status, reports[item.output].reason = "failed", str(err)
                    continue
                except Exception as err:  # noqa: BLE001 - an unexpected failure fails this file only
                    reports[item.output].status = "failed"
                    reports[item.output].reason = f"{type(err).__name__}: {err}"
                    continue
                if tasks[-1].kind == JOIN:
                    joins[item.output] = tasks.pop()
                    waiting[item.output] = reports[item.output].segments = len(tasks)
                queue += tasks
            if stop is not None and stop.requested:
                _stop_running(executor, stop)
            while queue and len(running) < limit:
                live[0] = 0
                handle = executor.submit(queue.pop(0))
                running.append(handle)
                shown[id(handle)] = live[0]
            if not running:
                continue
            for handle, result in _wait(executor, running, stop):
                running.remove(handle)
                _record(result, reports[result.task.output], bar, shown.pop(id(handle), 0))
                out = result.task.output
                if result.task.kind != SEGMENT or out not in waiting:
                    continue
                if not result.ok:   # the file has failed: drop its other pieces and its join
                    del waiting[out]
                    joins.pop(out)
                    queue = [t for t in queue if t.output != out]
                    continue
                waiting[out] -= 1
                if waiting[out] == 0:
                    del waiting[out]
                    queue.append(joins.pop(out))
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        report.frames = sum(f.frames for f in report.files if f.status == "done" and f.kind == "video")
    return report


def _wait(executor: Executor, running: list[Handle], stop: StopRequest | None) -> list[tuple[Handle, TaskResult]]:
    """executor.wait, but a stop request is noticed within a fraction of a second: the running
    tasks are asked to stop (executor.stop, where it has one) and Interrupted is raised."""
    poll = getattr(executor, "wait_for", None)
    if stop is None or poll is None:
        return executor.wait(running)
    while True:
        done = poll(running, 0.2)
        if done:
            return done
        if stop.requested:
            _stop_running(executor, stop)


def _stop_running(executor: Executor, stop: StopRequest) -> None:
    """Asks the executor's workers to stop (they keep nothing: the batch discards unfinished
    outputs) and raises Interrupted."""
    halt = getattr(executor, "stop", None)
    if halt is not None:
        halt(stop.signum)
    stop.check()


def _record(result: TaskResult, rep: FileReport, bar: Any, already: int) -> None:
    """Folds a task's result into its file's report and the progress bar."""
    if result.task.kind != JOIN:
        bar.update(max(0, result.frames - already))
    rep.seconds += result.seconds
    if not result.ok:
        rep.status, rep.reason = "failed", result.error
    elif rep.status != "failed" and result.task.kind in (FILE, JOIN, STILL):
        rep.status, rep.frames = "done", result.frames
        clean_leftovers(rep.output)   # a dead attempt's temporary file, now that the output is complete


def discard_unfinished(report: BatchReport) -> None:
    """Removes what an interrupted batch left of the files it had not finished (status "pending"):
    their temporary files and their .partial outputs, so that running the batch again redoes
    them whole. Finished outputs are kept."""
    for f in report.files:
        if f.status == "pending" and f.output:
            clean_leftovers(f.output)
            if os.path.exists(partial_name(f.output)):
                os.remove(partial_name(f.output))


# -- the report ------------------------------------------------------------------------------


def summary(report: BatchReport) -> str:
    """A few lines: done / skipped / failed with reasons, frames (and pictures), overall fps."""
    workers = f"{report.workers} worker{'s' * (report.workers > 1)}"
    pictures = report.pictures
    if not pictures:
        written = f"{report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps)"
    elif not report.frames:
        written = f"{pictures} picture{'s' * (pictures != 1)} in {report.seconds:.1f} s"
    else:
        written = f"{report.frames} frames and {pictures} picture{'s' * (pictures != 1)} in {report.seconds:.1f} s"
    lines = [(f"streamdn batch: {report.count('done')} done, {report.count('skipped')} skipped, "
              f"{report.count('failed')} failed; {written} on {report.backend} ({workers})")]
    lines += [f"  failed {f.input}: {f.reason}" for f in report.files if f.status == "failed"]
    if report.interrupted:
        lines.append("  interrupted: run the same batch again to resume (finished outputs are kept).")
    return "\n".join(lines)


def write_report(path: str, report: BatchReport, cfg: RunConfig) -> None:
    """Writes the report as JSON, atomically: counts, video frames, pictures, seconds, fps, where
    it ran, every file's outcome and the resolved config."""
    write_json(path, {
        "done": report.count("done"), "skipped": report.count("skipped"), "failed": report.count("failed"),
        "frames": report.frames, "pictures": report.pictures, "seconds": round(report.seconds, 3),
        "fps": round(report.fps, 3),
        "backend": report.backend, "workers": report.workers, "interrupted": report.interrupted,
        "files": [asdict(f) for f in report.files], "config": to_dict(cfg)})
