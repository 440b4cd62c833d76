"""``lrlab find``: a learning-rate range test on a task, read as a range for linear decay."""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from lrlab.cli.sweep_cmd import (
    DEFAULT_TASK,
    DEFAULT_TASK_OPTIONS,
    _optimizer_options,
    _OptimizerArg,
    _value,
    parse_seeds,
)

DEFAULT_LR_MIN, DEFAULT_LR_MAX, DEFAULT_SEEDS = 1e-4, 100.0, 3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "find",
        help="learning-rate range test: the range a linear-decay peak should come from",
        description=(
            "Train with an exponentially growing learning rate (lr_min to lr_max over --steps "
            "steps; each seed a member of one batched run), smooth the mean loss curve and "
            "read from it the range that should hold the best peak of a linear-decay "
            "schedule, the suggested peak and how coarse a grid around it may be "
            "(docs/range_test.md). With no --task: multinomial logistic regression on "
            "scikit-learn's digits with L2 0.01, as lrlab sweep."
        ),
    )
    p.add_argument(
        "--task",
        help=f"task name (default {DEFAULT_TASK}) or your own builder: pkg.mod:builder or "
        "path/to/file.py:builder, a function returning a lrlab.tasks.Task",
    )
    p.add_argument(
        "--task-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the task builder, repeatable (default task: l2=0.01)",
    )
    p.add_argument("--lr-min", type=float,
        help=f"first lr of the ramp (default {DEFAULT_LR_MIN:g})")
    p.add_argument("--lr-max", type=float,
        help=f"last lr of the ramp (default {DEFAULT_LR_MAX:g})")
    p.add_argument("--steps", type=int, help="steps of the ramp (default: the task's steps)")
    p.add_argument(
        "--seeds", help=f"number of seeds (0..N-1) or a comma list (default {DEFAULT_SEEDS})"
    )
    p.add_argument("--optimizer", action=_OptimizerArg)
    p.add_argument(
        "--optimizer-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the optimizer, repeatable (e.g. beta1=0.95)",
    )
    p.add_argument(
        "--weight-decay", type=float, help="the optimizer's weight decay (default: its own)"
    )
    p.add_argument("--device", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--plot", metavar="PATH", help="write the curve and the range as a PNG")
    p.add_argument("--out", metavar="PATH", help="write the curve and the range as JSON")
    p.set_defaults(func=find)


def _task_options(args: argparse.Namespace) -> dict:
    if not args.task_option:
        return dict(DEFAULT_TASK_OPTIONS) if args.task is None else {}
    options = {}
    for item in args.task_option:
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--task-option must be KEY=VALUE, got {item!r}")
        options[key.strip()] = _value(val.strip())
    return options


def _seeds(text: str | None) -> tuple[int, ...]:
    return parse_seeds(text, DEFAULT_SEEDS)


def _out_path(flag: str, value: str | None, suffix: str) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() != suffix:
        raise ValueError(f"{flag} must name a {suffix} file, got {value!r}")
    if path.is_dir():
        raise ValueError(f"{flag} {value!r} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ValueError(f"{flag}: cannot write in {str(parent)!r}")
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{flag}: {str(parent)!r} is not a directory")
    return path


def find(args: argparse.Namespace) -> int:
    from lrlab.rangetest import check_ramp, ramp_schedule, read_range

    # every option is checked before any training starts
    plot = _out_path("--plot", args.plot, ".png")
    out = _out_path("--out", args.out, ".json")
    if plot is not None and out is not None and plot.resolve() == out.resolve():
        raise ValueError("--plot and --out must differ")
    lr_min = DEFAULT_LR_MIN if args.lr_min is None else args.lr_min
    lr_max = DEFAULT_LR_MAX if args.lr_max is None else args.lr_max
    try:
        check_ramp(lr_min, lr_max, 2)
    except ValueError as exc:
        text = str(exc).replace("lr_min", "--lr-min").replace("lr_max", "--lr-max")
        raise ValueError(text) from None
    if args.steps is not None and args.steps < 2:
        raise ValueError(f"--steps must be >= 2, got {args.steps}")
    seeds = _seeds(args.seeds)
    options = _optimizer_options(args)
    optimizer = args.optimizer or "sgd"

    import numpy as np

    from lrlab.tasks import get_task
    from lrlab.train import RunConfig, run_batched
    from lrlab.train.devices import resolve_device

    device = resolve_device(args.device or "cpu")
    task_name = args.task or DEFAULT_TASK
    task_options = _task_options(args)
    task = get_task(task_name, **task_options)
    steps = task.default_steps if args.steps is None else args.steps
    peak, schedule = ramp_schedule(lr_min, lr_max, steps)
    configs = [
        RunConfig(peak, schedule, seed=s, steps=steps, optimizer=optimizer, options=options)
        for s in seeds
    ]

    t0 = time.perf_counter()
    results = run_batched(task, configs, curve_points=steps, device=device)
    elapsed = time.perf_counter() - t0
    curves = np.stack([r.curve_loss for r in results])
    # a step any seed could not finish ends the mean curve there
    mean = np.where(np.isfinite(curves).all(0), curves.mean(0), np.nan)
    lrs = peak * schedule(np.arange(steps))
    rt = read_range(
        lrs,
        mean,
        info={
            "task": task_name,
            "task_options": task_options,
            "optimizer": optimizer,
            "optimizer_options": options,
            "seeds": list(seeds),
            "steps": steps,
            "lr_min": lr_min,
            "lr_max": lr_max,
            "batch_size": task.default_batch_size,
        },
    )
    label = f"{task_name} {task_options}" if task_options else task_name
    cut = "" if rt.stop is None else f", read up to step {rt.stop}"
    print(
        f"range test: {label}, {optimizer}, {len(seeds)} seed(s), lr {lr_min:g}..{lr_max:g} "
        f"over {steps} steps ({elapsed:.1f} s{cut})"
    )
    a, b = rt.valley
    print(f"smoothed loss: minimum at lr {rt.lr_best:.3g}, valley [{a:.3g}, {b:.3g}]")
    print(
        f"linear decay: suggested peak lr {rt.peak:.3g}, best peak in "
        f"[{rt.lo:.3g}, {rt.hi:.3g}]"
    )
    grid = ", ".join(f"{g:.3g}" for g in rt.grid)
    print(f"grid: factor {rt.grid_factor:.2g} around the peak ({grid}) spans the range")
    for note in rt.notes:
        print(f"note: {note}")
    title = f"Range test: {label}, {optimizer}, {len(seeds)} seed(s)"
    if plot is not None:
        print(f"plot: {rt.plot(plot, title=title)}")
    if out is not None:
        print(f"json: {rt.save_json(out)}")
    if not math.isfinite(rt.peak):  # pragma: no cover - read_range always gives a number
        return 1
    return 0
