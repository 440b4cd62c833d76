"""One-cycle: up from a low value to the peak, then down far below the start."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.schedules.base import Schedule

ANNEALS = ("cos", "linear")


@dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    """The one-cycle policy, in the convention of ``torch.optim.lr_scheduler.OneCycleLR``.

    With T = steps, s_0 = 1 / div_factor, s_end = s_0 / final_div_factor, knots
    k_0 = 0, k_1 = pct_start * T - 1, k_2 = T - 1 and values (s_0, 1, s_end), step t in
    segment i (the first i with t <= k_{i+1}) gives, with p = (t - k_i) / (k_{i+1} - k_i)::

        cos:    s = v_{i+1} + (v_i - v_{i+1}) (1 + cos(pi p)) / 2
        linear: s = v_i + (v_{i+1} - v_i) p

    ``three_phase`` inserts a knot 2 pct_start T - 2 where the value comes back to s_0 before
    the final descent. s(0) = s_0, s(T-1) = s_end, and s(t >= T - 1) = s_end (clamped;
    OneCycleLR raises past T). Needs k_0 < k_1 < ... < k_last (pct_start * T > 1).

    Example: ``OneCycle(100)(0)`` -> ``0.04``; ``OneCycle(100)(29)`` -> ``1.0``.
    """

    steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    name = "one_cycle"

    def __post_init__(self) -> None:
        steps = check_int("steps", self.steps, lo=2)
        pct = check_real("pct_start", self.pct_start, 0.0, 1.0, lo_open=True, hi_open=True)
        if self.anneal not in ANNEALS:
            raise ValueError(f"anneal must be one of {ANNEALS}, got {self.anneal!r}")
        if not isinstance(self.three_phase, bool):
            raise ValueError(f"three_phase must be True or False, got {self.three_phase!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "pct_start", pct)
        object.__setattr__(
            self, "div_factor", check_real("div_factor", self.div_factor, 1.0, lo_open=False)
        )
        object.__setattr__(
            self,
            "final_div_factor",
            check_real("final_div_factor", self.final_div_factor, 1.0, lo_open=False),
        )
        knots = self._knots()[0]
        if np.any(np.diff(knots) <= 0):
            top = (steps + 1) / (2 * steps) if self.three_phase else 1.0
            raise ValueError(
                f"pct_start must be in ({1 / steps:g}, {top:g}) for steps={steps} so that every "
                f"phase has positive length, got {pct:g}"
            )

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        s0 = 1.0 / self.div_factor
        s_end = s0 / self.final_div_factor
        peak = self.pct_start * self.steps - 1.0
        last = self.steps - 1.0
        if self.three_phase:
            return np.array([0.0, peak, 2.0 * peak, last]), np.array([s0, 1.0, s0, s_end])
        return np.array([0.0, peak, last]), np.array([s0, 1.0, s_end])

    def _eval(self, t: np.ndarray) -> np.ndarray:
        knots, vals = self._knots()
        t = np.minimum(t, knots[-1])
        i = np.clip(np.searchsorted(knots[1:], t, side="left"), 0, len(knots) - 2)
        p = (t - knots[i]) / (knots[i + 1] - knots[i])
        a, b = vals[i], vals[i + 1]
        if self.anneal == "cos":
            return b + (a - b) * 0.5 * (1.0 + np.cos(np.pi * p))
        return a + (b - a) * p
