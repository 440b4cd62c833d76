"""Cosine in phases (time restarts at each phase), SGDR, and the end of the last completed phase."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lrlab._checks import check_array, check_int, check_real
from lrlab.schedules.base import Schedule


@dataclass(frozen=True, repr=False)
class CosinePhases(Schedule):
    """Cosine annealing in phases; the local time restarts at 0 at the start of every phase.

    Phase i has length L_i and range (s_min_i, s_max_i) and starts at b_i = L_0 + ... + L_{i-1}.
    For b_i <= t < b_i + L_i, with local time u = t - b_i::

        s(t) = s_min_i + (s_max_i - s_min_i) * (1 + cos(pi * u / L_i)) / 2

    so s(b_i) = s_max_i. Horizon T = sum L_i; s(t >= T) = s_min of the last phase. If ``steps``
    is given it must equal sum L_i. SGDR is the special case L_i = T_0 * T_mult**i with equal
    ranges (see :func:`sgdr`). The iterate to return is the one at the end of the last
    *completed* phase: :func:`last_completed_phase_end`.

    Example: ``CosinePhases((2, 2), s_max=(1, .5), s_min=(0, 0))(np.arange(5))``
    -> ``[1, .5, .5, .25, 0]``.
    """

    lengths: tuple[int, ...]
    s_max: tuple[float, ...]
    s_min: tuple[float, ...]
    steps: int | None = None

    name = "cosine_phases"

    def __post_init__(self) -> None:
        lengths = check_array("lengths", self.lengths)
        lens = tuple(check_int(f"lengths[{i}]", v, lo=1) for i, v in enumerate(lengths))
        hi = check_array("s_max", self.s_max, nonneg=True)
        lo = check_array("s_min", self.s_min, nonneg=True)
        if not len(lens) == hi.size == lo.size:
            raise ValueError(
                "lengths, s_max and s_min must have one entry per phase, got "
                f"{len(lens)}, {hi.size} and {lo.size}"
            )
        if (lo > hi).any():
            i = int(np.argmax(lo > hi))
            raise ValueError(f"s_min[{i}] must be in [0, s_max[{i}]={hi[i]:g}], got {lo[i]:g}")
        total = sum(lens)
        if self.steps is not None and check_int("steps", self.steps, lo=1) != total:
            raise ValueError(
                f"steps must equal the sum of the phase lengths ({total}), got {self.steps}"
            )
        object.__setattr__(self, "lengths", lens)
        object.__setattr__(self, "s_max", tuple(float(v) for v in hi))
        object.__setattr__(self, "s_min", tuple(float(v) for v in lo))
        object.__setattr__(self, "steps", total)

    @property
    def phase_ends(self) -> np.ndarray:
        """e_i = L_0 + ... + L_i: phase i is complete once e_i optimizer steps have been taken."""
        return np.cumsum(self.lengths)

    def _eval(self, t: np.ndarray) -> np.ndarray:
        ends = self.phase_ends
        i = np.minimum(np.searchsorted(ends, t, side="right"), len(ends) - 1)
        length = np.asarray(self.lengths, dtype=np.float64)[i]
        u = np.minimum(t - (ends[i] - length), length)
        lo = np.asarray(self.s_min)[i]
        hi = np.asarray(self.s_max)[i]
        return lo + (hi - lo) * 0.5 * (1.0 + np.cos(np.pi * u / length))


def sgdr(t_0: int, cycles: int, t_mult: int = 1, s_min: float = 0.0) -> CosinePhases:
    """SGDR (cosine with warm restarts): ``cycles`` phases of lengths t_0 * t_mult**i, range
    (s_min, 1) each.

    Equals ``CosineAnnealingWarmRestarts(T_0=t_0, T_mult=t_mult, eta_min=s_min * eta0)`` over
    the horizon sum_i t_0 * t_mult**i; past it the value stays at s_min (no further restart).

    Example: ``sgdr(10, cycles=3, t_mult=2).lengths`` -> ``(10, 20, 40)``.
    """
    t_0 = check_int("t_0", t_0, lo=1)
    cycles = check_int("cycles", cycles, lo=1)
    t_mult = check_int("t_mult", t_mult, lo=1)
    s_min = check_real("s_min", s_min, 0.0, 1.0)
    lengths = tuple(t_0 * t_mult**i for i in range(cycles))
    return CosinePhases(lengths, s_max=(1.0,) * cycles, s_min=(s_min,) * cycles)


def last_completed_phase_end(schedule: Schedule, t: Any) -> Any:
    """The step count e_i of the last phase completed after ``t`` optimizer steps, or 0.

    ``schedule`` is a :class:`CosinePhases` or a ``Join`` (whose phases end at its boundaries
    and, if the last part has a horizon, at the total horizon). After t steps (steps 0..t-1
    done) phase i is complete when e_i <= t; the iterate to return is x_{e_i}, the model
    right after optimizer step e_i - 1. 0 means no phase is complete yet (the initial point).
    Works on an int (returns an int) or an array of ints.

    Example: with phases (10, 20, 40): t = 9 -> 0, t = 10 -> 10, t = 29 -> 10, t = 30 -> 30.
    """
    ends = getattr(schedule, "phase_ends", None)
    if ends is None:
        raise ValueError(
            f"schedule must have phases (cosine_phases or join), got {type(schedule).__name__}"
        )
    arr = np.asarray(t)
    if not np.issubdtype(arr.dtype, np.integer) and not (
        np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr))
    ):
        raise ValueError("t must be integer step counts >= 0")
    if np.any(arr < 0):
        raise ValueError("t must be integer step counts >= 0")
    ends0 = np.concatenate([[0], np.asarray(ends, dtype=np.int64)])
    out = ends0[np.searchsorted(ends0, arr, side="right") - 1]
    return int(out) if out.ndim == 0 else out
