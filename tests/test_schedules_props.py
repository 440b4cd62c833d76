"""Property tests (hypothesis) for every schedule: range, monotonicity where claimed,
continuity at joins, array == scalar evaluation, and dict round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.schedules import (
    Constant,
    Cosine,
    CosinePhases,
    Exponential,
    FromArray,
    InverseSqrt,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Schedule,
    Step,
    Warmup,
    WarmupStableDecay,
    join,
    multiply,
    scale,
)

FAST = settings(max_examples=40, deadline=None, derandomize=True)
steps = st.integers(1, 300)
unit = st.floats(0.0, 1.0)
gamma = st.floats(0.01, 1.0)


@st.composite
def multistep(draw) -> MultiStep:
    ms = sorted(draw(st.sets(st.integers(1, 300), min_size=1, max_size=5)))
    return MultiStep(tuple(ms), draw(gamma))


@st.composite
def phases(draw, continuous: bool = False) -> CosinePhases:
    n = draw(st.integers(1, 4))
    lengths = tuple(draw(st.integers(1, 80)) for _ in range(n))
    hi, lo = [], []
    top = 1.0
    for _ in range(n):
        h = top if continuous else draw(unit)
        low = draw(st.floats(0.0, h))
        hi.append(h)
        lo.append(low)
        top = low
    return CosinePhases(lengths, tuple(hi), tuple(lo))


@st.composite
def one_cycle(draw) -> OneCycle:
    T = draw(st.integers(20, 300))
    three = draw(st.booleans())
    pct = draw(st.floats(0.15, 0.45 if three else 0.9))
    return OneCycle(
        T,
        pct,
        draw(st.sampled_from(["cos", "linear"])),
        draw(st.floats(1.0, 100.0)),
        draw(st.floats(1.0, 1e4)),
        three,
    )


@st.composite
def wsd(draw) -> WarmupStableDecay:
    T = draw(st.integers(2, 300))
    W = draw(st.integers(0, T - 1))
    D = draw(st.integers(1, T - W))
    return WarmupStableDecay(
        T,
        W,
        D,
        draw(st.sampled_from(["linear", "cosine", "sqrt"])),
        draw(unit),
        draw(st.floats(0.0, 0.99)),
    )


decays = st.one_of(
    st.builds(Step, st.integers(1, 50), gamma),
    multistep(),
    st.builds(Exponential, gamma),
    st.builds(InverseSqrt, st.floats(0.01, 100.0)),
    st.builds(Linear, steps),
    st.builds(Polynomial, steps, st.floats(0.1, 5.0), unit),
    st.builds(Cosine, steps, unit),
)
leaves = st.one_of(
    st.just(Constant()),
    decays,
    phases(),
    one_cycle(),
    wsd(),
    st.builds(
        FromArray, st.lists(unit, min_size=2, max_size=20).map(tuple), st.one_of(st.none(), steps)
    ),
)
bounded = st.one_of(
    leaves,
    st.builds(Warmup, leaves, st.integers(1, 100), st.floats(0.0, 0.99)),
    st.builds(lambda a, b, n: join([a, b], [n]), leaves, leaves, st.integers(1, 300)),
    st.builds(lambda a, b: multiply(a, b), leaves, leaves),
)
anything = st.one_of(bounded, st.builds(scale, bounded, st.floats(0.01, 100.0)))


def grid(s: Schedule) -> np.ndarray:
    h = s.horizon or 300
    return np.arange(h + 20)


@FAST
@given(bounded)
def test_range_is_zero_to_one(s: Schedule) -> None:
    v = s(grid(s))
    assert np.all(np.isfinite(v)) and np.all(v >= 0.0) and np.all(v <= 1.0 + 1e-12)


@FAST
@given(anything)
def test_array_equals_scalar_evaluation(s: Schedule) -> None:
    ts = grid(s)
    arr = s(ts)
    assert arr.shape == ts.shape and arr.dtype == np.float64
    for t in ts[:: max(1, len(ts) // 40)]:
        assert s(int(t)) == arr[t]
    assert s(ts.reshape(2, -1) if len(ts) % 2 == 0 else ts[:, None]).size == ts.size


@FAST
@given(anything)
def test_dict_round_trip_through_json(s: Schedule) -> None:
    d = json.loads(json.dumps(s.to_dict()))
    back = Schedule.from_dict(d)
    assert back == s and repr(back) == repr(s)
    np.testing.assert_array_equal(back(grid(s)), s(grid(s)))


with_horizon = anything.filter(lambda s: s.horizon is not None)
without_horizon = anything.filter(lambda s: s.horizon is None)


@FAST
@given(with_horizon)
def test_clamped_past_horizon(s: Schedule) -> None:
    h = s.horizon
    tail = s(np.arange(h, h + 30))
    assert np.all(tail == tail[0])
    assert s(h + 10**6) == tail[0] and s(h + 0.5) == tail[0]
    np.testing.assert_array_equal(s.values(), s(np.arange(h)))


@FAST
@given(without_horizon)
def test_without_horizon_values_need_a_length(s: Schedule) -> None:
    with pytest.raises(ValueError, match="has no horizon: pass steps"):
        s.values()
    np.testing.assert_array_equal(s.values(50), s(np.arange(50)))


@FAST
@given(leaves, leaves, st.integers(1, 100), st.floats(0.01, 100.0))
def test_horizon_of_compositions(a: Schedule, b: Schedule, n: int, f: float) -> None:
    ha, hb = a.horizon, b.horizon
    assert Warmup(a, n).horizon == (None if ha is None else n + ha)
    assert join([a, b], [n]).horizon == (None if hb is None else n + hb)
    assert multiply(a, b).horizon == (None if None in (ha, hb) else max(ha, hb))
    assert scale(a, f).horizon == ha


@FAST
@given(decays)
def test_decays_are_non_increasing(s: Schedule) -> None:
    assert np.all(np.diff(s(grid(s))) <= 1e-15)


@FAST
@given(decays, st.integers(1, 100), st.floats(0.0, 0.99))
def test_warmup_rises_then_follows_schedule(s: Schedule, W: int, a: float) -> None:
    w = Warmup(s, W, a)
    ramp = w(np.arange(W + 1))
    assert np.all(np.diff(ramp) >= -1e-15)
    assert ramp[0] == a * s(0) and ramp[-1] == s(0)
    assert np.all(np.diff(w(np.arange(W, W + 300))) <= 1e-15)
    assert abs(w(W - 1e-9) - w(W)) < 1e-8  # continuous at the end of the ramp


@FAST
@given(wsd())
def test_wsd_shape_and_continuity(s: WarmupStableDecay) -> None:
    v = s(np.arange(s.steps + 5))
    W, k = s.warmup, s.steps - s.decay
    assert np.all(np.diff(v[: W + 1]) >= -1e-15)
    assert np.all(v[W:k] == 1.0)
    assert np.all(np.diff(v[k:]) <= 1e-15)
    for b in {W, k} - {0}:
        assert abs(s(b - 1e-9) - s(b)) < 1e-4


@FAST
@given(one_cycle())
def test_one_cycle_up_then_down(s: OneCycle) -> None:
    v = s(np.arange(s.steps + 5))
    peak = int(np.argmax(v))
    assert v[peak] <= 1.0 + 1e-15 and abs(v[0] - 1.0 / s.div_factor) < 1e-15
    if not s.three_phase:
        assert np.all(np.diff(v[: peak + 1]) >= -1e-15)
        assert np.all(np.diff(v[peak:]) <= 1e-15)


@FAST
@given(phases(continuous=True))
def test_phases_with_matching_ranges_are_continuous(s: CosinePhases) -> None:
    for b in s.phase_ends[:-1]:
        assert abs(s(b - 1e-9) - s(b)) < 1e-6
    assert np.all(np.diff(s(np.arange(s.steps + 3))) <= 1e-15)


@FAST
@given(
    st.integers(1, 200),
    st.floats(1.0, 4.0),
    st.floats(0.05, 1.0),
    st.integers(1, 200),
    st.floats(0.0, 1.0),
)
def test_join_continuous_when_pieces_meet(L1: int, p: float, m: float, L2: int, q: float) -> None:
    s = join([Polynomial(L1, p, s_min=m), scale(Cosine(L2, s_min=q), m)], [L1])
    assert abs(s(L1 - 1e-9) - s(L1)) < 1e-6
    assert s(L1) == m
    assert np.all(np.diff(s(np.arange(L1 + L2 + 5))) <= 1e-15)
