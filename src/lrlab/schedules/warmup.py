"""Linear warm-up in front of any schedule, and warmup-stable-decay (WSD)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.schedules.base import Schedule

#: Named first-step conventions for the warm-up ramp (value of s(0) relative to the peak).
START_STYLES = ("hf", "nanogpt")


def _start_value(start: float | str, warmup: int) -> float:
    if isinstance(start, str):
        if start == "hf":
            return 0.0
        if start == "nanogpt":
            return 1.0 / (warmup + 1)
        raise ValueError(f"start must be in [0, 1) or one of {START_STYLES}, got {start!r}")
    return check_real("start", start, 0.0, 1.0, hi_open=True)


def _ramp(t: np.ndarray, warmup: int, start: float) -> np.ndarray:
    return start + (1.0 - start) * t / warmup


@dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    """Linear warm-up over ``warmup`` steps, then ``schedule`` shifted in time by ``warmup``.

    With a = start and P = schedule(0)::

        s(t) = P * (a + (1 - a) * t / warmup)   for t < warmup
        s(t) = schedule(t - warmup)              for t >= warmup

    The first-step value s(0) = a * P is explicit. ``start=0`` (or ``"hf"``) is the
    transformers convention s(t) = t / warmup (the first step has lr 0); ``start="nanogpt"``
    stores a = 1 / (warmup + 1), which gives s(t) = (t + 1) / (warmup + 1) — the first step
    already moves. The ramp reaches P exactly at t = warmup, so the joint is continuous.
    Horizon: warmup + schedule's horizon (None if it has none).

    Example: ``Warmup(Linear(4), warmup=2)(np.arange(7))`` -> ``[0, .5, 1, .75, .5, .25, 0]``.
    """

    schedule: Schedule
    warmup: int
    start: float | str = 0.0
    name = "warmup"

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be a Schedule, got {self.schedule!r}")
        warmup = check_int("warmup", self.warmup, lo=1)
        object.__setattr__(self, "warmup", warmup)
        object.__setattr__(self, "start", _start_value(self.start, warmup))

    @property
    def horizon(self) -> int | None:
        inner = self.schedule.horizon
        return None if inner is None else self.warmup + inner

    def _eval(self, t: np.ndarray) -> np.ndarray:
        out = self.schedule._at(np.maximum(t - self.warmup, 0.0))
        ramp = t < self.warmup
        if ramp.any():
            peak = self.schedule._at(np.zeros(1))[0]
            out = out.copy() if out is t else out
            out[ramp] = peak * _ramp(t[ramp], self.warmup, self.start)
        return out


TAILS = ("linear", "cosine", "sqrt")


@dataclass(frozen=True, repr=False)
class WarmupStableDecay(Schedule):
    """Warm-up, a constant stage at 1, then a decay tail to s_min over the last ``decay`` steps.

    With T = steps, W = warmup, D = decay, a = start, u = (t - (T - D)) / D::

        s(t) = a + (1 - a) t / W                  for t < W         (skipped if W = 0)
        s(t) = 1                                  for W <= t < T - D
        s(t) = s_min + (1 - s_min) f(u)           for T - D <= t < T
        s(t) = s_min                              for t >= T

    with f(u) = 1 - u ("linear"), (1 + cos(pi u)) / 2 ("cosine") or 1 - sqrt(u) ("sqrt").
    Needs W + D <= T and D >= 1. ``start`` accepts a number in [0, 1), "hf" or "nanogpt"
    (see :class:`Warmup`).

    Example: ``WarmupStableDecay(6, warmup=2, decay=2)(np.arange(7))``
    -> ``[0, .5, 1, 1, 1, .5, 0]``.
    """

    steps: int
    warmup: int
    decay: int
    tail: str = "linear"
    s_min: float = 0.0
    start: float | str = 0.0
    name = "wsd"

    def __post_init__(self) -> None:
        steps = check_int("steps", self.steps, lo=1)
        warmup = check_int("warmup", self.warmup, lo=0, hi=steps - 1)
        decay = check_int("decay", self.decay, lo=1, hi=steps - warmup)
        if self.tail not in TAILS:
            raise ValueError(f"tail must be one of {TAILS}, got {self.tail!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "warmup", warmup)
        object.__setattr__(self, "decay", decay)
        object.__setattr__(self, "s_min", check_real("s_min", self.s_min, 0.0, 1.0))
        object.__setattr__(self, "start", _start_value(self.start, max(warmup, 1)))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        u = np.clip((t - (self.steps - self.decay)) / self.decay, 0.0, 1.0)
        if self.tail == "linear":
            f = 1.0 - u
        elif self.tail == "cosine":
            f = 0.5 * (1.0 + np.cos(np.pi * u))
        else:
            f = 1.0 - np.sqrt(u)
        out = self.s_min + (1.0 - self.s_min) * f
        if self.warmup > 0:
            out = np.where(t < self.warmup, _ramp(t, self.warmup, self.start), out)
        return out
