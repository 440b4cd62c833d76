"""A new study takes the runs another study in its storage already trained for it."""

import pytest

from lrlab.tune import LocalExecutor, Study, StudySettings, advise, pilot
from lrlab.tune.reuse import REUSED_ATTR

COLS = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]


class Counting(LocalExecutor):
    """Counts the configurations it trains."""

    def __init__(self):
        super().__init__()
        self.trained = 0

    def map_batches(self, task, batches, progress=None):
        self.trained += sum(len(b) for b in batches)
        return super().map_batches(task, batches, progress)


def _s(**kw):
    base = dict(task="iris_logreg", schedules=("linear",), lrs=(0.5, 1.0), seeds=(0,), steps=40)
    return StudySettings(**(base | kw))


def _both(**kw):
    """A constant schedule too: its description holds no horizon, so only the study's steps
    tell a 40-step constant run from a 41-step one."""
    return _s(schedules=("constant", "linear"), **kw)


def test_a_second_study_trains_only_what_the_first_did_not(tmp_path):
    db = str(tmp_path / "r.db")
    first = Study.open("first", _s(), db)
    first.run(LocalExecutor())
    second = Study.open("second", _s(schedules=("linear", "cosine"), lrs=(0.5, 1.0, 2.0),
                                     seeds=(0, 1)), db)
    assert second.reused == 2  # linear at 0.5 and 1.0, seed 0
    ex = Counting()
    second.run(ex)
    assert ex.trained == 12 - 2 and second.counts() == {"COMPLETE": 12}
    got = second.results().set_index(["schedule", "lr", "seed"])
    want = first.results().set_index(["schedule", "lr", "seed"])
    for key, row in want.iterrows():
        assert got.loc[key, "final_loss"] == row["final_loss"]
        assert got.loc[key, "test_metric"] == row["test_metric"]
    reused = [t for t in second.optuna_study.get_trials() if REUSED_ATTR in t.user_attrs]
    assert {t.user_attrs[REUSED_ATTR] for t in reused} == {"first"} and len(reused) == 2
    # the reused runs are the runs: trained here from scratch they give the same numbers
    fresh = Study.open("fresh", _s(), str(tmp_path / "fresh.db"))
    fresh.run(LocalExecutor())
    assert fresh.results()[COLS].equals(second.results()
                                        .query("schedule == 'linear' and seed == 0 and lr < 2")
                                        [COLS].reset_index(drop=True))
    # reopening takes nothing more
    assert Study.open("second", None, db).reused == 0


@pytest.mark.parametrize("change", [{"steps": 41}, {"task_options": {"l2": 0.01}},
                                    {"optimizer": "momentum"}, {"task": "wine_logreg"},
                                    {"optimizer_options": {"weight_decay": 0.001}}])
def test_runs_of_another_problem_are_not_reused(tmp_path, change):
    db = str(tmp_path / "r.db")
    Study.open("first", _both(), db).run(LocalExecutor())
    assert Study.open("same", _both(), db).reused == 4
    assert Study.open("other", _both(**change), db).reused == 0


def test_the_refined_schedule_of_the_same_pilot_is_taken_not_derived_again(tmp_path, monkeypatch):
    db = str(tmp_path / "r.db")
    first = Study.open("first", _s(schedules=("refined", "linear")), db)
    first.run(LocalExecutor())

    def no_pilot(settings):
        raise AssertionError("the pilot ran again")

    monkeypatch.setattr(pilot, "derive_refined", no_pilot)
    second = Study.open("second", _s(schedules=("refined", "cosine"), seeds=(0, 1)), db)
    assert second.refined == first.refined and second.reused == 2  # refined, seed 0
    # another pilot lr is another refined schedule: its pilot must run
    with pytest.raises(AssertionError, match="the pilot ran again"):
        Study.open("third", _s(schedules=("refined",), pilot_lr=0.25), db)


def test_a_sweep_after_advise_reuses_its_pilot_and_its_runs(tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    adv = advise("iris_logreg", budget=5, storage=db, study="iris")
    adv_runs = Study.open(adv.study, None, db).results()
    monkeypatch.setattr(pilot, "derive_refined", lambda s: pytest.fail("the pilot ran again"))
    grid = tuple(2.0**k for k in range(-4, 5))
    sweep = Study.open("iris", StudySettings("iris_logreg", ("refined", "linear"), lrs=grid,
                                             seeds=(0, 1), steps=adv.steps), db)
    # the advised runs of the sweep's schedules on its grid (the pilot among them); not the
    # constant-lr ones, a schedule this sweep does not train
    on_grid = [r for r in adv_runs.itertuples() if r.schedule in ("refined", "linear")
               and any(abs(r.lr / g - 1) < 1e-9 for g in grid)]
    assert len(on_grid) == 3 and sweep.reused == len(on_grid)
    mine = sweep.results().set_index(["schedule", "lr", "seed"])
    for r in on_grid:
        assert mine.loc[(r.schedule, r.lr, 0), "final_loss"] == r.final_loss
