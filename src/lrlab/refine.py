"""Schedule refinement from a pilot run's gradient norms.

Given one gradient norm per step of a pilot run (t = 0..T-1):

1. clean: drop non-finite entries (counted and warned about), optionally trim the first/last
   few; long logs are resampled to a grid of at most ``max_points`` bins (median per bin);
   dropped or trimmed steps take the value of their neighbours (linear interpolation);
2. smooth with a median filter of odd width 2*floor(tau*m/2) + 1 (m = grid length; capped at
   m), reflect-padded at both ends so the end of the run is not bent;
3. weights w_t = g_t^-2 (``norm="l2"``, SGD-like) or w_t = g_t^-1 (``norm="l1"``, Adam-like),
   computed as (min g / g_t)^2 or (min g / g_t): a constant factor the normalisation removes;
4. shape s_t = w_t * sum_{p > t} w_p, so the last value is 0, divided by its maximum.

The n shape values are the knots of a ``FromArray`` spread evenly over [0, T_out]
(T_out = the pilot's T, or ``steps``). Constant norms give s_i = 1 - i/(n-1) at the knots, so
the schedule is s(t) = 1 - t/T_out: exactly ``Linear(T_out)`` (s(0) = 1, s(T_out - 1) = 1/T_out,
s(T_out) = 0). No torch import here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from lrlab._checks import check_int, check_real
from lrlab.schedules import FromArray

__all__ = ["LOG_COLUMNS", "RefineReport", "Refined", "read_norms", "refine", "refine_log"]

#: Columns of a gradient-norm log (CSV or Parquet), as written by ``GradNormRecorder``.
LOG_COLUMNS = ("step", "grad_norm_l2", "grad_norm_l1", "loss")

_NORMS = ("l1", "l2")


@dataclass(frozen=True)
class RefineReport:
    """What the refinement did and what the refined shape looks like.

    Steps are in the output schedule's steps (0..T_out-1). ``peak_step``: where s is largest;
    ``warmup_steps`` = ``peak_step`` (0: no warm-up). ``anneal_fraction``: the fraction of the
    run after the last step where s >= 1/2, i.e. spent in the final descent from 50% to 0: 1/2
    for linear decay, small for a short sharp cool-down, large when the schedule falls early
    (as rising late norms make it do). ``dropped_nonfinite``/``trimmed``: entries removed from
    the log; ``points``: length of the grid the shape is computed on; ``window``: median-filter
    width in grid points.
    """

    norm: str
    steps: int
    pilot_steps: int
    points: int
    window: int
    dropped_nonfinite: int
    trimmed: int
    peak_step: int
    warmup_steps: int
    anneal_fraction: float


@dataclass(frozen=True)
class Refined:
    """A refined schedule, its report, and the curves it came from (all on the grid).

    ``raw``: the cleaned (resampled, gap-filled) norms; ``smoothed``: after the median filter;
    ``shape``: the refined values at the knots, peak 1, last 0.
    """

    schedule: FromArray
    report: RefineReport
    raw: np.ndarray
    smoothed: np.ndarray
    shape: np.ndarray


def _clean(norms: object, trim_start: int, trim_end: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Kept step indices, their values, and the count of non-finite entries dropped."""
    try:
        g = np.array(norms, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"norms must be a 1-D array of real numbers: {exc}") from None
    if g.ndim != 1:
        raise ValueError(f"norms must be 1-D, got shape {g.shape}")
    if g.size < 2:
        raise ValueError(f"norms must have at least 2 entries (one per step), got {g.size}")
    finite = np.isfinite(g)
    if not finite.any():
        raise ValueError("norms has no finite entry")
    if (g[finite] < 0).any():
        i = int(np.flatnonzero(finite & (g < 0))[0])
        raise ValueError(f"norms must be >= 0; entry {i} is {g[i]:g}")
    dropped = int(g.size - finite.sum())
    if dropped:
        warnings.warn(
            f"dropped {dropped} non-finite gradient norm(s) of {g.size}", RuntimeWarning,
            stacklevel=3,
        )
    keep = finite.copy()
    keep[:trim_start] = False
    keep[g.size - trim_end :] = False
    idx = np.flatnonzero(keep)
    if idx.size < 2:
        raise ValueError(
            f"fewer than 2 finite norms remain after trimming ({idx.size} of {g.size})"
        )
    return idx, g[idx], dropped


def _grid_medians(idx: np.ndarray, vals: np.ndarray, n: int, m: int) -> np.ndarray:
    """Median of the kept values in each of m equal bins over steps [0, n); gaps interpolated.

    ``idx`` is increasing, so each bin's values are contiguous: they are laid out as rows of an
    inf-padded [m, ceil(n/m)] array and sorted row-wise (O(n log(n/m))).
    """
    bins = (idx * m) // n
    counts = np.bincount(bins, minlength=m)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    table = np.full((m, int(counts.max())), np.inf)
    table[bins, np.arange(idx.size) - starts[bins]] = vals
    table.sort(axis=1)
    full = np.flatnonzero(counts)
    c = counts[full]
    med = 0.5 * (table[full, (c - 1) // 2] + table[full, c // 2])
    centers = np.arange(m, dtype=np.float64)
    return np.interp(centers, centers[full], med)


def refine(
    norms: Sequence[float] | np.ndarray,
    *,
    norm: str = "l2",
    tau: float = 0.1,
    steps: int | None = None,
    trim_start: int = 0,
    trim_end: int = 0,
    max_points: int = 100_000,
) -> Refined:
    """Refine a schedule from per-step gradient norms (formulas in the module docstring).

    ``norm``: ``"l2"`` (w = g^-2) or ``"l1"`` (w = g^-1). ``tau`` in (0, 1): median window as
    a fraction of the run. ``steps``: horizon of the output schedule (default: the pilot's T).
    ``trim_start``/``trim_end``: log entries ignored at each end. ``max_points`` >= 2: longer
    logs are binned to this many points (median per bin). Non-finite entries are dropped with
    a ``RuntimeWarning`` and counted in the report.

    Example (no smoothing at this length, l2 weights 1/4, 1, 1, 1/4)::

        refine([2.0, 1.0, 1.0, 2.0]).shape  # -> [0.45, 1.0, 0.2, 0.0]
    """
    if norm not in _NORMS:
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    tau = check_real("tau", tau, 0.0, 1.0, lo_open=True, hi_open=True)
    trim_start = check_int("trim_start", trim_start, lo=0)
    trim_end = check_int("trim_end", trim_end, lo=0)
    max_points = check_int("max_points", max_points, lo=2)
    idx, vals, dropped = _clean(norms, trim_start, trim_end)
    n = int(np.size(norms))
    t_out = n if steps is None else check_int("steps", steps, lo=1)
    m = min(n, max_points)
    raw = _grid_medians(idx, vals, n, m)
    # odd, >= 1, and never longer than the grid (2 floor(tau m / 2) + 1 <= tau m + 1 < m + 1)
    window = 2 * math.floor(tau * m / 2) + 1
    smoothed = ndimage.median_filter(raw, size=window, mode="reflect")
    if (smoothed <= 0).any():
        i = int(np.flatnonzero(smoothed <= 0)[0])
        raise ValueError(f"smoothed norm is 0 at grid point {i}; refinement needs norms > 0")
    w = (smoothed.min() / smoothed) ** (2.0 if norm == "l2" else 1.0)
    later = np.concatenate((np.cumsum(w[::-1])[::-1][1:], [0.0]))
    shape = w * later
    shape /= shape.max()
    schedule = FromArray(tuple(shape), steps=t_out)
    return Refined(
        schedule=schedule,
        report=_report(shape, norm, t_out, n, window, dropped, n - idx.size - dropped),
        raw=raw,
        smoothed=smoothed,
        shape=shape,
    )


def _report(
    shape: np.ndarray, norm: str, t_out: int, n: int, window: int, dropped: int, trimmed: int
) -> RefineReport:
    knot_step = t_out / (shape.size - 1)
    peak_step = min(int(round(int(np.argmax(shape)) * knot_step)), t_out - 1)
    half = int(np.flatnonzero(shape >= 0.5)[-1])
    anneal = 1.0 - (half * knot_step) / t_out
    return RefineReport(
        norm=norm,
        steps=t_out,
        pilot_steps=n,
        points=shape.size,
        window=window,
        dropped_nonfinite=dropped,
        trimmed=trimmed,
        peak_step=peak_step,
        warmup_steps=peak_step,
        anneal_fraction=float(anneal),
    )


def read_norms(path: str | Path, norm: str = "l2") -> np.ndarray:
    """The ``grad_norm_<norm>`` column of a log (.csv, or .parquet via pyarrow), in step order.

    Empty cells read as NaN (and are then dropped by ``refine``, which says so).
    """
    import pandas as pd

    if norm not in _NORMS:
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"log file not found: {p}")
    frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    col = f"grad_norm_{norm}"
    if col not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise ValueError(f"{p} has no column {col!r}; columns: {cols}")
    if "step" in frame.columns:
        frame = frame.sort_values("step", kind="stable")
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)


def refine_log(path: str | Path, *, norm: str = "l2", **kwargs: object) -> Refined:
    """``refine(read_norms(path, norm), norm=norm, **kwargs)``."""
    return refine(read_norms(path, norm), norm=norm, **kwargs)  # type: ignore[arg-type]
