"""``optimal_schedule`` beyond its first test: the documented T = 200 figures, the same problem in
other units, a capped or coarse solve that still improves on its start (linear decay at its best
peak), and the argument limits."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.schedules import Linear
from lrlab.theory import best_peak, last_iterate_bound, optimal_schedule


def test_the_documented_figures_at_200_steps() -> None:
    # docs/theory.md: T = 200 ends at 0.1417 against linear decay's 0.1430 (D = G = 1)
    opt = optimal_schedule(200)
    assert opt.converged
    assert opt.bound == pytest.approx(0.1417, abs=5e-5)
    assert best_peak(Linear(200)).bound == pytest.approx(0.1430, abs=5e-5)
    assert opt.bound == pytest.approx(last_iterate_bound(opt.eta).total, rel=1e-12)


@pytest.mark.parametrize(("D", "G"), [(0.5, 4.0), (10.0, 0.01)])
@pytest.mark.parametrize("tol", [1e-4, 1e-12])
def test_other_units_give_the_same_solution_scaled(D: float, G: float, tol: float) -> None:
    # the bound of (D / G) eta under D, G is D G times the bound of eta under D = G = 1, so the
    # solver, which works on the bound relative to its start, must take the same path
    T = 300
    unit, opt = optimal_schedule(T, tol=tol), optimal_schedule(T, D, G, tol=tol)
    assert opt.iterations == unit.iterations
    np.testing.assert_allclose(opt.eta, unit.eta * (D / G), rtol=1e-8)
    assert opt.bound == pytest.approx(unit.bound * D * G, rel=1e-10)
    np.testing.assert_allclose(opt.shape(np.arange(T)), unit.shape(np.arange(T)), rtol=1e-8)


@pytest.mark.parametrize(("D", "G"), [(1.0, 1.0), (10.0, 0.01)])
def test_a_coarse_tolerance_still_improves_on_linear_decay(D: float, G: float) -> None:
    T = 200
    linear = best_peak(Linear(T), D, G).bound
    for tol in (1e-2, 1e-4):
        opt = optimal_schedule(T, D, G, tol=tol)
        assert opt.iterations >= 1
        assert opt.bound < linear * (1 - 1e-4)


def test_a_capped_solve_is_never_worse_than_its_start() -> None:
    # the start is linear decay at its best peak, and each iteration lowers the bound
    T = 200
    linear = best_peak(Linear(T), 2.0, 0.5).bound
    bounds = [optimal_schedule(T, 2.0, 0.5, max_iter=k).bound for k in (1, 2, 3, 5000)]
    assert all(b <= linear * (1 + 1e-12) for b in bounds)
    assert all(a >= b * (1 - 1e-12) for a, b in zip(bounds, bounds[1:], strict=False))


def test_argument_limits() -> None:
    two = optimal_schedule(2)  # the shortest accepted run
    assert two.eta.shape == (2,)
    assert two.bound <= best_peak(Linear(2)).bound * (1 + 1e-12)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 20000\], got 20001"):
        optimal_schedule(20001)
    with pytest.raises(ValueError, match=r"max_iter must be an integer in \[1, inf\), got 0"):
        optimal_schedule(10, max_iter=0)
    with pytest.raises(ValueError, match=r"tol must be in \(0, inf\), got 0"):
        optimal_schedule(10, tol=0.0)
    with pytest.raises(ValueError, match=r"D must be in \(0, inf\)"):
        optimal_schedule(10, 0.0)
    with pytest.raises(ValueError, match="G must be > 0 at some step"):
        optimal_schedule(10, 1.0, np.zeros(10))
