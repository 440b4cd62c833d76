import math

import numpy as np
import pandas as pd
import pytest

from lrlab.schedules import Constant, Cosine, InverseSqrt, Linear, Polynomial, Step
from lrlab.tune import fit_exponent, predicted_exponent, robustness, seed_table, tolerable_factor


def table(curves, lrs, seeds=(0, 1), noise=0.0, diverge_above=None):
    """Results table from per-schedule functions loss(lr) (+ noise * seed)."""
    rows = []
    for name, f in curves.items():
        for lr in lrs:
            for s in seeds:
                div = diverge_above is not None and lr > diverge_above.get(name, math.inf)
                rows.append(
                    {
                        "schedule": name,
                        "lr": lr,
                        "seed": s,
                        "final_loss": math.nan if div else f(lr) + noise * s,
                        "diverged": div,
                    }
                )
    return pd.DataFrame(rows)


LRS = [2.0**k for k in range(-6, 7)]


def test_predicted_exponents():
    assert predicted_exponent(Polynomial(steps=10, power=2)) == pytest.approx(1 / 5)
    assert predicted_exponent({"name": "polynomial", "steps": 10, "power": 3}) == pytest.approx(
        1 / 7
    )
    assert predicted_exponent(Linear(steps=10)) == pytest.approx(1 / 3)
    assert predicted_exponent(Cosine(steps=10)) == pytest.approx(1 / 5)
    assert predicted_exponent(Constant()) == 1.0
    assert predicted_exponent(InverseSqrt()) == 1.0
    assert predicted_exponent(Step(step_size=3)) is None


def test_fit_exponent_recovers_a_power_law_and_skips_bad_points():
    r = np.array([2.0, 4.0, 8.0, 16.0])
    assert fit_exponent(r, 0.3 * r**0.2) == pytest.approx(0.2)
    assert fit_exponent(r, [0.1, 0.2, np.inf, 0.8]) == pytest.approx(1.0)
    assert math.isnan(fit_exponent(r, [0.1, np.nan, -1, np.inf]))


def test_robustness_reads_rho_points_from_the_grid_and_fits_each_side():
    # gap = (lr/c)^a over, (c/lr)^b under, above a floor f* = 0.5
    c, a, b, f_star = 2.0, 1 / 3, 1.0, 0.5

    def f(lr):
        return f_star + 0.01 * (max(lr / c, 1) ** a) * (max(c / lr, 1) ** b)

    df = table({"linear": f}, LRS, noise=1e-4)
    rob = robustness(df, f_star=f_star, schedules={"linear": Linear(steps=5)})
    row = rob.iloc[0]
    assert row.best_lr == c
    assert row.over_4 == pytest.approx(f(8.0) + 0.5e-4)
    assert row.under_16 == pytest.approx(f(c / 16) + 0.5e-4)
    assert row.exponent_over == pytest.approx(a, rel=0.05)
    assert row.exponent_under == pytest.approx(b, rel=0.01)
    assert row.predicted_over == pytest.approx(1 / 3) and row.predicted_under == 1.0
    assert row.seed_spread == pytest.approx(0.5e-4)


def test_robustness_marks_diverged_and_off_grid_points():
    df = table(
        {"constant": lambda lr: 1 + abs(math.log2(lr / 8))}, LRS, diverge_above={"constant": 16.0}
    )
    row = robustness(df).iloc[0]
    assert row.best_lr == 8.0
    assert row.over_2 == 1 + 1
    assert math.isinf(row.over_4) and math.isinf(row.over_8)  # 32, 64 diverged
    assert math.isnan(row.over_16)  # 128 is off the grid
    assert row.under_16 == pytest.approx(5.0)


def test_seed_table_counts_diverged_seeds_as_infinite():
    df = pd.DataFrame(
        {
            "schedule": ["a"] * 4,
            "lr": [1.0, 1.0, 2.0, 2.0],
            "seed": [0, 1, 0, 1],
            "final_loss": [1.0, 3.0, 0.5, np.nan],
            "diverged": [False, False, False, True],
        }
    )
    t = seed_table(df)
    assert list(t.mean_loss) == [2.0, np.inf]
    assert list(t.n_diverged) == [0, 1] and t.std_loss.iloc[0] == 1.0


def test_tolerable_factor():
    lrs = [0.25, 0.5, 1, 2, 4]
    assert tolerable_factor(lrs, [2.0, 1.05, 1.0, 1.04, 3.0], slack=0.1) == 4.0
    assert tolerable_factor(lrs, [2.0, 1.05, 1.0, 1.04, 3.0], slack=0.01) == 1.0
    assert tolerable_factor(lrs, [1.1, 1.05, 1.0, 1.04, 1.09], slack=0.1) == 16.0
    assert math.isnan(tolerable_factor([1, 2, 3], [1, 0.5, 1]))
    # a flatter (more robust) curve tolerates a coarser grid
    flat = [1 + 0.01 * abs(math.log2(x)) for x in LRS]
    sharp = [1 + 0.1 * abs(math.log2(x)) for x in LRS]
    assert tolerable_factor(LRS, flat, slack=0.05) > tolerable_factor(LRS, sharp, slack=0.05)
    with pytest.raises(ValueError, match="slack"):
        tolerable_factor(lrs, [1] * 5, slack=-1)


def test_robustness_validates_its_input():
    with pytest.raises(ValueError, match="lacks column"):
        robustness(pd.DataFrame({"lr": [1.0]}))
    with pytest.raises(ValueError, match="rhos"):
        robustness(table({"a": lambda lr: 1.0}, LRS), rhos=(1.0, 2.0))
