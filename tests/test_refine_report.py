"""What the refinement report counts and the errors it names: dropped and trimmed entries
(every entry of the log is kept, dropped or trimmed), and the first grid point whose smoothed
norm is zero."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from lrlab.refine import refine


def test_dropped_and_trimmed_entries_are_counted_apart() -> None:
    norms = np.array([5.0, 4, 3, 2, 1, math.nan, 1, 1, math.inf, 1, 1, 9])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rep = refine(norms, trim_start=2, trim_end=1).report
    assert rep.dropped_nonfinite == 2 and rep.trimmed == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rep = refine(norms).report
    assert rep.dropped_nonfinite == 2 and rep.trimmed == 0
    assert refine(norms[:5], trim_end=2).report.trimmed == 2


@pytest.mark.parametrize("norms, point", [([1.0, 0.0, 1.0, 0.0], 1), ([1.0, 2.0, 0.0, 1.0], 2)])
def test_a_zero_norm_is_named_by_its_grid_point(norms, point) -> None:
    with pytest.raises(ValueError, match=f"smoothed norm is 0 at grid point {point};"):
        refine(norms)


def test_report_is_immutable() -> None:
    rep = refine(np.ones(10)).report
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.steps = 5  # type: ignore[misc]


@pytest.mark.parametrize("m", [2, 3, 10, 11, 57])
@pytest.mark.parametrize("tau", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_window_is_the_documented_odd_width(m, tau) -> None:
    norms = 1.0 + np.arange(m, dtype=np.float64) % 3
    rep = refine(norms, tau=tau).report
    assert rep.window == 2 * math.floor(tau * m / 2) + 1
    assert rep.window % 2 == 1 and rep.window <= m
