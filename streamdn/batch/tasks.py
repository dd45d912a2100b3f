"""Units of batch work and what a worker does with one: a whole video, one segment of a long
video, the join of its segments, or a picture (a photograph or camera raw file). Tasks name
files on storage every worker sees (never frames); each worker process loads the model once and
keeps it for every task it runs. Planning turns an input into its tasks, reusing the parts a
killed run finished."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import av

from streamdn.atomic import temp_glob_for
from streamdn.config import ModelConfig, RunConfig, to_dict
from streamdn.denoiser import Denoiser
from streamdn.errors import ConfigError, StreamdnError, warn
from streamdn.io.stills import is_still
from streamdn.models import model_info
from streamdn.signals import stop_on_signals
from streamdn.batch.segments import Segment, denoise_segment, join_segments, part_path, plan_segments, read_keyframes

FILE, SEGMENT, JOIN, STILL = "file", "segment", "join", "still"


@dataclass(frozen=True)
class Task:
    """One unit of work, described by paths so that any worker can pick it up.

    Attributes:
        kind: "file" (a whole video), "segment" (one piece of a long video), "join" (the pieces
            into the output) or "still" (a picture, denoised by streamdn.jobs.still).
        input: input path (absolute, on storage every worker sees).
        output: final output path (absolute); for a picture its extension picks the format.
        cfg: model, encoder and pipeline settings (a picture uses the model settings).
        overwrite: replace an existing output.
        segments: "segment": the one piece; "join": all pieces, in order.
        parts_dir: folder of the part files of a long file.
        quality: JPEG and WebP quality of a picture's output (1..100).
    """

    kind: str
    input: str
    output: str
    cfg: RunConfig
    overwrite: bool = False
    segments: tuple[Segment, ...] = ()
    parts_dir: str | None = None
    quality: int = 95


@dataclass
class TaskResult:
    """What a task did.

    Attributes:
        task: the task.
        ok: True when its output is complete.
        frames: frames written (or found already written); 1 for a picture.
        seconds: wall time of the task on its worker, seconds.
        error: why it failed (a message for the user), or None.
        worker: "host:pid" of the process that ran it.
        model_loads: models the worker process had built when the task ended (1 = built once and
            reused by every task it ran).
    """

    task: Task
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: str = ""
    model_loads: int = 0


_DENOISERS: dict[ModelConfig, Denoiser] = {}
_BUILT = 0   # Denoisers this process has built (cached_denoiser), for TaskResult.model_loads


def cached_denoiser(cfg: ModelConfig) -> Denoiser:
    """This process's Denoiser for `cfg` (the whole model config is the key), built on first use
    and kept for later tasks."""
    global _BUILT
    if cfg not in _DENOISERS:
        _DENOISERS[cfg] = Denoiser.from_config(cfg)
        _BUILT += 1
    return _DENOISERS[cfg]


def close_cached() -> None:
    """Frees the models this process holds (the in-process executor calls it at the end)."""
    while _DENOISERS:
        _DENOISERS.popitem()[1].close()


def _frames_in(path: str) -> int:
    """Frame count a finished output's header states (0 when it states none)."""
    try:
        with av.open(path) as c:
            return int(c.streams.video[0].frames or 0)
    except (OSError, av.error.FFmpegError, IndexError):
        return 0


def _threads_for_ray_task() -> None:
    """Inside a Ray task, Numba gets the CPUs the task asked for, not one thread per core of the
    node (Ray already limits PyTorch through OMP_NUM_THREADS). Elsewhere it does nothing."""
    ray = sys.modules.get("ray")   # never imported here: only present in a Ray worker or driver
    if ray is None or not ray.is_initialized():
        return
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 - the driver, or an older Ray: keep Numba's default
        return
    if cpus:
        import numba

        numba.set_num_threads(max(1, min(int(cpus), numba.config.NUMBA_NUM_THREADS)))


def execute(task: Task, on_frame: Callable[[int], None] | None = None, *,
            handle_signals: bool = False) -> TaskResult:
    """Runs one task on this worker. Safe to run again after a crash: a task whose output is
    already complete (written atomically by an earlier attempt) reports it and does nothing.

    Errors a user can fix (StreamdnError) and media errors come back as a failed TaskResult,
    so that Ray does not retry them; anything else propagates (and Ray retries it).

    Args:
        task: what to do.
        on_frame: called with 1 per frame written (progress), where the work allows.
        handle_signals: handle SIGINT, SIGTERM and SIGHUP for the task (streamdn.signals: the
            first stops between two frames, a second at once; no temporary file is left), as
            command-line programs and their worker processes do; by default the process's
            handlers are left alone.
    """
    with stop_on_signals(handle_signals):   # the whole task: no temporary file outlives a stop signal
        return _execute(task, on_frame, handle_signals)


def _execute(task: Task, on_frame: Callable[[int], None] | None, handle_signals: bool) -> TaskResult:
    from streamdn.jobs.file import denoise_file
    from streamdn.jobs.still import denoise_still, still_model

    start = time.perf_counter()
    _threads_for_ray_task()
    result = TaskResult(task, ok=False, worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        if not os.path.exists(task.input):
            raise StreamdnError(f"input '{task.input}' is not visible on worker {result.worker}; inputs and "
                                f"outputs must be on storage every node mounts at the same path.")
        if task.kind == FILE:
            if os.path.exists(task.output) and not task.overwrite:
                result.frames = _frames_in(task.output)
            else:
                job = denoise_file(task.input, task.output, task.cfg, overwrite=task.overwrite, quiet=True,
                                   denoiser=cached_denoiser(task.cfg.model), on_frame=on_frame,
                                   handle_signals=handle_signals)
                result.frames = job.stats.frames
        elif task.kind == STILL:
            if not os.path.exists(task.output) or task.overwrite:
                model = task.cfg.model
                if model.name == "default":   # pictures take the still-image network where installed
                    model = replace(model, name=still_model())
                denoise_still(task.input, task.output, denoiser=cached_denoiser(model),
                              overwrite=task.overwrite, quality=task.quality)
            result.frames = 1
        elif task.kind == SEGMENT:
            seg = task.segments[0]
            assert task.parts_dir is not None
            if os.path.exists(part_path(task.parts_dir, seg.number)):
                result.frames = seg.frames
            else:
                os.makedirs(task.parts_dir, exist_ok=True)
                result.frames = denoise_segment(task.input, seg, task.output, task.parts_dir, task.cfg,
                                                cached_denoiser(task.cfg.model), on_frame=on_frame,
                                                handle_signals=handle_signals)
        elif task.kind == JOIN:
            assert task.parts_dir is not None
            # Done already when the output exists and, with overwrite, its parts are gone
            # (an earlier attempt joined them and died before reporting).
            done = os.path.exists(task.output) and (not task.overwrite or not os.path.isdir(task.parts_dir))
            result.frames = sum(seg.frames for seg in task.segments)
            if not done:
                result.frames = join_segments(task.input, list(task.segments), task.parts_dir, task.output,
                                              overwrite=task.overwrite)
            shutil.rmtree(task.parts_dir, ignore_errors=True)
        else:
            raise ConfigError(f"unknown task kind '{task.kind}'.")
        result.ok = True
    except (StreamdnError, av.error.FFmpegError) as err:
        result.error = str(err)
    result.seconds = time.perf_counter() - start
    result.model_loads = _BUILT
    return result


# -- planning: an input becomes its tasks ----------------------------------------------------


def clean_leftovers(output: str) -> None:
    """Removes temporary files an interrupted run left for `output` (.NAME.xxxx.tmp.EXT, see
    streamdn.atomic.temp_path_for)."""
    folder, name = os.path.split(output)
    # The name is escaped: a file called "take[1].mp4" must match itself, not "take1.mp4".
    for tmp in glob.glob(os.path.join(glob.escape(folder), temp_glob_for(name))):
        os.remove(tmp)


def _parts_dir(output: str) -> str:
    folder, name = os.path.split(output)
    return os.path.join(folder, f".{name}.parts")


@dataclass(frozen=True)
class Options:
    """How to split files, whether to redo outputs, how to write pictures.

    Attributes:
        segment_seconds: cut files into pieces of about this many seconds (None: see segments).
        segments: cut every file into about this many pieces (None or 1: denoise files whole).
        warmup: frames before each cut that are denoised, not written, so that the temporal
            state has converged at the cut.
        overwrite: redo outputs that already exist.
        still_quality: JPEG and WebP quality of the pictures written (1..100).

    Raises:
        ConfigError: a number out of range.
    """

    segment_seconds: float | None = None
    segments: int | None = None
    warmup: int = 30
    overwrite: bool = False
    still_quality: int = 95

    def __post_init__(self) -> None:
        if self.segment_seconds is not None and not self.segment_seconds > 0:
            raise ConfigError(f"segment_seconds={self.segment_seconds}: give a positive number of seconds.")
        if self.segments is not None and self.segments < 1:
            raise ConfigError(f"segments={self.segments}: give a number >= 1.")
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup}: give a number of frames >= 0.")
        if not 1 <= self.still_quality <= 100:
            raise ConfigError(f"still_quality={self.still_quality}: give 1..100 (95 keeps fine grain, 85 is a "
                              f"typical export).")


def plan_file(input_path: str, output: str, cfg: RunConfig, opts: Options) -> tuple[list[Task], int]:
    """The tasks one input needs, and the frames they will write (for the progress bar).

    Leftover temporary files of `output` from a killed run are removed first. A picture (by its
    extension, streamdn.io.stills.is_still) is one "still" task of one frame.

    A long file becomes segment tasks (those whose part file is not already there) and its join
    follows them; the parts folder carries a manifest so that parts from other settings are
    never reused.

    Raises:
        SourceError, SinkError, ConfigError: the input cannot be read or planned.
    """
    from streamdn.io.sources import FileSource

    os.makedirs(os.path.dirname(output), exist_ok=True)
    clean_leftovers(output)
    if is_still(input_path):
        return [Task(STILL, input_path, output, cfg, opts.overwrite, quality=opts.still_quality)], 1
    with FileSource(input_path) as src:
        expected = src.total_frames or 0
    split = (opts.segments or 0) > 1 or opts.segment_seconds is not None
    if split and cfg.pipeline.frames is not None:
        warn(f"'{input_path}' is denoised whole, not in segments: pipeline.frames limits the frames to "
             f"{cfg.pipeline.frames}.")
    if not split or cfg.pipeline.frames is not None:
        return [Task(FILE, input_path, output, cfg, opts.overwrite)], expected
    index = read_keyframes(input_path)
    window = model_info(cfg.model.name).window
    # A windowed model needs at least the frames its window reaches back to before a cut (and
    # the warm-up, for its long average).
    warmup = opts.warmup if window is None else max(opts.warmup, window[0])
    segs = plan_segments(index, seconds=opts.segment_seconds, count=opts.segments, warmup=warmup)
    if len(segs) == 1:
        return [Task(FILE, input_path, output, cfg, opts.overwrite)], expected
    parts = _parts_dir(output)
    stat = os.stat(input_path)
    manifest = {"input": input_path, "size": stat.st_size, "mtime": stat.st_mtime, "config": to_dict(cfg),
                "segments": [asdict(s) for s in segs]}
    path = os.path.join(parts, "plan.json")
    if os.path.isdir(parts) and (opts.overwrite or _read_json(path) != json.loads(json.dumps(manifest))):
        shutil.rmtree(parts)
    os.makedirs(parts, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    tasks = [Task(SEGMENT, input_path, output, cfg, opts.overwrite, (s,), parts) for s in segs]
    tasks.append(Task(JOIN, input_path, output, cfg, opts.overwrite, tuple(segs), parts))
    return tasks, index.frames


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
