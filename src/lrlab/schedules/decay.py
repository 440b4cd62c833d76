"""Basic closed-form decays: constant, step, exponential, inverse-sqrt, linear, polynomial, cosine.

All are 0-indexed (t = 0 is the first step) and, where they have a horizon T, clamped past it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab._checks import check_array, check_int, check_real
from lrlab.schedules.base import Schedule


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """s(t) = 1 for every t. No horizon.

    Example: ``Constant()(np.arange(3))`` -> ``[1., 1., 1.]``.
    """

    name = "constant"

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return np.ones_like(t)


@dataclass(frozen=True, repr=False)
class Step(Schedule):
    """Staircase: s(t) = gamma ** floor(t / step_size). No horizon.

    "Divide by 10 every 30 epochs" is ``Step(gamma=0.1, step_size=30 * steps_per_epoch)``;
    equals ``torch.optim.lr_scheduler.StepLR``. gamma in (0, 1], step_size >= 1.
    """

    step_size: int
    gamma: float = 0.1
    name = "step"

    def __post_init__(self) -> None:
        _set(self, "step_size", check_int("step_size", self.step_size, lo=1))
        _set(self, "gamma", check_real("gamma", self.gamma, 0.0, 1.0, lo_open=True))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return self.gamma ** np.floor(t / self.step_size)


@dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """s(t) = gamma ** (number of milestones m with m <= t). No horizon.

    Milestones are strictly increasing steps >= 1; equals ``MultiStepLR``. gamma in (0, 1].

    Example: ``MultiStep((2, 4), gamma=0.5)(np.arange(6))`` -> ``[1, 1, .5, .5, .25, .25]``.
    """

    milestones: tuple[int, ...]
    gamma: float = 0.1
    name = "multistep"

    def __post_init__(self) -> None:
        arr = check_array("milestones", self.milestones)
        ms = tuple(check_int(f"milestones[{i}]", v, lo=1) for i, v in enumerate(arr))
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise ValueError(f"milestones must be strictly increasing, got {ms}")
        _set(self, "milestones", ms)
        _set(self, "gamma", check_real("gamma", self.gamma, 0.0, 1.0, lo_open=True))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        passed = np.searchsorted(np.asarray(self.milestones, dtype=np.float64), t, side="right")
        return self.gamma**passed


@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """s(t) = gamma ** t, gamma in (0, 1]. No horizon; equals ``ExponentialLR``."""

    gamma: float
    name = "exponential"

    def __post_init__(self) -> None:
        _set(self, "gamma", check_real("gamma", self.gamma, 0.0, 1.0, lo_open=True))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return self.gamma**t


@dataclass(frozen=True, repr=False)
class InverseSqrt(Schedule):
    """s(t) = 1 / sqrt(1 + t / tau): the theory's 1/sqrt(t) with s(0) = 1. No horizon.

    tau > 0 sets the time scale: s(tau) = 1/sqrt(2).
    """

    tau: float = 1.0
    name = "inverse_sqrt"

    def __post_init__(self) -> None:
        _set(self, "tau", check_real("tau", self.tau, 0.0, lo_open=True))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return 1.0 / np.sqrt(1.0 + t / self.tau)


@dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """s(t) = s_min + (1 - s_min) * (1 - min(t, T)/T) ** power, power > 0, horizon T = steps.

    s(0) = 1, s(T-1) = s_min + (1 - s_min) (1/T)**power > 0 (the last optimizer step still
    moves), s(t >= T) = s_min (default 0). Paper 000: a peak misspecified by rho costs
    O(rho ** (1 / (2 power + 1))). Equals ``PolynomialLR(total_iters=T, power=power)`` and
    transformers' ``get_polynomial_decay_schedule_with_warmup`` with no warm-up and
    ``lr_end = s_min * lr_init``.

    Example: ``Polynomial(4, power=2)(np.arange(5))`` -> ``[1, .5625, .25, .0625, 0]``.
    """

    steps: int
    power: float = 1.0
    s_min: float = 0.0
    name = "polynomial"

    def __post_init__(self) -> None:
        _set(self, "steps", check_int("steps", self.steps, lo=1))
        _set(self, "power", check_real("power", self.power, 0.0, lo_open=True))
        _set(self, "s_min", check_real("s_min", self.s_min, 0.0, 1.0))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        frac = 1.0 - np.minimum(t, self.steps) / self.steps
        return self.s_min + (1.0 - self.s_min) * frac**self.power


@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """Linear decay to zero: s(t) = 1 - min(t, T)/T, horizon T = steps >= 1.

    s(0) = 1, s(T-1) = 1/T > 0, s(t >= T) = 0 — the same values as transformers'
    ``get_linear_schedule_with_warmup`` with no warm-up. Worst-case optimal for the last
    iterate (paper 001).
    """

    steps: int
    name = "linear"

    def __post_init__(self) -> None:
        _set(self, "steps", check_int("steps", self.steps, lo=1))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return 1.0 - np.minimum(t, self.steps) / self.steps


@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """s(t) = s_min + (1 - s_min) * (1 + cos(pi * min(t, T) / T)) / 2, horizon T = steps.

    s(0) = 1, s(t >= T) = s_min, s_min in [0, 1]. Equals ``CosineAnnealingLR`` with
    ``T_max = T`` and ``eta_min = s_min * eta0`` (before its restart at T), and optax's
    ``cosine_decay_schedule`` with ``alpha = s_min``. Near T it decays like p = 2.
    """

    steps: int
    s_min: float = 0.0
    name = "cosine"

    def __post_init__(self) -> None:
        _set(self, "steps", check_int("steps", self.steps, lo=1))
        _set(self, "s_min", check_real("s_min", self.s_min, 0.0, 1.0))

    def _eval(self, t: np.ndarray) -> np.ndarray:
        # in place on one temporary: s_min + (1 - s_min) * (1 + cos(pi * min(t, T) / T)) / 2
        x = np.minimum(t, self.steps)
        x *= np.pi / self.steps
        np.cos(x, out=x)
        x += 1.0
        x *= 0.5 * (1.0 - self.s_min)
        x += self.s_min
        return x
