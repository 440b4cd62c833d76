"""Schedules are immutable values: defaults as documented, equal schedules hash equal (usable
as dictionary keys), fields cannot be reassigned, compositions built from lists equal those
built from tuples, and the readable repr (long value lists shortened)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrlab.schedules import (
    Constant,
    Cosine,
    CosinePhases,
    Exponential,
    FromArray,
    InverseSqrt,
    Join,
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
    FromArray((1.0, 0.5, 0.0), steps=4),
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


@pytest.mark.parametrize("s", EXAMPLES, ids=lambda s: s.name)
def test_repr_names_the_schedule_and_its_fields(s) -> None:
    text = repr(s)
    assert text.startswith(f"{s.name}(") and text.endswith(")")
    for f in dataclasses.fields(s):
        assert f"{f.name}=" in text


def test_repr_shortens_long_value_lists() -> None:
    assert repr(FromArray((1.0, 0.5, 0.25, 0.2, 0.1, 0.0))) == (
        "from_array(points=[1, 0.5, 0.25, 0.2, 0.1, 0], steps=5)")
    assert repr(FromArray((1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.0))) == (
        "from_array(points=[1, 0.5, 0.25, ... (7 items)], steps=6)")
    assert repr(join([Linear(10), Constant()], [10])) == (
        "join(schedules=[linear(steps=10), constant()], boundaries=[10])")


def test_a_join_built_from_lists_is_the_same_value() -> None:
    parts = [Linear(10), Constant()]
    a = Join(parts, np.array([10]))  # type: ignore[arg-type]
    b = Join(tuple(parts), (10,))
    assert a == b and hash(a) == hash(b)
    assert type(a.schedules) is tuple and type(a.boundaries) is tuple
    assert type(a.boundaries[0]) is int
    assert Join.from_dict(a.to_dict()) == b


def test_inverse_sqrt_default_time_scale_is_one_step() -> None:
    s = InverseSqrt()
    assert s.tau == 1.0
    assert s(0) == 1.0 and s(3) == 0.5 and s(1) == pytest.approx(2**-0.5, rel=1e-15)


def test_a_join_of_three_pieces_ends_after_its_last_piece() -> None:
    s = join([Constant(), Linear(10), Linear(4)], [5, 12])
    assert s.horizon == 16  # the last boundary plus the last piece's horizon
    np.testing.assert_array_equal(s.phase_ends, [5, 12, 16])
    np.testing.assert_array_equal(s(np.array([4, 5, 11, 12, 15, 16, 30])),
                                  [1.0, 1.0, 0.4, 1.0, 0.25, 0.0, 0.0])
    assert join([Constant(), Linear(10), Constant()], [5, 12]).horizon is None


def test_polynomial_defaults_to_linear_decay_to_zero() -> None:
    s = Polynomial(8)
    assert (s.power, s.s_min) == (1.0, 0.0)
    np.testing.assert_array_equal(s(np.arange(10)), Linear(8)(np.arange(10)))
