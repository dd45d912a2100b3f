"""Where batch work runs: in this process, in a local process pool, or as Ray tasks on a local
instance or a cluster. A task names files on storage every worker sees (never frames); each
worker process loads the model once and keeps it for every task it runs. Ray is imported only
by RayExecutor."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import av

from .config import ModelConfig, RunConfig
from .denoiser import Denoiser
from .errors import ConfigError, StreamdnError
from .segments import Segment, denoise_segment, join_segments, part_path

FILE, SEGMENT, JOIN = "file", "segment", "join"


@dataclass(frozen=True)
class Task:
    """One unit of work, described by paths so that any worker can pick it up.

    Attributes:
        kind: "file" (a whole file), "segment" (one piece of a long file) or "join" (the pieces
            into the output).
        input: input video path (absolute, on storage every worker sees).
        output: final output path (absolute).
        cfg: model, encoder and pipeline settings.
        overwrite: replace an existing output.
        segments: "segment": the one piece; "join": all pieces, in order.
        parts_dir: folder of the part files of a long file.
    """

    kind: str
    input: str
    output: str
    cfg: RunConfig
    overwrite: bool = False
    segments: tuple[Segment, ...] = ()
    parts_dir: str | None = None


@dataclass
class TaskResult:
    """What a task did.

    Attributes:
        task: the task.
        ok: True when its output is complete.
        frames: frames written (or found already written).
        seconds: wall time of the task on its worker, seconds.
        error: why it failed (a message for the user), or None.
        worker: "host:pid" of the process that ran it.
        model_loads: models that worker process had loaded when the task ended (1 = loaded once).
    """

    task: Task
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: str = ""
    model_loads: int = 0


_DENOISERS: dict[tuple[str, str, str], Denoiser] = {}


def cached_denoiser(cfg: ModelConfig) -> Denoiser:
    """This process's Denoiser for `cfg`, built on first use and kept for later tasks."""
    key = (cfg.name, str(cfg.strength), cfg.device)
    if key not in _DENOISERS:
        _DENOISERS[key] = Denoiser(cfg.name, strength=cfg.strength, device=cfg.device)
    return _DENOISERS[key]


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


def execute(task: Task, on_frame: Callable[[int], None] | None = None) -> TaskResult:
    """Runs one task on this worker. Safe to run again after a crash: a task whose output is
    already complete (written atomically by an earlier attempt) reports it and does nothing.

    Errors a user can fix (StreamdnError) and media errors come back as a failed TaskResult,
    so that Ray does not retry them; anything else propagates (and Ray retries it).

    Args:
        task: what to do.
        on_frame: called with 1 per frame written (progress), where the work allows.
    """
    from .jobs import denoise_file

    start = time.perf_counter()
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
                                   denoiser=cached_denoiser(task.cfg.model))
                result.frames = job.stats.frames
        elif task.kind == SEGMENT:
            seg = task.segments[0]
            assert task.parts_dir is not None
            if os.path.exists(part_path(task.parts_dir, seg.number)):
                result.frames = seg.frames
            else:
                os.makedirs(task.parts_dir, exist_ok=True)
                result.frames = denoise_segment(task.input, seg, task.output, task.parts_dir, task.cfg,
                                                cached_denoiser(task.cfg.model), on_frame=on_frame)
        elif task.kind == JOIN:
            assert task.parts_dir is not None
            # Done already when the output exists and, under --overwrite, its parts are gone
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
    result.model_loads = len(_DENOISERS)
    return result


Handle = Any   # what an executor's submit returns: a Future, an ObjectRef or a finished result


@dataclass
class InlineExecutor:
    """Runs each task in this process when it is submitted (the default: the pipeline's stage
    threads already use the cores). Frame progress reaches `on_frame` as it happens."""

    on_frame: Callable[[int], None] | None = None
    workers: int = 1
    name: str = "local"

    def submit(self, task: Task) -> Handle:
        try:
            return execute(task, self.on_frame)
        except Exception as err:  # noqa: BLE001 - an unexpected failure fails this file only
            return TaskResult(task, ok=False, error=f"{type(err).__name__}: {err}")

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        return [(h, h) for h in handles]

    def close(self) -> None:
        close_cached()


@dataclass
class ProcessExecutor:
    """Runs tasks in `workers` local processes (spawned, each keeping its model)."""

    workers: int = 2
    name: str = "local processes"
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))

    def submit(self, task: Task) -> Handle:
        assert self._pool is not None
        future = self._pool.submit(execute, task)
        future.task = task  # type: ignore[attr-defined]
        return future

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        done, _ = wait_futures(handles, return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            assert isinstance(future, Future)
            try:
                out.append((future, future.result()))
            except Exception as err:  # noqa: BLE001 - a crashed worker fails this task only
                out.append((future, TaskResult(future.task, ok=False,  # type: ignore[attr-defined]
                                               error=f"{type(err).__name__}: {err}")))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Runs tasks as Ray tasks: on a new local Ray instance, or on a cluster.

    Each task asks for `cpus` CPUs (and `gpus` GPUs); a worker process keeps its model between
    tasks (cached_denoiser). A task that raises an unexpected exception, or whose worker dies,
    is retried up to `max_retries` times; it always writes a temporary file renamed when
    complete, so a retried task never leaves a half-written output.
    """

    def __init__(self, address: str | None = "local", *, cpus: float = 1.0, gpus: float = 0.0,
                 max_retries: int = 3, workers: int | None = None,
                 fn: Callable[[Task], TaskResult] | None = None) -> None:
        """Args:
            address: "local" starts a new local Ray instance; "auto" joins the cluster this
                machine belongs to; "ray://host:port" connects as a client; None uses the Ray
                instance this process already started (ray.init), or starts a local one.
            cpus, gpus: resources each task declares.
            max_retries: retries of a task whose worker died or that raised unexpectedly.
            workers: tasks in flight at most (default: the cluster's CPUs / cpus).
            fn: the function a task runs (default: execute; tests pass a flaky wrapper).

        Raises:
            ConfigError: Ray is not installed, or the cluster cannot be reached.
        """
        try:
            import ray
        except ImportError as err:
            raise ConfigError("--ray needs Ray: pip install 'streamdn[ray]' (on every node).") from err
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            try:
                if address in (None, "local"):
                    ray.init(address="local", include_dashboard=False, log_to_driver=True,
                             configure_logging=False)
                else:
                    ray.init(address=address, log_to_driver=True, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ConfigError(f"--ray {address}: cannot reach the Ray cluster ({err}); start it with "
                                  f"`ray start --head` or check the address.") from err
            self._owned = True
        total = ray.cluster_resources().get("CPU", 1.0)
        self.workers = workers or max(1, int(total // max(cpus, 0.01)))
        self.name = "ray" if address in (None, "local") else f"ray {address}"
        self._remote = ray.remote(fn or execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                                                         retry_exceptions=True)
        self._tasks: dict[Any, Task] = {}

    def submit(self, task: Task) -> Handle:
        ref = self._remote.remote(task)
        self._tasks[ref] = task
        return ref

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        ready, _ = self._ray.wait(handles, num_returns=1)
        out = []
        for ref in ready:
            task = self._tasks.pop(ref)
            try:
                out.append((ref, self._ray.get(ref)))
            except Exception as err:  # noqa: BLE001 - retries are spent: this task failed
                reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                out.append((ref, TaskResult(task, ok=False, error=f"failed after retries: {reason}")))
        return out

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
            self._owned = False
