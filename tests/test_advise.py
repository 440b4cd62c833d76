"""lrlab advise: budget, edge rule, a diverging pilot, storage and the command."""

from __future__ import annotations

import json
import math

import pytest

from lrlab.cli import main
from lrlab.schedules import Constant, Linear
from lrlab.tune import Study, advise, load_advice
from lrlab.tune.advise import theory_factor, worst_case

STEPS = 100


def _member_steps(advice, storage: str) -> int:
    """Member-steps counted from what is stored: the study's trials, the pilots, the
    learning-rate-free run."""
    study = Study.open(advice.study, None, storage)
    trials = len(study.results())
    return (trials + len(advice.pilots) + 1) * study.settings.steps


@pytest.mark.parametrize("budget", [4, 6])
def test_budget_never_exceeded_and_stored(tmp_path, budget):
    db = str(tmp_path / "a.db")
    a = advise("iris_logreg", budget, steps=STEPS, storage=db, study="s")
    spent = _member_steps(a, db)
    assert spent == a.member_steps
    assert spent <= budget * STEPS
    assert a.runs_spent <= budget
    back = load_advice("s", db)
    assert back.lr == a.lr and back.schedule == a.schedule
    assert back.within_1pct[0] <= a.lr <= back.within_1pct[1]
    assert back.within_5pct[0] <= back.within_1pct[0]
    assert math.isfinite(back.final_loss)
    assert back.free["optimizer"] == "dadapt_sgd"


def test_edge_best_extends_grid(tmp_path):
    db = str(tmp_path / "a.db")
    # far too small a pilot lr: the best grid point is the high edge, so the grid grows
    a = advise("iris_logreg", 6, steps=STEPS, lr=1e-3, storage=db, study="e")
    study = Study.open(a.study, None, db)
    grid = set(study.settings.lrs)
    extra = study.extra_lrs.get("refined", [])
    assert extra and min(extra) > max(grid)
    assert any("high edge" in m for m in a.messages)
    assert _member_steps(a, db) <= 6 * STEPS


def test_diverging_pilot_is_retried(tmp_path, capsys):
    db = str(tmp_path / "a.db")
    code = main(
        ["advise", "--task", "iris_logreg", "--task-option", "l2=0.01", "--steps", str(STEPS),
         "--lr", "1600", "--budget", "6", "--storage", db, "--out", str(tmp_path / "r")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "the pilot at lr 1600 diverged" in out and "retrying at lr 400" in out
    a = load_advice("lrlab-default", db)
    assert a.pilots[0]["final_loss"] is None and a.pilots[-1]["final_loss"] is not None
    assert _member_steps(a, db) <= 6 * STEPS


def test_cli_prints_recommendation_and_writes_report(tmp_path, capsys):
    db = str(tmp_path / "a.db")
    out_dir = tmp_path / "report"
    code = main(
        ["advise", "--task", "digits_logreg", "--task-option", "l2=0.01", "--steps",
         str(STEPS), "--storage", db, "--study", "d", "--out", str(out_dir)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Recommendation for digits_logreg: sgd with the" in out
    assert "Runs spent:" in out and "learning-rate-free baseline (dadapt_sgd" in out
    assert (out_dir / "advice.png").stat().st_size > 1000
    stored = json.loads((out_dir / "advice.json").read_text())
    assert stored["study"] == "d-advise" and stored["budget"] == 6


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--task", "iris_logreg", "--task-option", "bogus=1"], "unknown option(s) bogus"),
        (["--task", "iris_logreg", "--budget", "2"], "--budget must be >= 4"),
        (["--task", "iris_logreg", "--lr", "-1"], "--lr must be"),
        (["--task", "no_such_task"], "no_such_task"),
    ],
)
def test_bad_option_is_one_line_error(tmp_path, capsys, argv, needle):
    code = main(["advise", *argv, "--storage", str(tmp_path / "a.db"), "--out",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1 and err.startswith("lrlab: error:")


def test_existing_study_is_refused(tmp_path):
    db = str(tmp_path / "a.db")
    advise("iris_logreg", 4, steps=50, storage=db, study="x")
    with pytest.raises(ValueError, match="already exists"):
        advise("iris_logreg", 4, steps=50, storage=db, study="x")


def test_theory_factor():
    # a constant lr pays (rho + 1/rho) / 2 either side: factor 4 costs exactly 1.25
    assert worst_case(Constant(), 4.0, 200) == pytest.approx(1.25, rel=0.02)
    factor, per = theory_factor({"linear": Linear(200), "constant": Constant()}, 200)
    assert factor == min(per.values()) and per["linear"] >= per["constant"]
