"""``lrlab advise``: a schedule and peak lr for a task at the cost of a few runs
(``lrlab.tune.advise``)."""

from __future__ import annotations

import argparse
import math

from lrlab._io import check_folder

DEFAULT_BUDGET = 12
DEFAULT_STUDY = "lrlab-default"
DEFAULT_OUT = "lrlab-advise"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "advise",
        help="recommend a schedule and peak lr for a task within a budget of a few runs",
        description=(
            "One pilot run with linear decay (its gradient norms give the refined schedule), a "
            "coarse grid of linear decay, the refined schedule and a constant lr whose factor "
            "comes from lrlab.theory, one learning-rate-free run, and follow-up points on the "
            "best schedule (the edge rule, midpoints), all within --budget runs; prints the "
            "recommendation and writes advice.txt, advice.json and advice.png to --out."
        ),
    )
    p.add_argument("--task", required=True,
                   help="task name or your own builder: pkg.mod:builder or path/file.py:builder")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="option of the task builder, repeatable")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="RUNS",
                   help=f"runs to spend, the pilot included (default {DEFAULT_BUDGET}, min 4)")
    p.add_argument("--lr", type=float, help="the pilot's peak lr (default: the task's default lr)")
    p.add_argument("--steps", type=int, help="steps per run (default: the task's)")
    p.add_argument("--optimizer", help="batched optimizer (default: the task's)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--storage", default="sqlite:///lrlab.db", help="Optuna RDB URL or file")
    p.add_argument("--study", default=DEFAULT_STUDY,
                   help=f"study name; the runs are stored in <study>-advise (default "
                   f"{DEFAULT_STUDY})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    p.set_defaults(func=advise_command)


def advise_command(args: argparse.Namespace) -> int:
    import optuna

    from lrlab.cli.limits import check_steps
    from lrlab.cli.sweep_cmd import _value

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.budget < 4:
        raise ValueError(f"--budget must be >= 4, got {args.budget}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {args.lr:g}")
    if args.steps is not None:
        check_steps("--steps", args.steps)
    check_folder(args.out, "--out")
    options = {}
    for item in args.task_option or ():
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"--task-option must be KEY=VALUE, got {item!r}")
        options[key.strip()] = _value(val.strip())
    if args.optimizer is not None:
        from lrlab.train.methods import BATCHED_METHODS

        if args.optimizer not in BATCHED_METHODS:
            raise ValueError(
                f"--optimizer: unknown {args.optimizer!r}; known: {', '.join(BATCHED_METHODS)}"
            )
    from lrlab.tune.advise import advise, write_report

    advice = advise(
        args.task,
        args.budget,
        task_options=options,
        lr=args.lr,
        steps=args.steps,
        optimizer=args.optimizer,
        storage=args.storage,
        study=args.study,
        device=args.device,
        say=lambda msg: print(f"lrlab: {msg}", flush=True),
    )
    print(advice.text())
    paths = write_report(advice, args.out)
    print(f"Report: {', '.join(paths)}")
    return 0
