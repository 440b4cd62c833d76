"""The learning-rate range test, read as a range for a linear-decay schedule. No torch here.

A range test trains for n steps while the learning rate grows exponentially,

    lr_t = lr_min * (lr_max / lr_min) ** (t / (n - 1)),   t = 0..n-1,

and records the minibatch loss l_t of every step (evaluated just before the update that uses
lr_t). ``lrlab.find_lr`` runs it on any torch model and ``lrlab find`` on a task through the
batched trainer; this module turns the curve into a ``RangeTest``.

The read-off rule, with w = max(1, round(n / 20)) the smoothing window:

1. **Smooth**: the bias-corrected exponential moving average with beta = 1 - 1/w,
   m_t = beta m_{t-1} + (1 - beta) l_t, s_t = m_t / (1 - beta^(t+1)). A non-finite loss ends
   the curve (the ramp stops there).
2. **Stop**: the curve is cut at the first step t >= w where
   s_t > max(stop_factor * s_min, (s_start + s_min) / 2), s_min the smallest s so far and
   s_start = max(s_0..s_{w-1}) the starting level. The first term is the usual "the loss has
   grown k-fold" rule; the second keeps a loss near 0, or a negative one, from stopping on
   noise: the curve must climb at least half-way back to where it started.
3. **Valley**: s_min = min s_t over the kept steps, reached at lr_best; the valley [a, b] is
   the contiguous run of lrs around lr_best whose smoothed loss stays within
   delta = 0.1 of the drop, s_t <= s_min + delta (s_start - s_min).
4. **Map to linear decay** (eta_t = eta_0 (1 - t/T)): the best peak eta_0 lies in

       lo = a,   hi = 2 b,

   and the suggested peak is their geometric mean, peak = sqrt(lo hi) = sqrt(2 a b).
   Below a the ramp was still far from its best loss, so larger lrs were still buying
   progress: a peak under a wastes the budget, and the cost of under-estimating grows like
   rho. A linear decay from 2b spends its second half below b, inside the valley, and the
   first half's excursion above it is what annealing is robust to: over-estimating the peak
   by rho costs only rho^(1/3) for linear decay (rho^(1/(2p+1)) for (1 - t/T)^p), so the
   range may reach beyond the valley on that side, not below it.
5. **Grid**: F = sqrt(hi / lo). The three peaks peak / F, peak, peak * F span exactly
   [lo, hi], so whichever lr in the range is best, one of them is within a factor sqrt(F)
   of it. ``grid_factor`` is F (a sweep spaced by F around ``peak`` needs 3 points).

References: L. N. Smith, "Cyclical Learning Rates for Training Neural Networks",
arXiv:1506.01186 (the range test); A. Attia, T. Koren, "Benefits of Learning Rate Annealing
for Tuning-Robustness in Stochastic Optimization", arXiv:2503.09411 (the rho^(1/(2p+1)) cost
of a misspecified peak under polynomial decay).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.schedules import FromArray

__all__ = [
    "DELTA",
    "STOP_FACTOR",
    "RampMonitor",
    "RangeTest",
    "ramp_lrs",
    "ramp_schedule",
    "read_range",
    "smooth_losses",
    "smoothing_window",
    "stop_index",
]

#: Valley depth: the fraction of the loss drop within which the valley lies.
DELTA = 0.1
#: Default k of the "smoothed loss grew k-fold over its minimum" stopping rule.
STOP_FACTOR = 4.0


def check_ramp(lr_min: float, lr_max: float, steps: int) -> tuple[float, float, int]:
    """Validated (lr_min, lr_max, steps): 0 < lr_min < lr_max, finite, steps >= 2."""
    lo = check_real("lr_min", lr_min, 0.0, lo_open=True)
    hi = check_real("lr_max", lr_max, 0.0, lo_open=True)
    if hi <= lo:
        raise ValueError(f"lr_max must be > lr_min, got lr_min={lo:g} and lr_max={hi:g}")
    n = check_int("steps", steps, lo=2)
    return lo, hi, n


def ramp_lrs(lr_min: float, lr_max: float, steps: int) -> np.ndarray:
    """The exponential ramp lr_t = lr_min (lr_max / lr_min)^(t / (steps - 1)), t = 0..steps-1.

    The first entry is exactly lr_min and the last exactly lr_max.

    Example: ``ramp_lrs(1e-3, 1e-1, 3)`` -> ``[0.001, 0.01, 0.1]``.
    """
    lo, hi, n = check_ramp(lr_min, lr_max, steps)
    lrs = lo * (hi / lo) ** (np.arange(n) / (n - 1))
    lrs[0], lrs[-1] = lo, hi
    return lrs


def ramp_schedule(lr_min: float, lr_max: float, steps: int) -> tuple[float, FromArray]:
    """The ramp as (peak, schedule) for lrlab's trainers: peak * schedule(t) = ``ramp_lrs``.

    The schedule is a ``FromArray`` with one knot per step (horizon ``steps``; the knot at
    t = steps continues the geometric ramp and is never trained with), and peak = lr_min.

    Example: ``RunConfig(*ramp_schedule(1e-4, 10.0, 300), steps=300)``.
    """
    lo, hi, n = check_ramp(lr_min, lr_max, steps)
    factors = (hi / lo) ** (np.arange(n + 1) / (n - 1))
    return lo, FromArray(tuple(float(v) for v in factors), steps=n)


def smoothing_window(steps: int) -> int:
    """w = max(1, round(steps / 20)): the EMA's window, 5 % of the ramp."""
    return max(1, int(round(check_int("steps", steps, lo=1) / 20)))


def smooth_losses(losses: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Bias-corrected EMA with beta = 1 - 1/window; NaN from the first non-finite loss on.

    s_t = m_t / (1 - beta^(t+1)), m_t = beta m_{t-1} + (1 - beta) l_t, m_{-1} = 0.

    Example: ``smooth_losses([2.0, 2.0, 2.0], 2)`` -> ``[2., 2., 2.]``.
    """
    x = np.asarray(losses, dtype=np.float64).reshape(-1)
    w = check_int("window", window, lo=1)
    beta = 1.0 - 1.0 / w
    out = np.full(x.size, np.nan)
    m = 0.0
    for t, v in enumerate(x):
        if not math.isfinite(v):
            break
        m = beta * m + (1.0 - beta) * v
        out[t] = m / (1.0 - beta ** (t + 1))
    return out


def _check_stop_factor(stop_factor: float) -> float:
    k = stop_factor
    if isinstance(k, bool) or not isinstance(k, (int, float)) or math.isnan(k) or k <= 1:
        raise ValueError(f"stop_factor must be a number > 1 (inf allowed), got {stop_factor!r}")
    return float(k)


class RampMonitor:
    """The smoothing and stopping rule applied one loss at a time (what ``find_lr`` runs).

    ``add(loss)`` returns True at the step the ramp stops: the loss is not finite, or (from
    step ``window`` on) s_t > max(stop_factor * s_min, (s_start + s_min) / 2), with s_min the
    smallest smoothed loss so far and s_start the largest of the first ``window``.
    ``stop_factor = inf`` keeps only the half-way rule and the non-finite one.
    """

    def __init__(self, window: int, stop_factor: float = STOP_FACTOR) -> None:
        self.window = check_int("window", window, lo=1)
        self.k = _check_stop_factor(stop_factor)
        self.beta = 1.0 - 1.0 / self.window
        self.m, self.t = 0.0, 0
        self.start, self.best = -math.inf, math.inf

    def add(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        self.m = self.beta * self.m + (1.0 - self.beta) * loss
        s = self.m / (1.0 - self.beta ** (self.t + 1))
        if self.t < self.window:
            self.start = max(self.start, s)
        self.best = min(self.best, s)
        t, self.t = self.t, self.t + 1
        if t < self.window:
            return False
        half = 0.5 * (self.start + self.best)
        limit = half if math.isinf(self.k) else max(self.k * self.best, half)
        return s > limit


def stop_index(
    losses: Sequence[float] | np.ndarray, window: int, stop_factor: float = STOP_FACTOR
) -> int | None:
    """The step at which ``RampMonitor`` stops on these losses, None if it never does."""
    mon = RampMonitor(window, stop_factor)
    for t, v in enumerate(np.asarray(losses, dtype=np.float64).reshape(-1)):
        if mon.add(float(v)):
            return t
    return None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass(frozen=True)
class RangeTest:
    """A range test's curve and the range read from it (see the module docstring).

    - ``lrs``, ``losses``: the learning rate and the minibatch loss of every step run (the
      loss evaluated before that step's update; a mean over seeds when several ran).
    - ``smoothed``: the bias-corrected EMA of ``losses`` (``window`` steps).
    - ``stop``: the step the curve is cut at (excluded from the read-off), or None.
    - ``lr_best``: the lr of the smoothed minimum; ``valley``: (a, b).
    - ``lo``, ``hi``: the range that should contain the best linear-decay peak (a, 2b).
    - ``peak``: the suggested linear-decay peak sqrt(lo hi).
    - ``grid_factor``: F = sqrt(hi / lo); peak / F, peak, peak * F span the range.
    - ``notes``: warnings about the curve (the minimum at an edge of the ramp, no drop).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    window: int
    stop: int | None
    lr_best: float
    valley: tuple[float, float]
    lo: float
    hi: float
    peak: float
    grid_factor: float
    delta: float = DELTA
    notes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[float, float, float]:
        """(peak / F, peak, peak * F): a three-point sweep that spans [lo, hi]."""
        return (self.peak / self.grid_factor, self.peak, self.peak * self.grid_factor)

    def contains(self, lr: float) -> bool:
        """Whether lo <= lr <= hi (with a relative tolerance of 1e-9)."""
        return self.lo * (1 - 1e-9) <= lr <= self.hi * (1 + 1e-9)

    def describe(self) -> str:
        """One paragraph: the range, the suggested peak, the grid and how they were read."""
        a, b = self.valley
        ran = len(self.losses)
        cut = f", cut at step {self.stop} of {ran}" if self.stop is not None else ""
        text = (
            f"Range test over lr {_fmt(float(self.lrs[0]))}..{_fmt(float(self.lrs[-1]))} "
            f"({ran} steps{cut}): the smoothed loss bottoms out at lr {_fmt(self.lr_best)} and "
            f"stays within {self.delta:g} of its drop over [{_fmt(a)}, {_fmt(b)}]. "
            f"A linear-decay schedule should start from peak lr {_fmt(self.peak)}; its best "
            f"peak should lie in [{_fmt(self.lo)}, {_fmt(self.hi)}] (the valley's low end to "
            f"twice its high end: linear decay spends its second half below the peak's half, "
            f"and over-estimating the peak costs only rho^(1/3)). A grid of factor "
            f"{self.grid_factor:.2g} around the peak ({', '.join(_fmt(v) for v in self.grid)}) "
            f"spans the range."
        )
        if self.notes:
            text += " Note: " + " ".join(self.notes)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (non-finite losses as None)."""

        def arr(x: np.ndarray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in np.asarray(x, float)]

        return {
            "range": {
                "peak": self.peak,
                "lo": self.lo,
                "hi": self.hi,
                "grid_factor": self.grid_factor,
                "grid": list(self.grid),
                "lr_best": self.lr_best,
                "valley": list(self.valley),
                "delta": self.delta,
                "window": self.window,
                "stop": self.stop,
                "notes": list(self.notes),
            },
            "curve": {
                "lr": arr(self.lrs),
                "loss": arr(self.losses),
                "smoothed": arr(self.smoothed),
            },
            "info": dict(self.info),
        }

    def figure(self, title: str | None = None):
        """The curve as a matplotlib ``Figure``: loss vs lr (log x), the range shaded, the
        valley hatched, the suggested peak and the grid marked."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        ax = fig.add_subplot()
        x = np.asarray(self.lrs, float)
        raw = np.where(np.isfinite(self.losses), self.losses, np.nan)
        ax.plot(x, raw, color="0.6", lw=0.8, alpha=0.7, label="minibatch loss")
        end = len(x) if self.stop is None else self.stop + 1
        ax.plot(x[:end], self.smoothed[:end], color="C0", lw=2.0,
                label=f"smoothed (EMA, {self.window} steps)")
        ax.axvspan(self.lo, self.hi, color="C2", alpha=0.15, label="range for the best peak")
        ax.axvspan(*self.valley, color="C2", alpha=0.2, hatch="//", fill=False, lw=0)
        ax.axvline(self.peak, color="C3", lw=1.5, label=f"suggested peak {_fmt(self.peak)}")
        for g in self.grid:
            ax.axvline(g, color="C3", lw=0.8, ls=":")
        ax.axvline(self.lr_best, color="C1", lw=1.0, ls="--",
                   label=f"smoothed minimum {_fmt(self.lr_best)}")
        kept = self.smoothed[:end][np.isfinite(self.smoothed[:end])]
        if kept.size:
            lo_y, hi_y = float(kept.min()), float(kept.max())
            pad = 0.08 * (hi_y - lo_y or abs(hi_y) or 1.0)
            ax.set_ylim(lo_y - pad, hi_y + pad)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (exponential ramp)")
        ax.set_ylabel("training loss")
        ax.set_title(title or "Learning-rate range test, read for linear decay")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Write ``figure()`` as a PNG to ``path`` (through a temporary name, then renamed)."""
        fig = self.figure(title)
        return _atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=110))

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write ``to_dict()`` as JSON to ``path`` (through a temporary name, then renamed)."""
        text = json.dumps(self.to_dict(), indent=1)
        return _atomic_write(Path(path), lambda f: f.write(text.encode()))


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_range(
    lrs: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    delta: float = DELTA,
    window: int | None = None,
    stop_factor: float = STOP_FACTOR,
    info: dict[str, Any] | None = None,
) -> RangeTest:
    """Read the linear-decay range from a range test's curve (the rule of the module docstring).

    Args:
        lrs: the increasing learning rate of each step (an exponential ramp, or any
            increasing sequence: the rule works on the log-lr axis).
        losses: the minibatch loss of each step; a non-finite loss ends the curve. A curve cut
            short (an early stop) is fine: only the steps given are read.
        delta: the valley depth as a fraction of the loss drop, in (0, 1).
        window: the smoothing window (default ``smoothing_window(len(lrs))``).
        stop_factor: the k of the stopping rule, > 1 (inf: only the half-way rule).
        info: free-form metadata kept in the result (e.g. the task and the seeds).

    Returns:
        A ``RangeTest``: the curve, ``peak`` = sqrt(lo hi), ``[lo, hi]`` = [a, 2b] around the
        valley [a, b], ``grid_factor`` = sqrt(hi / lo), and ``notes`` on a doubtful curve.

    Raises ValueError for fewer than 2 steps, lengths that differ, lrs that are not finite,
    positive and increasing, or a first loss that is not finite.

    Example: ``read_range(ramp_lrs(1e-4, 10, 300), losses).peak``.
    """
    x = np.asarray(lrs, dtype=np.float64).reshape(-1)
    y = np.asarray(losses, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise ValueError(f"a range test needs at least 2 steps, got {x.size}")
    if y.size != x.size:
        raise ValueError(f"lrs and losses must have the same length, got {x.size} and {y.size}")
    if not np.all(np.isfinite(x)) or np.any(x <= 0) or np.any(np.diff(x) <= 0):
        raise ValueError("lrs must be finite, > 0 and increasing")
    if not math.isfinite(y[0]):
        raise ValueError("the loss of the first step is not finite: lower lr_min")
    delta = check_real("delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
    w = smoothing_window(x.size) if window is None else check_int("window", window, lo=1)
    s = smooth_losses(y, w)
    stop = stop_index(y, w, stop_factor)
    end = x.size if stop is None else max(stop, 1)
    kept = s[:end]
    i = int(np.nanargmin(kept))
    s_min = float(kept[i])
    s_start = float(np.nanmax(kept[: min(w, end)]))
    thr = s_min + delta * (s_start - s_min)
    a = i
    while a > 0 and kept[a - 1] <= thr:
        a -= 1
    b = i
    while b < end - 1 and kept[b + 1] <= thr:
        b += 1
    va, vb = float(x[a]), float(x[b])
    lo, hi = va, 2.0 * vb
    peak = math.sqrt(lo * hi)
    notes = []
    if s_start - s_min <= 1e-12 * max(1.0, abs(s_start)):
        notes.append("The smoothed loss never fell below its start: lower lr_min or check the "
                     "model and data.")
    elif a == 0:
        notes.append("The valley starts at lr_min: the range's low end may be lower; rerun "
                     "with a smaller lr_min.")
    if stop is None and b == end - 1:
        notes.append("The loss was still in its valley at lr_max: the range's high end may "
                     "be higher; rerun with a larger lr_max.")
    return RangeTest(
        lrs=x,
        losses=y,
        smoothed=s,
        window=w,
        stop=stop,
        lr_best=float(x[i]),
        valley=(va, vb),
        lo=lo,
        hi=hi,
        peak=peak,
        grid_factor=math.sqrt(hi / lo),
        delta=delta,
        notes=tuple(notes),
        info={} if info is None else dict(info),
    )
