"""``lrlab advise``: a schedule and peak lr for a task at the cost of a few runs
(``lrlab.tune.advise``)."""

from __future__ import annotations

import argparse
import math
import textwrap

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
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task",
                      help="task name or your own builder: pkg.mod:builder or "
                      "path/file.py:builder")
    what.add_argument("--command", metavar="TEMPLATE",
                      help="advise your own script instead of a task: a shell command with "
                      "placeholders {lr}, {seed}, {schedule}, {steps}, as lrlab sweep --command "
                      "runs it (it reports grad_norm with lrlab.report for the refined "
                      "schedule). Needs --lr and --steps")
    p.add_argument("--workdir", help="with --command: the folder it runs in (default: here)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="with --command: a run taking longer is killed and stored as failed")
    p.add_argument("--processes", type=int, default=1,
                   help="with --command: runs at a time (default 1)")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="option of the task builder, repeatable")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="RUNS",
                   help=f"runs to spend, the pilot included (default {DEFAULT_BUDGET}, min 4)")
    p.add_argument("--lr", type=float, help="the pilot's peak lr (default: the task's default lr)")
    p.add_argument("--steps", type=int, help="steps per run (default: the task's)")
    p.add_argument("--optimizer", help="batched optimizer (default: the task's); with "
                   "--command, what your script uses: an Adam-like name makes the pilot read "
                   "grad_norm_l1")
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
    if args.command is None:
        if args.workdir is not None or args.timeout is not None or args.processes != 1:
            raise ValueError("--workdir, --timeout and --processes are for --command")
    else:
        if args.lr is None or args.steps is None:
            raise ValueError("--command needs --lr (the pilot's) and --steps (the horizon)")
        if options:
            raise ValueError("--command trains with your own code: --task-option does not apply")
        if args.processes < 1:
            raise ValueError(f"--processes must be >= 1, got {args.processes}")
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise ValueError(f"--timeout must be a number of seconds > 0, got {args.timeout:g}")
    if args.optimizer is not None and args.command is None:
        from lrlab.train.methods import BATCHED_METHODS

        if args.optimizer not in BATCHED_METHODS:
            raise ValueError(
                f"--optimizer: unknown {args.optimizer!r}; known: {', '.join(BATCHED_METHODS)}"
            )
    from lrlab.cli._console import console as make_console
    from lrlab.tune.advise import advise, write_report

    width = make_console().width

    def say(text: str) -> None:  # wrapped at the console's width
        print(textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False),
              flush=True)

    extra = {} if args.command is None else {
        "command": args.command, "workdir": args.workdir, "timeout": args.timeout,
        "processes": args.processes}
    advice = advise(
        args.task,
        args.budget,
        **extra,
        task_options=options,
        lr=args.lr,
        steps=args.steps,
        optimizer=args.optimizer,
        storage=args.storage,
        study=args.study,
        device=args.device,
        say=lambda msg: say(f"lrlab: {msg}"),
    )
    for line in advice.text().splitlines():
        say(line)
    paths = write_report(advice, args.out)
    say("Report:")
    for path in paths:  # one a line: a path is never broken
        print(path)
    return 0
