"""``lrlab bound``: a schedule's last-iterate bound, its best peak, and the misspecification
table."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np

from lrlab.cli.limits import steps_type
from lrlab.schedules import Schedule, registry
from lrlab.schedules.spec import split_spec

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
            "exponents of bound ~ rho^e. The schedule is a spec as everywhere in lrlab "
            "(cosine, poly2, cosine:s_min=0.1) or a schedule JSON file; its parameters may "
            "also be given as options, e.g. `lrlab bound polynomial --power 2 --steps 1000`. "
            "Horizons longer than lrlab.theory.EXACT_STEPS are evaluated on a subsampled grid "
            "(see lrlab.theory)."
        ),
    )
    bound.add_argument("schedule", help="a schedule spec, or a schedule JSON file (to_dict)")
    bound.add_argument("--steps", type=steps_type, required=True, help="T: steps (the horizon)")
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
        return Schedule.load(path)
    name, _ = split_spec(args.schedule)
    classes = registry()
    if name in classes:
        fields = {f.name for f in dataclasses.fields(classes[name])}  # type: ignore[arg-type]
        extra = sorted(set(given) - fields)
        if extra:
            raise ValueError(
                f"schedule {name!r} has no parameter(s) {', '.join('--' + e for e in extra)}"
            )
    return Schedule.from_spec(args.schedule, args.steps, params=given)


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--D", args.D), ("--G", args.G)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a finite number > 0, got {value:g}")
    bad = [r for r in args.rho if not (math.isfinite(r) and r > 0)]
    if bad:
        raise ValueError(f"--rho values must be finite numbers > 0, got {bad[0]:g}")


def run_bound(args: argparse.Namespace) -> int:
    from rich.table import Table

    from lrlab.cli._console import console as make_console
    from lrlab.theory import EXACT_STEPS, rho_curve

    _check_numbers(args)
    sched = _build_schedule(args)
    curve = rho_curve(sched, args.rho, args.D, args.G, steps=args.steps)
    best = curve.best_bound
    console = make_console()
    grid = " (subsampled grid, see lrlab.theory)" if args.steps > EXACT_STEPS else ""
    console.print(f"schedule {sched!r}, T = {args.steps}{grid}, D = {args.D:g}, G = {args.G:g}")
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
