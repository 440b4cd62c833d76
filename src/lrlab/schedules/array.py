"""A schedule given by values: piecewise-linear interpolation over [0, T]."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrlab._checks import check_array, check_int
from lrlab.schedules.base import Schedule


@dataclass(frozen=True, repr=False)
class FromArray(Schedule):
    """Piecewise-linear schedule through ``values`` at knots equally spaced over [0, steps].

    With n values, knot i sits at t_i = i * steps / (n - 1); ``steps`` defaults to n - 1 (one
    value per step, the last at t = n - 1). s(t >= steps) = values[-1]. Values must be finite
    and >= 0; at least 2 are needed. This is the output type of ``lrlab.refine``.

    The ``values`` field shadows the ``Schedule.values(T)`` method on instances of this class:
    evaluate ``s(np.arange(T))`` instead.

    Example: ``FromArray([1.0, 0.5, 0.0], steps=4)(np.arange(5))`` -> ``[1, .75, .5, .25, 0]``.
    """

    values: tuple[float, ...] = field()  # no default (the base class has a `values` method)
    steps: int | None = None
    name = "from_array"

    def __post_init__(self) -> None:
        arr = check_array("values", self.values, min_len=2, nonneg=True)
        object.__setattr__(self, "values", tuple(float(v) for v in arr))
        steps = len(arr) - 1 if self.steps is None else self.steps
        object.__setattr__(self, "steps", check_int("steps", steps, lo=1))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        knots = np.linspace(0.0, float(self.steps), len(self.values))
        return np.interp(np.minimum(t, self.steps), knots, np.asarray(self.values))
