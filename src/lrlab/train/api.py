"""Public trainers: ``run`` (one configuration) and ``run_batched`` (many, vectorised).

Both go through ``engine.train_group``; ``run`` is a batch of one, so member m of a batched run
and ``run`` with member m's configuration draw the same minibatches and perform the same
arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from lrlab._checks import check_int
from lrlab.schedules import Schedule
from lrlab.tasks import Task, get_task
from lrlab.train import devices
from lrlab.train.devices import resolve_device
from lrlab.train.engine import compiling, train_group
from lrlab.train.types import RunConfig, RunResult

_DTYPES = (torch.float32, torch.float64)


def _resolve_task(task: Task | str) -> Task:
    if isinstance(task, str):
        return get_task(task)
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task or a task name, got {type(task).__name__}")
    return task


def _resolve_steps(task: Task, i: int, cfg: RunConfig) -> int:
    if not isinstance(cfg, RunConfig):
        raise ValueError(f"configs[{i}] must be a RunConfig, got {type(cfg).__name__}")
    # the optimizer and its options were validated by RunConfig
    steps = task.default_steps if cfg.steps is None else cfg.steps
    horizon = cfg.schedule.horizon
    if horizon is not None and horizon != steps:
        raise ValueError(
            f"configs[{i}]: schedule horizon {horizon} != steps {steps}; build the schedule "
            f"with steps={steps} (steps=None means the task default {task.default_steps})"
        )
    return steps


def run_batched(
    task: Task | str,
    configs: Sequence[RunConfig],
    *,
    record_grad_norms: bool = False,
    curve_points: int = 200,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    num_threads: int | None = 1,
    device: str | torch.device = "cpu",
    max_members: int | None = None,
    compile: bool = False,
) -> list[RunResult]:
    """Train every configuration on ``task``; results in input order.

    Configurations sharing (optimizer, steps) are trained as one stacked computation (leading
    member dimension M, learning rates a [M] tensor per step, each member's data order from its
    seed); different groups run one after the other. A group larger than ``max_members`` is
    trained in chunks of at most that many members, one after the other (None: as many as fit
    in half the memory free on the device, from the task's measured per-member footprint,
    ``lrlab.train.devices.max_members``); members never interact, so chunking changes no
    result. ``device`` is ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
    ``"auto"``; the task's data, every member and the optimizer state live there.
    ``progress(done, total)`` is called with member-steps done so far and in all.
    ``num_threads`` sets torch's intra-op threads for the duration of the call (restored
    afterwards; None leaves torch's setting alone). The default 1 is deliberate: the per-step
    tensors of these tasks are small, and on a busy machine intra-op threads cost far more
    than they gain (measured 14x slower with 2 threads on a loaded 2-core machine);
    parallelise across processes instead.
    ``compile=True`` runs the training step of a model built by ``lrlab.tasks.from_module``
    through ``torch.compile``: the same results to rounding, faster per step, after a
    compilation of seconds to a minute (worth it for long runs and on GPUs; a step that cannot
    compile runs uncompiled, with one line on the ``lrlab`` logger; other models ignore it).

    Example: ``run_batched("iris_logreg", [RunConfig(lr, Constant()) for lr in (0.1, 1.0)])``.
    """
    task = _resolve_task(task)
    configs = list(configs)
    if not configs:
        raise ValueError("configs must contain at least one RunConfig")
    curve_points = check_int("curve_points", curve_points, lo=1)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, lo=1)
    if max_members is not None:
        max_members = check_int("max_members", max_members, lo=1)
    dev = resolve_device(device)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault((cfg.optimizer, _resolve_steps(task, i, cfg)), []).append(i)
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        if max_members is None:
            max_members = devices.max_members(task, task.default_batch_size, dtype, dev)
        chunks = {
            (key, a): ix[a : a + max_members]
            for key, ix in groups.items()
            for a in range(0, len(ix), max_members)
        }
        with compiling(task.model, compile):
            return _run_groups(
                task, configs, chunks, record_grad_norms, curve_points, dtype, dev, progress
            )
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous_threads)


def _run_groups(
    task: Task,
    configs: list[RunConfig],
    groups: dict[tuple[tuple[str, int], int], list[int]],
    record_grad_norms: bool,
    curve_points: int,
    dtype: torch.dtype,
    device: torch.device,
    progress: Callable[[int, int], None] | None,
) -> list[RunResult]:
    total = sum(steps * len(ix) for ((_, steps), _), ix in groups.items())
    done = 0
    results: list[RunResult | None] = [None] * len(configs)
    for ((optimizer, steps), _), ix in groups.items():
        report = None
        if progress is not None:
            base, width = done, len(ix)

            def report(t: int, base: int = base, width: int = width) -> None:
                progress(base + t * width, total)

        out = train_group(
            task,
            [configs[i] for i in ix],
            steps,
            optimizer,
            record_grad_norms=record_grad_norms,
            curve_points=curve_points,
            dtype=dtype,
            device=device,
            progress=report,
        )
        for i, res in zip(ix, out, strict=True):
            results[i] = res
        done += steps * len(ix)
    return results  # type: ignore[return-value]


def run_config(
    task: Task | str,
    config: RunConfig,
    *,
    record_grad_norms: bool = False,
    curve_points: int = 200,
    dtype: torch.dtype = torch.float32,
    num_threads: int | None = 1,
    device: str | torch.device = "cpu",
) -> RunResult:
    """Train one ``RunConfig`` (a batch of one)."""
    return run_batched(
        task,
        [config],
        record_grad_norms=record_grad_norms,
        curve_points=curve_points,
        dtype=dtype,
        num_threads=num_threads,
        device=device,
        max_members=1,
    )[0]


def run(
    task: Task | str,
    *,
    lr: float,
    schedule: Schedule,
    seed: int = 0,
    steps: int | None = None,
    optimizer: str = "sgd",
    options: Mapping[str, float] | None = None,
    record_grad_norms: bool = False,
    curve_points: int = 200,
    dtype: torch.dtype = torch.float32,
    num_threads: int | None = 1,
    device: str | torch.device = "cpu",
) -> RunResult:
    """One training run: ``steps`` steps of ``optimizer`` with learning rate lr * schedule(t).

    ``options`` are the optimizer's options (``RunConfig.options``; None: its defaults), e.g.
    ``{"momentum": 0.8, "weight_decay": 1e-4}`` for ``momentum``; unknown names raise ValueError
    listing the allowed ones. Returns the subsampled minibatch loss curve, the full training
    objective at the last iterate (``final_loss``), the held-out metric and whether the run
    diverged.

    Example: ``run("digits_logreg", lr=0.5, schedule=Cosine(steps=500)).test_metric``, or
    ``run("digits_logreg", lr=0.01, schedule=Cosine(steps=500), optimizer="adamw",
    options={"weight_decay": 0.1})``.
    """
    cfg = RunConfig(
        lr=lr,
        schedule=schedule,
        seed=seed,
        steps=steps,
        optimizer=optimizer,
        options={} if options is None else options,
    )
    return run_config(
        task,
        cfg,
        record_grad_norms=record_grad_norms,
        curve_points=curve_points,
        dtype=dtype,
        num_threads=num_threads,
        device=device,
    )
