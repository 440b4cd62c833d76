"""The edge rule on a stored study when seeds disagree about the best learning rate: the
rule follows the mean final loss over seeds (a diverged seed makes that mean infinite), not
any single seed and not the best single run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrlab.train.types import RunResult
from lrlab.tune import LocalExecutor, Study, StudySettings, log_grid
from lrlab.tune.space import edge_side, extend_edge

GRID = tuple(log_grid(0.25, 8, factor=2))  # 0.25 .. 8
NAN = math.nan
#: final loss per schedule, seed and lr (NaN: the run diverged)
LOSS = {
    # seed 0's best is the low edge, the mean's best (2.0) is inside: nothing to add
    "constant": {0: [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], 1: [3.0, 1.5, 1.2, 1.05, 1.3, 1.6]},
    # seed 0's best (1.0) is inside, the mean's best is the high edge: grow upwards, then
    # the new points are worse and the grid stops growing
    "cosine": {0: [2.0, 1.5, 1.0, 1.2, 1.4, 1.6, 2.0, 2.5],
               1: [3.0, 2.5, 2.2, 1.8, 1.2, 0.2, 0.9, 2.0]},
    # both seeds' best single run is the high edge, but seed 1 diverged there: the mean there
    # is infinite and the best mean (4.0) is inside
    "poly2": {0: [2.0, 1.8, 1.6, 1.4, 1.2, 0.5], 1: [2.0, 1.8, 1.6, 1.4, 1.2, NAN]},
}
LABEL = {"constant": "constant", "cosine": "cosine", "polynomial": "poly2"}


def runner(task, configs, progress=None):
    out = []
    for c in configs:
        k = int(round(math.log2(c.lr / 0.25)))
        loss = LOSS[LABEL[c.schedule.name]][c.seed][k]
        div = math.isnan(loss)
        out.append(RunResult(c, loss, None if div else 0.5, div, 3 if div else None,
                             np.arange(2), np.array([2.0, loss])))
    return out


def test_edge_rule_uses_the_mean_over_seeds(tmp_path) -> None:
    s = StudySettings(task="digits_logreg", schedules=("constant", "cosine", "poly2"),
                      lrs=GRID, seeds=(0, 1), steps=10)
    study = Study.open("e", s, str(tmp_path / "e.db"))
    study.run(LocalExecutor(runner=runner))
    assert study.extend_edges() == {"cosine": [16.0, 32.0]}  # two points by default
    assert study.run(LocalExecutor(runner=runner)) == 2 * 2
    assert study.extend_edges(points=2) == {}
    df = study.results()
    assert sorted(df[df.schedule == "cosine"].lr.unique()) == [*GRID, 16.0, 32.0]
    assert sorted(df[df.schedule == "constant"].lr.unique()) == list(GRID)


@pytest.mark.parametrize(
    "losses, side",
    [
        ([1.0, 2.0, 3.0], "low"),
        ([3.0, 2.0, 1.0], "high"),
        ([2.0, 1.0, 3.0], None),
        ([1.0, 1.0, 3.0], "low"),  # a tie goes to the smaller lr
        ([3.0, 1.0, 1.0], None),  # ... which here is inside
        ([math.inf, NAN, 1.0], "high"),  # non-finite losses count as +inf
        ([NAN, NAN, NAN], "low"),  # every run diverged: the grid is too high
    ],
)
def test_edge_side(losses, side) -> None:
    assert edge_side([0.1, 0.2, 0.4], losses) == side
    # the grid's order does not matter: losses follow their lr
    assert edge_side([0.4, 0.1, 0.2], [losses[2], losses[0], losses[1]]) == side


def test_extend_edge_on_each_side_and_for_a_single_point() -> None:
    np.testing.assert_allclose(extend_edge([0.1, 0.3, 0.9], [1.0, 2.0, 3.0], points=3),
                               [0.1 / 27, 0.1 / 9, 0.1 / 3])
    np.testing.assert_allclose(extend_edge([0.1, 0.3, 0.9], [3.0, 2.0, 1.0], points=1), [2.7])
    np.testing.assert_allclose(extend_edge([0.5], [1.0]), [])  # one point: no inside, no edge
    np.testing.assert_allclose(extend_edge([0.5], [NAN]), [0.125, 0.25])  # diverged: go lower
    assert extend_edge([0.1, 0.3, 0.9], [2.0, 1.0, 3.0]).size == 0
    with pytest.raises(ValueError, match="same length"):
        extend_edge([0.1, 0.2], [1.0])


def test_grid_factor_of_the_smallest_grids() -> None:
    from lrlab.tune.space import grid_factor

    assert grid_factor([0.5, 1.0]) == 2.0
    assert grid_factor([3.0, 1.0, 9.0]) == pytest.approx(3.0)  # order does not matter
    with pytest.raises(ValueError, match="not geometric"):
        grid_factor([1.0, 2.0, 3.0])


def test_add_lrs_grows_one_schedule_and_record_stores_an_outside_run(tmp_path) -> None:
    s = StudySettings(task="digits_logreg", schedules=("constant", "cosine"), lrs=(0.5,),
                      seeds=(0,), steps=10)
    study = Study.open("a", s, str(tmp_path / "a.db"))
    assert study.add_lrs("cosine", [2.0, 0.5, 2.0]) == [2.0]  # 0.5 is the grid's already
    assert study.add_lrs("cosine", [2.0]) == []
    assert study.extra_lrs == {"cosine": [2.0]}
    with pytest.raises(ValueError, match="'poly2' is not in this study"):
        study.add_lrs("poly2", [1.0])
    # an outside run of an expected trial is stored once, marked, and not trained again
    cfg = s.config({"lr": 2.0}, "cosine", 0)
    outside = runner(None, [cfg])[0]
    assert study.record("cosine", 2.0, 0, outside, "pilot")
    assert not study.record("cosine", 2.0, 0, outside, "pilot")  # stored already
    assert not study.record("cosine", 4.0, 0, outside, "pilot")  # not on the grid
    assert not study.record("constant", 2.0, 0, outside, "pilot")  # not this schedule's lr
    trained = []

    def counting(task, configs, progress=None):
        trained.extend((c.schedule.name, c.lr) for c in configs)
        return runner(task, configs, progress)

    assert study.run(LocalExecutor(runner=counting)) == 2
    assert sorted(trained) == [("constant", 0.5), ("cosine", 0.5)]
    df = study.results()
    row = df[(df.schedule == "cosine") & (df.lr == 2.0)]
    assert row.final_loss.tolist() == [outside.final_loss]
    marked = [t.params for t in study.optuna_study.get_trials()
              if t.user_attrs.get("lrlab_recorded") == "pilot"]
    assert marked == [{"schedule": "cosine", "seed": 0, "lr": 2.0}]


def test_record_completes_a_waiting_trial(tmp_path) -> None:
    s = StudySettings(task="digits_logreg", schedules=("constant", "cosine"), lrs=(0.5,),
                      seeds=(0,), steps=10)
    study = Study.open("w", s, str(tmp_path / "w.db"))
    assert study.counts() == {"WAITING": 2}  # opening queues the grid
    outside = runner(None, [s.config({"lr": 0.5}, "constant", 0)])[0]
    assert study.record("constant", 0.5, 0, outside, "pilot")
    assert study.counts() == {"WAITING": 1, "COMPLETE": 1}
    trained = []

    def counting(task, configs, progress=None):
        trained.extend((c.schedule.name, c.lr) for c in configs)
        return runner(task, configs, progress)

    assert study.run(LocalExecutor(runner=counting)) == 1
    assert trained == [("cosine", 0.5)]
    df = study.results()
    assert df[df.schedule == "constant"].final_loss.tolist() == [outside.final_loss]
    assert len(study.optuna_study.get_trials()) == 2  # no trial added beside the queued one


def test_add_lrs_needs_a_grid(tmp_path) -> None:
    s = StudySettings(task="digits_logreg", schedules=("constant",), seeds=(0,), steps=10,
                      random={"bounds": {"lr": (0.1, 1.0)}, "n": 2, "seed": 0})
    study = Study.open("r", s, str(tmp_path / "r.db"))
    with pytest.raises(ValueError, match="random-search study has no grid"):
        study.add_lrs("constant", [1.0])


def test_the_edge_rule_skips_a_schedule_without_results_or_with_one_lr(tmp_path) -> None:
    s = StudySettings(task="digits_logreg", schedules=("constant", "cosine"), lrs=(0.25, 0.5),
                      seeds=(0,), steps=10)
    study = Study.open("k", s, str(tmp_path / "k.db"))
    for lr, loss in ((0.25, 2.0), (0.5, 1.0)):  # constant only: its best is the high edge
        cfg = s.config({"lr": lr}, "constant", 0)
        study.record("constant", lr, 0, RunResult(cfg, loss, 0.5, False, None, np.arange(2),
                                                  np.array([2.0, loss])), "test")
    assert study.extend_edges(points=1) == {"constant": [1.0]}  # cosine has no results
    one = Study.open("o", StudySettings(task="digits_logreg", schedules=("constant",),
                                        lrs=(0.5,), seeds=(0,), steps=10), str(tmp_path / "o.db"))
    cfg = one.settings.config({"lr": 0.5}, "constant", 0)
    one.record("constant", 0.5, 0, RunResult(cfg, math.nan, math.nan, True, 3, np.arange(2),
                                             np.array([2.0, math.nan])), "test")
    assert one.extend_edges() == {}  # a single lr is no grid, diverged or not
