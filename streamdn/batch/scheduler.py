"""`streamdn batch INPUT... -o OUTDIR`: every video found in files, folders and globs, cleaned
with the same options as `streamdn denoise` into a mirror of the input tree, here or on Ray.
Done outputs are skipped (so a killed batch resumes), a failing file does not stop the others,
long files can be split at keyframes and joined by stream copy."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from streamdn.config import RunConfig, to_dict
from streamdn.batch.executors import Executor, Handle, InlineExecutor, ProcessExecutor
from streamdn.io.encoding import CONTAINERS
from streamdn.errors import ConfigError, StreamdnError
from streamdn.io.sinks import partial_name
from streamdn.batch.tasks import FILE, JOIN, SEGMENT, Options, Task, TaskResult, clean_leftovers, plan_file

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                              ".mpeg", ".wmv", ".flv", ".3gp", ".mxf", ".nut", ".dv", ".y4m", ".ogv"})
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class Item:
    """One input video and where its output goes (absolute paths)."""

    input: str
    output: str


@dataclass
class FileReport:
    """The outcome for one input: status is "done", "skipped" (output already there) or "failed"."""

    input: str
    output: str
    status: str = "pending"
    reason: str | None = None
    frames: int = 0
    seconds: float = 0.0
    segments: int = 1


@dataclass
class BatchReport:
    """The whole batch: per-file outcomes, frames written, wall time (s) and where it ran."""

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
    def fps(self) -> float:
        """Frames written per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# -- finding the inputs ----------------------------------------------------------------------


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_root(pattern: str) -> str:
    """The folder a glob's matches are mirrored from: its leading part without wildcards."""
    parts = pattern.split(os.sep)
    return os.sep.join(parts[:next(i for i, p in enumerate(parts) if _is_glob(p))]) or "."


def _walk(folder: str, outdir: str) -> list[str]:
    """Video files under `folder`, recursively, skipping hidden names and the output folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(root, d)) != outdir)
        found += [os.path.join(root, f) for f in sorted(files)
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
    return found


def output_name(rel: str, ext: str | None) -> str:
    """The output's path relative to OUTDIR: the input's, with `ext` or, when streamdn cannot
    write the input's container, .mkv."""
    stem, old = os.path.splitext(rel)
    if ext:
        return stem + (ext if ext.startswith(".") else f".{ext}")
    return rel if old.lower() in CONTAINERS else stem + ".mkv"


def find_inputs(inputs: list[str], outdir: str, *, ext: str | None = None) -> tuple[list[Item], list[FileReport]]:
    """Expands files, folders (recursively) and globs into (input, output) pairs.

    A folder's videos keep their paths below it under OUTDIR; a glob's, their paths below its
    leading folder; a file goes to OUTDIR directly. Hidden files and OUTDIR itself are skipped.

    Returns:
        The items, and a failed FileReport for each input that does not exist.

    Raises:
        ConfigError: nothing found, or two inputs would write the same output.
    """
    outdir = os.path.abspath(outdir)
    items: dict[str, Item] = {}
    missing: list[FileReport] = []
    for arg in inputs:
        if os.path.isdir(arg):
            pairs = [(p, os.path.relpath(p, arg)) for p in _walk(arg, outdir)]
        elif os.path.isfile(arg):
            pairs = [(arg, os.path.basename(arg))]
        elif _is_glob(arg):
            root = _glob_root(arg)
            pairs = [(p, os.path.relpath(p, root)) for p in sorted(glob.glob(arg, recursive=True))
                     if os.path.isfile(p) and not os.path.abspath(p).startswith(outdir + os.sep)]
        else:
            missing.append(FileReport(arg, "", "failed", f"input '{arg}' does not exist; check the path."))
            continue
        for path, rel in pairs:
            key = os.path.realpath(path)   # the same file named twice is cleaned once
            out = os.path.join(outdir, output_name(rel, ext))
            clash = next((i for k, i in items.items() if i.output == out and k != key), None)
            if clash is not None:
                raise ConfigError(f"'{path}' and '{clash.input}' would both be written to '{out}'; "
                                  f"run them in separate batches or rename one.")
            items.setdefault(key, Item(os.path.abspath(path), out))
    if not items and not missing:
        raise ConfigError(f"no video found in {' '.join(inputs)}; streamdn batch looks for "
                          f"{' '.join(sorted(VIDEO_EXTENSIONS))} files (name files directly to take any other).")
    return list(items.values()), missing


# -- planning --------------------------------------------------------------------------------


# -- running ---------------------------------------------------------------------------------


def run_batch(items: list[Item], cfg: RunConfig, executor: Executor, opts: Options, *, quiet: bool = False,
              report: BatchReport | None = None) -> BatchReport:
    """Cleans every item with `executor` (InlineExecutor, ProcessExecutor or RayExecutor).

    Inputs are checked (header only) up front; each is planned (keyframes read, parts found)
    only when the workers need more work, so the first tasks start at once. Segment tasks of a
    long file run in parallel; its join is submitted when all of them have succeeded. At most
    2 x `executor.workers` tasks are in flight.

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
        rep = reports[item.output] = FileReport(item.input, item.output)
        report.files.append(rep)
        if os.path.exists(item.output) and not opts.overwrite:
            rep.status, rep.reason = "skipped", "output already exists"
            continue
        try:
            with FileSource(item.input) as src:
                total += src.total_frames or 0
        except (StreamdnError, OSError) as err:
            rep.status, rep.reason = "failed", str(err)
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
                if tasks[-1].kind == JOIN:
                    joins[item.output] = tasks.pop()
                    waiting[item.output] = reports[item.output].segments = len(tasks)
                queue += tasks
            while queue and len(running) < limit:
                live[0] = 0
                handle = executor.submit(queue.pop(0))
                running.append(handle)
                shown[id(handle)] = live[0]
            if not running:
                continue
            for handle, result in executor.wait(running):
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
        report.frames = sum(f.frames for f in report.files if f.status == "done")
    return report


def _record(result: TaskResult, rep: FileReport, bar: Any, already: int) -> None:
    """Folds a task's result into its file's report and the progress bar."""
    if result.task.kind != JOIN:
        bar.update(max(0, result.frames - already))
    rep.seconds += result.seconds
    if not result.ok:
        rep.status, rep.reason = "failed", result.error
    elif rep.status != "failed" and result.task.kind in (FILE, JOIN):
        rep.status, rep.frames = "done", result.frames
        clean_leftovers(rep.output)   # a dead attempt's temporary file, now that the output is complete


# -- the command -----------------------------------------------------------------------------

_ADDRESS = re.compile(r"^(local|auto|ray://\S+|[\w.\-]+:\d+)$")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `batch` to the `streamdn` subcommands (model, encoding and config flags as `denoise`)."""
    from streamdn.cli.args import add_common_args, add_encode_args, add_model_args

    p = subparsers.add_parser(
        "batch", help="denoise many files or very long files, here or on a Ray cluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise every video in INPUT... (files, folders searched recursively, globs) into OUTDIR, "
                    "mirroring the input tree, with the same options as `streamdn denoise`. Outputs already there "
                    "are skipped, so running the same command again resumes a killed batch; a file that fails is "
                    "reported and the others go on. With --ray, inputs and OUTDIR must be on storage every node "
                    "mounts at the same path.",
        epilog="examples:\n"
               "  streamdn batch footage/ -o clean/                       # every video below footage/\n"
               "  streamdn batch 'card/**/*.MP4' -o clean/ --crf 20\n"
               "  streamdn batch long.mkv -o clean/ --segment-seconds 120 --workers 2\n"
               "  streamdn batch /mnt/nfs/in -o /mnt/nfs/out --ray auto   # on the Ray cluster")
    # "*", not "+": `--ray IN -o OUT` gives IN to --ray, and _check hands it back to INPUT.
    p.add_argument("input", nargs="*", metavar="INPUT", help="video files, folders or globs (quote globs)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    p.add_argument("--ext", help="output container for every file, e.g. .mkv (default: the input's, or .mkv "
                                 "where streamdn cannot write it)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--stats", metavar="FILE.json", help="write per-file results, frames and fps as JSON")
    s = p.add_argument_group("long files")
    cut = s.add_mutually_exclusive_group()
    cut.add_argument("--segment-seconds", type=float, metavar="S", help="split files into pieces of about S "
                     "seconds, cut at keyframes, denoised in parallel and joined by stream copy")
    cut.add_argument("--segments", type=int, metavar="N", help="split every file into about N pieces")
    s.add_argument("--warmup-frames", type=int, default=30, metavar="N", help="frames before each cut that are "
                   "denoised, not written, so the temporal state has converged at the cut (default 30)")
    r = p.add_argument_group("where it runs")
    r.add_argument("--workers", type=int, metavar="N", help="tasks at once: local processes (default 1: this "
                   "process) or Ray tasks (default: the cluster's CPUs / --cpus-per-task)")
    r.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help="run as Ray tasks: alone, on a new "
                   "local Ray instance; 'auto' or ray://HOST:PORT joins a cluster (pip install 'streamdn[ray]')")
    r.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N", help="CPUs each Ray task asks for")
    r.add_argument("--gpus-per-task", type=float, metavar="N", help="GPUs each Ray task asks for (default 1 "
                   "with --device cuda, else 0)")
    r.add_argument("--max-retries", type=int, default=3, metavar="N", help="Ray retries of a task whose worker "
                   "died or that failed unexpectedly (default 3)")
    add_model_args(p)
    add_encode_args(p)
    add_common_args(p)
    return p


def _check(args: argparse.Namespace) -> None:
    """Validates the batch flags; `--ray INPUT` (argparse took an input for the address) is undone."""
    if args.ray is not None and not _ADDRESS.match(args.ray):
        if os.path.exists(args.ray) or _is_glob(args.ray):
            args.input.insert(0, args.ray)
            args.ray = "local"
        else:
            raise ConfigError(f"--ray {args.ray}: give nothing (a local Ray instance), 'auto' or ray://HOST:PORT.")
    if not args.input:
        raise ConfigError("give at least one INPUT: video files, folders or globs, e.g. streamdn batch footage/ -o clean/.")
    for flag, value, low in (("--workers", args.workers, 1), ("--segments", args.segments, 1),
                             ("--warmup-frames", args.warmup_frames, 0), ("--max-retries", args.max_retries, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} {value}: give a number >= {low}.")
    if args.segment_seconds is not None and args.segment_seconds <= 0:
        raise ConfigError(f"--segment-seconds {args.segment_seconds}: give a positive number of seconds.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ConfigError(f"-o {args.output} is a file; give an output folder.")


def make_executor(args: argparse.Namespace, cfg: RunConfig) -> Executor:
    """The executor the flags ask for (Ray is imported only with --ray)."""
    if args.ray is not None:
        from streamdn.batch.executors import RayExecutor

        gpus = args.gpus_per_task
        if gpus is None:
            gpus = 1.0 if cfg.model.device.strip().lower().startswith("cuda") else 0.0
        return RayExecutor(args.ray, cpus=args.cpus_per_task, gpus=gpus, max_retries=args.max_retries,
                           workers=args.workers)
    if args.workers and args.workers > 1:
        return ProcessExecutor(args.workers)
    return InlineExecutor()


def summary(report: BatchReport) -> str:
    """A few lines: done / skipped / failed with reasons, frames and overall fps."""
    workers = f"{report.workers} worker{'s' * (report.workers > 1)}"
    lines = [(f"streamdn batch: {report.count('done')} done, {report.count('skipped')} skipped, "
              f"{report.count('failed')} failed; {report.frames} frames in {report.seconds:.1f} s "
              f"({report.fps:.1f} fps) on {report.backend} ({workers})")]
    lines += [f"  failed {f.input}: {f.reason}" for f in report.files if f.status == "failed"]
    if report.interrupted:
        lines.append("  interrupted: run the same command again to resume (finished outputs are kept).")
    return "\n".join(lines)


def write_report(path: str, report: BatchReport, cfg: RunConfig) -> None:
    """Writes the --stats JSON atomically (temp file, then rename)."""
    data = {"done": report.count("done"), "skipped": report.count("skipped"), "failed": report.count("failed"),
            "frames": report.frames, "seconds": round(report.seconds, 3), "fps": round(report.fps, 3),
            "backend": report.backend, "workers": report.workers, "interrupted": report.interrupted,
            "files": [asdict(f) for f in report.files], "config": to_dict(cfg)}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn batch`; returns the exit code (1 when any file failed, 130 on Ctrl-C).

    Raises:
        ConfigError: bad flags or no input found (the CLI prints it and exits 2).
    """
    from streamdn.cli.args import config_from

    _check(args)
    cfg = config_from(args)
    os.makedirs(args.output, exist_ok=True)
    items, missing = find_inputs(args.input, args.output, ext=args.ext)
    opts = Options(args.segment_seconds, args.segments, args.warmup_frames, args.overwrite)
    report = BatchReport(files=missing)
    executor = make_executor(args, cfg)
    try:
        run_batch(items, cfg, executor, opts, quiet=args.quiet, report=report)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        executor.close()   # waits for local worker processes, stops a Ray instance it started
    if report.interrupted:   # a resumed batch redoes unfinished files whole: no .partial or temporary files
        for f in report.files:
            if f.status == "pending" and f.output:
                clean_leftovers(f.output)
                if os.path.exists(partial_name(f.output)):
                    os.remove(partial_name(f.output))
    if args.stats:
        write_report(args.stats, report, cfg)
    failed = report.count("failed")
    if not args.quiet or failed or report.interrupted:
        print(summary(report), file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK
