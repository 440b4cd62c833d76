"""Schedule arguments at their limits: default horizons, one-step warm-ups, values normalised
to plain Python numbers (so every schedule serialises to JSON), and out-of-range values
rejected by name."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lrlab.schedules import (
    Constant,
    CosinePhases,
    Exponential,
    FromArray,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Schedule,
    Step,
    Warmup,
    WarmupStableDecay,
)


def test_from_array_spans_its_points_by_default() -> None:
    s = FromArray([1.0, 0.5, 0.0])
    assert s.horizon == 2
    np.testing.assert_array_equal(s(np.arange(4)), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(FromArray([1.0, 0.5, 0.0], steps=4)(np.arange(5)),
                                  [1.0, 0.75, 0.5, 0.25, 0.0])


@pytest.mark.parametrize("start", [0.0, 0.25])
def test_one_step_warmups_start_at_start(start) -> None:
    wsd = WarmupStableDecay(10, 1, 3, start=start)
    np.testing.assert_array_equal(wsd(np.arange(3)), [start, 1.0, 1.0])
    w = Warmup(Linear(10), 1, start=start)
    np.testing.assert_array_equal(w(np.arange(3)), [start, 1.0, 0.9])
    assert WarmupStableDecay(10, 0, 3)(0) == 1.0  # no warm-up: the stable value at once


@pytest.mark.parametrize(
    "s",
    [Step(np.int64(30), np.float64(0.5)), Exponential(np.float32(0.5)),
     Linear(np.int64(10)), MultiStep((np.int64(3), np.int64(5)), np.float64(0.5))],
    ids=lambda s: s.name,
)
def test_numpy_numbers_are_stored_as_python_numbers(s) -> None:
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        for x in v if isinstance(v, tuple) else (v,):
            assert type(x) in (int, float), (f.name, type(x))
    back = Schedule.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and repr(back) == repr(s)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: OneCycle(100, pct_start=1.0), "pct_start"),
        (lambda: OneCycle(100, pct_start=0.0), "pct_start"),
        (lambda: CosinePhases((10,), (-0.5,), (0.0,)), "s_max"),
        (lambda: CosinePhases((10,), (0.5,), (-0.1,)), "s_min"),
        (lambda: Warmup(Constant(), 5, start=1.0), "start"),
        (lambda: Step(0), "step_size"),
        (lambda: Polynomial(0), "steps"),
        (lambda: Linear(0), "steps"),
    ],
)
def test_out_of_range_arguments_are_rejected_by_name(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()
