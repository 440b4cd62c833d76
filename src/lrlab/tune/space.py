"""Search spaces: log grids, seeded log-uniform random search, and the edge rule.

Learning rates are searched on a log scale: a grid with factor ``f`` is ``lo * f**k``; a grid
with ``n`` points per decade has factor ``10 ** (1 / n)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lrlab._checks import check_array, check_int, check_real

# RunConfig fields a random search may draw (each log-uniform).
RANDOM_PARAMS = ("lr", "weight_decay")


def _grid_factor_and_size(lo, hi, factor, per_decade) -> tuple[float, float, int]:
    lo = check_real("lo", lo, 0.0, lo_open=True)
    hi = check_real("hi", hi, lo)
    if (factor is None) == (per_decade is None):
        raise ValueError("give exactly one of factor or per_decade")
    if factor is not None:
        f = check_real("factor", factor, 1.0, lo_open=True)
    else:
        f = 10.0 ** (1.0 / check_int("per_decade", per_decade, lo=1))
    n = math.floor(math.log(hi / lo) / math.log(f) + 1e-9) + 1
    return lo, f, n


def grid_size(
    lo: float, hi: float, *, factor: float | None = None, per_decade: int | None = None
) -> int:
    """The number of points ``log_grid`` gives for these arguments, without building it.

    Example: ``grid_size(0.125, 2, factor=2)`` -> ``5``.
    """
    return _grid_factor_and_size(lo, hi, factor, per_decade)[2]


def log_grid(
    lo: float,
    hi: float,
    *,
    factor: float | None = None,
    per_decade: int | None = None,
    max_points: int | None = None,
) -> np.ndarray:
    """Geometric grid ``lo * f**k`` for k = 0, 1, ... while the value is <= hi (1e-9 relative).

    Give exactly one of ``factor`` (> 1) or ``per_decade`` (points per factor 10, f = 10**(1/n)).
    The first point is always ``lo``; ``hi`` is included when it lies on the grid. A grid of
    more than ``max_points`` points is refused (ValueError) before it is built.

    Example: ``log_grid(0.125, 2, factor=2)`` -> ``[0.125, 0.25, 0.5, 1., 2.]``;
    ``log_grid(1e-3, 1, per_decade=1)`` -> ``[0.001, 0.01, 0.1, 1.]``.
    """
    lo, f, n = _grid_factor_and_size(lo, hi, factor, per_decade)
    if max_points is not None and n > max_points:
        raise ValueError(f"the grid would have {n:,} points, over the limit of {max_points:,}")
    return lo * f ** np.arange(n, dtype=np.float64)


def grid_factor(grid: Sequence[float]) -> float:
    """The common ratio of a geometric grid (ValueError if the grid is not geometric).

    Example: ``grid_factor([0.5, 1, 2])`` -> ``2.0``.
    """
    g = np.sort(check_array("grid", grid, min_len=2))
    if g[0] <= 0:
        raise ValueError("grid values must be > 0")
    ratios = g[1:] / g[:-1]
    if not np.allclose(ratios, ratios[0], rtol=1e-6):
        raise ValueError("grid is not geometric (ratios of neighbours differ)")
    return float(ratios[0])


class LogUniform:
    """Independent log-uniform draws for several hyperparameters.

    ``bounds`` maps a name in ``RANDOM_PARAMS`` to ``(lo, hi)`` with 0 < lo <= hi;
    ``log x ~ Uniform(log lo, log hi)``. ``sample(n, seed)`` is a pure function of
    (bounds, n, seed), so a study can rebuild its points exactly.

    Example: ``LogUniform({"lr": (1e-3, 1.0), "weight_decay": (1e-6, 1e-2)}).sample(4, seed=0)``.
    """

    def __init__(self, bounds: Mapping[str, tuple[float, float]]) -> None:
        if not isinstance(bounds, Mapping) or not bounds:
            raise ValueError("bounds must be a non-empty mapping name -> (lo, hi)")
        clean: dict[str, tuple[float, float]] = {}
        for name in sorted(bounds):
            if name not in RANDOM_PARAMS:
                raise ValueError(
                    f"bounds: unknown parameter {name!r}; allowed: {', '.join(RANDOM_PARAMS)}"
                )
            pair = bounds[name]
            if not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"bounds[{name!r}] must be a pair (lo, hi), got {pair!r}")
            lo = check_real(f"bounds[{name!r}] lo", pair[0], 0.0, lo_open=True)
            hi = check_real(f"bounds[{name!r}] hi", pair[1], lo)
            clean[name] = (lo, hi)
        self.bounds = clean

    def sample(self, n: int, seed: int = 0) -> list[dict[str, float]]:
        """``n`` points, each a dict name -> value, from ``numpy.random.default_rng(seed)``."""
        n = check_int("n", n, lo=1)
        seed = check_int("seed", seed, lo=0)
        rng = np.random.default_rng(seed)
        cols = {
            name: np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
            for name, (lo, hi) in self.bounds.items()
        }
        return [{name: float(cols[name][i]) for name in cols} for i in range(n)]

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [lo, hi] for k, (lo, hi) in self.bounds.items()}


def edge_side(grid: Sequence[float], losses: Sequence[float]) -> str | None:
    """Where the best (lowest) loss sits: ``"low"``/``"high"`` edge of the grid, or None inside.

    Non-finite losses (diverged runs) count as +inf; ties go to the smaller value. If every
    loss is non-finite the grid is too high everywhere, so the answer is ``"low"``. A single
    point has no inside: the answer is None.

    Example: ``edge_side([0.1, 0.2, 0.4], [3., 2., 1.])`` -> ``"high"``.
    """
    g = check_array("grid", grid, min_len=1)
    v = np.array(losses, dtype=np.float64)
    if v.shape != g.shape:
        raise ValueError(f"losses must have the same length as grid ({g.size}), got {v.size}")
    v = np.where(np.isfinite(v), v, np.inf)
    order = np.argsort(g)
    v = v[order]
    if np.all(np.isinf(v)):
        return "low"
    if g.size == 1:
        return None
    best = int(np.argmin(v))
    if best == 0:
        return "low"
    if best == g.size - 1:
        return "high"
    return None


def extend_edge(grid: Sequence[float], losses: Sequence[float], *, points: int = 2) -> np.ndarray:
    """The edge rule: if the best loss is on an edge, the ``points`` new grid values past it.

    A best value at the high edge ``g_max`` adds ``g_max * f**k`` (k = 1..points), at the low
    edge ``g_min / f**k``, where f is the ratio of the two grid values at that edge: the
    grid's factor when it is geometric, and for any other grid its outermost step, continued
    (a single point uses f = 2). Returns an empty array when the best value is inside the grid
    (nothing to extend).

    Example: ``extend_edge([0.1, 0.2, 0.4], [3., 2., 1.])`` -> ``[0.8, 1.6]``;
    ``extend_edge([0.01, 0.03, 0.05], [1., 2., 3.])`` -> ``[0.00333, 0.00111]`` (f = 3).
    """
    points = check_int("points", points, lo=1)
    side = edge_side(grid, losses)
    if side is None:
        return np.zeros(0)
    g = np.sort(np.asarray(grid, dtype=np.float64))
    if g.size == 1:
        f = 2.0
    else:
        f = float(g[-1] / g[-2]) if side == "high" else float(g[1] / g[0])
    k = np.arange(1, points + 1, dtype=np.float64)
    if side == "high":
        return g[-1] * f**k
    return np.sort(g[0] / f**k)
