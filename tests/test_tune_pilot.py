"""The ``refined`` schedule of a study: pilot, storage, reuse on reopen and resume."""

import numpy as np
import pytest

from lrlab.schedules import FromArray, Linear, Schedule
from lrlab.tune import LocalExecutor, Study, StudySettings, build_schedule, train_batch
from lrlab.tune import pilot as pilot_mod
from lrlab.tune.pilot import pilot_norm


def settings(**kw):
    base = dict(
        task="iris_logreg",
        schedules=("linear", "refined"),
        lrs=(0.2, 0.8),
        seeds=(0, 1),
        steps=40,
        pilot_lr=0.4,
    )
    base.update(kw)
    return StudySettings(**base)


def recording_runner(seen):
    def runner(task, configs, progress=None):
        seen.extend(configs)
        return train_batch(task, configs, progress)

    return runner


def no_pilot(settings):
    raise AssertionError("the pilot ran again")


def test_refined_is_derived_once_stored_and_reused_on_resume(tmp_path, monkeypatch):
    db = str(tmp_path / "s.db")
    s = settings()
    study = Study.open("s", s, db)
    stored = study.refined
    assert stored["pilot"] == {
        **stored["pilot"],
        "schedule": "linear",
        "lr": 0.4,
        "seed": 0,
        "steps": 40,
        "optimizer": "sgd",
        "norm": "l2",
    }
    refined = study.schedules()["refined"]
    assert isinstance(refined, FromArray) and refined.horizon == 40
    assert refined == Schedule.from_dict(pilot_mod.derive_refined(s)["schedule"])
    seen = []
    # the first batch trains, the second is interrupted: half the trials stay to resume
    calls = {"n": 0}

    def flaky(task, configs, progress=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return recording_runner(seen)(task, configs, progress)

    with pytest.raises(KeyboardInterrupt):
        study.run(LocalExecutor(runner=flaky), batch_size=4)
    # reopening (resume or same settings) never re-derives: the pilot would fail the test
    monkeypatch.setattr(pilot_mod, "derive_refined", no_pilot)
    for again in (Study.open("s", None, db), Study.open("s", s, db)):
        assert again.refined == stored and again.schedules()["refined"] == refined
    again.run(LocalExecutor(runner=recording_runner(seen)))
    assert set(again.complete_counts().values()) == {1} and len(again.complete_counts()) == 8
    used = [c.schedule for c in seen if isinstance(c.schedule, FromArray)]
    assert len(used) == 4 and all(u == refined for u in used)


def test_constant_pilot_norms_give_linear_decay(tmp_path, monkeypatch):
    s = settings()

    def constant_norms(settings):
        cfg = pilot_mod.pilot_config(settings, 0.1)
        return cfg, np.full(settings.steps, 3.0)

    monkeypatch.setattr(pilot_mod, "pilot_norms", constant_norms)
    study = Study.open("c", s, str(tmp_path / "c.db"))
    t = np.arange(0, 45)
    got = study.schedules()["refined"](t)
    np.testing.assert_allclose(got, Linear(steps=40)(t), rtol=0, atol=1e-12)
    cfg = s.config({"lr": 0.8}, "refined", 1, refined=study.schedules()["refined"])
    np.testing.assert_allclose(cfg.schedule(t), Linear(steps=40)(t), rtol=0, atol=1e-12)


def test_pilot_norm_follows_the_optimizer(tmp_path):
    assert [pilot_norm(o) for o in ("adam", "adamw", "schedulefree_adamw", "prodigy")] == [
        "l1"] * 4
    assert [pilot_norm(o) for o in ("sgd", "momentum", "schedulefree_sgd", "dadapt_sgd")] == [
        "l2", "l2", "l2", "l2"]
    study = Study.open("a", settings(optimizer="adam", pilot_lr=0.05), str(tmp_path / "a.db"))
    assert study.refined["pilot"]["norm"] == "l1"


def test_pilot_uses_the_task_default_lr_when_none_is_given():
    from lrlab.tasks import get_task

    cfg, norms = pilot_mod.pilot_norms(settings(pilot_lr=None))
    assert cfg.lr == get_task("iris_logreg").default_lr and cfg.seed == 0
    assert norms.shape == (40,) and np.all(norms > 0)


def test_bad_refined_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pilot_lr is only used"):
        settings(schedules=("linear",))
    with pytest.raises(ValueError, match="pilot_lr"):
        settings(pilot_lr=-1.0)
    with pytest.raises(ValueError, match="derived from a pilot run"):
        build_schedule("refined", 40)
    with pytest.raises(ValueError, match="horizon steps=40"):
        build_schedule("refined", 40, refined=Linear(steps=10))
    db = str(tmp_path / "d.db")
    with pytest.raises(ValueError, match="pilot run .* diverged at step"):
        Study.open("d", settings(pilot_lr=1e9, task_options={"l2": 0.01}), db)
    with pytest.raises(ValueError, match="pilot run .* cannot be refined"):
        Study.open("d", settings(pilot_lr=1e9), db)  # saturated: gradients vanish
    with pytest.raises(ValueError, match="no study named 'd'"):
        Study.open("d", None, db)


def test_pilot_uses_the_study_optimizer_options():
    s = settings(optimizer="momentum", optimizer_options={"momentum": 0.5, "weight_decay": 0.01})
    cfg = pilot_mod.pilot_config(s, 0.4)
    assert cfg.optimizer == "momentum"
    assert cfg.options == {"momentum": 0.5, "weight_decay": 0.01}
