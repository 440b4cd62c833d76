"""``lrlab schedules list`` and ``lrlab schedules plot NAME [NAME ...] [--param value ...]``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lrlab.cli.files import image_path, save_figure
from lrlab.cli.limits import PLOT_POINTS, parse_steps, plot_steps
from lrlab.schedules import Schedule, registry
from lrlab.schedules.spec import split_spec

PLOT_USAGE = (
    "lrlab schedules plot SPEC [SPEC ...] [--PARAM VALUE ...] --steps T -o FILE.png [--logy]"
)
PLOT_HELP = f"""\
Plot s(t) for t = 0..T-1 of one or more schedules into an image.

Each SPEC names a schedule as everywhere in lrlab (Schedule.from_spec): a registered name,
poly<p>, or name:key=value,... (cosine:s_min=0.1, multistep:milestones=[30,60,90]).
Parameters may also be given as --name value (dashes or underscores): such a parameter applies
to every named schedule that has it. A schedule with a horizon gets T as its horizon.
Lists are comma-separated (--milestones 30,60,90); nested schedules are JSON
(--schedule '{{"name": "cosine", "steps": 900}}').

The suffix of FILE chooses the format (.png, .pdf, .svg, ...); without one, .png is added. A
long horizon is drawn on {PLOT_POINTS} evenly spaced steps, the first and the last included.

example: lrlab schedules plot cosine linear poly2 cosine:s_min=0.1 --steps 1000 -o s.png
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("schedules", help="list and plot the built-in schedules")
    sub = p.add_subparsers(dest="schedules_command", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="names, one-line descriptions and parameters")
    lst.set_defaults(func=cmd_list)
    plot = sub.add_parser(
        "plot",
        help="plot schedules to a PNG",
        usage=PLOT_USAGE,
        description=PLOT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("spec", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    plot.set_defaults(func=cmd_plot)


# -- list ------------------------------------------------------------------------------------
def _param_text(field: dataclasses.Field) -> str:
    text = f"{field.name}: {field.type}"
    if field.default is not dataclasses.MISSING:
        text += f" = {field.default!r}"
    return text


def describe(cls: type[Schedule]) -> tuple[str, str]:
    """(one-line description, parameter list) of a schedule class."""
    doc = (cls.__doc__ or "").strip().splitlines()
    params = ", ".join(_param_text(f) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return (doc[0] if doc else ""), (params or "(none)")


def cmd_list(args: argparse.Namespace) -> int:  # noqa: ARG001
    for name, cls in sorted(registry().items()):
        line, params = describe(cls)
        print(f"{name:<15} {line}")
        print(f"{'':<15}   params: {params}")
    return 0


# -- plot ------------------------------------------------------------------------------------
def parse_plot_spec(spec: list[str]) -> tuple[list[str], dict[str, str], int, str, bool]:
    """Split ``NAME ... --key value ...`` into (names, params, steps, output, logy)."""
    names = []
    i = 0
    while i < len(spec) and not spec[i].startswith("-"):
        names.append(spec[i])
        i += 1
    if not names:
        raise ValueError(f"name at least one schedule; usage: {PLOT_USAGE}")
    opts: dict[str, str] = {}
    logy = False
    while i < len(spec):
        key = spec[i]
        if key == "--logy":
            logy = True
            i += 1
            continue
        if not key.startswith("-"):
            raise ValueError(f"expected --PARAM VALUE, got {key!r}; usage: {PLOT_USAGE}")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(spec):
            value = spec[i + 1]
            i += 2
        else:
            raise ValueError(f"{key} needs a value")
        name = "output" if key == "-o" else key.lstrip("-").replace("-", "_")
        if name in opts:
            raise ValueError(f"--{name} given twice")
        opts[name] = value
    if "steps" not in opts or "output" not in opts:
        raise ValueError(f"--steps T and -o FILE.png are required; usage: {PLOT_USAGE}")
    steps = parse_steps("--steps", opts.pop("steps"))
    return names, opts, steps, opts.pop("output"), logy


def build_plotted(names: list[str], params: dict[str, str], steps: int) -> list[Schedule]:
    """The schedules of ``lrlab schedules plot``: each spec with the ``--PARAM`` values its
    schedule has (a parameter no named schedule has is an error)."""
    known = registry()
    split = [split_spec(n) for n in names]
    fields = [
        {f.name for f in dataclasses.fields(known[n])} if n in known else set()  # type: ignore[arg-type]
        for n, _ in split
    ]
    if all(n in known for n, _ in split):
        for key in params:
            if not any(key in f for f in fields):
                allowed = sorted(set().union(*fields) - {"steps"})
                raise ValueError(
                    f"unknown parameter --{key} for {', '.join(names)}; allowed: "
                    f"{', '.join('--' + a for a in allowed) or '(none)'}"
                )
    return [
        Schedule.from_spec(spec, steps, params={k: v for k, v in params.items() if k in f})
        for spec, f in zip(names, fields, strict=True)
    ]


def cmd_plot(args: argparse.Namespace) -> int:
    names, params, steps, output, logy = parse_plot_spec(list(args.spec))
    path, fmt = image_path("-o", output)
    schedules = build_plotted(names, params, steps)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = plot_steps(steps)
    fig = Figure(figsize=(8, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for sched in schedules:
        ax.plot(t, sched(t), label=repr(sched), linewidth=1.6)
    ax.set_xlabel("optimizer step t (0-indexed)")
    ax.set_ylabel("s(t) = lr / peak lr")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(0, max(steps - 1, 1))
    if len(schedules) == 1:
        ax.set_title(repr(schedules[0]), fontsize=10)
    else:
        ax.set_title(f"{len(schedules)} schedules over {steps} steps", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    print(f"wrote {save_figure(fig, path, fmt, dpi=120)}")
    return 0
