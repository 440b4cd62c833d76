"""Tuning robustness: how the final gap grows when the learning rate is too large or too small.

Claim (Attia & Koren, arXiv:2503.09411): for SGD on convex G-Lipschitz problems, a schedule
that decays to zero polynomially with degree p has a last-iterate bound that grows like
rho^(1/(2p+1)) when the peak learning rate is rho times too large (linear 1/3, (1-t/T)^2 1/5,
(1-t/T)^3 1/7, cosine about 1/5), against rho^1 for a constant or 1/sqrt(t) step; under-
estimating costs about rho for every schedule.

Protocol, per task: SGD at the task's batch size (16; the MLP 32), T steps, schedules constant,
inverse_sqrt, linear, poly2, poly3 and cosine, each over the same log grid of peak learning
rates (factor sqrt 2: the task's default lr times 2^-6 .. 2^8, 29 points; the MLP 2^-3 .. 2^7),
8 seeds (``--seeds``; the MLP half as many, at least 3). Per schedule: c* = the grid lr with
the lowest mean final objective; gap(rho) = mean final objective at rho c* (and c*/rho) minus
f*; the exponent is the least-squares slope of log gap on log rho over rho = sqrt 2 .. 16, with
the 90 % bootstrap interval over seeds and gaps within two standard errors of zero left out
(``lrlab.tune.robustness``). Beside it: ``lrlab.theory``'s exponent of its bound over the same
rho at the same T, the asymptotic exponent, and, where the task knows D, G and f*, the bound
itself in the objective's units at the same peaks (``lrlab.theory.last_iterate_bound``, the
plain form, which needs no bounded domain).

Tasks: ``abs_regression`` (least absolute deviations: convex, G-Lipschitz, f* exact by linear
programming, D and G known) at d = 10 (its default) and d = 100 (noise 1), T = 1000; then
``logistic_synthetic`` (smooth, strongly convex, f* exact) and ``digits_mlp`` (non-convex, f*
unknown: losses relative to the best instead of gaps).

Usage: ``python bench/reproduce/robustness.py [--seeds 8] [--smoke]``; writes
docs/results/robustness.md and robustness_*.png.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, parser, pyplot, table  # noqa: E402

from lrlab.tasks import get_task  # noqa: E402
from lrlab.theory import last_iterate_bound  # noqa: E402
from lrlab.train import RunConfig, run_batched  # noqa: E402
from lrlab.tune import robustness  # noqa: E402
from lrlab.tune.settings import build_schedule  # noqa: E402

SCHEDULES = ("constant", "inverse_sqrt", "linear", "poly2", "poly3", "cosine")
#: The paper's asymptotic over-estimation exponents (cosine ends like (1 - t/T)^2).
ASYMPTOTIC = {"constant": "1", "inverse_sqrt": "1", "linear": "1/3", "poly2": "1/5",
              "poly3": "1/7", "cosine": "1/5"}
RHOS = tuple(2 ** (k / 2) for k in range(1, 9))  # sqrt 2 .. 16


def train(task, steps: int, seeds: int, ks: range) -> pd.DataFrame:
    """Every schedule x lr x seed as one batched computation: the results table. The grid is
    the task's default lr times 2^(k/2) for k in ``ks``."""
    lrs = [task.default_lr * 2 ** (k / 2) for k in ks]
    named = [(s, RunConfig(lr, build_schedule(s, steps), seed=seed, steps=steps))
             for s in SCHEDULES for lr in lrs for seed in range(seeds)]
    results = run_batched(task, [c for _, c in named])
    return pd.DataFrame([
        {"schedule": s, "lr": c.lr, "seed": c.seed, "final_loss": r.final_loss,
         "diverged": r.diverged}
        for (s, c), r in zip(named, results, strict=True)
    ])


def _fmt(x: float, spec: str = ".3g") -> str:
    if x is None or not np.isfinite(x):
        return "diverged" if x == math.inf else "–"
    return format(x, spec)


def _exponent(row: pd.Series, side: str) -> str:
    e = row[f"exponent_{side}"]
    if not np.isfinite(e):
        return "— (noise)" if row[f"noise_{side}"] else "–"
    lo, hi = row[f"exponent_{side}_lo"], row[f"exponent_{side}_hi"]
    return f"{e:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{e:.2f}"


def convex_section(rep: Report, name: str, task, df: pd.DataFrame, steps: int) -> dict:
    """Gap table and figure for a task with exact f* (and D, G when it knows them)."""
    scheds = {s: build_schedule(s, steps) for s in SCHEDULES}
    rob = robustness(df, rhos=RHOS, f_star=task.f_star, schedules=scheds, steps=steps)
    D, G = task.info.get("D"), task.info.get("G")
    rows, bounds, ratios, below = [], {}, {}, {}
    for _, row in rob.iterrows():
        s = row["schedule"]
        gap = row["best_loss"] - task.f_star
        sub = df[(df["schedule"] == s) & np.isclose(df["lr"], row["best_lr"])]
        se = float(sub["final_loss"].std(ddof=1) / math.sqrt(len(sub)))
        cells = [s, _fmt(row["best_lr"]), f"{gap:.3g} ± {se:.1g}",
                 _fmt(row["over_4"] - task.f_star), _fmt(row["over_16"] - task.f_star),
                 _exponent(row, "over"), _fmt(row["predicted_over"], ".2f"), ASYMPTOTIC[s],
                 _exponent(row, "under"), _fmt(row["predicted_under"], ".2f")]
        if D is not None:
            # the plain last-iterate bound (no bounded domain needed) at the measured peaks
            bound = np.array([last_iterate_bound(scheds[s], D=D, G=G, steps=steps,
                                                 peak=row["best_lr"] * r).total
                              for r in (1.0, *RHOS)])
            bounds[s] = bound
            cells.append(f"{bound[0]:.3g} ({gap / bound[0]:.1e})")
            ratios[s] = gap / bound[0]
            measured = np.array([row[f"over_{x:g}"] for x in RHOS]) - task.f_star
            ok = np.isfinite(measured)
            below[s] = bool(gap <= bound[0] and np.all(measured[ok] <= bound[1:][ok]))
        rows.append(cells)
    header = ["schedule", "best lr", "gap at best ± se", "gap x4", "gap x16",
              "a over [90 %]", "a over (theory, T)", "a over (asymptotic)", "a under [90 %]",
              "a under (theory, T)"]
    if D is not None:
        header.append("bound at best (gap / bound)")
    rep.add(f"### {name}\n\n{task.description}; T = {steps}, f* = {task.f_star:.6g}"
            + (f", D = {D:.3g}, G = {G:.3g}" if D is not None else "") + ".\n\n"
            + table(header, rows))
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    rep.figure(_gap_figure(rob, task.f_star, bounds, name), slug, f"gap vs rho, {name}")
    return {"rows": {r["schedule"]: r for _, r in rob.iterrows()}, "ratios": ratios,
            "below": below}


def _gap_figure(rob: pd.DataFrame, f_star: float, bounds: dict, title: str):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    r = np.array([1.0, *RHOS])
    for i, (_, row) in enumerate(rob.iterrows()):
        color = f"C{i}"
        gap = np.array([row["best_loss"], *[row[f"over_{x:g}"] for x in RHOS]]) - f_star
        gap = np.where(np.isfinite(gap) & (gap > 0), gap, np.nan)
        ax.plot(r, gap, "-o", ms=3, color=color, label=f"{row['schedule']} (measured)")
        if row["schedule"] in bounds:
            ax.plot(r, bounds[row["schedule"]], "-.", color=color, alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("over-estimation factor rho (peak lr = rho x the best)")
    ax.set_ylabel("final objective - f* (mean over seeds)")
    ax.set_title(title + ("  (dash-dot: lrlab.theory's bound at the same lr)" if bounds else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def mlp_section(rep: Report, task, df: pd.DataFrame, steps: int) -> str:
    """f* unknown: loss at rho x / rho of the best, relative to the best loss; returns the
    finding in one sentence."""
    scheds = {s: build_schedule(s, steps) for s in SCHEDULES}
    rob = robustness(df, rhos=RHOS, schedules=scheds, steps=steps)
    rows = []
    for _, row in rob.iterrows():
        best = row["best_loss"]
        rel = [row[f"over_{x:g}"] / best for x in (2, 4, 8, 16)]
        rows.append([row["schedule"], _fmt(row["best_lr"]), f"{best:.4g}",
                     *[_fmt(v, ".3g") for v in rel], _fmt(row["under_4"] / best, ".3g"),
                     _fmt(row["predicted_over"], ".2f")])
    rep.add(f"### digits_mlp (non-convex, f* unknown)\n\n{task.description}; T = {steps}. "
            "Without f* there is no gap: the table gives the loss at rho times the best lr "
            "relative to the best loss.\n\n"
            + table(["schedule", "best lr", "best loss", "x2", "x4", "x8", "x16", "/4",
                     "a over (theory, T)"], rows))
    x2 = rob["over_2"] / rob["best_loss"]
    bad = int((~np.isfinite(x2) | (x2 > 10)).sum())
    return (f"- digits_mlp: at twice its best lr {bad} of {len(rob)} schedules diverge or end "
            "more than 10x above their best loss: the best lr sits at the edge of stability, "
            "where annealing does not save an over-estimate; the worst-case convex theory does "
            "not cover this non-convex task.")


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args(argv)
    smoke = args.smoke
    seeds = 2 if smoke else args.seeds
    ks, T = (range(-3, 4), 60) if smoke else (range(-12, 17), 1000)
    rep = Report("robustness", "Tuning robustness: the gap against the misspecification", args,
                 script=__file__, argv=argv)
    rep.add("SGD at each task's batch size, each schedule over the same factor-sqrt-2 grid "
            "of peak learning rates; exponents fitted over rho = sqrt 2 .. 16 with their 90 % "
            "bootstrap interval over seeds (— : the gaps are within seed noise). Theory columns: "
            "lrlab.theory's bound, fitted over the same rho at the same T, and its asymptotic "
            "exponent.")
    found = {}
    cases = [("abs_regression (d = 10)", get_task("abs_regression")),
             ("abs_regression (d = 100)", get_task("abs_regression", d=100, noise=1.0))]
    if not smoke:
        cases.append(("logistic_synthetic", get_task("logistic_synthetic")))
    for name, task in cases:
        df = train(task, T, seeds, ks)
        found[name] = convex_section(rep, name, task, df, T)
    if not smoke:
        mlp = get_task("digits_mlp")
        mlp_line = mlp_section(rep, mlp, train(mlp, 500, max(3, seeds // 2), range(-6, 15)), 500)
    rep.add(summary(found) + ("" if smoke else "\n" + mlp_line))
    rep.write(f"0..{seeds - 1} (digits_mlp: 0..{max(3, seeds // 2) - 1})")


def summary(found: dict) -> str:
    """The findings, from the numbers above (each sentence states what was measured)."""
    from scipy.stats import spearmanr

    lines = ["### What the numbers say", ""]
    for name, got in found.items():
        rows = got["rows"]
        order = sorted((r["exponent_over"], s) for s, r in rows.items()
                       if np.isfinite(r["exponent_over"]))
        if not order:
            noisy = any(r["noise_over"] for r in rows.values())
            lines.append(f"- {name}: no over-estimation exponent: "
                         + ("its gaps are within seed noise." if noisy else
                            "the grid holds too few points above the best lr."))
            continue
        text = ", ".join(f"{s} {e:.2f}" for e, s in order)
        measured = [rows[s]["exponent_over"] for _, s in order]
        theory = [rows[s]["predicted_over"] for _, s in order]
        rho = spearmanr(measured, theory).statistic if len(order) > 2 else math.nan
        above = [s for s, r in rows.items() if np.isfinite(r["exponent_over_lo"])
                 and r["exponent_over_lo"] > r["predicted_over"]]
        sentence = (f"- {name}: measured over-estimation exponents, most robust first: {text}; "
                    f"rank correlation with the theory's exponents {rho:.2f}. ")
        if above:
            sentence += (f"The 90 % interval lies above the theory's exponent for {len(above)} "
                         f"of {len(rows)} schedules: on this instance the gap grows faster "
                         "than the worst-case bound")
            if got["ratios"]:
                r = list(got["ratios"].values())
                n_below = sum(got["below"].values())
                sentence += (f", from {min(r):.0e}–{max(r):.0e} of the bound at the best lr; "
                             f"the measured gap stays below the bound at every rho for "
                             f"{n_below} of {len(got['below'])} schedules")
            sentence += "."
        else:
            sentence += "Every interval reaches the theory's exponent or lies below it."
        lines.append(sentence)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
