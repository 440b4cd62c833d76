"""``lrlab bound`` (last-iterate bound and misspecification table) and ``lrlab refine``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from lrlab.cli.schedule_args import build
from lrlab.schedules import Schedule, registry

# Options of `lrlab bound` itself; schedule fields with these names are not offered.
_RESERVED = {"steps", "rho", "D", "G", "help"}
_SCALAR_TYPES = {"int": int, "float": float, "int | None": int, "float | None": float}


def _schedule_params() -> dict[str, set[str]]:
    """Scalar dataclass fields of every registered schedule: field name -> schedule names."""
    params: dict[str, set[str]] = {}
    for name, cls in registry().items():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if f.name in _RESERVED or kind not in _SCALAR_TYPES:
                continue
            params.setdefault(f.name, set()).add(name)
    return params


def register(subparsers) -> None:
    bound = subparsers.add_parser(
        "bound",
        help="last-iterate bound of a schedule, best peak, and the cost of a misspecified peak",
        description=(
            "Best peak c* and best bound of a schedule's last-iterate bound, the bound at "
            "rho*c* and c*/rho (plain and tail-restarted on a bounded domain), and the fitted "
            "exponents of bound ~ rho^e. Schedule parameters are the schedule's own fields, "
            "e.g. `lrlab bound polynomial --power 2 --steps 1000`."
        ),
    )
    bound.add_argument("schedule", help="a schedule name, or a schedule JSON file (to_dict)")
    bound.add_argument("--steps", type=int, required=True, help="T: steps (and the horizon)")
    bound.add_argument("--rho", type=float, nargs="+", default=[2.0, 4.0, 8.0, 16.0])
    bound.add_argument("--D", type=float, default=1.0, help="distance ||x_1 - x*|| (default 1)")
    bound.add_argument("--G", type=float, default=1.0, help="gradient-norm bound (default 1)")
    params = bound.add_argument_group("schedule parameters")
    for field, owners in sorted(_schedule_params().items()):
        flags = sorted({f"--{field}", f"--{field.replace('_', '-')}"})
        params.add_argument(
            *flags, dest=f"param_{field}", default=None, metavar="X",
            help=f"({', '.join(sorted(owners))})",
        )
    bound.set_defaults(func=run_bound)

    ref = subparsers.add_parser(
        "refine",
        help="refine a schedule from a pilot run's gradient-norm log",
        description=(
            "Read a gradient-norm log (CSV or Parquet with columns step, grad_norm_l2, "
            "grad_norm_l1, loss), write the refined schedule as JSON and optionally a plot."
        ),
    )
    ref.add_argument("log", help="the pilot's log (.csv or .parquet)")
    ref.add_argument("--norm", choices=["l1", "l2"], default="l2",
                     help="l2 for SGD-like pilots (w = g^-2), l1 for Adam-like (w = g^-1)")
    ref.add_argument("--tau", type=float, default=0.1, help="median window, fraction of the run")
    ref.add_argument("--steps", type=int, default=None, help="horizon (default: pilot's steps)")
    ref.add_argument("--trim-start", type=int, default=0, help="log entries ignored at start")
    ref.add_argument("--trim-end", type=int, default=0, help="log entries ignored at the end")
    ref.add_argument("--max-points", type=int, default=100_000, help="grid size for long logs")
    ref.add_argument("-o", "--output", required=True, help="schedule JSON to write")
    ref.add_argument("--plot", default=None, help="PNG: pilot norms and the refined shape")
    ref.set_defaults(func=run_refine)


# -- bound ------------------------------------------------------------------------------------
def _build_schedule(args: argparse.Namespace) -> Schedule:
    given = {
        k[len("param_"):]: v
        for k, v in vars(args).items()
        if k.startswith("param_") and v is not None
    }
    path = Path(args.schedule)
    if path.suffix == ".json":
        if given:
            raise ValueError("schedule parameters cannot be combined with a schedule JSON file")
        if not path.is_file():
            raise ValueError(f"schedule file not found: {path}")
        return Schedule.from_dict(json.loads(path.read_text()))
    classes = registry()
    if args.schedule not in classes:
        raise ValueError(f"unknown schedule {args.schedule!r}; known: {', '.join(sorted(classes))}")
    fields = {f.name for f in dataclasses.fields(classes[args.schedule])}  # type: ignore[arg-type]
    extra = sorted(set(given) - fields)
    if extra:
        raise ValueError(
            f"schedule {args.schedule!r} has no parameter(s) "
            f"{', '.join('--' + e for e in extra)}"
        )
    if "steps" in fields:  # the bound is over T steps: T is the horizon
        given["steps"] = str(args.steps)
    return build(args.schedule, given, args.steps)


def run_bound(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lrlab.theory import rho_curve

    sched = _build_schedule(args)
    curve = rho_curve(sched, args.rho, args.D, args.G, steps=args.steps)
    best = curve.best_bound
    console = Console()
    console.print(f"schedule {sched!r}, T = {args.steps}, D = {args.D:g}, G = {args.G:g}")
    console.print(f"best peak c* = {curve.best_peak:.6g}    best bound = {best:.6g}")

    table = Table(title="bound at a misspecified peak: value, x best bound")
    table.add_column("rho", justify="right")
    for col in ("at rho*c*\nplain", "at rho*c*\nrestarted", "at c*/rho\nplain",
                "at c*/rho\nrestarted"):
        table.add_column(col, justify="right", no_wrap=True)
    for i, rho in enumerate(curve.rho):
        cells = [
            curve.over_plain[i], curve.over_restarted[i],
            curve.under_plain[i], curve.under_restarted[i],
        ]
        table.add_row(f"{rho:g}", *(f"{v:.4g} x{v / best:.3g}" for v in cells))
    if curve.rho.size >= 2 and np.unique(curve.rho).size >= 2:
        exps = [
            curve.exponent("over", False), curve.exponent("over", True),
            curve.exponent("under", False), curve.exponent("under", True),
        ]
        table.add_section()
        table.add_row("exponent", *(f"{e:.3f}" for e in exps))
    console.print(table)
    return 0


# -- refine -----------------------------------------------------------------------------------
def run_refine(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lrlab.refine import read_norms, refine

    norms = read_norms(args.log, args.norm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = refine(
            norms, norm=args.norm, tau=args.tau, steps=args.steps, trim_start=args.trim_start,
            trim_end=args.trim_end, max_points=args.max_points,
        )
    for w in caught:
        print(f"lrlab: warning: {w.message}", file=sys.stderr)
    dest = Path(args.output)
    dest.write_text(json.dumps(out.schedule.to_dict()) + "\n")
    if args.plot:
        _plot(norms, out, Path(args.plot))
    table = Table(title=f"refined schedule -> {dest}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for f in dataclasses.fields(out.report):
        v = getattr(out.report, f.name)
        table.add_row(f.name, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)
    return 0


def _plot(norms: np.ndarray, out, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n, m, T = norms.size, out.smoothed.size, out.report.steps
    fig = Figure(figsize=(8, 6), constrained_layout=True)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)
    centers = (np.arange(m) + 0.5) * n / m - 0.5
    top.plot(np.arange(n), norms, lw=0.5, alpha=0.4, label="pilot norms")
    top.plot(centers, out.smoothed, lw=2, label=f"median-smoothed (window {out.report.window})")
    top.set_xlabel("pilot step")
    top.set_ylabel(f"gradient norm ({out.report.norm})")
    top.legend()
    t = np.linspace(0.0, T, 1001)
    bottom.plot(t, out.schedule(t), lw=2, label="refined")
    bottom.plot(t, 1.0 - t / T, "--", label="linear decay")
    bottom.set_xlabel("step")
    bottom.set_ylabel("s(t)")
    bottom.legend()
    fig.savefig(path, dpi=100)
