"""Inputs of the bounds at their limits: per-step D and G arrays, a gradient bound that is
positive at one step only, D = 0 at the first step, a peak or rho of 0, the defaults (D = G = 1,
rho = 2, 4, 8, 16), the errors and the arguments they name, and results that are immutable
values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrlab.schedules import Cosine, Linear
from lrlab.theory import (
    best_peak,
    last_iterate_bound,
    misspecified_bound,
    optimal_schedule,
    restarted_bound,
    rho_curve,
    robustness_exponent,
)


@pytest.mark.parametrize("name", ["D", "G"])
def test_per_step_arrays_must_be_non_negative(name) -> None:
    good = np.ones(5)
    bad = np.array([1.0, 1.0, -0.5, 1.0, 1.0])
    kw = {"D": good, "G": good, name: bad}
    for fn in (last_iterate_bound, best_peak, restarted_bound):
        with pytest.raises(ValueError, match=name):
            fn(Linear(5), **kw)
    with pytest.raises(ValueError, match=name):
        misspecified_bound(Linear(5), 2.0, **kw)


def test_gradient_bound_positive_at_the_first_step_only() -> None:
    # G_1 > 0 and every later G_t = 0: the bound is defined, and every form of it agrees
    eta, G = np.array([1.0, 0.5, 0.25]), np.array([2.0, 0.0, 0.0])
    best = best_peak(eta, 1.0, G)
    assert best.bound > 0
    for side in ("over", "under"):
        plain = misspecified_bound(eta, 3.0, 1.0, G, side=side)
        c = best.peak * (3.0 if side == "over" else 1 / 3.0)
        assert plain == pytest.approx(last_iterate_bound(eta, 1.0, G, peak=c).total, rel=1e-12)
        rest = misspecified_bound(eta, 3.0, 1.0, G, side=side, restarted=True)
        assert rest == pytest.approx(restarted_bound(eta, 1.0, G, peak=c).bound, rel=1e-12)
    with pytest.raises(ValueError, match="G must be > 0"):
        misspecified_bound(eta, 3.0, 1.0, np.zeros(3))
    with pytest.raises(ValueError, match="D must be > 0"):
        misspecified_bound(eta, 3.0, np.array([0.0, 1.0, 1.0]), 1.0)


def test_rho_curve_default_rhos() -> None:
    curve = rho_curve(Linear(50))
    np.testing.assert_array_equal(curve.rho, [2.0, 4.0, 8.0, 16.0])
    assert curve.over_plain.shape == (4,)


def test_results_are_immutable() -> None:
    for value in (rho_curve(Linear(50)), best_peak(Linear(50)), restarted_bound(Linear(50)),
                  last_iterate_bound(Linear(50)), optimal_schedule(20)):
        field = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 0.0)


def test_defaults_are_D_and_G_of_one() -> None:
    shape = Cosine(60)
    assert last_iterate_bound(shape) == last_iterate_bound(shape, 1.0, 1.0)
    assert best_peak(shape) == best_peak(shape, 1.0, 1.0)
    assert restarted_bound(shape) == restarted_bound(shape, 1.0, 1.0)
    assert restarted_bound(shape, peak=3.0) == restarted_bound(shape, 1.0, 1.0, peak=3.0)
    assert misspecified_bound(shape, 2.0) == misspecified_bound(shape, 2.0, 1.0, 1.0)
    np.testing.assert_array_equal(rho_curve(shape).over_restarted,
                                  rho_curve(shape, D=1.0, G=1.0).over_restarted)
    np.testing.assert_array_equal(optimal_schedule(30).eta, optimal_schedule(30, 1.0, 1.0).eta)


def test_a_schedule_needs_at_least_one_step() -> None:
    for fn in (last_iterate_bound, best_peak, restarted_bound):
        with pytest.raises(ValueError, match=r"steps must be an integer in \[1, inf\), got 0"):
            fn(Linear(10), steps=0)


@pytest.mark.parametrize("D", [0.0, np.array([0.0, 1.0, 1.0, 1.0, 1.0])])
def test_a_best_peak_needs_D_above_zero_at_the_first_step(D) -> None:
    # D_1 = 0 makes A = 0: every peak c > 0 would do, and c* = 0 is no step size
    with pytest.raises(ValueError, match="D must be > 0 at the first step"):
        best_peak(Linear(5), D)
    with pytest.raises(ValueError, match="D must be > 0 at the first step"):
        rho_curve(Linear(5), D=D)
    # the bound itself is defined at any given peak
    assert last_iterate_bound(Linear(5), D).distance == 0.0


def test_a_peak_of_zero_is_refused() -> None:
    for fn in (last_iterate_bound, restarted_bound):
        with pytest.raises(ValueError, match=r"peak must be in \(0, inf\), got 0$"):
            fn(Linear(5), peak=0.0)


def test_rho_must_be_above_zero() -> None:
    with pytest.raises(ValueError, match="rho must be > 0"):
        rho_curve(Linear(5), [0.0, 2.0])
    with pytest.raises(ValueError, match="rho"):
        misspecified_bound(Linear(5), 0.0)


@pytest.mark.parametrize(
    ("rho", "bounds"),
    [([0.0, 2.0], [1.0, 2.0]), ([1.0, 2.0], [0.0, 2.0]), ([-1.0, 2.0], [1.0, 2.0]),
     ([1.0, 2.0], [1.0, -2.0])],
)
def test_robustness_exponent_needs_positive_rho_and_bounds(rho, bounds) -> None:
    # either one alone is refused: a log of 0 or of a negative number has no slope
    with pytest.raises(ValueError, match="rho and bounds must be > 0"):
        robustness_exponent(rho, bounds)


def test_rho_curve_reference_is_the_best_peak() -> None:
    shape = Cosine(300)
    best = best_peak(shape, 2.0, 0.5)
    curve = rho_curve(shape, [1.0, 3.0], 2.0, 0.5)
    assert curve.best_peak == pytest.approx(best.peak, rel=1e-12)
    assert curve.best_bound == pytest.approx(best.bound, rel=1e-12)
    # rho = 1 is the best peak itself; any other rho costs (rho + 1/rho) / 2 on the plain bound
    assert curve.over_plain[0] == pytest.approx(curve.best_bound, rel=1e-12)
    assert curve.over_plain[1] == pytest.approx(curve.best_bound * (3 + 1 / 3) / 2, rel=1e-12)
