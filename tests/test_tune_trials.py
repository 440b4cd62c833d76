"""Trial functions (``lrlab.tune.sweep``): real worker processes, failures, resume, pilot."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import trial_fns
from lrlab.refine import refine
from lrlab.schedules import Cosine, Linear, Schedule
from lrlab.tune import Study, StudySettings, Trial, sweep
from lrlab.tune.trial_executors import LocalTrials
from lrlab.tune.trials import outcome, run_trial
from processes import gone

HERE = Path(__file__).parent


def expected_quadratic(lr, seed, schedule):
    """What ``trial_fns.quadratic`` returns, computed here in-process."""
    trial = Trial(0, {"lr": lr, "seed": seed}, schedule, "x", schedule.horizon)
    return trial_fns.quadratic(trial)


def test_sweep_trains_every_trial_once_with_the_returned_values(tmp_path):
    db = tmp_path / "s.db"
    study = sweep(
        trial_fns.quadratic,
        lrs=[0.05, 0.1, 0.2],
        steps=20,
        schedules=("linear", "cosine"),
        seeds=(0, 1),
        storage=str(db),
        study="quad",
        processes=2,
        edge_rounds=0,
    )
    df = study.results()
    assert len(df) == 12 and not df["diverged"].any()
    assert set(study.complete_counts().values()) == {1}
    for row in df.itertuples():
        sched = {"linear": Linear(20), "cosine": Cosine(20)}[row.schedule]
        want = expected_quadratic(row.lr, row.seed, sched)
        assert row.final_loss == pytest.approx(want["loss"], rel=1e-12)
        assert row.test_metric == pytest.approx(want["metric"], rel=1e-12)
    steps, curve = study.curves()[int(df["trial"][0])]
    assert steps[0] == 0 and len(steps) == 20 and curve[0] == pytest.approx(0.49)
    # the same call again resumes: nothing left to train, the numbers unchanged
    again = sweep(
        trial_fns.quadratic,
        lrs=[0.05, 0.1, 0.2],
        steps=20,
        schedules=("linear", "cosine"),
        seeds=(0, 1),
        storage=str(db),
        study="quad",
        edge_rounds=0,
    )
    assert again.results()["final_loss"].tolist() == df["final_loss"].tolist()
    assert len(again.optuna_study.trials) == 12


def test_a_raise_a_signal_and_a_timeout_are_failed_trials_and_the_rest_completes(tmp_path):
    db = str(tmp_path / "f.db")
    kwargs = dict(
        lrs=[0.1, 0.2, 0.8, 1.6, 3.2],
        steps=10,
        schedules=("constant",),
        seeds=(0,),
        storage=db,
        study="bad",
        processes=2,
        timeout=2.0,
        edge_rounds=0,
    )
    study = sweep(trial_fns.misbehaving, **kwargs)
    assert sorted(study.results()["lr"]) == [0.1, 0.2]
    failed = study.failures().set_index("lr")["error"]
    assert sorted(failed.index) == [0.8, 1.6, 3.2]
    assert "RuntimeError: boom at lr 0.8" in failed[0.8]
    assert "misbehaving" in failed[0.8]  # the traceback's last lines
    assert "killed by signal SIGKILL" in failed[1.6]
    assert "timed out after 2 s" in failed[3.2]
    assert study.counts() == {"COMPLETE": 2, "FAIL": 3}
    # resuming keeps recorded failures
    assert study.run(LocalTrials(1)) == 0
    assert study.counts() == {"COMPLETE": 2, "FAIL": 3}


def test_retry_failed_trains_the_failed_trials_again(tmp_path):
    kwargs = dict(lrs=[0.1, 0.8], steps=5, schedules=("constant",), storage=str(tmp_path / "r.db"))
    first = sweep(trial_fns.misbehaving, **kwargs, study="retry", edge_rounds=0)
    assert first.failures()["trial"].tolist() == [1]
    again = sweep(trial_fns.misbehaving, **kwargs, study="retry", edge_rounds=0, retry_failed=True)
    assert again.failures()["trial"].tolist() == [2]  # only the latest failure is listed
    assert again.counts() == {"COMPLETE": 1, "FAIL": 2}


def test_worker_returns_a_failure_for_a_result_that_is_not_a_loss(tmp_path):
    spec = {
        "kind": "function",
        "target": f"{HERE / 'trial_fns.py'}:returns_nonsense",
        "number": 0,
        "params": {"lr": 0.1, "seed": 0},
        "schedule_name": "constant",
        "schedule": {"name": "constant"},
        "steps": 3,
        "timeout": None,
        "workdir": None,
        "files": str(tmp_path),
    }
    out = run_trial(spec)
    assert out["status"] == "failed"
    assert "must return its final loss" in out["error"]
    missing = run_trial({**spec, "target": f"{HERE / 'trial_fns.py'}:nope"})
    assert "has no attribute 'nope'" in missing["error"]


def test_should_stop_and_a_non_finite_result_mean_diverged():
    trial = Trial(3, {"lr": 1.0, "seed": 0}, Linear(5), "linear", 5)
    trial.report(0, loss=1.0)
    assert not trial.should_stop()
    trial.report(1, loss=float("inf"))
    assert trial.should_stop()
    out = outcome(loss=2.0, rows=trial.rows)
    assert out["diverged"] and out["diverged_at"] == 1 and out["loss"] is None
    assert outcome(loss=float("nan"))["diverged"]
    assert not outcome(loss=0.5)["diverged"]


def test_trial_scheduler_drives_the_optimizer_with_peak_lr_times_the_schedule():
    trial = Trial(0, {"lr": 0.4, "seed": 1}, Cosine(10), "cosine", 10)
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=123.0)
    sched = trial.scheduler(opt)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.allclose(lrs, 0.4 * Cosine(10).values(), rtol=0, atol=1e-15)


def test_refined_comes_from_a_pilot_trial_s_reported_gradient_norms(tmp_path):
    study = sweep(
        trial_fns.quadratic,
        lrs=[0.1],
        steps=30,
        schedules=("linear", "refined"),
        pilot_lr=0.05,
        storage=str(tmp_path / "r.db"),
        study="ref",
        edge_rounds=0,
    )
    pilot = Trial(-1, {"lr": 0.05, "seed": 0}, Linear(30), "linear", 30)
    trial_fns.quadratic(pilot)
    norms = [r["grad_norm"] for r in pilot.rows]
    want = refine(norms, norm="l2", steps=30).schedule
    got = Schedule.from_dict(study.refined["schedule"])
    t = np.arange(30)
    assert np.allclose(got(t), want(t), rtol=1e-12)
    assert study.refined["pilot"]["lr"] == 0.05
    assert len(study.results()) == 2


def test_a_refined_study_of_trials_needs_a_pilot_lr():
    with pytest.raises(ValueError, match="needs pilot_lr"):
        StudySettings(
            "tests/trial_fns.py:quadratic", ("refined",), lrs=(0.1,), kind="function", steps=5
        )


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import trial_fns
from lrlab.tune import sweep
if __name__ == "__main__":
    sweep(trial_fns.slow_logged, lrs=[0.05, 0.1, 0.2, 0.4], steps=10,
          schedules=("linear", "cosine"), seeds=(0,), storage={db!r}, study="kill",
          processes=2, edge_rounds=0)
"""


def test_driver_killed_mid_study_leaves_no_worker_and_resumes_exactly_once(tmp_path):
    db, pids = str(tmp_path / "k.db"), tmp_path / "pids.txt"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(HERE), db=db))
    env = {**os.environ, "LRLAB_TEST_PIDS": str(pids)}
    driver = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pids.exists() and len(pids.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    started = {int(line.split()[0]) for line in pids.read_text().splitlines()}
    study = Study.open("kill", None, db)
    complete_before = study.counts().get("COMPLETE", 0)
    assert 0 < complete_before < 8  # killed mid-study: some done, some not
    deadline = time.monotonic() + 10
    while not all(gone(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in started), "a worker outlived its driver"
    os.environ["LRLAB_TEST_PIDS"] = str(pids)
    try:
        with LocalTrials(2) as ex:
            study.run(ex)
    finally:
        del os.environ["LRLAB_TEST_PIDS"]
    assert study.counts().get("COMPLETE") == 8
    assert sorted(study.complete_counts().values()) == [1] * 8
    for row in study.results().itertuples():
        sched = {"linear": Linear(10), "cosine": Cosine(10)}[row.schedule]
        assert row.final_loss == pytest.approx(expected_quadratic(row.lr, 0, sched)["loss"])
