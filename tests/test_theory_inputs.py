"""Inputs of the bounds at their limits: per-step D and G arrays, a gradient bound that is
positive at one step only, the default rho values, and results that are immutable values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrlab.schedules import Linear
from lrlab.theory import (
    best_peak,
    last_iterate_bound,
    misspecified_bound,
    restarted_bound,
    rho_curve,
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
                  last_iterate_bound(Linear(50))):
        field = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 0.0)
