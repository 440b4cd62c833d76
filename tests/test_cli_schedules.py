"""`lrlab schedules list` and `lrlab schedules plot`."""

from __future__ import annotations

import re

import matplotlib.image as mpimg
import pytest

from lrlab.cli import main
from lrlab.cli.schedules_cmd import build_plotted, parse_plot_spec
from lrlab.schedules import Cosine, CosinePhases, MultiStep, Warmup, registry


def build(name, params, steps):
    (sched,) = build_plotted([name], params, steps)
    return sched


def test_list_names_every_schedule_with_params(capsys) -> None:
    assert main(["schedules", "list"]) == 0
    out = capsys.readouterr().out
    for name in registry():
        assert f"\n{name} " in "\n" + out
    assert "steps: int, s_min: float = 0.0" in out


def test_plot_writes_png(tmp_path, capsys) -> None:
    png = tmp_path / "s.png"
    argv = [
        "schedules",
        "plot",
        "cosine",
        "linear",
        "polynomial",
        "--power",
        "2",
        "--steps",
        "200",
        "-o",
        str(png),
    ]
    assert main(argv) == 0
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    assert str(png) in capsys.readouterr().out


def test_params_are_parsed_from_dataclass_fields() -> None:
    names, params, steps, out, logy = parse_plot_spec(
        ["multistep", "--milestones", "30,60", "--gamma=0.5", "--steps", "100", "-o", "x.png"]
    )
    assert (names, steps, out, logy) == (["multistep"], 100, "x.png", False)
    assert build("multistep", params, steps) == MultiStep((30, 60), 0.5)
    _, params, steps, _, _ = parse_plot_spec(
        [
            "warmup",
            "--schedule",
            '{"name": "cosine", "steps": 900}',
            "--warmup",
            "100",
            "--start",
            "nanogpt",
            "--steps",
            "1000",
            "-o",
            "x.png",
        ]
    )
    assert build("warmup", params, steps) == Warmup(Cosine(900), 100, start=1 / 101)
    _, params, steps, _, _ = parse_plot_spec(
        ["cosine", "--s-min", "0.1", "--steps", "50", "-o", "x.png"]
    )
    assert build("cosine", params, steps) == Cosine(50, 0.1)
    _, params, steps, _, _ = parse_plot_spec(
        [
            "cosine_phases",
            "--lengths",
            "10,20",
            "--s-max",
            "1,.5",
            "--s-min",
            "0,0",
            "--steps",
            "30",
            "-o",
            "x.png",
        ]
    )  # a horizon, also an optional one, is T (here: the sum of the lengths)
    assert build("cosine_phases", params, steps) == CosinePhases((10, 20), (1, 0.5), (0, 0))
    # the same schedules written as specs
    assert build("multistep:milestones=[30,60],gamma=0.5", {}, 100) == MultiStep((30, 60), 0.5)
    assert build("cosine:s_min=0.1", {}, 50) == Cosine(50, 0.1)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["nope", "--steps", "10"], "unknown schedule 'nope'"),
        (["cosine", "--foo", "1", "--steps", "10"], "unknown parameter --foo"),
        (["step", "--steps", "10"], "needs step_size="),
        (["cosine", "--s-min", "2", "--steps", "10"], r"s_min must be in \[0, 1\]"),
        (["cosine", "--s-min", "abc", "--steps", "10"], "is not a number"),
        (["cosine", "--steps", "0"], "--steps must be >= 1"),
        (["cosine", "--steps", "1.5"], "--steps must be an integer >= 1"),
        (["cosine", "--steps", str(2**53 + 1)], "--steps must be at most 2\\*\\*53"),
        (["cosine:s_min", "--steps", "10"], "expected key=value"),
        (["cosine"], "--steps T and -o"),
    ],
)
def test_plot_errors_are_clear(tmp_path, capsys, argv, match) -> None:
    png = tmp_path / "x.png"
    full = ["schedules", "plot", *argv]
    if "--steps" in argv:
        full += ["-o", str(png)]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrlab: error:")
    assert re.search(match, err), err
    assert not png.exists()
