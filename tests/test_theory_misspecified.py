"""``misspecified_bound`` and ``rho_curve``: which peak each side uses, and the tail-restarted
form against the bound of every tail computed directly."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.schedules import Constant, Cosine, Linear, Polynomial
from lrlab.theory import (
    best_peak,
    last_iterate_bound,
    misspecified_bound,
    restarted_bound,
    rho_curve,
)

RNG = np.random.default_rng(11)
T = 30
ETA = np.sort(RNG.uniform(0.05, 1.0, T))[::-1]  # a decaying shape with uneven steps
D = RNG.uniform(0.5, 2.0, T)
G = RNG.uniform(0.5, 2.0, T)


def brute_restarted(c: float) -> float:
    """min over tails tau of the plain bound of eta_tau..eta_T at peak c with D_tau."""
    return min(last_iterate_bound(ETA[t:], D[t], G[t:], peak=c).total for t in range(T))


@pytest.mark.parametrize("rho", [1.5, 4.0, 30.0])
def test_each_side_uses_its_own_peak(rho: float) -> None:
    c_star = best_peak(ETA, D, G).peak
    over = misspecified_bound(ETA, rho, D, G, side="over", restarted=True)
    under = misspecified_bound(ETA, rho, D, G, side="under", restarted=True)
    assert over == pytest.approx(brute_restarted(c_star * rho), rel=1e-12)
    assert under == pytest.approx(brute_restarted(c_star / rho), rel=1e-12)
    assert over == pytest.approx(restarted_bound(ETA, D, G, peak=c_star * rho).bound, rel=1e-12)
    assert under == pytest.approx(restarted_bound(ETA, D, G, peak=c_star / rho).bound, rel=1e-12)
    # the plain form at each side's peak, taken from the whole run
    assert misspecified_bound(ETA, rho, D, G, side="over") == pytest.approx(
        last_iterate_bound(ETA, D, G, peak=c_star * rho).total, rel=1e-12
    )
    assert misspecified_bound(ETA, rho, D, G, side="under") == pytest.approx(
        last_iterate_bound(ETA, D, G, peak=c_star / rho).total, rel=1e-12
    )


def test_over_estimation_is_cheaper_than_under_estimation_once_restarted() -> None:
    # with annealing, a peak that is too large is forgiven by the tail (restart) and one that
    # is too small is not: the two sides differ, and the plain bound cannot tell them apart
    shape = Linear(2000)
    best = best_peak(shape).bound
    for rho in (4.0, 16.0, 64.0):
        over = misspecified_bound(shape, rho, side="over", restarted=True)
        under = misspecified_bound(shape, rho, side="under", restarted=True)
        plain = misspecified_bound(shape, rho, side="over")
        assert plain == pytest.approx(misspecified_bound(shape, rho, side="under"), rel=1e-12)
        assert over < 0.75 * plain
        assert under == pytest.approx(plain, rel=1e-9)  # too small a peak: the whole run
        assert best < over < under


def test_rho_one_is_the_best_bound_on_both_sides() -> None:
    best = best_peak(Cosine(500)).bound
    for side in ("over", "under"):
        assert misspecified_bound(Cosine(500), 1.0, side=side) == pytest.approx(best, rel=1e-12)
        assert misspecified_bound(Cosine(500), 1.0, side=side, restarted=True) <= best


def test_a_restart_only_helps_where_the_tail_is_better() -> None:
    # a constant step at a peak that is too large: the best tail is a short one
    over = misspecified_bound(Constant(), 50.0, steps=400, side="over", restarted=True)
    plain = misspecified_bound(Constant(), 50.0, steps=400, side="over")
    assert over < plain
    # the same misspecification below the best peak gains nothing from a restart
    under = misspecified_bound(Constant(), 50.0, steps=400, side="under", restarted=True)
    assert under == pytest.approx(misspecified_bound(Constant(), 50.0, steps=400, side="under"))


def test_rho_curve_agrees_with_misspecified_bound_point_by_point() -> None:
    shape = Polynomial(300, 2.0)
    rhos = [1.0, 2.0, 8.0, 32.0]
    curve = rho_curve(shape, rhos, D=1.5, G=0.5)
    c_star = best_peak(shape, 1.5, 0.5).peak
    for i, rho in enumerate(rhos):
        for side, plain, rest in (
            ("over", curve.over_plain, curve.over_restarted),
            ("under", curve.under_plain, curve.under_restarted),
        ):
            kw = dict(D=1.5, G=0.5, side=side)
            assert plain[i] == pytest.approx(misspecified_bound(shape, rho, **kw), rel=1e-12)
            assert rest[i] == pytest.approx(
                misspecified_bound(shape, rho, restarted=True, **kw), rel=1e-12
            )
        step = restarted_bound(shape, 1.5, 0.5, peak=c_star * rho).restart_step
        assert curve.restart_over[i] == step
    assert curve.restart_over[-1] > 0 == curve.restart_over[0]
    assert curve.exponent("over") < curve.exponent("under")
    assert curve.exponent("over", restarted=False) == pytest.approx(
        curve.exponent("under", restarted=False), rel=1e-9
    )
