"""lrlab advise: budget, edge rule, a diverging pilot, storage and the command."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.schedules import Constant, Linear
from lrlab.tune import Study, advise, load_advice
from lrlab.tune.advise import follow_up, grid_candidates, theory_factor, worst_case

STEPS = 100


def _member_steps(advice, storage: str) -> int:
    """Member-steps counted from what is stored: the study's trials it trained, the pilots
    (some stored as trials), the learning-rate-free run."""
    study = Study.open(advice.study, None, storage)
    trials = study.optuna_study.get_trials(deepcopy=False)
    trained = sum("lrlab_recorded" not in t.user_attrs for t in trials)
    return (trained + len(advice.pilots) + 1) * study.settings.steps


@pytest.mark.parametrize("budget", [4, 6, 8])
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
    a = advise("iris_logreg", steps=STEPS, lr=1e-3, storage=db, study="e")
    assert a.budget == 12 and a.grid_factor == 4.0
    lrs = {(p["schedule"], p["lr"]) for p in a.points}
    first = {(s, x) for s, x in grid_candidates(1e-3, 4.0)} | {("linear", 1e-3)}
    assert first <= lrs and len(first) == 9
    added = sorted(lrs - first, key=lambda p: p[1])
    # two rounds left, each one factor past the high edge of the best schedule
    assert [x for _, x in added] == pytest.approx([1.6e-2, 6.4e-2])
    assert {s for s, _ in added} == {a.schedule}
    assert sum("sat on the high edge" in m for m in a.messages) == 2
    assert (a.schedule, a.lr) == added[-1]
    assert _member_steps(a, db) == 12 * STEPS


def test_pilot_is_stored_as_the_linear_trial_and_not_trained_again(tmp_path):
    db = str(tmp_path / "a.db")
    a = advise("iris_logreg", 4, steps=STEPS, storage=db, study="p")
    study = Study.open(a.study, None, db)
    df = study.results()
    lin = df[(df["schedule"] == "linear") & (df["lr"] == a.pilots[0]["lr"])]
    assert len(lin) == 1 and lin["final_loss"].iloc[0] == a.pilots[0]["final_loss"]
    rec = [t for t in study.optuna_study.get_trials() if "lrlab_recorded" in t.user_attrs]
    assert len(rec) == 1 and rec[0].user_attrs["lrlab_recorded"] == "pilot"
    # budget 4: the pilot (linear at lr0), the lr-free run, refined and constant at lr0
    assert sorted(zip(df["schedule"], df["lr"], strict=True)) == [
        ("constant", 0.5), ("linear", 0.5), ("refined", 0.5)]
    assert _member_steps(a, db) == 4 * STEPS


def test_diverging_pilot_is_retried(tmp_path, capsys):
    db = str(tmp_path / "a.db")
    code = main(
        ["advise", "--task", "iris_logreg", "--task-option", "l2=0.01", "--steps", str(STEPS),
         "--lr", "1600", "--budget", "6", "--storage", db, "--out", str(tmp_path / "r")]
    )
    out = " ".join(capsys.readouterr().out.split())  # wrapped lines joined
    assert code == 0
    assert "the pilot at lr 1600 diverged" in out and "retrying at lr 400" in out
    a = load_advice("lrlab-default", db)
    assert a.pilots[0]["final_loss"] is None and a.pilots[-1]["final_loss"] is not None
    assert _member_steps(a, db) <= 6 * STEPS
    # the diverged pilot (1600 = 400 * 4) is on the grid: stored as diverged, not retrained
    at = [p for p in a.points if p["schedule"] == "linear" and p["lr"] == 1600]
    assert at == [{"schedule": "linear", "lr": 1600.0, "final_loss": None, "test_metric": None}]


def test_cli_prints_recommendation_and_writes_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    db = str(tmp_path / "a.db")
    out_dir = tmp_path / "report"
    code = main(
        ["advise", "--task", "digits_logreg", "--task-option", "l2=0.01", "--steps",
         str(STEPS), "--storage", db, "--study", "d", "--out", str(out_dir)]
    )
    out = capsys.readouterr().out
    assert code == 0
    # wrapped at the terminal's width; only a path, which is never broken, may be longer
    assert all(len(line) <= 72 or " " not in line for line in out.splitlines())
    text = " ".join(out.split())
    assert "Recommendation for digits_logreg: sgd with the" in text
    assert "Runs spent:" in text and "learning-rate-free baseline (dadapt_sgd" in text
    assert (out_dir / "advice.png").stat().st_size > 1000
    stored = json.loads((out_dir / "advice.json").read_text())
    assert stored["study"] == "d-advise" and stored["budget"] == 12


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


def _results(rows):
    import pandas as pd

    return pd.DataFrame(
        [{"schedule": s, "lr": x, "final_loss": math.nan if v is None else v,
          "diverged": v is None} for s, x, v in rows]
    )


def test_follow_up_rules():
    # best on the high edge of its schedule: one factor past it
    r = _results([("linear", 1, 3.0), ("linear", 4, 2.0), ("refined", 1, 2.5),
                  ("refined", 4, 1.0)])
    assert follow_up(r, 4.0)[:2] == ("refined", 16.0)
    # low edge
    r = _results([("linear", 1, 1.0), ("linear", 4, 2.0), ("refined", 4, 3.0)])
    assert follow_up(r, 4.0)[:2] == ("linear", 0.25)
    # inside: the geometric midpoint towards the better neighbour
    r = _results([("linear", 1, 3.0), ("linear", 4, 1.0), ("linear", 16, 2.0)])
    assert follow_up(r, 4.0)[:2] == ("linear", 8.0)
    r = _results([("linear", 1, 2.0), ("linear", 4, 1.0), ("linear", 16, 3.0)])
    assert follow_up(r, 4.0)[:2] == ("linear", 2.0)
    # a diverged neighbour next to a finite one: towards the diverged one (the loss just short
    # of it is unmeasured, the finite side is known to be worse); within sqrt 2: fine enough
    r = _results([("linear", 1, 2.0), ("linear", 4, 1.0), ("linear", 16, None)])
    assert follow_up(r, 4.0)[:2] == ("linear", 8.0)
    r = _results([("linear", 1, None), ("linear", 4, 1.0), ("linear", 16, 0.5 + 1.0)])
    assert follow_up(r, 4.0)[:2] == ("linear", 2.0)
    r = _results([("linear", 1, 2.0), ("linear", 1.2, 1.0), ("linear", 1.4, 3.0)])
    assert follow_up(r, 4.0)[:2] == ("linear", None)
    # a run that ended above the starting loss blew up: it counts as diverged
    r = _results([("constant", 0.1, 0.09), ("constant", 0.4, 0.058), ("constant", 1.6, 15.2)])
    assert follow_up(r, 4.0)[:2] == ("constant", 0.2)
    assert follow_up(r, 4.0, start=2.3)[:2] == ("constant", 0.8)
    # the best schedule's only point: towards the other schedule's best lr
    r = _results([("refined", 4, 1.0), ("linear", 1, 3.0), ("linear", 16, 2.0)])
    assert follow_up(r, 4.0)[:2] == ("refined", 16.0)
    r = _results([("refined", 4, 1.0), ("linear", 1, 2.0), ("linear", 16, 3.0)])
    assert follow_up(r, 4.0)[:2] == ("refined", 1.0)
    # everything diverged: below the lowest lr tried
    r = _results([("refined", 4, None), ("linear", 2, None)])
    assert follow_up(r, 4.0)[:2] == ("linear", 0.5)


def test_advise_a_command_through_the_cli(tmp_path, capsys):
    """A script run as `lrlab sweep --command` runs it (tests/trial_script.py: gradient descent
    on (x - 0.3)^2; at lr 0.8 it exits with an error, at 0.2 it prints a JSON line)."""
    script = Path(__file__).with_name("trial_script.py")
    cmd = (f"{sys.executable} {script} --lr {{lr}} --seed {{seed}} --schedule {{schedule}} "
           "--steps {steps}")
    db = str(tmp_path / "a.db")
    code = main(["advise", "--command", cmd, "--lr", "0.05", "--steps", "30", "--budget", "10",
                 "--processes", "2", "--timeout", "30", "--storage", db, "--study", "c",
                 "--out", str(tmp_path / "r")])
    out = " ".join(capsys.readouterr().out.split())  # wrapped lines joined
    assert code == 0
    assert "No learning-rate-free run: your code picks its own optimizer." in out
    assert "your script's optimizer with the" in out
    a = load_advice("c", db)
    assert a.free is None and a.grid_factor == 4.0
    study = Study.open(a.study, None, db)
    assert study.settings.kind == "command"
    # the pilot, 8 grid runs and one follow-up past the high edge: lr 0.8, which fails
    fails = study.failures()
    assert len(fails) == 1 and fails["lr"].iloc[0] == pytest.approx(0.8)
    assert "out of memory (simulated)" in fails["error"].iloc[0]
    assert a.runs_spent == 10 and len(study.results()) == 9
    assert a.lr == pytest.approx(0.2) and a.final_loss < 1e-6


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--command", "x {lr}", "--steps", "10"], "--command needs --lr"),
        (["--command", "x {lr}", "--steps", "10", "--lr", "0.1", "--task-option", "a=1"],
         "--task-option does not apply"),
        (["--task", "iris_logreg", "--timeout", "3"], "are for --command"),
    ],
)
def test_command_options_are_one_line_errors(tmp_path, capsys, argv, needle):
    code = main(["advise", *argv, "--storage", str(tmp_path / "a.db"), "--out",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1


def test_advise_a_trial_function(tmp_path):
    from trial_fns import quadratic

    db = str(tmp_path / "a.db")
    a = advise(train_fn=quadratic, lr=0.05, steps=30, budget=9, storage=db, study="f",
               processes=2)
    study = Study.open(a.study, None, db)
    assert study.settings.kind == "function" and a.free is None
    assert a.task == study.settings.task and a.task.endswith("quadratic")
    # the pilot and the 8 grid runs: all complete, the pilot among them
    assert len(study.results()) == 9 and a.runs_spent == 9
    best = study.results().sort_values("final_loss").iloc[0]
    assert (a.schedule, a.lr, a.final_loss) == (best["schedule"], best["lr"],
                                                best["final_loss"])
    with pytest.raises(ValueError, match="give one of a task, a command or a train_fn"):
        advise("iris_logreg", train_fn=quadratic, storage=db, study="g")
    with pytest.raises(ValueError, match="a train_fn needs steps"):
        advise(train_fn=quadratic, lr=0.1, storage=db, study="g")
