"""``lrlab sweep`` (run or resume a stored study, then report) and ``lrlab report STUDY``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

from lrlab._io import check_folder
from lrlab.cli.limits import MAX_RUNS, check_lr_table, check_runs, check_steps

DEFAULT_TASK = "digits_logreg"
DEFAULT_TASK_OPTIONS = {"l2": 0.01}
DEFAULT_STUDY = "lrlab-default"
DEFAULT_OUT = "lrlab-report"
DEFAULT_LR_MIN, DEFAULT_LR_MAX, DEFAULT_FACTOR = 2.0**-6, 2.0**7, 2.0
# Options that define the study; --resume takes them from the storage instead.
SETTING_OPTIONS = (
    "task",
    "task_option",
    "schedules",
    "lr_min",
    "lr_max",
    "factor",
    "per_decade",
    "grid",
    "random",
    "random_seed",
    "random_weight_decay",
    "seeds",
    "steps",
    "optimizer",
    "optimizer_option",
    "weight_decay",
    "pilot_lr",
    "command",
    "external",
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train a learning-rate grid x schedules x seeds, store it, report robustness",
        description=(
            "With no options: multinomial logistic regression on scikit-learn's digits "
            "(L2 0.01), lrs 2^-6..2^7 (factor 2), schedules constant, inverse_sqrt, cosine, "
            "linear, poly2 and refined (refined from the gradient norms of a pilot run with "
            "linear decay at the task's default lr, seed 0), 3 seeds, stored in lrlab.db, "
            "report in lrlab-report/."
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
    p.add_argument(
        "--command",
        metavar="TEMPLATE",
        help="sweep your own script instead of a task: a shell command with placeholders "
        "{lr}, {seed}, {schedule} (path of the schedule's JSON: Schedule.load), "
        "{schedule_name}, {steps}, {trial}; it reports with lrlab.report(loss=...) or a final "
        'JSON line {"loss": ...} on stdout. Needs --steps',
    )
    p.add_argument(
        "--external",
        nargs="?",
        const="external",
        metavar="LABEL",
        help="create the study and queue its trials for lrlab ask / lrlab tell (a Slurm array "
        "or any launcher runs them); LABEL names the work in the report. Needs --steps",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --command: a trial running longer is killed and stored as failed",
    )
    p.add_argument(
        "--workdir",
        help="with --command: the folder commands run in (default: the current one, stored)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: train again the trials that failed (raised, killed, timed out)",
    )
    p.add_argument(
        "--schedules", help="comma-separated schedule specs, e.g. constant,cosine,poly2,refined"
    )
    p.add_argument(
        "--pilot-lr",
        type=float,
        help="peak lr of the pilot run that derives 'refined' (default: the task's default lr)",
    )
    p.add_argument("--lr-min", type=float, help=f"smallest lr (default {DEFAULT_LR_MIN:g})")
    p.add_argument("--lr-max", type=float, help=f"largest lr (default {DEFAULT_LR_MAX:g})")
    p.add_argument("--factor", type=float, help="grid factor (default 2)")
    p.add_argument("--per-decade", type=int, help="grid points per decade instead of --factor")
    p.add_argument("--grid", help="explicit comma-separated lrs instead of a log grid")
    p.add_argument(
        "--random",
        type=int,
        metavar="N",
        help="random search instead of a grid: N lrs drawn log-uniformly in [--lr-min, --lr-max]",
    )
    p.add_argument(
        "--random-seed", type=int, metavar="S", help="seed of the random search (default 0)"
    )
    p.add_argument(
        "--random-weight-decay",
        metavar="LO,HI",
        help="with --random: draw weight decay log-uniformly in [LO, HI] too",
    )
    p.add_argument("--seeds", help="number of seeds (0..N-1) or a comma list (default 3)")
    p.add_argument("--steps", type=int, help="steps per run (default: the task's)")
    p.add_argument("--optimizer", action=_OptimizerArg)
    p.add_argument(
        "--optimizer-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the optimizer, repeatable (e.g. beta1=0.95, eps=1e-6); unknown names "
        "are refused with the list of the optimizer's options",
    )
    p.add_argument(
        "--weight-decay", type=float, help="the optimizer's weight decay (default: its own)"
    )
    p.add_argument(
        "--device",
        help="where the runs train: cpu (default), cuda, cuda:N, mps or auto (cuda when there "
        "is one); stored with the study, and --resume may give another",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the training step of a module task (--task FILE.py:builder) through "
        "torch.compile: faster steps after a compilation of seconds to a minute",
    )
    p.add_argument("--storage", default="sqlite:///lrlab.db", help="Optuna RDB URL or file")
    p.add_argument("--study", default=DEFAULT_STUDY, help=f"study name (default {DEFAULT_STUDY})")
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--processes", type=int, default=0, help="local process pool size (0: none)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="runs per batch (0: split evenly over the workers)",
    )
    p.add_argument(
        "--edge-rounds",
        type=int,
        default=2,
        help="times the grid may grow past an edge holding the best lr (default 2)",
    )
    p.add_argument(
        "--max-runs",
        type=int,
        default=MAX_RUNS,
        metavar="N",
        help=f"refuse a new study of more runs than this, counting the points the edge rule "
        f"may add (default {MAX_RUNS:,})",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    p.add_argument(
        "--wide",
        action="store_true",
        help="print every column of the robustness table, however wide the terminal "
        "(report.html and results.csv always have them all)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the stored study with its stored settings"
    )
    p.set_defaults(func=sweep)

    r = subparsers.add_parser("report", help="rebuild the report of a stored study")
    r.add_argument("study", help="study name")
    r.add_argument("--storage", default="sqlite:///lrlab.db", help="Optuna RDB URL or file")
    r.add_argument("--out", default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    r.add_argument(
        "--wide",
        action="store_true",
        help="print every column of the robustness table, however wide the terminal "
        "(report.html and results.csv always have them all)",
    )
    r.set_defaults(func=report)


class _OptimizerArg(argparse.Action):
    """``--optimizer``; its help lists the batched methods of the registry when it is shown
    (the registry imports torch, which building the parser should not)."""

    @property
    def help(self) -> str:
        from lrlab.train import BATCHED_METHODS

        return (
            f"{', '.join(BATCHED_METHODS)} (default sgd). For the learning-rate-free ones "
            "--schedules constant gives the methods as published: the lr grid then scales "
            "Schedule-Free's step size or the step D-Adaptation or Prodigy estimates"
        )

    @help.setter
    def help(self, value: object) -> None:
        pass

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)


def _optimizer_options(args: argparse.Namespace) -> dict[str, float]:
    options: dict[str, float] = {}
    for item in args.optimizer_option or ():
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--optimizer-option must be KEY=VALUE, got {item!r}")
        try:
            options[key] = float(val)
        except ValueError:
            raise ValueError(f"--optimizer-option {key}: {val.strip()!r} is not a number") from None
    if args.weight_decay is not None:
        if "weight_decay" in options:
            raise ValueError("give --weight-decay or --optimizer-option weight_decay=, not both")
        options["weight_decay"] = args.weight_decay
    return options


def _value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _floats(name: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}") from None


def _random_search(args: argparse.Namespace) -> dict | None:
    """``StudySettings.random`` from ``--random N [--random-seed S] [--random-weight-decay]``."""
    if args.random is None:
        if args.random_seed is not None or args.random_weight_decay is not None:
            raise ValueError("--random-seed and --random-weight-decay need --random N")
        return None
    flags = (("--grid", args.grid), ("--factor", args.factor), ("--per-decade", args.per_decade))
    given = [flag for flag, v in flags if v is not None]
    if given:
        raise ValueError(
            f"--random draws the lrs from [--lr-min, --lr-max]; drop {', '.join(given)}"
        )
    if args.random < 1:
        raise ValueError(f"--random must be >= 1, got {args.random}")
    lo, hi = _lr_range(args)
    bounds: dict[str, tuple[float, ...]] = {"lr": (lo, hi)}
    if args.random_weight_decay is not None:
        pair = _floats("--random-weight-decay", args.random_weight_decay)
        if len(pair) != 2:
            raise ValueError(
                f"--random-weight-decay must be LO,HI, got {args.random_weight_decay!r}"
            )
        if not (math.isfinite(pair[0]) and pair[0] > 0):
            raise ValueError(f"--random-weight-decay LO must be > 0, got {pair[0]:g}")
        if not (math.isfinite(pair[1]) and pair[1] >= pair[0]):
            raise ValueError(
                f"--random-weight-decay HI must be >= LO ({pair[0]:g}), got {pair[1]:g}"
            )
        bounds["weight_decay"] = pair
    seed = 0 if args.random_seed is None else args.random_seed
    if seed < 0:
        raise ValueError(f"--random-seed must be >= 0, got {seed}")
    return {"bounds": bounds, "n": args.random, "seed": seed}


def settings_from_args(args: argparse.Namespace):
    """The ``StudySettings`` the options describe (defaults: the built-in study)."""
    from lrlab.tasks import get_task
    from lrlab.tune import REFINED, STUDY_SCHEDULES, StudySettings

    kind = "batched"
    if args.command is not None or args.external is not None:
        return _trial_settings(args)
    lrs, random, seeds, schedules = _space(args, STUDY_SCHEDULES)  # sizes before the task
    task = args.task or DEFAULT_TASK
    if args.task_option:
        options = {}
        for item in args.task_option:
            key, eq, val = item.partition("=")
            if not eq:
                raise ValueError(f"--task-option must be KEY=VALUE, got {item!r}")
            options[key.strip()] = _value(val.strip())
    else:
        options = dict(DEFAULT_TASK_OPTIONS) if args.task is None else {}
    task_obj = get_task(task, **options)
    steps = args.steps if args.steps is not None else task_obj.default_steps
    pilot_lr = args.pilot_lr
    if pilot_lr is None and REFINED in schedules:
        pilot_lr = task_obj.default_lr  # stored explicitly with the study
    return StudySettings(
        task=task,
        task_options=options,
        schedules=schedules,
        lrs=lrs,
        seeds=seeds,
        steps=steps,
        optimizer=args.optimizer or "sgd",
        random=random,
        optimizer_options=_optimizer_options(args),
        pilot_lr=pilot_lr,
        device=args.device or "cpu",
        kind=kind,
    )


def _trial_settings(args: argparse.Namespace):
    """Settings of a study of command trials (``--command``) or external ones (``--external``)."""
    import os

    from lrlab.tune import DEFAULT_SCHEDULES, StudySettings

    if args.command is not None and args.external is not None:
        raise ValueError("give --command or --external, not both")
    flag = "--command" if args.command is not None else "--external"
    for name, value in (
        ("--task", args.task),
        ("--task-option", args.task_option),
        ("--optimizer-option", args.optimizer_option),
        ("--weight-decay", args.weight_decay),
        ("--device", args.device),
    ):
        if value is not None:
            raise ValueError(f"{flag} trains with your own code: {name} does not apply")
    if args.external is not None and (args.timeout is not None or args.workdir is not None):
        raise ValueError("--timeout and --workdir are for --command trials")
    if args.steps is None:
        raise ValueError(f"{flag} needs --steps: the schedules' horizon (optimizer steps)")
    lrs, random, seeds, schedules = _space(args, DEFAULT_SCHEDULES)
    command = args.command is not None
    return StudySettings(
        task=args.command if command else args.external,
        schedules=schedules,
        lrs=lrs,
        seeds=seeds,
        steps=args.steps,
        optimizer=args.optimizer or "sgd",
        random=random,
        pilot_lr=args.pilot_lr,
        kind="command" if command else "external",
        timeout=args.timeout,
        workdir=(args.workdir or os.getcwd()) if command else None,
    )


def _space(args: argparse.Namespace, default_schedules: tuple[str, ...]):
    """``(lrs, random, seeds, schedules)`` from the grid, random-search and seed options.

    The runs they make are counted (``--max-runs``) before a grid is built: a factor near 1
    would make it huge."""
    from lrlab.tune.space import grid_size, log_grid

    random = _random_search(args)
    seeds = parse_seeds(args.seeds, 3)
    schedules = default_schedules
    if args.schedules is not None:
        schedules = tuple(s.strip() for s in args.schedules.split(",") if s.strip())
    if random is not None:
        _check_size(args, args.random, len(schedules), len(seeds), True)
        return (), random, seeds, schedules
    if args.grid is not None:
        if any(v is not None for v in (args.lr_min, args.lr_max, args.factor, args.per_decade)):
            raise ValueError("--grid replaces --lr-min/--lr-max/--factor/--per-decade")
        lrs = _floats("--grid", args.grid)
        bad = [x for x in lrs if not (math.isfinite(x) and x > 0)]
        if bad:
            raise ValueError(f"--grid values must be finite lrs > 0, got {bad[0]:g}")
        _check_size(args, len(lrs), len(schedules), len(seeds), False)
        return lrs, None, seeds, schedules
    lo, hi = _lr_range(args)
    if args.per_decade is not None:
        if args.factor is not None:
            raise ValueError("give --factor or --per-decade, not both")
        if args.per_decade < 1:
            raise ValueError(f"--per-decade must be >= 1, got {args.per_decade}")
        grid: dict = {"per_decade": args.per_decade}
    else:
        factor = DEFAULT_FACTOR if args.factor is None else args.factor
        if not (math.isfinite(factor) and factor > 1):
            raise ValueError(f"--factor must be a finite number > 1, got {factor:g}")
        grid = {"factor": factor}
    _check_size(args, grid_size(lo, hi, **grid), len(schedules), len(seeds), False)
    return tuple(log_grid(lo, hi, **grid)), None, seeds, schedules


def _lr_range(args: argparse.Namespace) -> tuple[float, float]:
    """``(--lr-min, --lr-max)`` with their defaults, checked."""
    lo = DEFAULT_LR_MIN if args.lr_min is None else args.lr_min
    hi = DEFAULT_LR_MAX if args.lr_max is None else args.lr_max
    if not (math.isfinite(lo) and lo > 0):
        raise ValueError(f"--lr-min must be a finite lr > 0, got {lo:g}")
    if not math.isfinite(hi) or hi < lo:
        raise ValueError(f"--lr-max must be >= --lr-min ({lo:g}), got {hi:g}")
    return lo, hi


def _check_size(args, n_points: int, n_schedules: int, n_seeds: int, random: bool) -> None:
    """The runs a new study asks for (with the points the edge rule may add), before any
    grid is built: at most --max-runs."""
    edge = 0 if random else 2 * args.edge_rounds
    runs = (n_points + edge) * n_schedules * n_seeds
    what = "random points" if random else "lrs"
    detail = f"{n_points:,} {what}"
    if edge:
        detail = f"({detail} + {edge} the edge rule may add)"
    detail += f" x {n_schedules} schedules x {n_seeds} seeds"
    check_runs(runs, args.max_runs, detail)


def parse_seeds(text: str | None, default: int) -> tuple[int, ...]:
    """``--seeds``: a count N (seeds 0..N-1) or a comma list of distinct integers >= 0."""
    if text is None:
        return tuple(range(default))
    if "," in text:
        values = _floats("--seeds", text)
        if not values or any(v < 0 or not float(v).is_integer() for v in values):
            raise ValueError(f"--seeds must list integers >= 0, got {text!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"--seeds lists a seed twice: {text!r}")
        return tuple(int(v) for v in values)
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--seeds must be a count or a comma list, got {text!r}") from None
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    return tuple(range(n))


_NO_COMPILE = ("--compile compiles the batched trainer's step of a --task; trials of your own "
               "code compile (or not) themselves")


def check_options(args: argparse.Namespace) -> None:
    """Every option that needs no task, storage or device, checked before anything is built,
    stored or trained; messages name the option as typed."""
    for flag, value, low in (
        ("--edge-rounds", args.edge_rounds, 0),
        ("--processes", args.processes, 0),
        ("--batch-size", args.batch_size, 0),
        ("--max-runs", args.max_runs, 1),
    ):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    for flag, value in (("--pilot-lr", args.pilot_lr), ("--timeout", args.timeout)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a finite number > 0, got {value:g}")
    if args.weight_decay is not None and not (
        math.isfinite(args.weight_decay) and args.weight_decay >= 0
    ):
        raise ValueError(f"--weight-decay must be a finite number >= 0, got {args.weight_decay:g}")
    if args.steps is not None:
        check_steps("--steps", args.steps)
    if args.compile and (args.command or args.external):
        raise ValueError(_NO_COMPILE)
    check_folder(args.out, "--out")


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _console():
    from lrlab.cli._console import console

    return console()


def sweep(args: argparse.Namespace) -> int:
    import optuna

    from lrlab.report import study_report
    from lrlab.tune import Study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = _console()
    check_options(args)
    if args.resume:
        given = [o for o in SETTING_OPTIONS if getattr(args, o) is not None]
        if given:
            flags = ", ".join("--" + o.replace("_", "-") for o in given)
            raise ValueError(f"--resume continues the study as stored; drop {flags}")
    elif args.retry_failed:
        raise ValueError("--retry-failed continues a stored study: add --resume")
    if args.device is not None:
        from lrlab.train.devices import resolve_device

        resolve_device(args.device)  # an absent device is refused before anything is stored
    if args.resume:
        study = Study.open(args.study, None, args.storage)
        if args.timeout is not None:
            study.settings = dataclasses.replace(study.settings, timeout=args.timeout)
    else:
        settings = settings_from_args(args)
        if settings.kind == "batched":
            _check_batch(args, settings, len(settings.points()))
        study = Study.open(args.study, settings, args.storage)
    s = study.settings
    counts = study.counts()
    runs = len(study.expected())
    if s.kind == "batched":
        _check_batch(args, s, runs // (len(s.schedules) * len(s.seeds)))
    options = f" {s.task_options}" if s.task_options else ""
    if s.random:
        points = f"{len(s.points())} random points"
    else:
        extra = {x for lrs in study.extra_lrs.values() for x in lrs} - set(s.lrs)
        added = f" ({len(extra)} added by the edge rule)" if extra else ""
        points = f"{len(set(s.lrs) | extra)} lrs{added}"
    console.print(
        f"study [bold]{study.name}[/] in {args.storage}: {s.task}{options}, "
        f"{len(s.schedules)} schedules x {points} x {len(s.seeds)} seeds = {runs} runs, "
        f"{s.steps} steps; {counts.get('COMPLETE', 0)} runs already complete"
        + (f" ({study.reused} of them taken from studies that had trained them)"
           if study.reused else "")
    )
    if s.kind == "external":
        waiting = study.prepare(retry_failed=args.retry_failed)
        console.print(
            f"{waiting} trials wait for an external launcher: claim one with "
            f"lrlab ask --study {study.name} --storage {args.storage}, record it with "
            f"lrlab tell --study {study.name} --storage {args.storage} --trial N --loss V"
        )
        return 0
    t0 = time.perf_counter()
    trained = 0
    device = args.device or study.settings.device
    with _executor(args, s, device) as ex:
        for round_ in range(args.edge_rounds + 1):
            with _progress() as bar:
                task_id = bar.add_task("training" if round_ == 0 else "edge points", total=None)

                def on_batch(told: int, pending: int, task_id=task_id, bar=bar) -> None:
                    bar.update(task_id, completed=told, total=pending)

                def progress(done: int, total: int, task_id=task_id, bar=bar) -> None:
                    frac = done / total if total else 1.0
                    tot = bar.tasks[task_id].total or 1
                    bar.update(task_id, completed=math.floor(frac * tot))

                n = study.prepare(retry_failed=args.retry_failed and round_ == 0)
                bar.update(task_id, total=n)
                try:
                    trained += study.run(
                        ex,
                        batch_size=args.batch_size,
                        progress=progress,
                        on_batch=on_batch,
                        retry_failed=args.retry_failed and round_ == 0,
                    )
                except KeyboardInterrupt:
                    done = study.counts().get("COMPLETE", 0)
                    console.print(
                        f"interrupted: {done} runs are stored; continue with "
                        f"lrlab sweep --resume --study {study.name} --storage {args.storage}"
                    )
                    return 130
            if round_ == args.edge_rounds or s.random:
                break
            added = study.extend_edges()
            if not added:
                break
            for sched, lrs in added.items():
                console.print(f"best lr of {sched} on the grid edge: adding lr {lrs}")
    elapsed = time.perf_counter() - t0
    console.print(f"trained {trained} runs in {elapsed:.1f} s")
    _print_failures(console, study)
    if study.results().empty:
        console.print("no run completed: no report (see the failures above)")
        return 1
    rep = study_report(study, args.out)
    console.print(_table(rep.robustness, _table_title(s), console, args.wide))
    console.print(rep.caption, style="dim", markup=False, highlight=False)
    console.print(f"report: {rep.files['report.html']} (PNGs and results.csv beside it)")
    return 0


def _check_batch(args: argparse.Namespace, s, points: int) -> None:
    """The learning-rate table of the largest batch the built-in trainer would get."""
    runs = max(1, points * len(s.schedules) * len(s.seeds))
    workers = max(1, args.processes) if args.executor == "local" else 1
    per_batch = args.batch_size or math.ceil(runs / workers)
    check_lr_table(min(per_batch, runs), s.steps)


def _executor(args: argparse.Namespace, s, device: str):
    """The executor for the study's kind: batches of a task, or trials of the user's code."""
    from lrlab.tune import LocalTrials, RayTrials, make_executor

    if args.processes < 0:
        raise ValueError(f"--processes must be >= 0, got {args.processes}")
    if args.compile and s.kind != "batched":
        raise ValueError(_NO_COMPILE)
    if s.kind == "batched":
        return make_executor(
            args.executor, processes=args.processes, ray_address=args.ray_address, device=device,
            compile=args.compile,
        )
    if args.executor == "ray":
        return RayTrials(args.ray_address, timeout=s.timeout)
    return LocalTrials(max(1, args.processes), timeout=s.timeout)


def _print_failures(console, study, shown: int = 5) -> None:
    """One line per failed trial (the first ``shown``): its parameters and the last line of
    its reason."""
    df = study.failures()
    if df.empty:
        return
    console.print(f"[bold red]{len(df)} trials failed[/] (stored with their reasons):")
    from lrlab.tune.trials import summary

    for row in df.head(shown).itertuples(index=False):
        console.print(
            f"  trial {row.trial} ({row.schedule}, lr {row.lr:g}, seed {row.seed}): "
            + summary(row.error),
            markup=False,
            highlight=False,
        )
    if len(df) > shown:
        console.print(f"  ... and {len(df) - shown} more (report.html lists them all)")


def report(args: argparse.Namespace) -> int:
    import optuna

    from lrlab.report import study_report
    from lrlab.tune import Study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_folder(args.out, "--out")
    study = Study.open(args.study, None, args.storage)
    rep = study_report(study, args.out)
    console = _console()
    console.print(_table(rep.robustness, _table_title(study.settings), console, args.wide))
    console.print(rep.caption, style="dim", markup=False, highlight=False)
    console.print(f"report: {rep.files['report.html']}")
    return 0


def _table(rob, title: str, console, wide: bool):
    """The robustness table at the console's width (every column with ``--wide``)."""
    from lrlab.report import robustness_table

    return robustness_table(rob, title=title, width=None if wide else console.width)


def _table_title(s) -> str:
    """``Robustness: task, optimizer (its options given to the study)``."""
    from lrlab.train.methods import describe_options

    if s.kind != "batched":
        return f"Robustness: {s.task}"
    optimizer = describe_options(s.optimizer, s.optimizer_options, every=False)
    return f"Robustness: {s.task}, {optimizer}"
