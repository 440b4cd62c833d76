"""Robustness of each schedule to a misspecified learning rate, from a results table.

Input: a table with columns ``schedule, lr, seed, final_loss, diverged`` (``Study.results()``).
A diverged run counts as an infinite loss. Per schedule, L(lr) is the mean over seeds of the
final loss; c* is the grid lr with the lowest L. With ``f_star`` the loss floor (the task's
known minimum; 0 for losses that are >= 0 when it is unknown), the gap is

    gap(rho) = L(rho * c*) - f_star  (over-estimate),   L(c* / rho) - f_star  (under-estimate).

The robustness exponent alpha is the least-squares slope of log gap vs log rho over the rho
values found on the grid: gap ~ rho ** alpha. A gap counts only when it exceeds twice its
standard error over seeds (``NOISE_SE``); with fewer than two such gaps the side's exponent is
NaN (shown as "—"): the gaps there are seed noise, not a trend. The 90 % confidence interval
comes from a bootstrap over seeds (``BOOTSTRAP`` resamples of the seeds, the same resample at
every lr, each refitting c* and alpha; fixed generator, so the interval is reproducible).

The theory's exponents (``predicted_exponent``) are computed by ``lrlab.theory`` for every
schedule (refined, WSD and any other included): the slope of its last-iterate bound at rho c*
(tail-restarted form) and c* / rho over the same rho values, at the run's horizon. They are
the worst case over convex G-Lipschitz problems (asymptotically 1/(2p+1) for polynomial decay
of degree p, linear 1/3, and 1 for constant and 1/sqrt(t)); a smooth, strongly convex or
non-convex task need not follow them.

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
#: A gap counts in the exponent's fit only above this many standard errors over seeds.
NOISE_SE = 2.0
#: Bootstrap resamples of the seeds for the exponents' confidence intervals.
BOOTSTRAP = 200
_REQUIRED = ("schedule", "lr", "seed", "final_loss", "diverged")


def predicted_exponent(
    schedule: Schedule | Mapping[str, Any],
    *,
    steps: int | None = None,
    rhos: Sequence[float] = RHOS,
    side: str = "over",
) -> float | None:
    """The theory's robustness exponent of a schedule, computed by ``lrlab.theory``.

    The least-squares slope of log bound against log rho of the tail-restarted last-iterate
    bound at rho c* (``side="over"``) or c* / rho (``"under"``), over ``rhos``, for the
    schedule run for ``steps`` steps (None: its own horizon). None when the schedule has no
    horizon and no ``steps`` are given, or the theory cannot bound it (e.g. a step size 0
    from the first step on).

    Example: ``predicted_exponent(Linear(steps=10**5))`` -> 0.333 (1/3), and
    ``predicted_exponent(Constant(), steps=500)`` -> 0.707 (the slope over rho 2..16; 1 as
    rho grows).
    """
    from lrlab.theory import rho_curve

    sched = schedule if isinstance(schedule, Schedule) else Schedule.from_dict(dict(schedule))
    horizon = sched.horizon if steps is None else steps
    if horizon is None:
        return None
    try:
        return rho_curve(sched, list(rhos), steps=int(horizon)).exponent(side)
    except ValueError:
        return None


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
    g = work.groupby(["schedule", "lr"])
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
    x = x - x.mean()  # centred, so the slope needs no centring of y
    return float((x * y).sum() / (x * x).sum())


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


def _seed_matrix(sub: pd.DataFrame, lrs: np.ndarray) -> np.ndarray | None:
    """[n_lr, n_seed] final losses (inf: diverged) of one schedule, rows in ``lrs`` order;
    None when some seed lacks some lr (random search), so seeds cannot be resampled as
    whole runs."""
    loss = sub["final_loss"].astype(float).where(~sub["diverged"].astype(bool), np.inf)
    wide = sub.assign(loss=loss).pivot_table(index="lr", columns="seed", values="loss",
                                             aggfunc="mean")
    wide = wide.reindex(lrs)
    m = wide.to_numpy(dtype=np.float64)
    return None if m.size == 0 or np.isnan(m).any() else m


def _side_gaps(lrs: np.ndarray, mean: np.ndarray, best_lr: float, rhos: Sequence[float],
               sign: float, f_star: float) -> np.ndarray:
    return np.array([_at(lrs, mean, best_lr * r**sign) - f_star for r in rhos])


def _interval(lrs: np.ndarray, losses: np.ndarray | None, rhos: Sequence[float], sign: float,
              f_star: float, keep: np.ndarray) -> tuple[float, float]:
    """The 90 % bootstrap interval of one side's exponent (module docstring); NaN without
    at least 3 seeds or when fewer than half the resamples give a fit."""
    if losses is None or losses.shape[1] < 3 or keep.sum() < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(0)
    r = np.asarray(rhos, dtype=np.float64)[keep]
    fits = []
    for _ in range(BOOTSTRAP):
        mean = losses[:, rng.integers(0, losses.shape[1], losses.shape[1])].mean(1)
        if not np.isfinite(mean).any():
            continue
        best = float(lrs[int(np.argmin(np.where(np.isfinite(mean), mean, np.inf)))])
        fits.append(fit_exponent(r, _side_gaps(lrs, mean, best, r, sign, f_star)))
    fits_arr = np.asarray(fits, dtype=np.float64)
    fits_arr = fits_arr[np.isfinite(fits_arr)]
    if fits_arr.size < BOOTSTRAP // 2:
        return math.nan, math.nan
    lo, hi = np.percentile(fits_arr, [5.0, 95.0])
    return float(lo), float(hi)


def robustness(
    df: pd.DataFrame,
    *,
    rhos: Sequence[float] = RHOS,
    f_star: float = 0.0,
    slack: float = 0.02,
    schedules: Mapping[str, Schedule | Mapping[str, Any]] | None = None,
    steps: int | None = None,
) -> pd.DataFrame:
    """One row per schedule: ``best_lr``, ``best_loss``, ``seed_spread`` (std over seeds at
    the best lr), ``over_<rho>`` / ``under_<rho>`` (mean loss at rho * c* and c* / rho; inf if
    diverged, NaN if off the grid), ``exponent_over`` / ``exponent_under`` (fitted alpha; NaN
    when fewer than two gaps stand out of seed noise) with their 90 % bootstrap intervals
    ``exponent_<side>_lo`` / ``_hi``, ``noise_<side>`` (True when gaps were left out of the
    fit as seed noise), ``predicted_over`` / ``predicted_under`` (``lrlab.theory``'s exponents
    for the schedules given in ``schedules``: label -> schedule or its dict, run for ``steps``
    steps or its own horizon) and ``max_grid_factor`` (``tolerable_factor`` with ``slack``).

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
        n = sub["n_seeds"].to_numpy(dtype=np.float64)
        se = sub["std_loss"].to_numpy(dtype=np.float64) / np.sqrt(np.maximum(n - 1, 1))
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
        losses = _seed_matrix(df[df["schedule"] == sched], lrs)
        for side, sign in (("over", 1.0), ("under", -1.0)):
            gaps = np.full(len(rho_list), math.nan)
            noise = np.zeros(len(rho_list), dtype=bool)
            for i, r in enumerate(rho_list):
                val = math.nan if math.isnan(b_lr) else _at(lrs, mean, b_lr * r**sign)
                row[f"{side}_{r:g}"] = val
                gaps[i] = val - f_star
                err = math.nan if math.isnan(b_lr) else _at(lrs, se, b_lr * r**sign)
                noise[i] = bool(np.isfinite(gaps[i]) and np.isfinite(err)
                                and gaps[i] <= NOISE_SE * err)
            keep = ~noise
            row[f"exponent_{side}"] = fit_exponent(np.asarray(rho_list)[keep], gaps[keep])
            lo, hi = (_interval(lrs, losses, rho_list, sign, f_star, keep)
                      if np.isfinite(row[f"exponent_{side}"]) else (math.nan, math.nan))
            row[f"exponent_{side}_lo"], row[f"exponent_{side}_hi"] = lo, hi
            row[f"noise_{side}"] = bool(noise.any())
        for side in ("over", "under"):
            pred = None
            if schedules is not None and sched in schedules:
                pred = predicted_exponent(schedules[sched], steps=steps, rhos=rho_list,
                                          side=side)
            row[f"predicted_{side}"] = math.nan if pred is None else pred
        row["max_grid_factor"] = tolerable_factor(lrs, mean, slack=slack)
        rows.append(row)
    return pd.DataFrame(rows)
