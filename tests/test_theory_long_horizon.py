"""The long-horizon path of ``lrlab.theory`` (docs/theory.md): a schedule longer than
``EXACT_STEPS`` = 2**22 steps is evaluated on at most 2**20 bins plus its last 2**20 steps one by
one; up to 2**22 steps every step is evaluated. The first tests use the real sizes; the others
shrink the grid (bins of about 64 steps) to stay fast."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lrlab.theory as th
from lrlab.schedules import Constant, Cosine, Linear, Schedule

MIB = 2**20  # the documented tail length and bin count


@dataclasses.dataclass(frozen=True, repr=False)
class Recorded(Schedule):
    """``inner``, recording every array of steps it is evaluated at."""

    inner: Schedule
    seen: list = dataclasses.field(default_factory=list, compare=False)

    @property
    def horizon(self) -> int | None:
        return self.inner.horizon

    def _eval(self, t: np.ndarray) -> np.ndarray:
        self.seen.append(t.copy())
        return self.inner(t)


@dataclasses.dataclass(frozen=True, repr=False)
class Delayed(Schedule):
    """0 for the first ``delay`` steps, then ``inner`` from its step 0."""

    inner: Schedule
    delay: int

    @property
    def horizon(self) -> int | None:
        return self.delay + self.inner.horizon

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return np.where(t < self.delay, 0.0, self.inner(np.maximum(t - self.delay, 0.0)))


@dataclasses.dataclass(frozen=True, repr=False)
class Overshoot(Schedule):
    """1 - 2 t / steps: negative over the second half (not a valid step-size shape)."""

    steps: int

    def _eval(self, t: np.ndarray) -> np.ndarray:
        return 1.0 - 2.0 * t / self.steps


@pytest.fixture
def small_grid(monkeypatch):
    monkeypatch.setattr(th, "EXACT_STEPS", 2**14)
    monkeypatch.setattr(th, "TAIL_STEPS", 2**12)
    monkeypatch.setattr(th, "BINS", 2**12)


# -- the real sizes ----------------------------------------------------------------------------
def test_up_to_exact_steps_every_step_is_evaluated() -> None:
    T = 2**22
    rec = Recorded(Linear(T))
    bound = th.last_iterate_bound(rec)
    (t,) = rec.seen
    np.testing.assert_array_equal(t, np.arange(T))
    assert bound == th.last_iterate_bound(Linear(T)(np.arange(T)))  # bit for bit


@pytest.mark.parametrize("T", [2**22 + 1, 2**22 + MIB + 7])
def test_longer_schedules_are_evaluated_on_bins_and_an_exact_tail(T: int) -> None:
    rec = Recorded(Linear(T))
    th.last_iterate_bound(rec)
    t = np.concatenate(rec.seen)
    assert t.size <= 2 * MIB  # at most 2**20 bins and the 2**20 tail steps
    assert np.all(t == np.round(t)), "evaluated between two steps"
    assert np.all(np.diff(t) > 0) and t[0] == 0
    np.testing.assert_array_equal(t[-MIB:], np.arange(T - MIB, T))  # the tail, step by step
    np.testing.assert_array_equal(t[:100], np.arange(100))  # narrow bins where the run starts


@pytest.mark.parametrize("shape", ["cosine", "constant"])
def test_full_size_grid_agrees_with_the_step_by_step_computation(shape: str) -> None:
    T = 2**22 + MIB + 7
    sched = Cosine(T) if shape == "cosine" else Constant()
    eta = sched(np.arange(T))  # an array: always step by step
    exact, grid = th.rho_curve(eta, (2.0, 8.0)), th.rho_curve(sched, (2.0, 8.0), steps=T)
    assert grid.best_peak == pytest.approx(exact.best_peak, rel=1e-6)
    assert grid.best_bound == pytest.approx(exact.best_bound, rel=1e-6)
    np.testing.assert_allclose(grid.over_plain, exact.over_plain, rtol=1e-6)
    np.testing.assert_allclose(grid.over_restarted, exact.over_restarted, rtol=1e-6)
    b, e = th.last_iterate_bound(sched, steps=T), th.last_iterate_bound(eta)
    assert b.last_iterate == pytest.approx(e.last_iterate, rel=1e-6)
    assert b.total == pytest.approx(e.total, rel=1e-6)


def test_a_schedule_that_has_ended_before_the_tail_is_refused() -> None:
    with pytest.raises(ValueError, match=f"0 over its last {MIB} steps: give the steps"):
        th.last_iterate_bound(Linear(1000), steps=2**22 + 1)


# -- a reduced grid ----------------------------------------------------------------------------
T_SMALL = 2**15 + 100


@pytest.mark.usefixtures("small_grid")
def test_per_step_D_or_G_are_used_step_by_step() -> None:
    sched = Cosine(T_SMALL)
    eta = sched(np.arange(T_SMALL))
    arr = np.linspace(2.0, 1.0, T_SMALL)
    for kw in ({"D": arr}, {"G": arr}):
        assert th.best_peak(sched, **kw) == th.best_peak(eta, **kw)
        assert th.restarted_bound(sched, **kw) == th.restarted_bound(eta, **kw)


@pytest.mark.usefixtures("small_grid")
def test_scalar_D_and_G_scale_the_long_path_like_the_exact_one() -> None:
    sched = Linear(T_SMALL)
    eta = sched(np.arange(T_SMALL))
    unit, grid = th.best_peak(sched), th.best_peak(sched, 0.5, 0.25)
    # eta -> (D / G) eta and bound -> D G bound, as for any step-size sequence
    assert grid.bound == pytest.approx(0.125 * unit.bound, rel=1e-12)
    assert grid.peak == pytest.approx(2.0 * unit.peak, rel=1e-12)
    assert grid.bound == pytest.approx(th.best_peak(eta, 0.5, 0.25).bound, rel=1e-5)
    b = th.last_iterate_bound(sched, 3.0, 0.25, peak=0.5)
    assert b.total == pytest.approx(th.last_iterate_bound(eta, 3.0, 0.25, peak=0.5).total,
                                    rel=1e-4)


@pytest.mark.usefixtures("small_grid")
def test_leading_zero_steps_do_not_change_the_bound() -> None:
    # zero steps before the run do not move the iterate: the bound is that of the rest, and
    # when the rest lies in the tail the long path computes it exactly
    rest = Linear(1000)
    exact = rest(np.arange(1000))
    sched = Delayed(rest, T_SMALL - 1000)
    np.testing.assert_array_equal(sched(np.arange(T_SMALL))[-1000:], exact)
    b, e = th.last_iterate_bound(sched), th.last_iterate_bound(exact)
    for name in ("distance", "gradient", "last_iterate", "total"):
        assert getattr(b, name) == pytest.approx(getattr(e, name), rel=1e-12)
    assert th.best_peak(sched).bound == pytest.approx(th.best_peak(exact).bound, rel=1e-12)
    # the same on the step-by-step path
    padded = np.concatenate([np.zeros(500), exact])
    assert th.last_iterate_bound(padded).total == pytest.approx(e.total, rel=1e-12)


@pytest.mark.usefixtures("small_grid")
@pytest.mark.parametrize("steps", [100, T_SMALL])
def test_negative_schedule_values_are_refused(steps: int) -> None:
    with pytest.raises(ValueError, match="schedule values must be >= 0"):
        th.last_iterate_bound(Overshoot(steps))
