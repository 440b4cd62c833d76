"""The report folder: PNG plots, ``results.csv`` and one self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lrlab._io import atomic_write
from lrlab.report.export import export
from lrlab.report.plots import gap_vs_rho_figure, loss_vs_lr_figure, schedule_shapes_figure
from lrlab.report.table import exponent_text
from lrlab.schedules import Schedule
from lrlab.tune.analysis import RHOS, robustness, seed_table
from lrlab.tune.trials import summary

PNGS = ("loss_vs_lr.png", "gap_vs_rho.png", "schedules.png")


@dataclass
class Report:
    """What ``write_report`` produced: the robustness table and the files written."""

    robustness: pd.DataFrame
    files: dict[str, str]
    #: One line for under the terminal table: what its theory column and "—" mean.
    caption: str = ""


def _display(rob: pd.DataFrame, theory_label: str = "theory") -> pd.DataFrame:
    """The robustness frame with short headers (x4: loss at 4x the best lr, /4: at 1/4), so
    the table fits a 1280-pixel window; each fitted exponent with its 90 % interval ("—":
    within seed noise). results.csv keeps the full names and every number."""
    rob = rob.copy()
    for side in ("over", "under"):
        if f"exponent_{side}" in rob.columns:
            rob[f"exponent_{side}"] = [exponent_text(r, side, interval=True)
                                       for _, r in rob.iterrows()]
    rob = rob.drop(columns=[c for c in rob.columns
                            if c.endswith(("_lo", "_hi")) or c.startswith("noise_")])
    names = {
        "best_lr": "best lr",
        "best_loss": "best loss",
        "seed_spread": "seed sd",
        "exponent_over": "a over [90 %]",
        "predicted_over": f"a over ({theory_label})",
        "exponent_under": "a under [90 %]",
        "predicted_under": f"a under ({theory_label})",
        "max_grid_factor": "grid factor",
    }
    for c in rob.columns:
        if c.startswith("over_"):
            names[c] = "x" + c[len("over_") :]
        elif c.startswith("under_"):
            names[c] = "/" + c[len("under_") :]
    return rob.rename(columns=names)


def _loss_columns(rob: pd.DataFrame) -> list[str]:
    """The loss columns of a displayed robustness frame (best loss, every x and / column)."""
    return [c for c in rob.columns if c == "best loss" or c[:1] in ("x", "/")]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "diverged"
        return f"{x:.4g}"
    return str(x)


def _html_table(df: pd.DataFrame, best: Sequence[str] = ()) -> str:
    """A table inside its own horizontally scrolling box (the page itself never scrolls
    sideways); the lowest finite value of each column in ``best`` is bold."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    lows = {}
    for c in best:
        if c in df.columns:
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(v)
            if ok.any():
                lows[c] = v[ok].min()

    def cell(col: str, v: object) -> str:
        text = html.escape(_fmt(v))
        if col in lows and isinstance(v, (int, float)) and v == lows[col]:
            return f"<td class='best'>{text}</td>"
        return f"<td>{text}</td>"

    body = "".join(
        "<tr>" + "".join(cell(c, v) for c, v in zip(df.columns, row, strict=True)) + "</tr>"
        for row in df.itertuples(index=False)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='scroll'>{table}</div>"


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 12px;color:#222}"
    "h1{font-size:1.5em;overflow-wrap:anywhere}li{overflow-wrap:anywhere}"
    ".scroll{max-width:100%;overflow-x:auto}"
    "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "th{background:#f3f3f3}td.best{font-weight:bold;background:#eef7ee}"
    "img{max-width:100%;height:auto}"
)


def _theory_note(theory: bool, convex: tuple[float, float] | None, f_star: float) -> str:
    """What the theory columns mean for this task (module docstring of lrlab.tune.analysis)."""
    if not theory:
        return "No theory columns: the theory is for SGD with a schedule."
    if convex:
        D, G = convex
        return (
            "Theory: lrlab.theory's last-iterate bound for SGD on a convex problem whose "
            f"stochastic gradients are bounded by G = {G:.4g}, started at distance D = {D:.4g} "
            f"from a minimiser (this task's constants; f* = {f_star:.6g} exact). Its exponents "
            "are in the (bound) columns, and the gap figure draws the bound itself at the "
            "measured peaks, in the loss's units (dash-dot), beside the measured gaps."
        )
    return (
        "Theory columns (worst case): the exponents of lrlab.theory's bound, the worst case "
        "over convex Lipschitz problems (arXiv:2503.09411), at this horizon. This task is not "
        "known to be such a problem with known constants D and G (it may be smooth, strongly "
        "convex or non-convex), so its measured exponents need not match: they describe this "
        "task, the theory the worst case."
    )


def _bounds(
    schedules: Mapping[str, Schedule], steps: int, rhos: Sequence[float],
    convex: tuple[float, float], best_lrs: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """label -> ``lrlab.theory``'s bound on the gap of SGD with that schedule at the peaks the
    gap figure measures: the best lr c* and r c* for every r in ``rhos`` (the plain
    last-iterate bound, which holds without a bounded domain; in the loss's units)."""
    from lrlab.theory import last_iterate_bound

    D, G = convex
    out = {}
    for label, sched in schedules.items():
        c = best_lrs.get(label, math.nan)
        if not math.isfinite(c):
            continue
        try:
            out[label] = np.array([last_iterate_bound(sched, D, G, steps=steps, peak=c * r).total
                                   for r in (1.0, *rhos)])
        except ValueError:
            continue
    return out


def write_report(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    schedules: Mapping[str, Schedule],
    steps: int,
    title: str = "lrlab sweep",
    description: Sequence[str] = (),
    rhos: Sequence[float] = RHOS,
    f_star: float = 0.0,
    slack: float = 0.02,
    theory: bool = True,
    failures: pd.DataFrame | None = None,
    convex: tuple[float, float] | None = None,
) -> Report:
    """Write ``loss_vs_lr.png``, ``gap_vs_rho.png``, ``schedules.png``, ``results.csv`` and
    ``report.html`` (the images embedded as base64, so the file stands alone) to ``out_dir``,
    each through a temporary file renamed once complete (never a truncated file).

    ``schedules`` maps each label in ``df`` to its schedule (theory exponents and shapes);
    ``theory=False`` leaves the theory's exponents out (they are for SGD with a schedule, not
    for learning-rate-free methods); ``description`` lines are shown under the title.
    ``convex=(D, G)``: the task is convex and G-Lipschitz with its minimiser at distance D
    from the start (and ``f_star`` exact), so the gap figure draws ``lrlab.theory``'s bound
    itself, in the loss's units; without it the report says the theory's exponents are those
    of the worst case over such problems, which this task is not known to be.
    Example: ``write_report(study.results(), "lrlab-report", schedules=..., steps=500)``.
    """
    if df.empty:
        raise ValueError("the results table is empty: nothing to report (run the sweep first)")
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    rob = robustness(
        df, rhos=rhos, f_star=f_star, slack=slack, schedules=schedules if theory else None,
        steps=steps,
    )
    bounds = (_bounds(schedules, steps, rhos, convex, dict(zip(rob["schedule"], rob["best_lr"],
                                                                strict=True)))
              if theory and convex else None)
    figs = {
        "loss_vs_lr.png": loss_vs_lr_figure(df, f_star=f_star, title=title),
        "gap_vs_rho.png": gap_vs_rho_figure(rob, rhos=rhos, f_star=f_star, bounds=bounds),
        "schedules.png": schedule_shapes_figure(schedules, steps),
    }
    files: dict[str, str] = {}
    images = []
    all_diverged = ""
    if df["diverged"].astype(bool).all():
        all_diverged = (
            "<p><b>Every run diverged</b>: each learning rate of the grid is too large for this "
            "task; sweep lower ones (the edge rule grows the grid downwards when "
            "--edge-rounds allows).</p>"
        )
    failed = ""
    if failures is not None and not failures.empty:
        shown = failures.assign(error=failures["error"].map(summary))
        failed = (
            f"<h2>Failed trials ({len(failures)})</h2><p>Not in the tables above; the reason "
            "ends with the last line of each trial's traceback or output (lrlab sweep --resume "
            "--retry-failed trains them again).</p>" + _html_table(shown)
        )
    for name, fig in figs.items():
        data = _png(fig)
        files[name] = atomic_write(os.path.join(out, name), data)
        b64 = base64.b64encode(data).decode("ascii")
        images.append(f'<img alt="{name}" src="data:image/png;base64,{b64}">')
    files["results.csv"] = export(df, os.path.join(out, "results.csv"))
    lines = "".join(f"<li>{html.escape(x)}</li>" for x in description)
    label = "bound" if convex else "worst case"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><ul>{lines}</ul>"
        "<h2>Robustness</h2><p>Loss = mean final training loss over seeds; xr / /r: "
        "at r x and 1/r x the best lr; a: fitted slope of log gap vs log r "
        f"(gap = loss - {f_star:g}) with its 90 % bootstrap interval over seeds, — where the "
        "gaps are within seed noise (at most two standard errors); grid factor: the coarsest "
        f"grid whose best point stays within {slack:.0%} of the best loss. Bold: the lowest "
        f"loss of each column.</p><p>{html.escape(_theory_note(theory, convex, f_star))}</p>"
        + all_diverged
        + _html_table(_display(rob, label), best=_loss_columns(_display(rob, label)))
        + images[0]
        + images[1]
        + images[2]
        + "<h2>Per learning rate</h2>"
        + _html_table(seed_table(df), best=("mean_loss",))
        + failed
        + "</body></html>"
    )
    files["report.html"] = atomic_write(os.path.join(out, "report.html"), page)
    caption = "—: gaps within seed noise"
    if theory:
        caption = ("(th.): " + ("the theory's bound for this convex Lipschitz task" if convex
                                else "worst case over convex Lipschitz problems, not a "
                                "prediction for this task") + "; " + caption)
    return Report(rob, files, caption)
