"""`streamdn batch INPUT... -o OUTDIR`: its flags and how it runs (the work itself is
streamdn.batch: find_inputs, run_batch and the executors)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from typing import Any

from streamdn.batch.executors import Executor, make_executor
from streamdn.batch.scheduler import (PICTURE_EXTENSIONS, STILL_FORMAT_CHOICES, BatchReport, FileReport, Item,
                                      discard_unfinished, find_inputs, is_glob, run_batch, summary, write_report)
from streamdn.batch.tasks import Options
from streamdn.cli.args import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, add_common_args, add_encode_args,
                               add_model_args, check_run_options, config_from, refuse_existing)
from streamdn.config import RunConfig
from streamdn.errors import ConfigError
from streamdn.signals import stop_on_signals

_ADDRESS = re.compile(r"^(local|auto|ray://\S+|[\w.\-]+:\d+)$")

EXAMPLES = """examples:
  streamdn batch footage/ -o clean/                       # every video and picture below footage/
  streamdn batch 'card/**/*.MP4' -o clean/ --crf 20
  streamdn batch DCIM/ -o clean/ --still-format png       # pictures (and raw files) as PNG
  streamdn batch footage/ -o clean/ --dry-run             # list what would be written, write nothing
  streamdn batch long.mkv -o clean/ --segment-seconds 120 --workers 2
  streamdn batch /mnt/nfs/in -o /mnt/nfs/out --ray auto   # on the Ray cluster
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `batch` to the `streamdn` subcommands (model, encoding and config flags as `denoise`)."""
    p = subparsers.add_parser(
        "batch", help="denoise many files or very long files, here or on a Ray cluster", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("Denoise every video and picture (JPEG, PNG, TIFF, WebP, camera raw) in "
                                  "INPUT... (files, folders searched recursively, globs) into OUTDIR, mirroring "
                                  "the input tree, with the same options as `streamdn denoise`. Outputs already "
                                  "there are skipped, so running the same command again resumes a killed batch; a "
                                  "file that fails is reported and the others go on. With --ray, inputs and OUTDIR "
                                  "must be on storage every node mounts at the same path."))
    # "*", not "+": `--ray IN -o OUT` gives IN to --ray, and check_args hands it back to INPUT.
    p.add_argument("input", nargs="*", metavar="INPUT", help="video and picture files, folders or globs (quote globs)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    p.add_argument("--ext", help="output container for every video, e.g. .mkv (default: the input's, or .mkv "
                                 "where streamdn cannot write it)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--stats", metavar="FILE.json", help="write per-file results, frames and fps as JSON")
    p.add_argument("--dry-run", action="store_true", help="list every input, its output and whether it would be "
                   "written or skipped, then stop: nothing is created or written")
    st = p.add_argument_group("pictures")
    st.add_argument("--still-format", choices=STILL_FORMAT_CHOICES, default="same", type=_still_format,
                    help="output format of photographs and raw files: same (default: a JPEG, PNG, TIFF or "
                    "WebP keeps its format, a raw file becomes a 16-bit TIFF), png, tiff, jpg or webp (16 bits "
                    "only in png and tiff)")
    st.add_argument("--still-quality", type=int, default=95, metavar="Q", help="JPEG and WebP quality of "
                    "pictures, 1..100 (default 95)")
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


def _still_format(text: str) -> str:
    """--still-format's value, lower case, with tif and jpeg taken for tiff and jpg."""
    text = text.strip().lower().lstrip(".")
    return {"tif": "tiff", "jpeg": "jpg"}.get(text, text)


def check_args(args: argparse.Namespace) -> None:
    """Validates the batch flags, in place; `--ray INPUT` (argparse took an input for the
    address) is undone: the input goes back to INPUT and Ray runs locally.

    Raises:
        ConfigError: a flag out of range, no INPUT, or OUTDIR is a file.
    """
    if args.ray is not None and not _ADDRESS.match(args.ray):
        if os.path.exists(args.ray) or is_glob(args.ray):
            args.input.insert(0, args.ray)
            args.ray = "local"
        else:
            raise ConfigError(f"--ray {args.ray}: give nothing (a local Ray instance), 'auto' or ray://HOST:PORT.")
    if not args.input:
        raise ConfigError("give at least one INPUT: video or picture files, folders or globs, "
                          "e.g. streamdn batch footage/ -o clean/.")
    for flag, value, low in (("--workers", args.workers, 1), ("--segments", args.segments, 1),
                             ("--warmup-frames", args.warmup_frames, 0), ("--max-retries", args.max_retries, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} {value}: give a number >= {low}.")
    if args.segment_seconds is not None and args.segment_seconds <= 0:
        raise ConfigError(f"--segment-seconds {args.segment_seconds}: give a positive number of seconds.")
    if not 1 <= args.still_quality <= 100:
        raise ConfigError(f"--still-quality {args.still_quality}: give 1..100 (95 keeps fine grain, 85 is a "
                          f"typical export).")
    if args.ext and ("." + args.ext.lstrip(".")).lower() in PICTURE_EXTENSIONS:
        raise ConfigError(f"--ext {args.ext} is a picture format: --ext sets the videos' container; choose the "
                          f"pictures' format with --still-format.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ConfigError(f"-o {args.output} is a file; give an output folder.")


def executor_from(args: argparse.Namespace, cfg: RunConfig) -> Executor:
    """The executor the flags ask for (Ray is imported only with --ray). Local tasks handle
    Ctrl-C between two frames, like `streamdn denoise`."""
    return make_executor(workers=args.workers, ray=args.ray, cpus_per_task=args.cpus_per_task,
                         gpus_per_task=args.gpus_per_task, max_retries=args.max_retries, device=cfg.model.device,
                         handle_signals=True)


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn batch`; returns the exit code (1 when any file failed, 130 when stopped by
    Ctrl-C, SIGTERM or SIGHUP: the files done are kept, the others leave nothing behind).

    Every option is checked before OUTDIR is created or any file is read; with --dry-run the
    plan is printed (dry_run) and nothing is created.

    Raises:
        ConfigError: bad flags or no input found (main() prints it and exits 2).
    """
    with stop_on_signals() as stop:
        check_args(args)
        cfg = config_from(args)
        if args.stats:
            refuse_existing(args.stats, True)
        items, missing = find_inputs(args.input, args.output, ext=args.ext, still_format=args.still_format)
        videos = {os.path.splitext(i.output)[1] for i in items if i.kind == "video"}
        check_run_options(cfg, ["x" + ext for ext in sorted(videos)])
        if args.dry_run:
            return dry_run(items, missing, args.overwrite)
        stop.check()
        folders_before = existing_folders(args.output)
        os.makedirs(args.output, exist_ok=True)
        opts = Options(args.segment_seconds, args.segments, args.warmup_frames, args.overwrite, args.still_quality)
        report = BatchReport(files=missing)
        executor = executor_from(args, cfg)
        try:
            run_batch(items, cfg, executor, opts, quiet=args.quiet, report=report, stop=stop)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            executor.close()   # waits for local worker processes, stops a Ray instance it started
        if report.interrupted:   # a resumed batch redoes unfinished files whole: no .partial or temporary files
            discard_unfinished(report)
        prune_new_empty_folders(args.output, folders_before)   # e.g. when every file failed
        if args.stats:
            write_report(args.stats, report, cfg)
    failed = report.count("failed")
    if not args.quiet or failed or report.interrupted:
        print(summary(report), file=sys.stderr)
    return exit_code(report)


def dry_run(items: list[Item], missing: list[FileReport], overwrite: bool) -> int:
    """Prints one line per input, `INPUT -> OUTPUT (kind, what would happen)`, in the order the
    batch would take them, and the inputs that would fail; returns 1 when any would fail."""
    for item in items:
        action = "skip: output exists" if os.path.exists(item.output) and not overwrite else (
            "overwrite" if os.path.exists(item.output) else "write")
        print(f"{item.input} -> {item.output} ({item.kind}, {action})")
    for rep in missing:
        print(f"{rep.input}: fails: {rep.reason}")
    return EXIT_FAILED if missing else EXIT_OK


def existing_folders(root: str) -> set[str]:
    """The folders at and below `root` now (absolute paths)."""
    if not os.path.isdir(root):
        return set()
    return {os.path.abspath(d) for d, _, _ in os.walk(root)}


def prune_new_empty_folders(root: str, before: set[str]) -> None:
    """Removes the folders at and below `root` that this run created and left empty (deepest
    first), so that a batch whose files all failed leaves no empty output tree behind."""
    if not os.path.isdir(root):
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        path = os.path.abspath(folder)
        if path not in before and not os.listdir(path):
            os.rmdir(path)


def exit_code(report: BatchReport) -> int:
    """130 when the batch was interrupted, 1 when any file failed, else 0."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.count("failed") else EXIT_OK
