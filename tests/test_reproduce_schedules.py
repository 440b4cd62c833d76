"""The schedule reproduction scripts (bench/reproduce/schedules.py, grid_cost.py) run end to end
at smoke sizes and write their pages, figures and run tables; grid_cost's measure on a curve
worked out by hand."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reproduce_scripts import assert_figures, load

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def rows_of(md: str, header_start: str) -> list[list[str]]:
    """The body rows of the first Markdown table whose header starts with ``header_start``."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    out = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        out.append([c.strip() for c in ln.strip("|").split("|")])
    return out


def finite_numbers(cell: str) -> list[float]:
    vals = [float(x) for x in NUMBER.findall(cell)]
    assert vals, f"no number in {cell!r}"
    assert all(math.isfinite(v) for v in vals), cell
    return vals


@pytest.fixture(scope="module")
def schedules_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("schedules")
    load("schedules").main(["--smoke", "--out", str(out)])
    return out


def test_schedules_smoke_writes_page_figures_and_runs(schedules_out):
    mod = load("schedules")
    md = (schedules_out / "schedules.md").read_text()
    assert "Smoke run" in md and "Command:" in md and "Seeds:" in md
    assert_figures(md, schedules_out, "schedules", ("loss_vs_lr", "relative", "refined"))
    for plan in mod.SMOKE_PLANS:
        assert f"### {plan.task}" in md
    per_task = rows_of(
        md, "| schedule | best lr | lrs tried | final loss | final loss − f* | accuracy |")
    assert [r[0] for r in per_task] == list(mod.SCHEDULES)
    for r in per_task:
        for cell in (r[1], r[3], r[4], r[5]):
            finite_numbers(cell)
    refined = rows_of(md, "| task | linear loss | refined loss |")
    assert [r[0] for r in refined] == [p.task for p in mod.SMOKE_PLANS]
    for r in refined:
        for cell in (r[1], r[2], r[4], r[5], r[8]):
            finite_numbers(cell)
        assert r[7] == "2"  # two seeds, paired
    runs = pd.read_csv(schedules_out / mod.RUNS_CSV)
    assert set(runs["schedule"]) == set(mod.SCHEDULES)
    assert set(runs["task"]) == {p.task for p in mod.SMOKE_PLANS}
    assert set(runs["seed"]) == {1, 2}
    assert np.isfinite(runs.loc[~runs["diverged"], "final_loss"]).all()
    # each (task, schedule, lr) has every seed, and the grid holds its base range
    counts = runs.groupby(["task", "schedule", "i"])["seed"].nunique()
    assert (counts == 2).all()
    plan = mod.SMOKE_PLANS[0]
    lin = runs[(runs["task"] == plan.task) & (runs["schedule"] == "linear")]
    assert set(range(plan.lo, plan.hi + 1)) <= set(lin["i"])


def check_grid_cost_page(out: Path, sources: dict[str, str]) -> None:
    mod = load("grid_cost")
    md = (out / "grid_cost.md").read_text()
    for suffix in ("points", "curves", "worst"):
        assert (out / f"grid_cost_{suffix}.png").is_file()
    setup = rows_of(md, "| task | options | optimizer | steps |")
    assert {r[0]: r[-1].split(" (")[0] for r in setup} == sources
    per = rows_of(md, "| task | schedule | best lr | best loss | best loss − f* | within 1 % "
                      "| within 5 % | within excess ×2 |")
    assert len(per) == len(mod.SMOKE_PLANS) * len(mod.SCHEDULES)
    cell = re.compile(r"[≤≥]? ?\d+(\.\d+)? \([≤≥]? ?\d+\)")  # F (points)
    for r in per:
        for c in (r[2], r[3]):
            finite_numbers(c)
        assert all(cell.fullmatch(c) for c in r[5:8]), r
    summ = rows_of(md, "| schedule | within 1 % | within 5 % | within excess ×2 |")
    assert [r[0] for r in summ] == list(mod.SCHEDULES)
    median = re.compile(r"\d+(\.\d+)? \(\d+(\.\d+)?\)")  # medians: no bound marks
    for r in summ:
        assert all(median.fullmatch(c) for c in r[1:4]), r
    worst = rows_of(md, "| schedule | factor 1.41 | factor 2 |")
    assert [r[0] for r in worst] == list(mod.SCHEDULES)


def test_grid_cost_smoke_reads_schedules_runs(schedules_out):
    load("grid_cost").main(["--smoke", "--out", str(schedules_out)])
    check_grid_cost_page(schedules_out, {"iris_logreg": "`schedules_runs.csv`",
                                         "abs_regression": "trained here"})
    trained = pd.read_csv(schedules_out / "grid_cost_runs.csv")
    assert set(trained["task"]) == {"abs_regression"}


def test_grid_cost_smoke_trains_without_cache(tmp_path):
    load("grid_cost").main(["--smoke", "--out", str(tmp_path)])
    check_grid_cost_page(tmp_path, {"iris_logreg": "trained here",
                                    "abs_regression": "trained here"})
    assert set(pd.read_csv(tmp_path / "grid_cost_runs.csv")["task"]) == {
        "iris_logreg", "abs_regression"}


def test_tolerance_worst_case_over_offsets():
    mod = load("grid_cost")
    mean = pd.Series([3.0, 1.2, 1.04, 1.0, 1.03, 1.5], index=range(-3, 3))
    # within 5 %: grid indices -1, 0, 1 (three in a row): a grid of every third point always
    # hits one, every fourth point can miss all three
    t = mod.tolerance(mean, 2.0, 1.05)
    assert (t["m"], t["F"], t["up"], t["down"], t["lower_bound"]) == (3, 8.0, 2.0, 2.0, False)
    assert mod.points(t["F"], 2.0**12) == 5
    # within 1 %: only the best point
    t = mod.tolerance(mean, 2.0, 1.01)
    assert (t["m"], t["F"], t["up"], t["down"]) == (1, 2.0, 1.0, 1.0)
    # lopsided tolerance: two points above the best, none below
    lop = pd.Series([2.0, 1.0, 1.02, 1.03, 1.6])
    t = mod.tolerance(lop, 2.0, 1.05)
    assert (t["m"], t["up"], t["down"]) == (3, 4.0, 1.0)
    # a tolerant end of the trained range makes the factor a lower bound
    assert mod.tolerance(pd.Series([1.0, 1.01, 2.0]), 2.0, 1.05)["lower_bound"]
    # worst case over offsets: every third point finds 1.0, 1.03 or 1.04 (3.0/1.0, 1.2/1.03,
    # 1.04/1.5); every other point 1.03 or 1.0
    assert mod.worst_case(mean, 3) == 1.04 and mod.worst_case(mean, 2) == 1.03
    assert mod.worst_case(mean, 1) == 1.0
    assert mod.limit_of("excess", 1.0, 1.5, 1.0) == pytest.approx(2.0)
    assert mod.limit_of("loss", 0.05, 2.0, 1.0) == pytest.approx(2.1)
