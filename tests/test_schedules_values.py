"""Schedules are immutable values: defaults as documented, equal schedules hash equal (usable
as dictionary keys), and fields cannot be reassigned."""

from __future__ import annotations

import dataclasses

import pytest

from lrlab.schedules import (
    Constant,
    Cosine,
    CosinePhases,
    Exponential,
    InverseSqrt,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Step,
    Warmup,
    WarmupStableDecay,
    join,
    multiply,
    scale,
)

EXAMPLES = [
    Constant(), Step(30), MultiStep((10, 20)), Exponential(0.9), InverseSqrt(10.0), Linear(100),
    Polynomial(100, 2.0), Cosine(100), CosinePhases((10, 20), (1.0, 0.5), (0.5, 0.0)),
    OneCycle(100), WarmupStableDecay(100, 10, 20), Warmup(Cosine(100), 10),
    join([Linear(10), Constant()], [10]), multiply(Linear(10), Cosine(10)), scale(Linear(10), 2.0),
]


def test_step_divides_by_ten_by_default() -> None:
    s = Step(30)
    assert s.gamma == 0.1
    assert s(29) == 1.0 and s(30) == pytest.approx(0.1) and s(60) == pytest.approx(0.01)


@pytest.mark.parametrize("s", EXAMPLES, ids=lambda s: s.name)
def test_equal_schedules_hash_equal_and_are_frozen(s) -> None:
    twin = type(s).from_dict(s.to_dict())
    assert twin == s and hash(twin) == hash(s)
    assert {s: 1}[twin] == 1
    for field in [f.name for f in dataclasses.fields(s)] or ["steps"]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(s, field, getattr(s, field, None))
