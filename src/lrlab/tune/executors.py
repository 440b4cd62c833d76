"""Executors: turn batches of ``RunConfig`` into ``RunResult`` lists, here or on Ray.

The interface is one method, ``map_batches(task, batches, progress)``, yielding
``(batch_index, results)`` as batches finish (results in the batch's input order). Executors
never touch the study's storage: the driver process alone writes.

A *runner* is the function that trains one batch, ``runner(task, configs, progress=None)``;
the default, ``train_batch``, is ``lrlab.train.run_batched`` on the task. ``task`` is a task
name or a dict ``{"name": ..., **options}`` for ``lrlab.tasks.get_task``; the name is a
registered task or an import spec (``pkg.mod:builder``, ``/abs/path/file.py:builder``) that
each worker imports itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from lrlab._checks import check_int
from lrlab.train.types import RunConfig, RunResult

Progress = Callable[[int, int], None]
Runner = Callable[..., list[RunResult]]
TaskSpec = str | Mapping[str, Any]

CURVE_POINTS = 50


def resolve_task(task: TaskSpec):
    """The ``lrlab.tasks.Task`` a task name or ``{"name": ..., **options}`` dict names.

    The name is a registered task or an import spec (``lrlab.tasks.load_task``).
    """
    from lrlab.tasks import get_task

    if isinstance(task, str):
        return get_task(task)
    opts = dict(task)
    return get_task(opts.pop("name"), **opts)


def train_batch(
    task: TaskSpec,
    configs: Sequence[RunConfig],
    progress: Progress | None = None,
    device: str = "cpu",
    compile: bool = False,
) -> list[RunResult]:
    """Train ``configs`` on the task as one batched computation on ``device`` (the default
    runner; ``make_executor(device=..., compile=...)`` binds the device and whether a module
    task's step is compiled, ``run_batched(compile=...)``).

    Uses one torch thread: the tensors of a batch of small runs are small, and one thread is
    several times faster than two on a busy machine (parallelism comes from processes).
    """
    from lrlab.train import run_batched

    return run_batched(
        resolve_task(task),
        list(configs),
        curve_points=CURVE_POINTS,
        progress=progress,
        num_threads=1,
        device=device,
        compile=compile,
    )


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """In a worker process: exit as soon as the process ``parent`` is no longer its parent
    (the driver died, even by SIGKILL), so no worker outlives its driver."""

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="lrlab-watch-parent", daemon=True).start()


def _checked(results: list[RunResult], configs: Sequence[RunConfig]) -> list[RunResult]:
    if len(results) != len(configs):
        raise RuntimeError(f"runner returned {len(results)} results for {len(configs)} configs")
    return results


class Executor:
    """Base class: ``run_batch`` for one batch, ``map_batches`` for many."""

    def map_batches(
        self,
        task: TaskSpec,
        batches: Sequence[Sequence[RunConfig]],
        progress: Progress | None = None,
    ) -> Iterator[tuple[int, list[RunResult]]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def parallelism(self) -> int:
        """How many batches can train at once (1 by default)."""
        return 1

    def run_batch(self, task: TaskSpec, configs: Sequence[RunConfig]) -> list[RunResult]:
        """Results for one batch, in input order."""
        return next(iter(self.map_batches(task, [configs])))[1]

    def close(self) -> None:
        """Release workers (no-op by default)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Batches trained in this process, one after the other, or in a pool of ``processes``.

    ``progress(done, total)`` counts member-steps (one member trained one step) over all
    batches; with a process pool it advances when a batch finishes.

    Example: ``LocalExecutor().run_batch("digits_logreg", [RunConfig(0.5, Constant())])``.
    """

    def __init__(self, processes: int = 0, runner: Runner = train_batch) -> None:
        self.processes = check_int("processes", processes, lo=0)
        self.runner = runner
        self._pool: cf.ProcessPoolExecutor | None = None

    @property
    def parallelism(self) -> int:
        return max(1, self.processes)

    def map_batches(self, task, batches, progress=None):
        sizes = [len(b) * _steps(b) for b in batches]
        total, done = sum(sizes), 0
        if self.processes == 0:
            for i, batch in enumerate(batches):
                report = None
                if progress is not None:

                    def report(d: int, _t: int, base: int = done) -> None:
                        progress(base + d, total)

                yield i, _checked(self.runner(task, list(batch), progress=report), batch)
                done += sizes[i]
            return
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(
                self.processes,
                mp_context=ctx,
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
        futures = {self._pool.submit(self.runner, task, list(b)): i for i, b in enumerate(batches)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            done += sizes[i]
            if progress is not None:
                progress(done, total)
            yield i, _checked(fut.result(), batches[i])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _steps(batch: Sequence[RunConfig]) -> int:
    return max((c.steps or 1) for c in batch) if batch else 0


def _ray_call(runner: Runner, task: TaskSpec, configs: list[RunConfig]) -> list[RunResult]:
    return runner(task, configs)


class RayExecutor(Executor):
    """Each batch is one Ray task (``num_cpus`` per task, default 1).

    ``address`` connects to a running cluster (``"auto"`` or ``"ray://host:10001"``; lrlab
    must be importable on its workers); without it, an already initialised Ray is used, else
    a local instance is started with ``local_cpus`` CPUs and no dashboard, and stopped by
    ``close()``.

    Example: ``with RayExecutor(local_cpus=2) as ex: ex.run_batch("digits_logreg", configs)``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        local_cpus: int = 2,
        num_cpus: int = 1,
        runner: Runner = train_batch,
    ) -> None:
        self.local_cpus = check_int("local_cpus", local_cpus, lo=1)
        self.num_cpus = check_int("num_cpus", num_cpus, lo=1)
        self.runner = runner
        self._started = start_ray(address, self.local_cpus)
        import ray

        self._remote = ray.remote(num_cpus=self.num_cpus)(_ray_call)

    @property
    def parallelism(self) -> int:
        """Tasks the cluster can run at once: its CPUs // ``num_cpus``."""
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)) // self.num_cpus)

    def map_batches(self, task, batches, progress=None):
        import ray

        sizes = [len(b) * _steps(b) for b in batches]
        total, done = sum(sizes), 0
        refs = {self._remote.remote(self.runner, task, list(b)): i for i, b in enumerate(batches)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = refs[ready[0]]
            done += sizes[i]
            if progress is not None:
                progress(done, total)
            yield i, _checked(ray.get(ready[0]), batches[i])

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def start_ray(address: str | None, local_cpus: int) -> bool:
    """Connect to Ray (``address``), reuse an initialised one, or start a local instance with
    ``local_cpus`` CPUs, no dashboard and lrlab on its workers' path; True if it was started
    here (the caller's ``close()`` then shuts it down). ValueError if Ray is missing or
    unreachable."""
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the ray executor needs Ray: pip install 'lrlab[ray]'") from None
    if ray.is_initialized():
        return False
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=local_cpus,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": path}},
            )
    except Exception as exc:
        raise ValueError(f"cannot start or reach Ray (address={address!r}): {exc}") from None
    return True


def make_executor(
    kind: str,
    *,
    processes: int = 0,
    ray_address: str | None = None,
    runner: Runner | None = None,
    device: str = "cpu",
    compile: bool = False,
) -> Executor:
    """``"local"`` -> ``LocalExecutor(processes)``, ``"ray"`` -> ``RayExecutor(ray_address)``.

    ``runner`` defaults to ``train_batch`` on ``device`` (resolved in each worker), compiled
    when ``compile``.
    """
    if runner is None:
        runner = functools.partial(train_batch, device=device, compile=compile)
    if kind == "local":
        return LocalExecutor(processes, runner=runner)
    if kind == "ray":
        return RayExecutor(ray_address, runner=runner)
    raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
