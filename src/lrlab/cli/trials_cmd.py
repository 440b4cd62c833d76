"""``lrlab ask`` and ``lrlab tell``: a study's trials run by any launcher (Slurm, a shell loop).

``ask`` claims the next waiting trial and prints it as one JSON line; ``tell`` records its
result. A claim is handed to one caller only, also among concurrent callers on many machines
sharing the storage. A claim whose caller never tells (a killed job) stays RUNNING until
``lrlab sweep --resume`` re-queues it.

Exit codes: 0 done, 2 an error (one line on stderr), 3 ``ask`` found no waiting trial.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

NO_TRIAL = 3


def register(subparsers) -> None:
    a = subparsers.add_parser(
        "ask",
        help="claim the next waiting trial of a study and print it as JSON",
        description="Print the next waiting trial as one JSON line: study, trial, lr, seed, "
        "schedule (path of the schedule's JSON, for Schedule.load), schedule_name, steps and "
        "any other searched value. Exit status 3 when no trial is waiting.",
    )
    _common(a)
    a.add_argument(
        "--schedule-dir",
        help="folder for the schedules' JSON files (default: a folder per study in the "
        "system's temporary folder)",
    )
    a.set_defaults(func=ask)

    t = subparsers.add_parser(
        "tell",
        help="record the result of a trial claimed with lrlab ask",
        description="Record a claimed trial's final loss (inf or nan: it diverged) and "
        "metric, or that it failed.",
    )
    _common(t)
    t.add_argument("--trial", type=int, required=True, help="the trial number ask printed")
    t.add_argument("--loss", type=float, help="the trial's final loss")
    t.add_argument("--metric", type=float, help="its test metric (optional)")
    t.add_argument(
        "--failed",
        nargs="?",
        const="reported failed",
        metavar="REASON",
        help="the trial failed (no loss); the reason is stored and shown in the report",
    )
    t.set_defaults(func=tell)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--storage", default="sqlite:///lrlab.db", help="Optuna RDB URL or file")


def _open(args: argparse.Namespace):
    import optuna

    from lrlab.tune import Study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return Study.open(args.study, None, args.storage)


def ask(args: argparse.Namespace) -> int:
    study = _open(args)
    folder = args.schedule_dir or os.path.join(
        tempfile.gettempdir(), f"lrlab-schedules-{os.getuid()}", study.name
    )
    trial = study.ask(folder)
    if trial is None:
        c = study.counts()
        print(
            f"lrlab: no waiting trial in study {study.name!r} ({c.get('COMPLETE', 0)} complete, "
            f"{c.get('RUNNING', 0)} running, {c.get('FAIL', 0)} failed)",
            file=sys.stderr,
        )
        return NO_TRIAL
    print(json.dumps(trial), flush=True)
    return 0


def tell(args: argparse.Namespace) -> int:
    if (args.loss is None) == (args.failed is None):
        raise ValueError("give --loss V (and --metric M) or --failed [REASON]")
    if args.failed is not None and args.metric is not None:
        raise ValueError("--metric goes with --loss, not --failed")
    study = _open(args)
    study.tell(args.trial, args.loss, metric=args.metric, failed=args.failed)
    return 0
