"""``Schedule.from_spec``: one syntax, the same schedule through every path."""

from __future__ import annotations

import argparse

import pytest

from lrlab.cli import main
from lrlab.cli.bound_cmd import _build_schedule
from lrlab.cli.schedules_cmd import build_plotted
from lrlab.schedules import Cosine, InverseSqrt, MultiStep, Polynomial, Schedule, registry
from lrlab.schedules.spec import split_spec
from lrlab.tune import StudySettings, build_schedule

SPECS = [
    "constant",
    "cosine",
    "cosine:s_min=0.1",
    "linear",
    "poly2",
    "poly0.5:s_min=0.01",
    "inverse_sqrt:tau=10",
    "step:step_size=30,gamma=0.5",
    "multistep:milestones=[30,60],gamma=0.5",
    "wsd:warmup=10,decay=50,tail=sqrt",
    "one_cycle:pct_start=0.25,three_phase=true",
    'warmup:schedule={"name":"cosine","steps":90},warmup=10',
]


@pytest.mark.parametrize("spec", SPECS)
def test_every_path_builds_the_same_schedule(spec):
    T = 100
    want = Schedule.from_spec(spec, T)
    assert build_schedule(spec, T) == want
    assert build_plotted([spec], {}, T) == [want]
    bound_args = argparse.Namespace(schedule=spec, steps=T)
    assert _build_schedule(bound_args) == want
    settings = StudySettings("iris_logreg", (spec,), lrs=(0.1,), steps=T)
    assert settings.config({"lr": 0.1}, spec, 0).schedule == want
    assert Schedule.from_dict(want.to_dict()) == want


def test_values_and_horizons():
    assert Schedule.from_spec("poly2", steps=500) == Polynomial(500, 2)
    assert Schedule.from_spec("inverse_sqrt:tau=10") == InverseSqrt(10)
    assert Schedule.from_spec("multistep:milestones=[30,60]") == MultiStep((30, 60))
    assert Schedule.from_spec("cosine:steps=50") == Cosine(50)
    assert Schedule.from_spec("cosine", 50, params={"s_min": "0.1"}) == Cosine(50, 0.1)


@pytest.mark.parametrize(
    ("spec", "steps", "match"),
    [
        ("nosuch", 10, "unknown schedule 'nosuch'; known: constant, cosine"),
        ("cosine", None, "schedule 'cosine' has a horizon: give steps"),
        ("cosine:foo=1", 10, "has no argument\\(s\\) foo; its arguments: steps, s_min"),
        ("cosine:s_min", 10, "expected key=value"),
        ("cosine:s_min=x", 10, "s_min='x' is not a number"),
        ("cosine:steps=5", 10, "gives steps=5, but its horizon is 10"),
        ("step", 10, "needs step_size="),
        ("cosine:s_min=0.1,s_min=0.2", 10, "s_min is given twice"),
        ("multistep:milestones=[30,60", 10, "unbalanced"),
        ("one_cycle:three_phase=maybe", 10, "must be true or false"),
    ],
)
def test_errors_are_one_line(spec, steps, match):
    with pytest.raises(ValueError, match=match) as info:
        Schedule.from_spec(spec, steps)
    assert "\n" not in str(info.value)


def test_unknown_names_are_listed_everywhere(capsys, tmp_path):
    with pytest.raises(ValueError) as info:
        Schedule.from_spec("nosuch", 10)
    for name in registry():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="poly<p>, refined"):
        build_schedule("nosuch", 10)
    for argv in (
        ["bound", "nosuch", "--steps", "10"],
        ["schedules", "plot", "nosuch", "--steps", "10", "-o", str(tmp_path / "a.png")],
        ["sweep", "--schedules", "nosuch", "--steps", "5", "--storage", str(tmp_path / "a.db"),
         "--out", str(tmp_path)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unknown schedule 'nosuch'; known: constant" in err


@pytest.mark.parametrize(("text", "value"), [("true", True), ("True", True), ("1", True),
                                             ("false", False), ("FALSE", False), ("0", False)])
def test_booleans_read_as_written(text, value):
    assert Schedule.from_spec(f"one_cycle:three_phase={text}", 100).three_phase is value


def test_commas_inside_quotes_brackets_and_braces_do_not_split():
    head, raw = split_spec('warmup:schedule={"name":"cosine","steps":90},note="a,b",m=[1,2]')
    assert head == "warmup"
    assert raw == {"schedule": '{"name":"cosine","steps":90}', "note": '"a,b"', "m": "[1,2]"}


@pytest.mark.parametrize("spec", [5, None, "", "   "])
def test_a_spec_must_be_a_non_empty_string(spec):
    with pytest.raises(ValueError, match="a schedule spec must be a non-empty string"):
        split_spec(spec)


@pytest.mark.parametrize("raw", ["[30,60", "30,60]", "[30,x]"])
def test_a_list_needs_both_brackets_and_numbers(raw):
    with pytest.raises(ValueError, match="must be a list of numbers like"):
        Schedule.from_spec("multistep", params={"milestones": raw})
