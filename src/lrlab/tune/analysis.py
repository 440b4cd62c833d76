"""Robustness of each schedule to a misspecified learning rate, from a results table.

Input: a table with columns ``schedule, lr, seed, final_loss, diverged`` (``Study.results()``).
A diverged run counts as an infinite loss. Per schedule, L(lr) is the mean over seeds of the
final loss; c* is the grid lr with the lowest L. With ``f_star`` the loss floor (the task's
known minimum; 0 for losses that are >= 0 when it is unknown), the gap is

    gap(rho) = L(rho * c*) - f_star  (over-estimate),   L(c* / rho) - f_star  (under-estimate).

The robustness exponent alpha is the least-squares slope of log gap vs log rho over the rho
values found on the grid (at least two, finite): gap ~ rho ** alpha. Theory for the
over-estimate side: polynomial decay of degree p -> 1 / (2p + 1) (linear 1/3), cosine 1/5,
constant and 1/sqrt(t) -> 1; under-estimation costs ~ rho for every schedule.

References: Attia & Koren, "Benefits of learning rate annealing for tuning-robustness in
stochastic optimization", arXiv:2503.09411.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lrlab._checks import check_real
from lrlab.schedules import Schedule

RHOS = (2, 4, 8, 16)
_REQUIRED = ("schedule", "lr", "seed", "final_loss", "diverged")


def predicted_exponent(schedule: Schedule | Mapping[str, Any]) -> float | None:
    """The theory's over-estimate exponent for a schedule (None where it says nothing).

    ``polynomial`` of power p -> 1/(2p+1); ``linear`` -> 1/3; ``cosine`` -> 1/5;
    ``constant`` and ``inverse_sqrt`` -> 1.

    Example: ``predicted_exponent({"name": "polynomial", "steps": 100, "power": 2})`` -> ``0.2``.
    """
    d = schedule.to_dict() if isinstance(schedule, Schedule) else dict(schedule)
    name = d.get("name")
    if name == "polynomial":
        return 1.0 / (2.0 * float(d.get("power", 1.0)) + 1.0)
    return {"linear": 1.0 / 3.0, "cosine": 0.2, "constant": 1.0, "inverse_sqrt": 1.0}.get(name)


def _check_frame(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"results must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {', '.join(missing)}")


def seed_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (schedule, lr): mean, std, min, max of the final loss over seeds (inf where any
    seed diverged), ``n_seeds`` and ``n_diverged``.

    Example: ``seed_table(study.results())``.
    """
    _check_frame(df)
    loss = df["final_loss"].astype(float).where(~df["diverged"].astype(bool), np.inf)
    work = df.assign(loss=loss, div=df["diverged"].astype(int))
    g = work.groupby(["schedule", "lr"], sort=False)
    out = pd.DataFrame(
        {
            "mean_loss": g["loss"].mean(),
            "std_loss": g["loss"].std(ddof=0),
            "min_loss": g["loss"].min(),
            "max_loss": g["loss"].max(),
            "n_seeds": g["loss"].size(),
            "n_diverged": g["div"].sum(),
        }
    ).reset_index()
    out.loc[~np.isfinite(out["mean_loss"]), "std_loss"] = np.nan
    return out.sort_values(["schedule", "lr"], kind="stable").reset_index(drop=True)


def fit_exponent(rhos: Sequence[float], gaps: Sequence[float]) -> float:
    """Least-squares slope of log(gap) on log(rho) over the finite, positive pairs
    (NaN if fewer than two).

    Example: ``fit_exponent([2, 4, 8], [0.2, 0.4, 0.8])`` -> ``1.0``.
    """
    r = np.asarray(rhos, dtype=np.float64)
    g = np.asarray(gaps, dtype=np.float64)
    ok = np.isfinite(g) & (g > 0) & np.isfinite(r) & (r > 0)
    if ok.sum() < 2:
        return math.nan
    x, y = np.log(r[ok]), np.log(g[ok])
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def _at(lrs: np.ndarray, values: np.ndarray, lr: float) -> float:
    hit = np.abs(np.log(lrs) - math.log(lr)) < 1e-6
    return float(values[hit][0]) if hit.any() else math.nan


def tolerable_factor(
    lrs: Sequence[float], losses: Sequence[float], *, slack: float = 0.02
) -> float:
    """How coarse may the grid be: the largest factor F = g**(2j) (g the grid's own factor)
    such that every grid lr within a factor sqrt(F) of the best keeps
    ``L <= (1 + slack) * L_best`` (slack 0.02: within 2 % of the best loss).

    A grid of factor F always has a point within sqrt(F) of the best lr, so its best point
    loses at most that much. 1.0 means no misspecification is tolerated; NaN if the grid is
    not geometric. Growth stops where the measured grid ends.

    Example: ``tolerable_factor([0.25, 0.5, 1, 2, 4], [2., 1.05, 1., 1.04, 3.], slack=0.1)``
    -> ``4.0``.
    """
    slack = check_real("slack", slack, 0.0)
    lr = np.asarray(lrs, dtype=np.float64)
    v = np.where(np.isfinite(np.asarray(losses, dtype=np.float64)), losses, np.inf)
    order = np.argsort(lr)
    lr, v = lr[order], v[order]
    if lr.size < 2 or not np.isfinite(v).any():
        return math.nan
    ratios = lr[1:] / lr[:-1]
    if not np.allclose(ratios, ratios[0], rtol=1e-6):
        return math.nan
    g = float(ratios[0])
    b = int(np.argmin(v))
    limit = (1.0 + slack) * v[b]
    j = 0
    while b - (j + 1) >= 0 and b + j + 1 < lr.size:
        if max(v[b - j - 1], v[b + j + 1]) > limit:
            break
        j += 1
    return g ** (2 * j)


def robustness(
    df: pd.DataFrame,
    *,
    rhos: Sequence[float] = RHOS,
    f_star: float = 0.0,
    slack: float = 0.02,
    schedules: Mapping[str, Schedule | Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per schedule: ``best_lr``, ``best_loss``, ``seed_spread`` (std over seeds at
    the best lr), ``over_<rho>`` / ``under_<rho>`` (mean loss at rho * c* and c* / rho; inf if
    diverged, NaN if off the grid), ``exponent_over`` / ``exponent_under`` (fitted alpha),
    ``predicted_over`` (theory, from ``schedules``: label -> schedule or its dict) and
    ``max_grid_factor`` (``tolerable_factor`` with ``slack``).

    Example: ``robustness(study.results(), schedules={"cosine": Cosine(steps=500)})``.
    """
    _check_frame(df)
    f_star = check_real("f_star", f_star)
    rho_list = [check_real("rhos", r, 1.0, lo_open=True) for r in rhos]
    table = seed_table(df)
    rows = []
    for sched in dict.fromkeys(df["schedule"]):
        sub = table[table["schedule"] == sched]
        lrs = sub["lr"].to_numpy(dtype=np.float64)
        mean = sub["mean_loss"].to_numpy(dtype=np.float64)
        row: dict[str, Any] = {"schedule": sched}
        if not np.isfinite(mean).any():
            row.update(best_lr=math.nan, best_loss=math.inf, seed_spread=math.nan)
            b_lr = math.nan
        else:
            b = int(np.argmin(mean))
            b_lr = float(lrs[b])
            row.update(
                best_lr=b_lr, best_loss=float(mean[b]), seed_spread=float(sub["std_loss"].iloc[b])
            )
        for side, sign in (("over", 1.0), ("under", -1.0)):
            gaps = []
            for r in rho_list:
                val = math.nan if math.isnan(b_lr) else _at(lrs, mean, b_lr * r**sign)
                row[f"{side}_{r:g}"] = val
                gaps.append(val - f_star)
            row[f"exponent_{side}"] = fit_exponent(rho_list, gaps)
        pred = None
        if schedules is not None and sched in schedules:
            pred = predicted_exponent(schedules[sched])
        row["predicted_over"] = math.nan if pred is None else pred
        row["predicted_under"] = 1.0
        row["max_grid_factor"] = tolerable_factor(lrs, mean, slack=slack)
        rows.append(row)
    return pd.DataFrame(rows)
