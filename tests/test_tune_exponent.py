"""Fitting the robustness exponent where some gaps are not positive (a loss at or below the
floor f*): such points carry no information on a log scale and are left out of the fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lrlab.tune import fit_exponent, robustness

R = [2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize(
    "gaps",
    [
        [0.0, 0.2, 0.4, 0.8],  # a gap of exactly 0
        [-0.3, 0.2, 0.4, 0.8],  # a loss below the floor
        [0.1, 0.2, 0.0, 0.8],  # inside the range
        [0.1, -1e-300, 0.4, np.nan],
    ],
)
def test_non_positive_gaps_are_left_out(gaps) -> None:
    assert fit_exponent(R, gaps) == pytest.approx(1.0, rel=1e-12)


def test_too_few_positive_gaps_give_nan() -> None:
    assert math.isnan(fit_exponent(R, [0.0, -1.0, 0.5, 0.0]))
    assert math.isnan(fit_exponent(R, [0.0, 0.0, 0.0, 0.0]))
    assert math.isnan(fit_exponent([2.0], [0.5]))
    # two positive gaps are enough
    assert fit_exponent(R, [0.0, 0.1, -2.0, 0.4]) == pytest.approx(1.0, rel=1e-12)


def test_bad_rho_values_are_left_out_with_their_gap() -> None:
    assert fit_exponent([0.0, 2.0, -4.0, 8.0, np.inf], [9.0, 0.2, 9.0, 0.8, 9.0]) == (
        pytest.approx(1.0, rel=1e-12)
    )


def test_the_slope_is_a_least_squares_fit_on_logs() -> None:
    r = np.array(R)
    gaps = 0.05 * r**0.5 * np.array([1.1, 0.9, 1.05, 0.97])
    x, y = np.log(r), np.log(gaps)
    expected = np.polyfit(x, y, 1)[0]
    assert fit_exponent(R, gaps) == pytest.approx(expected, rel=1e-12)
    assert fit_exponent(R[::-1], gaps[::-1]) == pytest.approx(expected, rel=1e-12)
    assert fit_exponent(R, 3.0 * gaps) == pytest.approx(expected, rel=1e-12)


def test_robustness_leaves_out_side_points_at_or_below_the_floor() -> None:
    # a floor f* = 1 above the best loss (0.9 at lr 1): over-estimation by 2 lands exactly on
    # the floor, under-estimation by 2 below it; each side is fitted on the other rhos
    f_star = 1.0
    loss = {1.0: 0.9, 2.0: 1.0, 4.0: 1.1, 8.0: 1.2, 16.0: 1.4,
            0.5: 0.95, 0.25: 1.2, 0.125: 1.4, 1 / 16: 1.8}
    rows = [{"schedule": "s", "lr": lr, "seed": s, "final_loss": v, "diverged": False}
            for lr, v in loss.items() for s in (0, 1)]
    row = robustness(pd.DataFrame(rows), f_star=f_star).iloc[0]
    assert row.best_lr == 1.0 and row.over_2 == 1.0 and row.under_2 == 0.95
    assert row.exponent_over == pytest.approx(1.0, rel=1e-9)
    assert row.exponent_under == pytest.approx(1.0, rel=1e-9)


def test_seed_table_names_a_missing_column() -> None:
    from lrlab.tune import seed_table

    with pytest.raises(ValueError, match="lacks column"):
        seed_table(pd.DataFrame({"schedule": ["s"], "lr": [1.0], "seed": [0]}))
    with pytest.raises(ValueError, match="DataFrame"):
        seed_table([{"schedule": "s"}])
