"""Where trials of the user's own code run: a local pool of worker processes, or Ray.

Interface: ``map_trials(specs)`` yields ``(index, outcome)`` as trials finish (see
``lrlab.tune.trials`` for specs and outcomes). A failure of the user's code is a failed
outcome, never an exception, so one crash does not stop the study.

``LocalTrials(processes)``:

- trial **functions** run in ``processes`` worker processes (spawned, reused from trial to
  trial: the pool is warm). A worker that dies (a signal, out of memory, ``os._exit``) fails
  its trial with the reason and is replaced; a trial past ``timeout`` seconds (counted from
  when the worker starts it, not from its spawn) has its worker killed. Workers exit when
  their driver dies (they watch their parent), and garbage and cached GPU memory are
  released after every trial.
- **commands** run as ``processes`` concurrent subprocesses, each in its own process group
  (killed as a group on timeout), started from threads of the driver.

``RayTrials`` runs each trial as a Ray task (no retries): a crashed worker is a failed trial;
a trial past its timeout is cancelled.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from lrlab._checks import check_int
from lrlab.tune.executors import exit_with_parent
from lrlab.tune.trials import failed, kill_running, run_trial

Spec = dict[str, Any]
Outcome = dict[str, Any]
WATCH_SECONDS = 0.5
STARTED = "started"


class TrialExecutor:
    """Base class of the trial executors."""

    parallelism = 1

    def map_trials(self, specs: Sequence[Spec]) -> Iterator[tuple[int, Outcome]]:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        """Stop the workers."""

    def __enter__(self) -> TrialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worker_main(conn: mpc.Connection, parent: int) -> None:
    """A pool worker: run the trial specs it receives until told to stop or orphaned."""
    exit_with_parent(parent, WATCH_SECONDS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        conn.send(STARTED)  # the trial's clock starts now, not while the worker was spawning
        conn.send(run_trial(spec))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=False)
        self.proc.start()
        child.close()
        self.index = -1
        self.sent = 0.0
        self.started: float | None = None
        self.limit: float | None = None

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the worker process was killed by signal {name}{hint}"
    return f"the worker process exited with status {code}"


class LocalTrials(TrialExecutor):
    """Trials on this machine: ``processes`` at a time (see the module docstring).

    ``timeout``: seconds a trial may run (None: no limit); a command's own ``timeout`` in its
    spec takes precedence.

    Example: ``with LocalTrials(2) as ex: outcomes = dict(ex.map_trials(specs))``.
    """

    def __init__(self, processes: int = 1, *, timeout: float | None = None) -> None:
        self.processes = check_int("processes", processes, lo=1)
        self.parallelism = self.processes
        self.timeout = timeout
        self._ctx = mp.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        self._threads: cf.ThreadPoolExecutor | None = None

    def map_trials(self, specs: Sequence[Spec]) -> Iterator[tuple[int, Outcome]]:
        functions = [i for i, s in enumerate(specs) if s["kind"] == "function"]
        commands = [i for i, s in enumerate(specs) if s["kind"] == "command"]
        if functions and commands:
            raise ValueError("one study runs either trial functions or commands, not both")
        if commands:
            yield from self._commands(specs)
        elif functions:
            yield from self._functions(specs)

    # -- commands: subprocesses from threads --------------------------------------------------
    def _commands(self, specs: Sequence[Spec]) -> Iterator[tuple[int, Outcome]]:
        if self._threads is None:
            self._threads = cf.ThreadPoolExecutor(self.processes, thread_name_prefix="lrlab")
        futures = {}
        for i, s in enumerate(specs):
            spec = s if s.get("timeout") is not None else {**s, "timeout": self.timeout}
            futures[self._threads.submit(run_trial, spec)] = i
        try:
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    # -- functions: a pool of worker processes ------------------------------------------------
    def _functions(self, specs: Sequence[Spec]) -> Iterator[tuple[int, Outcome]]:
        queue = deque(range(len(specs)))
        while queue or self._busy:
            while queue and len(self._busy) < self.processes:
                w = self._idle.pop() if self._idle else _Worker(self._ctx)
                i = queue.popleft()
                try:
                    w.conn.send(specs[i])
                except (OSError, ValueError):  # died while idle: start another
                    queue.appendleft(i)
                    w.kill()
                    continue
                limit = specs[i].get("timeout", None)
                limit = self.timeout if limit is None else limit
                w.index, w.sent, w.started, w.limit = i, time.monotonic(), None, limit
                self._busy.append(w)
            deadlines = [
                w.started + w.limit
                for w in self._busy
                if w.limit is not None and w.started is not None
            ]
            wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            handles = [w.conn for w in self._busy] + [w.proc.sentinel for w in self._busy]
            ready = set(mpc.wait(handles, timeout=wait))
            now = time.monotonic()
            for w in list(self._busy):
                i = w.index
                if w.conn in ready:
                    try:
                        outcome = w.conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                    if outcome == STARTED:
                        w.started = now
                        continue
                    if outcome is not None:
                        self._busy.remove(w)
                        self._idle.append(w)
                        yield i, outcome
                        continue
                if w.conn in ready or w.proc.sentinel in ready:
                    w.proc.join(timeout=5)
                    self._busy.remove(w)
                    code = w.proc.exitcode
                    w.kill()
                    yield i, failed(_death(code), now - w.sent)
                elif w.limit is not None and w.started is not None and now >= w.started + w.limit:
                    self._busy.remove(w)
                    w.kill()
                    yield i, failed(f"timed out after {w.limit:g} s", now - w.started)

    def close(self) -> None:
        for w in self._busy:
            w.kill()
        self._busy = []
        for w in self._idle:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in self._idle:
            w.proc.join(timeout=5)
            w.kill()
        self._idle = []
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            kill_running()  # the threads waiting on them then return
            self._threads.shutdown(wait=True)
            self._threads = None


class RayTrials(TrialExecutor):
    """Each trial a Ray task with ``num_cpus`` (and ``num_gpus``) and no retries.

    ``address`` as for ``RayExecutor``; without it a local Ray with ``local_cpus`` CPUs is
    started and stopped by ``close()``. ``timeout``: seconds per trial, then the task is
    cancelled (force) and the trial failed.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        local_cpus: int = 2,
        num_cpus: float = 1,
        num_gpus: float = 0,
        timeout: float | None = None,
    ) -> None:
        from lrlab.tune.executors import start_ray

        self._started = start_ray(address, local_cpus)
        import ray

        self.timeout = timeout
        self.num_cpus = num_cpus
        self._remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(run_trial)
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1)))

    def map_trials(self, specs: Sequence[Spec]) -> Iterator[tuple[int, Outcome]]:
        import ray

        queue = deque(range(len(specs)))
        running: dict[Any, tuple[int, float]] = {}
        try:
            while queue or running:
                # at most ``parallelism`` in flight, so a task starts when it is submitted
                while queue and len(running) < self.parallelism:
                    i = queue.popleft()
                    spec = specs[i]
                    if spec.get("timeout") is None:
                        spec = {**spec, "timeout": self.timeout}
                    running[self._remote.remote(spec)] = (i, time.monotonic())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                now = time.monotonic()
                for ref in ready:
                    i, t0 = running.pop(ref)
                    try:
                        yield i, ray.get(ref)
                    except Exception as exc:  # the worker died: WorkerCrashedError and kin
                        yield i, failed(f"the Ray task failed: {type(exc).__name__}", now - t0)
                for ref, (i, t0) in list(running.items()):
                    limit = specs[i].get("timeout") or self.timeout
                    if specs[i]["kind"] == "function" and limit and now - t0 > limit:
                        ray.cancel(ref, force=True)
                        del running[ref]
                        yield i, failed(f"timed out after {limit:g} s", now - t0)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
