"""PNG figures of a sweep (matplotlib, no display needed: ``Figure`` objects on the Agg canvas).

- ``loss_vs_lr_figure``: mean final loss over seeds vs learning rate, one line per schedule,
  a band from the best to the worst seed, and diverged runs as ``x`` markers on the top edge
  (their scatter has ``gid = "diverged:<schedule>"``; its x offsets are the diverged lrs).
- ``gap_vs_rho_figure``: loss gap vs misspecification rho on log-log axes, over-estimate solid,
  under-estimate dashed, the theory's slope dotted.
- ``schedule_shapes_figure``: s(t) for t = 0..T-1 of each schedule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from lrlab.report.table import exponent_text
from lrlab.schedules import Schedule
from lrlab.tune.analysis import RHOS, seed_table


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _log_y(ax, values: Sequence[np.ndarray], empty: str, x: Sequence[float]) -> None:
    """Log y axis when something positive and finite is plotted; else a linear axis spanning
    ``x`` with ``empty`` written across it (log axes with no data cannot be drawn)."""
    if any(np.any(np.isfinite(v) & (v > 0)) for v in values):
        ax.set_yscale("log")
        return
    xs = np.asarray(x, dtype=float)
    xs = xs[np.isfinite(xs) & (xs > 0)]
    lo, hi = (xs.min(), xs.max()) if xs.size else (1.0, 2.0)
    ax.set_xlim(lo / 1.5, hi * 1.5)
    ax.set_ylim(0.0, 1.0)
    ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=11)


def loss_vs_lr_figure(
    df: pd.DataFrame, *, f_star: float | None = None, title: str = "Final loss vs learning rate"
) -> Figure:
    """Loss vs lr per schedule with seed bands; diverged runs marked at the top edge.

    With ``f_star`` the y axis is the gap ``L - f_star`` (log scale shows the basin better).

    Example: ``loss_vs_lr_figure(study.results()).savefig("loss_vs_lr.png")``.
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    table = seed_table(df)
    shift = 0.0 if f_star is None else float(f_star)
    top = blended_transform_factory(ax.transData, ax.transAxes)
    schedules = list(dict.fromkeys(df["schedule"]))
    plotted = []
    for color, sched in zip(_colors(len(schedules)), schedules, strict=True):
        sub = table[table["schedule"] == sched]
        lr = sub["lr"].to_numpy(dtype=float)
        mean = sub["mean_loss"].to_numpy(dtype=float) - shift
        ok = np.isfinite(mean)
        plotted.append(mean)
        ax.plot(lr, np.where(ok, mean, np.nan), "o-", color=color, ms=3.5, label=sched)
        ax.fill_between(
            lr,
            np.where(ok, sub["min_loss"] - shift, np.nan),
            np.where(ok, sub["max_loss"] - shift, np.nan),
            color=color,
            alpha=0.2,
            linewidth=0,
        )
        div = df[(df["schedule"] == sched) & df["diverged"].astype(bool)]
        if len(div):
            ax.scatter(
                div["lr"].to_numpy(dtype=float),
                np.ones(len(div)),
                marker="x",
                color=color,
                transform=top,
                clip_on=False,
                zorder=5,
                gid=f"diverged:{sched}",
            )
    ax.set_xscale("log", base=2)
    _log_y(ax, plotted, "every run diverged: no finite loss to plot", df["lr"])
    ax.set_xlabel("peak learning rate")
    what = "final training loss" if f_star is None else f"final loss - f* (f* = {shift:.6g})"
    ax.set_ylabel(f"{what}\nmean over seeds; band: min-max")
    ax.set_title(title + "  (x on top edge: diverged)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def gap_vs_rho_figure(
    rob: pd.DataFrame,
    *,
    rhos: Sequence[float] = RHOS,
    f_star: float = 0.0,
    bounds: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """Loss gap L - f_star at rho * c* (solid) and c* / rho (dashed) vs rho, log-log.

    ``bounds`` (label -> the theory's bound at rho = 1 and at each rho c*, in the loss's
    units) are drawn dash-dotted; without them a dotted line through the rho = 1 point has
    the theory's over-estimate slope.
    Example: ``gap_vs_rho_figure(robustness(df))``.
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    r = np.array([1.0, *[float(x) for x in rhos]])
    plotted = []
    for color, (_, row) in zip(_colors(len(rob)), rob.iterrows(), strict=True):
        base = row["best_loss"] - f_star
        for side, style in (("over", "-"), ("under", "--")):
            vals = [row.get(f"{side}_{x:g}", np.nan) for x in rhos]
            gap = np.array([base, *vals], dtype=float) - np.array([0.0] + [f_star] * len(rhos))
            gap = np.where(np.isfinite(gap) & (gap > 0), gap, np.nan)
            plotted.append(gap)
            label = f"{row['schedule']} ({side}, a={exponent_text(row, side)})"
            ax.plot(r, gap, style, marker="o", ms=3, color=color, label=label)
        if bounds is not None and row["schedule"] in bounds:
            bound = np.asarray(bounds[row["schedule"]], dtype=float)
            plotted.append(bound)
            ax.plot(r, bound, "-.", color=color, alpha=0.7, label=f"{row['schedule']} (bound)")
            continue
        pred = row.get("predicted_over", np.nan)
        if np.isfinite(pred) and np.isfinite(base) and base > 0:
            ax.plot(r, base * r**pred, ":", color=color, alpha=0.6)
    ax.set_xscale("log", base=2)
    _log_y(ax, plotted, "no finite loss gap: every run diverged, or no lr has neighbours", r)
    ax.set_xlabel("misspecification rho (lr = rho * best, solid; best / rho, dashed)")
    ax.set_ylabel("loss gap  L - f*")
    ax.set_title("Robustness: loss gap vs rho ("
                 + ("dash-dot: the theory's bound)" if bounds else "dotted: theory slope)"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    return fig


def schedule_shapes_figure(schedules: Mapping[str, Schedule], steps: int) -> Figure:
    """s(t), t = 0..steps-1, of each schedule (label -> schedule).

    Example: ``schedule_shapes_figure({"cosine": Cosine(steps=500)}, 500)``.
    """
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    t = np.arange(int(steps))
    for color, (label, sched) in zip(_colors(len(schedules)), schedules.items(), strict=True):
        ax.plot(t, sched(t), color=color, label=label)
    ax.set_xlabel("step t (0-indexed)")
    ax.set_ylabel("s(t) = lr_t / peak lr")
    ax.set_title("Schedule shapes")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
