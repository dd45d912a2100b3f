"""Where batch tasks run: in this process, in a pool of local processes, or as Ray tasks on a
local instance or a cluster. Ray is imported only by RayExecutor."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

from streamdn.errors import ConfigError
from streamdn.batch.tasks import Task, TaskResult, close_cached, execute

Handle = Any   # what an executor's submit returns: a Future, an ObjectRef or a finished result


class Executor(Protocol):
    """Runs tasks somewhere.

    Attributes:
        name: where, for the summary ("local", "local processes", "ray", "ray auto").
        workers: tasks that can run at once.
    """

    name: str
    workers: int

    def submit(self, task: Task) -> Handle:
        """Starts a task (the in-process executor runs it before returning)."""
        ...

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        """Blocks until at least one of `handles` is done; returns (handle, result) for those done.
        A task that failed for good comes back as a result with ok False, never as an exception."""
        ...

    def close(self) -> None:
        """Frees the workers (stops a Ray instance it started). Idempotent."""
        ...


@dataclass
class InlineExecutor:
    """Runs each task in this process when it is submitted (the default: the pipeline's stage
    threads already use the cores). Frame progress reaches `on_frame` as it happens.
    `handle_signals` is passed to every task's Pipeline.run (see streamdn.pipeline)."""

    on_frame: Callable[[int], None] | None = None
    workers: int = 1
    name: str = "local"
    handle_signals: bool = False

    def submit(self, task: Task) -> Handle:
        try:
            return execute(task, self.on_frame, handle_signals=self.handle_signals)
        except Exception as err:  # noqa: BLE001 - an unexpected failure fails this file only
            return TaskResult(task, ok=False, error=f"{type(err).__name__}: {err}")

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        return [(h, h) for h in handles]

    def close(self) -> None:
        close_cached()


@dataclass
class ProcessExecutor:
    """Runs tasks in `workers` local processes (spawned, each keeping its model).
    `handle_signals` is passed to every task's Pipeline.run in its worker (see streamdn.pipeline)."""

    workers: int = 2
    name: str = "local processes"
    handle_signals: bool = False
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))

    def submit(self, task: Task) -> Handle:
        assert self._pool is not None
        future = self._pool.submit(execute, task, handle_signals=self.handle_signals)
        future.task = task  # type: ignore[attr-defined]
        return future

    def wait(self, handles: list[Handle]) -> list[tuple[Handle, TaskResult]]:
        return self.wait_for(handles, None)

    def wait_for(self, handles: list[Handle], timeout: float | None) -> list[tuple[Handle, TaskResult]]:
        """As wait, but returns [] when none is done within `timeout` seconds."""
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            assert isinstance(future, Future)
            try:
                out.append((future, future.result()))
            except Exception as err:  # noqa: BLE001 - a crashed worker fails this task only
                out.append((future, TaskResult(future.task, ok=False,  # type: ignore[attr-defined]
                                               error=f"{type(err).__name__}: {err}")))
        return out

    def stop(self, signum: int | None = None) -> None:
        """Asks every worker process to stop its task between two frames (SIGTERM; each task runs
        under streamdn.signals.stop_on_signals) and cancels the tasks not started."""
        if self._pool is None:
            return
        for future in list(getattr(self._pool, "_pending_work_items", {}).values()):
            future.future.cancel()
        for pid in list(getattr(self._pool, "_processes", None) or {}):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass

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
            raise ConfigError("running batch tasks on Ray needs Ray: pip install 'streamdn[ray]' "
                              "(on every node).") from err
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
                raise ConfigError(f"Ray address '{address}': cannot reach the Ray cluster ({err}); start it "
                                  f"with `ray start --head` or check the address.") from err
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


def make_executor(*, workers: int | None = None, ray: str | None = None, cpus_per_task: float = 1.0,
                  gpus_per_task: float | None = None, max_retries: int = 3, device: str = "auto",
                  handle_signals: bool = False) -> Executor:
    """The executor for where the tasks should run.

    Args:
        workers: tasks at once. Without `ray`: 1 or None runs them in this process
            (InlineExecutor), more in that many local processes (ProcessExecutor). With `ray`:
            tasks in flight at most (None: the cluster's CPUs / cpus_per_task).
        ray: None runs locally; otherwise a Ray address for RayExecutor ("local" starts a new
            local instance, "auto" joins this machine's cluster, "ray://host:port" connects).
            Ray is imported only then.
        cpus_per_task: CPUs each Ray task asks for.
        gpus_per_task: GPUs each Ray task asks for (None: 1 when `device` is a CUDA device, else 0).
        max_retries: Ray retries of a task whose worker died or that raised unexpectedly.
        device: the model's device (ModelConfig.device), for the GPU default.
        handle_signals: local executors pass it to every task's Pipeline.run (command-line
            programs set it so that Ctrl-C stops between two frames); Ray workers keep Ray's own.

    Raises:
        ConfigError: a number out of range, Ray is not installed, or the cluster cannot be reached.
    """
    for name, value, low in (("workers", workers, 1), ("max_retries", max_retries, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{name}={value}: give a number >= {low}.")
    if ray is not None:
        gpus = gpus_per_task
        if gpus is None:
            gpus = 1.0 if device.strip().lower().startswith("cuda") else 0.0
        return RayExecutor(ray, cpus=cpus_per_task, gpus=gpus, max_retries=max_retries, workers=workers)
    if workers is not None and workers > 1:
        return ProcessExecutor(workers, handle_signals=handle_signals)
    return InlineExecutor(handle_signals=handle_signals)
