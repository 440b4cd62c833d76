"""Composition: ``join`` (local time restarts at each boundary), ``multiply``, ``warmup``,
``scale``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab._checks import check_array, check_int, check_real
from lrlab.schedules.base import Schedule
from lrlab.schedules.warmup import Warmup


def _check_schedules(name: str, schedules: object, min_len: int = 1) -> tuple[Schedule, ...]:
    items = tuple(schedules) if isinstance(schedules, (list, tuple)) else (schedules,)
    if len(items) < min_len:
        raise ValueError(f"{name} must hold at least {min_len} schedules, got {len(items)}")
    for i, s in enumerate(items):
        if not isinstance(s, Schedule):
            raise ValueError(f"{name}[{i}] must be a Schedule, got {s!r}")
    return items


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """Piece schedules together in time; each piece starts at its own local time 0.

    With boundaries b_1 < ... < b_{n-1} (b_0 = 0) and pieces f_0..f_{n-1}::

        s(t) = f_i(t - b_i)   for b_i <= t < b_{i+1}

    — the semantics of optax's ``join_schedules``. The result is continuous at b_{i+1} when
    f_i(b_{i+1} - b_i) = f_{i+1}(0). Horizon: b_{n-1} + horizon of the last piece (None if it
    has none); past it the last piece's own clamp holds.

    Example: ``Join((Constant(), Linear(2)), boundaries=(2,))(np.arange(5))``
    -> ``[1, 1, 1, .5, 0]``.
    """

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]
    name = "join"

    def __post_init__(self) -> None:
        parts = _check_schedules("schedules", self.schedules, min_len=2)
        arr = check_array("boundaries", self.boundaries)
        bounds = tuple(check_int(f"boundaries[{i}]", v, lo=1) for i, v in enumerate(arr))
        if len(bounds) != len(parts) - 1:
            raise ValueError(
                f"boundaries must have len(schedules) - 1 = {len(parts) - 1} entries, "
                f"got {len(bounds)}"
            )
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"boundaries must be strictly increasing, got {bounds}")
        object.__setattr__(self, "schedules", parts)
        object.__setattr__(self, "boundaries", bounds)

    @property
    def horizon(self) -> int | None:
        last = self.schedules[-1].horizon
        return None if last is None else self.boundaries[-1] + last

    @property
    def phase_ends(self) -> np.ndarray:
        """The boundaries, then the total horizon if the last piece has one."""
        ends = list(self.boundaries)
        if self.horizon is not None:
            ends.append(self.horizon)
        return np.asarray(ends, dtype=np.int64)

    def _eval(self, t: np.ndarray) -> np.ndarray:
        starts = np.asarray((0, *self.boundaries), dtype=np.float64)
        piece = np.searchsorted(starts, t, side="right") - 1
        out = np.empty_like(t)
        for i, sched in enumerate(self.schedules):
            mask = piece == i
            if mask.any():
                out[mask] = sched._at(t[mask] - starts[i])
        return out


@dataclass(frozen=True, repr=False)
class Multiply(Schedule):
    """Product of schedules: s(t) = f_1(t) * f_2(t) * ... .

    Horizon: the largest horizon of the factors, or None if any factor has none.

    Example: ``Multiply((Linear(4), Constant()))(2)`` -> ``0.5``.
    """

    schedules: tuple[Schedule, ...]
    name = "multiply"

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", _check_schedules("schedules", self.schedules))

    @property
    def horizon(self) -> int | None:
        hs = [s.horizon for s in self.schedules]
        return None if any(h is None for h in hs) else max(hs)

    def _eval(self, t: np.ndarray) -> np.ndarray:
        out = np.ones_like(t)
        for sched in self.schedules:
            out = out * sched._at(t)
        return out


@dataclass(frozen=True, repr=False)
class Scale(Schedule):
    """s(t) = factor * schedule(t), factor > 0. Same horizon as ``schedule``.

    Example: ``Scale(Linear(4), 2.0)(2)`` -> ``1.0``.
    """

    schedule: Schedule
    factor: float
    name = "scale"

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _check_schedules("schedule", self.schedule)[0])
        object.__setattr__(self, "factor", check_real("factor", self.factor, 0.0, lo_open=True))

    @property
    def horizon(self) -> int | None:
        return self.schedule.horizon

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return self.factor * self.schedule._at(t)


def join(schedules: list[Schedule] | tuple[Schedule, ...], boundaries: list[int]) -> Join:
    """``Join(schedules, boundaries)``: schedule i runs in local time from boundary i - 1."""
    return Join(tuple(schedules), tuple(boundaries))


def multiply(*schedules: Schedule) -> Multiply:
    """``Multiply(schedules)``: the product of the factors at every step."""
    return Multiply(schedules)


def warmup(schedule: Schedule, steps: int, start: float | str = 0.0) -> Warmup:
    """``Warmup(schedule, steps, start)``: linear warm-up over ``steps``, then ``schedule``
    shifted by ``steps``. ``start`` is s(0)/schedule(0): 0 / "hf" or "nanogpt"."""
    return Warmup(schedule, steps, start)


def scale(schedule: Schedule, factor: float) -> Scale:
    """``Scale(schedule, factor)``: s(t) = factor * schedule(t)."""
    return Scale(schedule, factor)
