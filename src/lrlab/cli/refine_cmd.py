"""``lrlab refine``: a schedule refined from a pilot run's gradient-norm log."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings

import numpy as np

from lrlab._io import atomic_write
from lrlab.cli.files import image_path, output_file, save_figure


def register(subparsers) -> None:
    ref = subparsers.add_parser(
        "refine",
        help="refine a schedule from a pilot run's gradient-norm log",
        description=(
            "Read a gradient-norm log (CSV or Parquet with columns step, grad_norm_l2, "
            "grad_norm_l1, loss), write the refined schedule as JSON and optionally a plot "
            "(its suffix chooses the format; .png is added to a path without one)."
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
    ref.add_argument("-o", "--output", required=True,
                     help="schedule JSON to write (.json is added to a path without a suffix)")
    ref.add_argument("--plot", default=None, help="image: pilot norms and the refined shape")
    ref.set_defaults(func=run_refine)


_FLAGS = {
    "tau": "--tau",
    "steps": "--steps",
    "trim_start": "--trim-start",
    "trim_end": "--trim-end",
    "max_points": "--max-points",
}


def run_refine(args: argparse.Namespace) -> int:
    from rich.table import Table

    from lrlab.cli._console import console as make_console
    from lrlab.refine import read_norms, refine

    # every output is checked before the log is read
    dest = output_file("-o", args.output, ".json")
    plot = image_path("--plot", args.plot) if args.plot else None
    norms = read_norms(args.log, args.norm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            out = refine(
                norms, norm=args.norm, tau=args.tau, steps=args.steps,
                trim_start=args.trim_start, trim_end=args.trim_end, max_points=args.max_points,
            )
        except ValueError as exc:  # name the option the user typed
            text = str(exc)
            for name, flag in _FLAGS.items():
                if text.startswith(name + " "):
                    text = flag + text[len(name):]
                    break
            raise ValueError(text) from None
    for w in caught:
        print(f"lrlab: warning: {w.message}", file=sys.stderr)
    atomic_write(dest, json.dumps(out.schedule.to_dict()) + "\n")
    if plot is not None:
        save_figure(_figure(norms, out), *plot, dpi=100)
    table = Table(title=f"refined schedule -> {dest}" + (f", plot {plot[0]}" if plot else ""))
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for f in dataclasses.fields(out.report):
        v = getattr(out.report, f.name)
        table.add_row(f.name, f"{v:.4g}" if isinstance(v, float) else str(v))
    make_console().print(table)
    return 0


def _figure(norms: np.ndarray, out):
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
    return fig
