import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.schedules import Constant, Cosine, FromArray, InverseSqrt, Linear, Polynomial
from lrlab.theory import (
    _bound_and_grad,
    best_peak,
    last_iterate_bound,
    misspecified_bound,
    optimal_schedule,
    restarted_bound,
    rho_curve,
    robustness_exponent,
    step_sizes,
)


def harmonic(n):
    return math.fsum(1.0 / k for k in range(1, n + 1))


def test_hand_example():
    # eta = (1, 1/2), D = G = 1: S = (3/2, 1/2), Q = (5/4, 1/4)
    b = last_iterate_bound([1.0, 0.5])
    assert b.distance == pytest.approx(1 / 3, rel=1e-15)
    assert b.gradient == pytest.approx(1.25 / 3, rel=1e-15)
    assert b.last_iterate == pytest.approx(0.5 * 1.25 / (0.5 * 1.5), rel=1e-15)
    assert b.total == pytest.approx(b.distance + b.gradient + b.last_iterate, rel=1e-15)


@pytest.mark.parametrize("T", [1, 2, 50, 1_000_000])
def test_constant_step_closed_form(T):
    eta, D, G = 0.03, 2.0, 1.5
    b = last_iterate_bound(Constant(), D, G, steps=T, peak=eta)
    assert b.distance == pytest.approx(D**2 / (2 * eta * T), rel=1e-12)
    assert b.gradient == pytest.approx(eta * G**2 / 2, rel=1e-9)
    assert b.last_iterate == pytest.approx(eta * G**2 / 2 * harmonic(T - 1), rel=1e-9, abs=0)
    assert b.total == pytest.approx(
        D**2 / (2 * eta * T) + eta * G**2 / 2 + eta * G**2 / 2 * harmonic(T - 1), rel=1e-9
    )


def test_schedule_and_array_agree_and_indexing():
    np.testing.assert_array_equal(step_sizes(Linear(4)), [1.0, 0.75, 0.5, 0.25])
    a = last_iterate_bound(Cosine(300), 1.0, 2.0)
    b = last_iterate_bound(Cosine(300).values(300), 1.0, np.full(300, 2.0))
    assert a == b
    refined = FromArray((1.0, 0.5, 0.0), steps=4)
    np.testing.assert_allclose(step_sizes(refined, steps=4), [1.0, 0.75, 0.5, 0.25])


def test_trailing_zero_steps_do_not_count():
    assert last_iterate_bound([1.0, 0.5, 0.0, 0.0]) == last_iterate_bound([1.0, 0.5])


@pytest.mark.parametrize("T", [10**4, 10**5, 10**6])
def test_linear_best_bound_tends_to_2DG_over_sqrt_T(T):
    D, G = 3.0, 0.5
    res = best_peak(Linear(T), D, G)
    # the ratio to 2DG/sqrt(T) is about 1 + ln(T)/(2T): 1.00041 at 1e4, 1.0000064 at 1e6
    assert res.bound * math.sqrt(T) / (2 * D * G) == pytest.approx(1.0, abs=math.log(T) / T)
    assert res.bound * math.sqrt(T) / (2 * D * G) > 1.0
    assert last_iterate_bound(Linear(T), D, G, peak=res.peak).total == pytest.approx(
        res.bound, rel=1e-12
    )


def test_best_peak_is_a_minimum():
    shape = Polynomial(500, 2.0)
    res = best_peak(shape, 1.0, np.linspace(1.0, 3.0, 500))
    at = last_iterate_bound(shape, 1.0, np.linspace(1.0, 3.0, 500), peak=res.peak).total
    assert at == pytest.approx(2 * math.sqrt(res.A * res.B), rel=1e-12)
    for f in (0.99, 1.01):
        worse = last_iterate_bound(shape, 1.0, np.linspace(1.0, 3.0, 500), peak=res.peak * f)
        assert worse.total > at


@pytest.mark.parametrize("rho", [2.0, 5.0, 16.0])
def test_plain_misspecification_is_rho_plus_inverse_over_two(rho):
    shape = Cosine(2000)
    best = best_peak(shape).bound
    for side in ("over", "under"):
        got = misspecified_bound(shape, rho, side=side)
        assert got == pytest.approx(best * (rho + 1 / rho) / 2, rel=1e-12)


def test_restarted_equals_brute_force_over_tails():
    rng = np.random.default_rng(3)
    T = 40
    eta = rng.uniform(0.0, 1.0, T)
    D = rng.uniform(0.5, 2.0, T)
    G = rng.uniform(0.5, 2.0, T)
    got = restarted_bound(eta, D, G, peak=0.7)
    brute = [last_iterate_bound(eta[t:], D[t], G[t:], peak=0.7).total for t in range(T)]
    assert got.bound == pytest.approx(min(brute), rel=1e-12)
    assert got.restart_step == int(np.argmin(brute))
    assert got.plain == pytest.approx(brute[0], rel=1e-12)


def test_restarted_never_exceeds_plain():
    curve = rho_curve(Polynomial(1000, 1.5), [0.5, 1, 2, 4, 8])
    assert (curve.over_restarted <= curve.over_plain * (1 + 1e-12)).all()
    assert (curve.under_restarted <= curve.under_plain * (1 + 1e-12)).all()


# Over-estimation exponents of the tail-restarted bound, T = 1e5, rho = 2, 4, ..., 256.
# Measured: linear 0.334, p=2 0.200, p=3 0.143, cosine 0.214, constant 0.787, 1/sqrt 0.778.
# Constant and 1/sqrt(t) stay below 1 at finite T: their last-iterate term carries a harmonic
# sum H_L over the kept tail L ~ T log T / rho^2, and shortening the tail trims that log factor.
T_EXP = 100_000
RHOS = 2.0 ** np.arange(1, 9)


@pytest.mark.parametrize(
    ("shape", "expected", "tol"),
    [
        (Linear(T_EXP), 1 / 3, 0.01),
        (Polynomial(T_EXP, 2.0), 1 / 5, 0.01),
        (Polynomial(T_EXP, 3.0), 1 / 7, 0.01),
        (Cosine(T_EXP), 1 / 5, 0.03),
    ],
)
def test_restarted_exponent_of_annealed_schedules(shape, expected, tol):
    curve = rho_curve(shape, RHOS)
    assert curve.exponent("over", restarted=True) == pytest.approx(expected, abs=tol)
    assert curve.exponent("over", restarted=False) == pytest.approx(
        robustness_exponent(RHOS, (RHOS + 1 / RHOS) / 2), abs=1e-9
    )
    assert curve.exponent("under", restarted=True) > 0.95


@pytest.mark.parametrize("shape", [Constant(), InverseSqrt(1.0)])
def test_restarted_exponent_without_annealing_stays_near_one(shape):
    curve = rho_curve(shape, RHOS, steps=T_EXP)
    assert 0.7 < curve.exponent("over") <= 1.0
    annealed = rho_curve(Linear(T_EXP), RHOS)
    assert curve.exponent("over") > 2 * annealed.exponent("over")


def test_robustness_exponent_of_a_power_law():
    rho = np.array([1.5, 3.0, 10.0])
    assert robustness_exponent(rho, 7.0 * rho**0.4) == pytest.approx(0.4, abs=1e-12)


def test_bound_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    eta, g = rng.uniform(0.1, 1.0, 15), rng.uniform(0.5, 2.0, 15)
    f, grad = _bound_and_grad(eta, 1.3, g)
    assert f == pytest.approx(last_iterate_bound(eta, 1.3, g).total, rel=1e-14)
    h = 1e-6
    num = [
        (_bound_and_grad(eta + h * e, 1.3, g)[0] - _bound_and_grad(eta - h * e, 1.3, g)[0])
        / (2 * h)
        for e in np.eye(15)
    ]
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


def test_optimal_schedule_beats_linear_and_is_a_local_minimum():
    T = 300
    opt = optimal_schedule(T, D=2.0, G=0.5)
    assert opt.converged
    assert opt.bound == pytest.approx(last_iterate_bound(opt.eta, 2.0, 0.5).total, rel=1e-12)
    assert opt.bound <= best_peak(Linear(T), 2.0, 0.5).bound
    np.testing.assert_allclose(opt.shape(np.arange(T)), opt.eta / opt.peak, rtol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(5):
        nudged = opt.eta * (1 + 0.01 * rng.standard_normal(T))
        assert last_iterate_bound(nudged, 2.0, 0.5).total >= opt.bound * (1 - 1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="G"):
        last_iterate_bound(Linear(10), 1.0, np.ones(9))
    with pytest.raises(ValueError, match="D"):
        last_iterate_bound(Linear(10), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="steps"):
        last_iterate_bound(np.ones(5), steps=6)
    with pytest.raises(ValueError, match="steps"):
        last_iterate_bound(Constant())
    with pytest.raises(ValueError, match="finite"):
        last_iterate_bound([1.0, float("nan")])
    with pytest.raises(ValueError, match=">= 0"):
        last_iterate_bound([1.0, -0.1])
    with pytest.raises(ValueError, match="G"):
        last_iterate_bound([1.0, 1.0], 1.0, [1.0, float("inf")])
    with pytest.raises(ValueError, match="D"):
        last_iterate_bound([1.0, 1.0], -1.0)
    with pytest.raises(ValueError, match="all be 0"):
        last_iterate_bound([0.0, 0.0])
    with pytest.raises(ValueError, match="peak"):
        last_iterate_bound([1.0], peak=0.0)
    with pytest.raises(ValueError, match="G must be > 0"):
        best_peak(Linear(5), 1.0, 0.0)
    with pytest.raises(ValueError, match="rho"):
        misspecified_bound(Linear(5), 0.0)
    with pytest.raises(ValueError, match="side"):
        misspecified_bound(Linear(5), 2.0, side="both")
    with pytest.raises(ValueError, match="rho"):
        rho_curve(Linear(5), [2.0, -1.0])
    with pytest.raises(ValueError, match="distinct"):
        robustness_exponent([2.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="same length"):
        robustness_exponent([2.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="steps"):
        optimal_schedule(1)
    with pytest.raises(ValueError, match="steps"):
        optimal_schedule(10**6)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 10.0), min_size=1, max_size=30),
    st.floats(0.01, 100.0),
    st.floats(0.1, 10.0),
)
def test_bound_is_A_over_c_plus_B_c(shape, c, D):
    eta = np.array(shape + [1.0])
    res = best_peak(eta, D, 1.5)
    total = last_iterate_bound(eta, D, 1.5, peak=c).total
    assert total == pytest.approx(res.A / c + res.B * c, rel=1e-10)
    assert total >= res.bound * (1 - 1e-12)
    assert restarted_bound(eta, D, 1.5, peak=c).bound <= total * (1 + 1e-12)


def test_theory_and_refine_do_not_import_torch():
    code = "import sys, lrlab.theory, lrlab.refine; sys.exit('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


# -- long horizons: a subsampled grid ----------------------------------------------------------
def test_long_horizons_match_the_step_by_step_computation(monkeypatch):
    """Past EXACT_STEPS a schedule is evaluated on bins plus an exact tail; with the grid made
    small here (bins of about 64 steps) the results stay within the documented tolerance."""
    import lrlab.theory as th
    from lrlab.schedules import Constant, Cosine, InverseSqrt, Linear, Polynomial

    monkeypatch.setattr(th, "EXACT_STEPS", 2**14)
    monkeypatch.setattr(th, "TAIL_STEPS", 2**12)
    monkeypatch.setattr(th, "BINS", 2**12)
    T = 2**17 + 123
    for sched in (Cosine(T), Linear(T), Polynomial(T, 2.0), Constant(), InverseSqrt(),
                  Cosine(T, 0.1)):
        eta = sched(np.arange(T))  # an array: always step by step
        exact, grid = th.rho_curve(eta), th.rho_curve(sched, steps=T)
        assert grid.best_peak == pytest.approx(exact.best_peak, rel=1e-4)
        assert grid.best_bound == pytest.approx(exact.best_bound, rel=1e-5)
        np.testing.assert_allclose(grid.over_plain, exact.over_plain, rtol=1e-5)
        np.testing.assert_allclose(grid.over_restarted, exact.over_restarted, rtol=1e-4)
        np.testing.assert_allclose(grid.under_restarted, exact.under_restarted, rtol=1e-4)
        assert np.all(np.abs(grid.restart_over - exact.restart_over) <= T // 2**10)
        b = th.last_iterate_bound(sched, steps=T, peak=0.3)
        assert b.total == pytest.approx(th.last_iterate_bound(eta, peak=0.3).total, rel=1e-4)
    # below EXACT_STEPS nothing changes: bit-identical to the array computation
    small = Cosine(1000)
    assert th.rho_curve(small).best_bound == th.rho_curve(small(np.arange(1000))).best_bound
