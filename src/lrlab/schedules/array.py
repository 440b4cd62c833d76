"""A schedule given by values: piecewise-linear interpolation over [0, T]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab._checks import check_array, check_int
from lrlab.schedules.base import Schedule


@dataclass(frozen=True, repr=False)
class FromArray(Schedule):
    """Piecewise-linear schedule through ``points`` at knots equally spaced over [0, steps].

    With n points, knot i sits at t_i = i * steps / (n - 1); ``steps`` defaults to n - 1 (one
    point per step, the last at t = n - 1). s(t >= steps) = points[-1]. Points must be finite
    and >= 0; at least 2 are needed. This is the output type of ``lrlab.refine``.

    Example: ``FromArray([1.0, 0.5, 0.0], steps=4)(np.arange(5))`` -> ``[1, .75, .5, .25, 0]``.
    """

    points: tuple[float, ...]
    steps: int | None = None
    name = "from_array"

    def __post_init__(self) -> None:
        arr = check_array("points", self.points, min_len=2, nonneg=True)
        object.__setattr__(self, "points", tuple(float(v) for v in arr))
        steps = len(arr) - 1 if self.steps is None else self.steps
        object.__setattr__(self, "steps", check_int("steps", steps, lo=1))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        knots = np.linspace(0.0, float(self.steps), len(self.points))
        return np.interp(np.minimum(t, self.steps), knots, np.asarray(self.points))
