"""refine's details a user meets on long logs and bad input: per-bin medians, the default
binning, the limits of its arguments, where its warning points, its frozen result."""

import dataclasses
import math

import numpy as np
import pytest

from lrlab.refine import refine


def test_long_logs_are_binned_to_the_median_of_each_bin():
    # bins of 3 and 4 unsorted values: the medians must be those of np.median
    rng = np.random.default_rng(0)
    for n, m in ((12, 4), (12, 3), (14, 4)):
        norms = rng.uniform(0.5, 2.0, n)
        out = refine(norms, max_points=m, tau=0.01)
        bins = (np.arange(n) * m) // n
        want = [np.median(norms[bins == b]) for b in range(m)]
        np.testing.assert_allclose(out.raw, want, rtol=0, atol=0)


def test_max_points_default_and_limits():
    norms = np.ones(100_001)
    norms[::2] = 2.0
    assert refine(norms, tau=1e-4).raw.size == 100_000  # binned by default past 100_000
    assert refine(norms[:100_000], tau=1e-4).raw.size == 100_000  # not binned at the limit
    assert refine([1.0, 2.0, 1.0, 2.0], max_points=2).raw.size == 2  # 2 is allowed
    with pytest.raises(ValueError, match="max_points"):
        refine([1.0, 2.0, 1.0], max_points=1)
    with pytest.raises(ValueError, match="steps"):
        refine([1.0, 2.0, 1.0], steps=0)


def test_a_negative_norm_is_named_by_its_first_index():
    with pytest.raises(ValueError, match=r"entry 2 is -2"):
        refine([1.0, 0.0, -2.0, -3.0, 1.0])


def test_the_non_finite_warning_points_at_the_caller():
    with pytest.warns(RuntimeWarning, match="dropped 1 non-finite") as rec:
        refine([1.0, math.nan, 1.0, 2.0])
    assert rec[0].filename == __file__


def test_the_result_is_frozen():
    out = refine([2.0, 1.0, 1.0, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.shape = None
