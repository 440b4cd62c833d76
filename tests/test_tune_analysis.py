import math

import numpy as np
import pandas as pd
import pytest

from lrlab.schedules import Constant, FromArray, Linear, Polynomial, Step, WarmupStableDecay
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


def test_predicted_exponents_come_from_the_theory_for_any_schedule():
    long = 10**5
    # the paper's asymptotic exponents 1/(2p+1) at a long horizon
    assert predicted_exponent(Linear(steps=long)) == pytest.approx(1 / 3, abs=0.005)
    assert predicted_exponent(Polynomial(steps=long, power=2)) == pytest.approx(1 / 5, abs=0.005)
    assert predicted_exponent({"name": "polynomial", "steps": long, "power": 3}) == pytest.approx(
        1 / 7, abs=0.005
    )
    # a constant step: its plain bound D^2/(2cT) + c G^2/2 (+ the last-iterate term) grows
    # like (rho + 1/rho) / 2 over rho 2..16; the tail-restarted form (the one used) is tighter
    plain = np.polyfit(np.log(RHO), np.log((RHO + 1 / RHO) / 2), 1)[0]
    constant = predicted_exponent(Constant(), steps=500)
    assert predicted_exponent(Linear(steps=500)) + 0.2 < constant < plain
    assert predicted_exponent(Constant()) is None  # no horizon, no steps
    # the horizon matters: the same shape is less robust on a short run
    assert predicted_exponent(Linear(steps=200)) > predicted_exponent(Linear(steps=long))
    # any schedule the study holds gets one: a step schedule (halving twice: nearly as
    # fragile as a constant), WSD (linear tail: close to linear), a refined (array) schedule
    assert 0.6 < predicted_exponent(Step(step_size=250, gamma=0.5), steps=500) < constant
    wsd = predicted_exponent(WarmupStableDecay(steps=500, warmup=25, decay=100))
    assert predicted_exponent(Linear(steps=500)) < wsd < constant
    refined = FromArray(np.linspace(1.0, 0.0, 500) ** 1.5)
    assert predicted_exponent(refined) == pytest.approx(1 / 4, abs=0.03)
    # under-estimation costs about rho for every schedule (slope over rho 2..16: ~0.9)
    assert predicted_exponent(Linear(steps=500), side="under") == pytest.approx(0.9, abs=0.02)


RHO = np.array([2.0, 4.0, 8.0, 16.0])


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
    rob = robustness(df, f_star=f_star, schedules={"linear": Linear(steps=500)})
    row = rob.iloc[0]
    assert row.best_lr == c
    assert row.over_4 == pytest.approx(f(8.0) + 0.5e-4)
    assert row.under_16 == pytest.approx(f(c / 16) + 0.5e-4)
    assert row.exponent_over == pytest.approx(a, rel=0.05)
    assert row.exponent_under == pytest.approx(b, rel=0.01)
    assert row.predicted_over == pytest.approx(predicted_exponent(Linear(steps=500)))
    assert row.predicted_under == pytest.approx(
        predicted_exponent(Linear(steps=500), side="under")
    )
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
    # the documented columns, sorted by (schedule, lr), on a plain 0..n-1 index
    assert list(t.columns) == ["schedule", "lr", "mean_loss", "std_loss", "min_loss",
                               "max_loss", "n_seeds", "n_diverged"]
    assert list(t.index) == [0, 1]


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
    # growth stops where the measured grid ends: a best lr at either edge, however flat the
    # curve, has no measured neighbour on one side, so no misspecification is known to be safe
    assert tolerable_factor([1, 2, 4], [1.0, 1.0, 1.0]) == 1.0
    assert tolerable_factor([1, 2, 4], [1.01, 1.01, 1.0]) == 1.0
    assert tolerable_factor([1, 2], [2.0, 1.0]) == 1.0  # two points: a grid, its best an edge
    # each side is checked at each distance: a bad point below stops the growth as one above
    assert tolerable_factor(lrs, [1.1, 9.0, 1.0, 1.01, 1.02], slack=0.1) == 1.0
    assert tolerable_factor(lrs, [1.02, 1.01, 1.0, 9.0, 1.1], slack=0.1) == 1.0
    assert tolerable_factor(lrs, [9.0, 1.05, 1.0, 1.01, 1.02], slack=0.1) == 4.0
    assert tolerable_factor(lrs, [1.02, 1.01, 1.0, 1.05, 9.0], slack=0.1) == 4.0
    # growth stops at the last point on either side, not one past it
    assert tolerable_factor([1, 2, 4, 8], [1.02, 1.01, 1.0, 1.01]) == 4.0
    assert tolerable_factor([1, 2, 4, 8], [1.01, 1.0, 1.01, 1.02]) == 4.0
    assert math.isnan(tolerable_factor([1], [1.0]))
    assert math.isnan(tolerable_factor([1, 2], [math.inf, math.nan]))


def test_robustness_validates_its_input():
    with pytest.raises(ValueError, match="lacks column"):
        robustness(pd.DataFrame({"lr": [1.0]}))
    with pytest.raises(ValueError, match="rhos"):
        robustness(table({"a": lambda lr: 1.0}, LRS), rhos=(1.0, 2.0))


def _noisy(f, lrs, seeds, sd, rng):
    return pd.DataFrame([
        {"schedule": "linear", "lr": lr, "seed": s,
         "final_loss": f(lr) + sd * rng.standard_normal(), "diverged": False}
        for lr in lrs for s in seeds
    ])


def test_exponents_come_with_a_bootstrap_interval_that_covers_the_truth():
    c, a, f_star = 1.0, 1 / 3, 0.5

    def f(lr):
        return f_star + 0.1 * max(lr / c, 1) ** a * max(c / lr, 1)

    covered, fits, widths = 0, [], []
    for trial in range(40):
        df = _noisy(f, LRS, range(5), 0.004, np.random.default_rng(trial))
        row = robustness(df, f_star=f_star).iloc[0]
        assert row.exponent_over_lo < row.exponent_over < row.exponent_over_hi
        covered += row.exponent_over_lo <= a <= row.exponent_over_hi
        fits.append(row.exponent_over)
        widths.append(row.exponent_over_hi - row.exponent_over_lo)
    assert covered >= 30  # a 90 % interval: 36 of 40 expected
    # as wide as a 90 % interval of the estimate's own spread over datasets (2 x 1.645 sd)
    ratio = np.mean(widths) / (2 * 1.645 * np.std(fits, ddof=1))
    assert 0.6 < ratio < 1.4, ratio
    # reproducible: the bootstrap's generator is fixed
    df = _noisy(f, LRS, range(5), 0.004, np.random.default_rng(0))
    assert robustness(df, f_star=f_star).equals(robustness(df, f_star=f_star))
    # fewer than three seeds: no interval
    row = robustness(_noisy(f, LRS, range(2), 0.004, np.random.default_rng(0)), f_star=f_star)
    assert math.isnan(row.iloc[0].exponent_over_lo) and np.isfinite(row.iloc[0].exponent_over)


def test_gaps_within_seed_noise_give_no_exponent():
    # the over side is flat at f* + 1e-4 while seeds scatter by 1e-3: its "trend" is noise;
    # the under side climbs far above the noise and keeps its exponent
    f_star = 0.5

    def f(lr):
        return f_star + 1e-4 + (0.0 if lr >= 1 else 0.1 * (1 / lr - 1))

    row = robustness(_noisy(f, LRS, range(5), 1e-3, np.random.default_rng(1)),
                     f_star=f_star).iloc[0]
    assert math.isnan(row.exponent_over) and row.noise_over
    assert math.isnan(row.exponent_over_lo)
    assert np.isfinite(row.exponent_under) and row.exponent_under > 0.5
    # the same data with f* unknown (gaps from 0) are far above the noise: an exponent near 0
    row = robustness(_noisy(f, LRS, range(5), 1e-3, np.random.default_rng(1))).iloc[0]
    assert abs(row.exponent_over) < 0.01 and not row.noise_over


def test_the_bootstrap_interval_needs_three_seeds_and_two_gaps() -> None:
    from lrlab.tune.analysis import _interval

    lrs = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    rng = np.random.default_rng(1)
    base = np.array([1.6, 1.3, 1.0, 1.2, 1.5])
    losses = base[:, None] + 0.01 * rng.standard_normal((5, 3))
    both = np.array([True, True])
    lo, hi = _interval(lrs, losses, (2, 4), 1.0, 0.0, both)
    assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
    assert all(map(math.isnan, _interval(lrs, losses[:, :2], (2, 4), 1.0, 0.0, both)))
    assert all(map(math.isnan, _interval(lrs, losses, (2, 4), 1.0, 0.0,
                                         np.array([True, False]))))
    assert all(map(math.isnan, _interval(lrs, None, (2, 4), 1.0, 0.0, both)))


def test_the_noise_rule_reads_the_standard_error_at_the_same_lr() -> None:
    """Over-estimated lrs with a wide seed spread are noise; under-estimated ones with a tight
    spread are not: each gap is weighed against the spread at its own lr."""
    per_lr = {0.25: [1.5, 1.501, 1.499], 0.5: [1.2, 1.201, 1.199], 1.0: [1.0, 1.0, 1.0],
              2.0: [0.1, 1.1, 2.1], 4.0: [0.1, 1.3, 2.5]}
    df = pd.DataFrame([{"schedule": "linear", "lr": lr, "seed": k, "final_loss": v,
                        "diverged": False} for lr, vs in per_lr.items() for k, v in enumerate(vs)])
    row = robustness(df, rhos=(2, 4)).iloc[0]
    assert row["best_lr"] == 1.0
    assert math.isnan(row["exponent_over"])
    assert np.isfinite(row["exponent_under"])



def test_no_bootstrap_interval_when_a_seed_lacks_an_lr() -> None:
    rows = [{"schedule": "linear", "lr": lr, "seed": k, "final_loss": 1.0 + abs(math.log2(lr))
             + 0.01 * k, "diverged": False}
            for lr in (0.25, 0.5, 1.0, 2.0, 4.0) for k in range(3) if (lr, k) != (4.0, 2)]
    row = robustness(pd.DataFrame(rows), rhos=(2, 4)).iloc[0]
    assert np.isfinite(row["exponent_under"])  # the fit itself uses the seed means
    assert math.isnan(row["exponent_under_lo"]) and math.isnan(row["exponent_under_hi"])
