"""Schedule arguments at their limits: default horizons, one-step warm-ups, values normalised
to plain Python numbers (so every schedule serialises to JSON), and out-of-range values
rejected by name."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from lrlab.schedules import (
    Constant,
    Cosine,
    CosinePhases,
    Exponential,
    FromArray,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Scale,
    Schedule,
    Step,
    Warmup,
    WarmupStableDecay,
    last_completed_phase_end,
    sgdr,
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
     Linear(np.int64(10)), MultiStep((np.int64(3), np.int64(5)), np.float64(0.5)),
     OneCycle(np.int64(100), np.float64(0.25), div_factor=np.float64(10.0),
              final_div_factor=np.float64(100.0)),
     CosinePhases([np.int64(10), 20], np.array([1.0, 0.5]), [np.float64(0.5), 0.0]),
     Warmup(Linear(10), np.int64(3), np.float64(0.25)),
     WarmupStableDecay(np.int64(100), np.int64(10), np.int64(20), s_min=np.float64(0.1),
                       start=np.float64(0.2))],
    ids=lambda s: s.name,
)
def test_numpy_numbers_are_stored_as_python_numbers(s) -> None:
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        for x in v if isinstance(v, tuple) else (v,):
            if not isinstance(x, Schedule):
                assert type(x) in (int, float, str, bool), (f.name, type(x))
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
        (lambda: FromArray((1.0, 0.5), steps=0), r"steps must be an integer in \[1, inf\)"),
        (lambda: FromArray((1.0, -0.5, 0.0)), "points must be >= 0; entry 1 is -0.5"),
        (lambda: Scale("linear", 2.0), "schedule\\[0\\] must be a Schedule"),
        (lambda: MultiStep((2, 2)), r"milestones must be strictly increasing, got \(2, 2\)"),
        (lambda: Polynomial(10, s_min=1.5), r"s_min must be in \[0, 1\]"),
        (lambda: Polynomial(10, s_min=-0.1), r"s_min must be in \[0, 1\]"),
        (lambda: MultiStep((2,), gamma=0.0), r"gamma must be in \(0, 1\]"),
        (lambda: Cosine(0), r"steps must be an integer in \[1, inf\)"),
        (lambda: OneCycle(100, final_div_factor=0.5), r"final_div_factor must be in \[1, inf\)"),
        # pct_start * T = 1 puts the peak on step 0: a warm-up phase of length 0
        (lambda: OneCycle(100, pct_start=0.01), r"pct_start must be in \(0.01, 1\)"),
        (lambda: OneCycle(100, pct_start=0.6, three_phase=True),
         r"pct_start must be in \(0.01, 0.505\) for steps=100 so that every phase has positive "
         r"length, got 0.6"),
        (lambda: OneCycle(100, div_factor=0.5), r"div_factor must be in \[1, inf\)"),
        (lambda: WarmupStableDecay(100, 10, 20, s_min=1.5), r"s_min must be in \[0, 1\]"),
        (lambda: sgdr(10, cycles=0), r"cycles must be an integer in \[1, inf\)"),
        # the error names the first phase whose range is inverted, not an earlier empty one
        (lambda: CosinePhases((10, 10), (0.5, 0.5), (0.5, 0.8)),
         r"s_min\[1\] must be in \[0, s_max\[1\]=0.5\], got 0.8"),
    ],
)
def test_out_of_range_arguments_are_rejected_by_name(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_steps_must_be_finite() -> None:
    # one non-finite step among finite ones is enough
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="t must be finite"):
            Linear(10)(np.array([0.0, bad, 3.0]))


def test_from_dict_needs_a_dict_with_a_name() -> None:
    for bad in (None, ["name"], {"steps": 10}):
        with pytest.raises(ValueError, match="a schedule dict needs a 'name' key"):
            Schedule.from_dict(bad)  # type: ignore[arg-type]


def test_save_and_load_round_trip(tmp_path) -> None:
    s = Warmup(FromArray((1.0, 0.5, 0.0), steps=40), 5)
    s.save(tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["name"] == "warmup"
    assert Schedule.load(tmp_path / "s.json") == s


def test_a_schedule_name_is_registered_once() -> None:
    with pytest.raises(TypeError, match="'linear' is registered twice"):
        @dataclasses.dataclass(frozen=True, repr=False)
        class Other(Schedule):
            name = "linear"
    assert Schedule.from_dict({"name": "linear", "steps": 4}) == Linear(4)


def test_a_subclass_may_return_one_value_for_every_step() -> None:
    # _eval may return a scalar: it is broadcast to the shape of the steps
    @dataclasses.dataclass(frozen=True, repr=False)
    class Half(Schedule):
        def _eval(self, t: np.ndarray) -> float:
            return 0.5

    np.testing.assert_array_equal(Half()(np.arange(4)), np.full(4, 0.5))
    assert Half()(3) == 0.5


def test_one_cycle_at_its_smallest_lengths() -> None:
    # two steps are enough (pct_start > 1/2 keeps the peak inside the run) ...
    two = OneCycle(2, pct_start=0.75)
    np.testing.assert_allclose(two(np.arange(3)), [0.04, 4e-6, 4e-6], rtol=1e-12)
    # ... and a warm-up of one step (pct_start * T = 2) reaches the peak at step 1
    short = OneCycle(100, pct_start=0.02)
    assert short(0) == pytest.approx(0.04) and short(1) == 1.0 and short(2) < 1.0


def test_phase_ends_take_whole_step_counts() -> None:
    s = sgdr(10, cycles=3, t_mult=2)
    assert last_completed_phase_end(s, 30) == 30
    assert last_completed_phase_end(s, 30.0) == 30  # a whole number held as a float
    np.testing.assert_array_equal(last_completed_phase_end(s, np.array([9.0, 10.0, 29.0])),
                                  [0, 10, 10])
    for bad in (2.5, np.nan, np.array([10.0, 10.5]), -1):
        with pytest.raises(ValueError, match="t must be integer step counts >= 0"):
            last_completed_phase_end(s, bad)


@pytest.mark.parametrize("make", [lambda a: Warmup(Linear(10), 3, start=a),
                                  lambda a: WarmupStableDecay(10, 3, 2, start=a)])
def test_named_warmup_starts_are_stored_as_their_value(make) -> None:
    # "nanogpt" is a = 1 / (warmup + 1), "hf" is 0: the stored start is that number
    assert make("nanogpt").start == 0.25 and make("hf").start == 0.0
    assert make("nanogpt") == make(0.25)
    assert make("nanogpt")(1) == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize("start", [0.0, 0.3, "hf", "nanogpt"])
def test_wsd_without_warmup_round_trips_and_warns_nothing(start) -> None:
    s = WarmupStableDecay(10, 0, 3, start=start)
    assert Schedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by the zero-length warm-up
        np.testing.assert_allclose(s(np.arange(12)), [1] * 8 + [2 / 3, 1 / 3, 0, 0],
                                   rtol=1e-15, atol=1e-15)
