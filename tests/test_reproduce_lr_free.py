"""bench/reproduce/lr_free.py: the smoke run writes its page and figures, every method has a row
with finite numbers, and the single-model loop it trains the LR-free methods with computes what
the batched trainer computes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from reproduce_scripts import assert_figures, load


@pytest.fixture(scope="module")
def lr_free():
    return load("lr_free")


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell)]


def test_smoke_run_writes_page_and_figures(lr_free, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        path = lr_free.main(["--smoke", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert path == tmp_path / "lr_free.md"
    text = path.read_text()
    assert_figures(text, tmp_path, "lr_free", ("relative", "grids"))
    assert "Smoke run" in text
    header = ("| method | setting | final loss (mean ± sd) | vs tuned best | paired Δ (p) | "
              "test accuracy | runs | member-steps |")
    assert text.count(header) == len(lr_free.SMOKE)
    names = [f"Adam + {s} (tuned)" for s in lr_free.SCHEDULES] + [m.name for m in lr_free.METHODS]
    names.append(f"*{lr_free.SF_ROW}*")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for name in names:
        mine = [r for r in rows if r.split(" | ")[0] == f"| {name}" and "± " in r]
        assert len(mine) == len(lr_free.SMOKE), name
        for row in mine:
            cells = [c.strip() for c in row.strip("|").split("|")]
            loss, rel, metric = cells[2], cells[3], cells[5]
            assert "diverged" not in row and "inf" not in loss
            for cell in (loss, rel, metric):
                values = _numbers(cell)
                assert values and all(math.isfinite(v) for v in values), (name, cell)
    summary = text.split("## Summary")[1].split("##")[0]
    for m in lr_free.METHODS:
        assert f"| {m.name} |" in summary
    assert f"| *{lr_free.SF_ROW} (not LR-free)* |" in summary
    assert "Command: `python" in text and "Seeds:" in text and "Machine:" in text


def test_single_model_loop_equals_batched_trainer(lr_free) -> None:
    from lrlab.tasks import get_task

    task = get_task("wine_logreg", l2=0.01)
    diffs = lr_free.parity(task, 30, 0.05, seed=2)
    assert set(diffs) == {"adam", "prodigy", "schedulefree"}
    for name, (d, control) in diffs.items():
        assert d < 1e-12 and control < 1e-12, (name, d, control)
    # float32, as the comparison runs: equal up to float32 rounding
    for name, (d, _) in lr_free.parity(task, 30, 0.05, seed=2, dtype=torch.float32).items():
        assert d < 1e-5, (name, d)


def test_single_model_loop_equals_batched_trainer_on_an_mlp(lr_free) -> None:
    from lrlab.tasks import get_task

    diffs = lr_free.parity(get_task("digits_mlp"), 20, 0.01, seed=3, methods=("adam", "prodigy"))
    for name, (d, _) in diffs.items():
        assert d < 1e-10, (name, d)
