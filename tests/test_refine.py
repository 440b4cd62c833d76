import warnings

import numpy as np
import pytest

from lrlab.refine import read_norms, refine
from lrlab.schedules import FromArray, Linear


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize(("pilot", "steps"), [(2, None), (200, None), (200, 500), (1000, 37)])
def test_constant_norms_give_exactly_linear_decay(norm, pilot, steps):
    out = refine(np.full(pilot, 2.5), norm=norm, steps=steps)
    n = out.shape.size
    np.testing.assert_allclose(out.shape, 1.0 - np.arange(n) / (n - 1), rtol=0, atol=1e-15)
    T = pilot if steps is None else steps
    t = np.arange(T + 1)
    # knots spread over [0, T]: s(t) = 1 - t/T, the values of Linear(T), with s(T) = 0
    np.testing.assert_allclose(out.schedule(t), 1.0 - t / T, rtol=0, atol=1e-14)
    np.testing.assert_allclose(out.schedule(t), Linear(T)(t), rtol=0, atol=1e-14)
    assert isinstance(out.schedule, FromArray) and out.schedule.horizon == T
    assert out.report.peak_step == 0 and out.report.warmup_steps == 0
    assert out.report.anneal_fraction == pytest.approx(0.5, abs=1.0 / n)


def test_hand_examples():
    # window = 1 at this length: l2 weights (1/4, 1, 1, 1/4), tails (9/4, 5/4, 1/4, 0)
    np.testing.assert_allclose(refine([2.0, 1.0, 1.0, 2.0]).shape, [0.45, 1.0, 0.2, 0.0])
    # l1 weights (1/2, 1, 1, 1/2), tails (5/2, 3/2, 1/2, 0)
    np.testing.assert_allclose(
        refine([2.0, 1.0, 1.0, 2.0], norm="l1").shape, [5 / 6, 1.0, 1 / 3, 0.0]
    )
    # tau * n = 3 -> window 3: the single spike is filtered out, leaving linear decay
    out = refine([1.0, 5.0, 1.0, 1.0, 1.0], tau=0.6)
    assert out.report.window == 3
    np.testing.assert_array_equal(out.smoothed, np.ones(5))
    np.testing.assert_allclose(out.shape, [1.0, 0.75, 0.5, 0.25, 0.0])


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_large_early_norms_give_a_warmup(norm):
    T = 1000
    t = np.arange(T)
    g = 1.0 + 9.0 * np.exp(-t / 60.0)
    out = refine(g, norm=norm)
    s = out.schedule(t)
    assert out.report.peak_step > 50
    assert out.report.warmup_steps == out.report.peak_step
    assert s[0] < 0.5 and out.shape.max() == 1.0 and s.max() == pytest.approx(1.0, abs=1e-4)
    # past the first half window (flat after the reflect-padded median) s rises to its peak
    half = out.report.window // 2
    assert (np.diff(s[half + 5 : out.report.peak_step - 5]) > 0).all()


def test_rising_late_norms_anneal_earlier_than_linear():
    T = 1000
    t = np.arange(T)
    out = refine(1.0 + 3.0 * t / T)
    s = out.schedule(t)
    assert (s[1:-1] < 1.0 - t[1:-1] / T).all()
    assert out.report.anneal_fraction > 0.5


def test_median_filter_keeps_the_end_of_a_rising_log():
    g = 1.0 + np.arange(500) / 100.0
    out = refine(g, tau=0.2)
    # reflect padding: the filtered log still rises to the end and stays within the data
    assert (np.diff(out.smoothed) >= 0).all()
    assert out.smoothed[-1] > g[-60] and out.smoothed[-1] <= g[-1]


def test_nonfinite_entries_are_dropped_counted_and_warned():
    g = np.full(300, 2.0)
    g[[0, 17, 150, 299]] = [np.nan, np.inf, -np.inf, np.nan]
    with pytest.warns(RuntimeWarning, match="dropped 4 non-finite"):
        out = refine(g)
    assert out.report.dropped_nonfinite == 4
    np.testing.assert_allclose(out.shape, 1.0 - np.arange(300) / 299, atol=1e-15)


def test_trimming_ignores_the_ends():
    g = np.full(100, 1.0)
    g[:3] = 1000.0
    g[-2:] = 0.001
    out = refine(g, trim_start=3, trim_end=2, tau=0.01)
    assert out.report.trimmed == 5
    np.testing.assert_allclose(out.shape, 1.0 - np.arange(100) / 99, atol=1e-15)


def test_long_logs_are_resampled_to_a_grid():
    rng = np.random.default_rng(0)
    T = 20_000
    t = np.arange(T)
    g = (1.0 + 4.0 * np.exp(-t / 1500.0)) * rng.lognormal(0.0, 0.2, T)
    full = refine(g)
    coarse = refine(g, max_points=2000)
    assert coarse.report.points == 2000 and coarse.report.pilot_steps == T
    assert coarse.schedule.horizon == T
    # bin medians of 20% noise move the smoothed norms by ~1%, the l2 shape by ~2-3%
    assert np.abs(coarse.schedule(t) - full.schedule(t)).max() < 0.05
    const = refine(np.full(T, 3.0), max_points=1000)
    np.testing.assert_allclose(const.schedule(t), 1.0 - t / T, atol=1e-14)


def test_empty_bins_are_filled_from_their_neighbours():
    g = np.full(1003, 2.0)
    g[500:530] = np.nan
    with pytest.warns(RuntimeWarning, match="dropped 30"):
        out = refine(g, max_points=100)
    assert out.report.points == 100 and out.report.dropped_nonfinite == 30
    np.testing.assert_allclose(out.shape, 1.0 - np.arange(100) / 99, atol=1e-15)
    np.testing.assert_array_equal(out.raw, np.full(100, 2.0))


def test_read_norms_sorts_by_step(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("step,grad_norm_l2,grad_norm_l1,loss\n1,2.0,5.0,\n0,1.0,4.0,0.5\n2,,6.0,\n")
    np.testing.assert_array_equal(read_norms(p, "l1"), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(read_norms(p, "l2")[:2], [1.0, 2.0])
    assert np.isnan(read_norms(p, "l2")[2])
    with pytest.raises(ValueError, match="grad_norm_l2"):
        (tmp_path / "bad.csv").write_text("step,x\n0,1\n")
        read_norms(tmp_path / "bad.csv", "l2")


@pytest.mark.parametrize(
    ("norms", "kwargs", "match"),
    [
        ([], {}, "at least 2"),
        ([1.0], {}, "at least 2"),
        ([np.nan, np.nan, np.nan], {}, "no finite"),
        ([1.0, -0.5, 1.0], {}, ">= 0"),
        ([[1.0, 2.0]], {}, "1-D"),
        (["a", "b"], {}, "real numbers"),
        ([1.0, 2.0, 3.0], {"tau": 0.0}, "tau"),
        ([1.0, 2.0, 3.0], {"tau": 1.0}, "tau"),
        ([1.0, 2.0, 3.0], {"tau": -0.1}, "tau"),
        ([1.0, 2.0, 3.0], {"tau": float("nan")}, "tau"),
        ([1.0, 2.0, 3.0], {"norm": "l3"}, "norm"),
        ([1.0, 2.0, 3.0], {"steps": 0}, "steps"),
        ([1.0, 2.0, 3.0], {"trim_start": 2}, "after trimming"),
        ([1.0, 2.0, 3.0], {"max_points": 1}, "max_points"),
        ([0.0, 0.0, 1.0], {}, "norms > 0"),
    ],
)
def test_bad_input(norms, kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=match):
            refine(norms, **kwargs)
