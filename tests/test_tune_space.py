import math

import numpy as np
import pytest

from lrlab.tune import LogUniform, edge_side, extend_edge, grid_factor, log_grid


def test_log_grid_by_factor_and_per_decade():
    np.testing.assert_allclose(log_grid(0.125, 2, factor=2), [0.125, 0.25, 0.5, 1, 2])
    np.testing.assert_allclose(log_grid(1e-3, 1, per_decade=1), [1e-3, 1e-2, 1e-1, 1])
    g = log_grid(1e-2, 1, per_decade=4)
    assert len(g) == 9 and math.isclose(g[-1], 1.0)
    np.testing.assert_allclose(g[1:] / g[:-1], 10**0.25)
    np.testing.assert_allclose(log_grid(1, 3, factor=2), [1, 2])  # hi off the grid
    assert grid_factor([4, 1, 2]) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lo": 0.0, "hi": 1.0, "factor": 2}, "lo"),
        ({"lo": 1.0, "hi": 0.5, "factor": 2}, "hi"),
        ({"lo": 0.1, "hi": 1.0, "factor": 1.0}, "factor"),
        ({"lo": 0.1, "hi": 1.0}, "exactly one"),
        ({"lo": 0.1, "hi": 1.0, "factor": 2, "per_decade": 3}, "exactly one"),
        ({"lo": 0.1, "hi": 1.0, "per_decade": 0}, "per_decade"),
        ({"lo": float("nan"), "hi": 1.0, "factor": 2}, "finite"),
    ],
)
def test_log_grid_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_grid(**kwargs)


def test_grid_factor_rejects_non_geometric():
    with pytest.raises(ValueError, match="geometric"):
        grid_factor([1, 2, 3])


def test_log_uniform_is_seeded_and_in_bounds():
    space = LogUniform({"lr": (1e-3, 1.0), "weight_decay": (1e-6, 1e-2)})
    a, b, c = space.sample(200, seed=1), space.sample(200, seed=1), space.sample(200, seed=2)
    assert a == b and a != c
    lr = np.array([p["lr"] for p in a])
    wd = np.array([p["weight_decay"] for p in a])
    assert lr.min() >= 1e-3 and lr.max() <= 1.0 and wd.min() >= 1e-6 and wd.max() <= 1e-2
    # log-uniform: the mean of log10(lr) is near the middle of [-3, 0]
    assert abs(np.log10(lr).mean() + 1.5) < 0.15
    assert abs(np.log10(wd).mean() + 4.0) < 0.2


@pytest.mark.parametrize(
    "bounds, match",
    [
        ({}, "non-empty"),
        ({"momentum": (0.1, 0.9)}, "unknown parameter"),
        ({"lr": (0.0, 1.0)}, "lo"),
        ({"lr": (1.0, 0.1)}, "hi"),
        ({"lr": (0.1,)}, "pair"),
    ],
)
def test_log_uniform_rejects_bad_bounds(bounds, match):
    with pytest.raises(ValueError, match=match):
        LogUniform(bounds)


def test_edge_side():
    grid = [0.1, 0.2, 0.4, 0.8]
    assert edge_side(grid, [4, 3, 2, 1]) == "high"
    assert edge_side(grid, [1, 2, 3, 4]) == "low"
    assert edge_side(grid, [3, 1, 2, 4]) is None
    assert edge_side(grid, [3, 2, 1, float("nan")]) is None  # diverged counts as +inf
    assert edge_side(grid, [float("nan")] * 4) == "low"  # everything diverged: go lower
    assert edge_side([0.8, 0.1, 0.4, 0.2], [1, 4, 2, 3]) == "high"  # order does not matter
    with pytest.raises(ValueError, match="same length"):
        edge_side(grid, [1, 2])
    with pytest.raises(ValueError, match="grid"):  # no point at all: no edge to speak of
        edge_side([], [])
    assert edge_side([0.1], [1.0]) is None  # a single point has no inside


def test_extend_edge_extends_in_the_direction_of_the_best():
    np.testing.assert_allclose(extend_edge([0.1, 0.2, 0.4], [3, 2, 1]), [0.8, 1.6])
    np.testing.assert_allclose(
        extend_edge([0.1, 0.2, 0.4], [1, 2, 3], points=3), [0.0125, 0.025, 0.05]
    )
    assert extend_edge([0.1, 0.2, 0.4], [2, 1, 3]).size == 0
    with pytest.raises(ValueError, match="points"):
        extend_edge([0.1, 0.2], [2, 1], points=0)


def test_extend_edge_continues_the_outermost_step_of_a_non_geometric_grid():
    # low edge: the step 0.01 -> 0.03 (factor 3) continued downwards
    np.testing.assert_allclose(extend_edge([0.01, 0.03, 0.05], [1, 2, 3]), [0.01 / 9, 0.01 / 3])
    # high edge: the step 0.03 -> 0.05 (factor 5/3) continued upwards
    np.testing.assert_allclose(
        extend_edge([0.01, 0.03, 0.05], [3, 2, 1]), [0.05 * 5 / 3, 0.05 * 25 / 9]
    )
    np.testing.assert_allclose(extend_edge([0.5], [np.inf]), [0.125, 0.25])  # diverged: go lower


def test_grid_size_counts_what_log_grid_gives_without_building_it() -> None:
    from lrlab.tune.space import grid_size

    assert grid_size(0.125, 2, factor=2) == 5 == len(log_grid(0.125, 2, factor=2))
    assert grid_size(1e-3, 1.0, per_decade=4) == len(log_grid(1e-3, 1.0, per_decade=4))
    # the limit is inclusive: a grid of exactly max_points points is built
    assert len(log_grid(0.125, 2, factor=2, max_points=5)) == 5
    with pytest.raises(ValueError, match="over the limit of 4"):
        log_grid(0.125, 2, factor=2, max_points=4)


def test_log_uniform_sample_is_the_documented_draw():
    """exp of uniform draws in [log lo, log hi] from ``numpy.random.default_rng(seed)``, seed 0
    by default, one column per parameter in the order given."""
    space = LogUniform({"lr": (1e-3, 1.0), "weight_decay": (1e-5, 1e-1)})
    rng = np.random.default_rng(0)
    lr = np.exp(rng.uniform(np.log(1e-3), np.log(1.0), size=4))
    wd = np.exp(rng.uniform(np.log(1e-5), np.log(1e-1), size=4))
    got = space.sample(4)
    assert got == space.sample(4, seed=0)
    np.testing.assert_allclose([p["lr"] for p in got], lr, rtol=1e-15)
    np.testing.assert_allclose([p["weight_decay"] for p in got], wd, rtol=1e-15)
