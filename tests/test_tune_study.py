"""Studies with a small in-test evaluator (the real trainer is exercised in test_cli_sweep)."""

import math
import os
import sqlite3
import time

import numpy as np
import pytest

from lrlab.train.types import RunResult
from lrlab.tune import LocalExecutor, Study, StudySettings, log_grid

BEST = {"constant": 0.5, "cosine": 2.0, "poly2": 64.0}


def fake_runner(task, configs, progress=None):
    """Loss (log2 lr - log2 best)^2 + 1 + seed/100; lr >= 16 diverges for constant."""
    out = []
    for c in configs:
        label = {"constant": "constant", "cosine": "cosine", "polynomial": "poly2"}[c.schedule.name]
        div = label == "constant" and c.lr >= 16
        loss = math.nan if div else (math.log2(c.lr / BEST[label])) ** 2 + 1 + c.seed / 100
        loss += c.options.get("weight_decay", 0.0)
        out.append(
            RunResult(
                c,
                loss,
                None if div else 0.9,
                div,
                7 if div else None,
                np.arange(3),
                np.array([2.0, 1.5, math.nan if div else loss]),
            )
        )
    if progress is not None:
        progress(len(configs) * (configs[0].steps or 1), len(configs) * (configs[0].steps or 1))
    return out


def hold_elsewhere(db, study: str) -> None:
    """Another driver (pid 1 on host 'elsewhere', a fresh heartbeat) holds ``study``'s lease in
    the SQLite file ``db`` (whose lease table must exist)."""
    now = time.time()
    with sqlite3.connect(db) as con:
        con.execute("insert into lrlab_leases values (?, 'x', 'elsewhere', 1, ?, ?)",
                    (study, now, now))


def settings(**kw):
    base = dict(
        task="digits_logreg",
        schedules=("constant", "cosine"),
        lrs=tuple(log_grid(0.25, 32, factor=2)),
        seeds=(0, 1),
        steps=10,
    )
    base.update(kw)
    return StudySettings(**base)


def n_trials(path):
    with sqlite3.connect(path) as con:
        return con.execute("select count(*) from trials").fetchone()[0]


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "s.db")


def test_run_stores_every_trial_once_with_results(db):
    study = Study.open("s", settings(), db)
    assert study.run(LocalExecutor(runner=fake_runner), batch_size=5) == 8 * 2 * 2
    assert study.counts() == {"COMPLETE": 32}
    assert set(study.complete_counts().values()) == {1}
    df = study.results()
    assert len(df) == 32 and set(df["schedule"]) == {"constant", "cosine"}
    row = df[(df.schedule == "cosine") & (df.lr == 2.0) & (df.seed == 1)].iloc[0]
    assert row.final_loss == pytest.approx(1.01) and row.test_metric == 0.9 and not row.diverged
    div = df[df.diverged]
    assert sorted(div.lr.unique()) == [16.0, 32.0] and set(div.schedule) == {"constant"}
    assert div.final_loss.isna().all() and (div.diverged_at == 7).all()
    values = [t.value for t in study.optuna_study.trials if t.user_attrs["diverged"]]
    assert values and all(v == math.inf for v in values)
    curves = study.curves()
    steps, loss = curves[int(div.trial.iloc[0])]
    assert list(steps) == [0, 1, 2] and math.isnan(loss[-1])
    # settings are stored with the study and reloaded
    again = Study.open("s", None, db)
    assert again.settings == settings()
    assert again.run(LocalExecutor(runner=fake_runner)) == 0


def test_different_settings_are_refused_and_nothing_changes(db):
    study = Study.open("s", settings(), db)
    study.run(LocalExecutor(runner=fake_runner))
    before = n_trials(db)
    with pytest.raises(ValueError, match="different settings.*seeds"):
        Study.open("s", settings(seeds=(0, 1, 2)), db)
    with pytest.raises(ValueError, match="different settings.*schedules"):
        Study.open("s", settings(schedules=("constant",)), db)
    assert n_trials(db) == before
    assert len(Study.open("s", None, db).results()) == before


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"lrs": ()}, "grid is empty"),
        ({"schedules": ("constant", "warp_drive")}, "unknown schedule 'warp_drive'"),
        ({"schedules": ()}, "at least one schedule"),
        ({"seeds": ()}, "seeds"),
        ({"lrs": (0.1, -1.0)}, "lrs"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"optimizer_options": {"momentum": 0.9}}, "sgd has no option 'momentum'; its options"),
        ({"optimizer": "adam", "optimizer_options": {"beta1": 1.0}}, "option beta1 of adam"),
        ({"optimizer": "adam", "optimizer_options": {"weight_decay": "x"}}, "weight_decay"),
        ({"schedules": ("cosine:s_min=x",)}, "not a number"),
        ({"schedules": ("cosine:gamma=0.1",)}, "no argument"),
    ],
)
def test_bad_settings_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        settings(**kw)


def test_bad_storage_is_a_clear_error_and_an_existing_db_is_untouched(tmp_path, db):
    with pytest.raises(ValueError, match="cannot open storage"):
        Study.open("s", settings(), str(tmp_path / "no" / "such" / "dir" / "x.db"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="cannot open storage"):
        Study.open("s", settings(), str(junk))
    assert junk.read_bytes() == b"this is not a database" * 100
    with pytest.raises(ValueError, match="cannot open storage"):
        Study.open("s", settings(), "nosuchdialect://host/db")
    with pytest.raises(ValueError, match="no such file"):
        Study.open("s", None, str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    Study.open("s", settings(), db).run(LocalExecutor(runner=fake_runner))
    with pytest.raises(ValueError, match="no study named 'other'"):
        Study.open("other", None, db)
    assert n_trials(db) == 32


def test_stale_running_trials_are_failed_and_requeued_exactly_once(db):
    study = Study.open("s", settings(), db)
    study.prepare()
    claimed = study._claim_waiting()  # a driver that dies after claiming ...
    for t in claimed[:5]:  # ... and telling five trials
        study._tell(
            t,
            fake_runner(
                "x",
                [
                    study.settings.config(
                        study._point(t.params), t.params["schedule"], t.params["seed"]
                    )
                ],
            )[0],
        )
    assert study.counts() == {"COMPLETE": 5, "RUNNING": 27}
    resumed = Study.open("s", None, db)
    assert resumed.run(LocalExecutor(runner=fake_runner), batch_size=4) == 27
    assert resumed.counts() == {"COMPLETE": 32, "FAIL": 27}
    assert set(resumed.complete_counts().values()) == {1}
    assert len(resumed.complete_counts()) == 32
    fresh = Study.open("ref", settings(), db)
    fresh.run(LocalExecutor(runner=fake_runner))
    cols = ["schedule", "lr", "seed", "final_loss", "diverged"]
    a, b = resumed.results()[cols], fresh.results()[cols]
    assert a.equals(b)


def test_a_failing_executor_marks_its_trials_failed_then_resume_completes(db):
    calls = []

    def flaky(task, configs, progress=None):
        calls.append(len(configs))
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return fake_runner(task, configs)

    study = Study.open("s", settings(), db)
    with pytest.raises(RuntimeError, match="worker lost"):
        study.run(LocalExecutor(runner=flaky), batch_size=10)
    assert study.counts() == {"COMPLETE": 10, "FAIL": 22}
    study.run(LocalExecutor(runner=fake_runner))
    assert set(study.complete_counts().values()) == {1} and len(study.results()) == 32


def test_edge_rule_extends_a_grid_whose_best_point_is_on_the_edge(db):
    # poly2's best lr (64) lies above the grid 0.25..8: the edge rule must grow the grid upwards
    s = settings(schedules=("constant", "poly2"), lrs=tuple(log_grid(0.25, 8, factor=2)))
    study = Study.open("s", s, db)
    study.run(LocalExecutor(runner=fake_runner))
    added = study.extend_edges(points=2)
    assert added == {"poly2": [16.0, 32.0]}  # constant's best (0.5) is inside
    assert study.run(LocalExecutor(runner=fake_runner)) == 2 * 2
    assert study.extend_edges(points=2) == {"poly2": [64.0, 128.0]}
    study.run(LocalExecutor(runner=fake_runner))
    assert study.extend_edges(points=2) == {}
    df = study.results()
    poly = df[df.schedule == "poly2"]
    assert poly.loc[poly.final_loss.idxmin(), "lr"] == 64.0
    assert sorted(df[df.schedule == "constant"].lr.unique()) == list(log_grid(0.25, 8, factor=2))
    assert set(study.complete_counts().values()) == {1}
    # the extension is part of the stored study: a reopened study expects those trials too
    assert len(Study.open("s", None, db).expected()) == len(df)


def test_random_search_study_is_reproducible(db, tmp_path):
    rnd = {"bounds": {"lr": (0.1, 10.0), "weight_decay": (1e-4, 1e-2)}, "n": 6, "seed": 3}
    s = settings(lrs=(), random=rnd)
    study = Study.open("r", s, db)
    study.run(LocalExecutor(runner=fake_runner))
    df = study.results()
    assert len(df) == 6 * 2 * 2
    assert df.lr.between(0.1, 10).all() and df.weight_decay.between(1e-4, 1e-2).all()
    other = Study.open("r", s, str(tmp_path / "other.db"))
    other.run(LocalExecutor(runner=fake_runner))
    cols = ["schedule", "seed", "lr", "weight_decay", "final_loss"]
    assert df[cols].equals(other.results()[cols])
    with pytest.raises(ValueError, match="random"):
        study.extend_edges()
    from lrlab.report import study_report

    page = open(study_report(study, tmp_path / "rep").files["report.html"]).read()
    assert "optimizer sgd (weight_decay searched)" in page
    with pytest.raises(ValueError, match="either lrs"):
        settings(random=rnd)


def test_local_process_pool_matches_in_process(db, tmp_path):
    a = Study.open("a", settings(), db)
    a.run(LocalExecutor(runner=fake_runner), batch_size=8)
    with LocalExecutor(processes=2, runner=fake_runner) as ex:
        b = Study.open("b", settings(), str(tmp_path / "b.db"))
        b.run(ex, batch_size=8)
    cols = ["schedule", "lr", "seed", "final_loss", "diverged"]
    assert a.results()[cols].equals(b.results()[cols])
    assert os.path.exists(db)


def test_batch_size_zero_splits_over_the_executor_workers(db):
    class Recording(LocalExecutor):
        parallelism = 3
        sizes: list = []

        def map_batches(self, task, batches, progress=None):
            self.sizes.extend(len(b) for b in batches)
            return super().map_batches(task, batches, progress)

    ex = Recording(runner=fake_runner)
    Study.open("s", settings(), db).run(ex)
    assert ex.sizes == [11, 11, 10]
    assert LocalExecutor(processes=2).parallelism == 2 and LocalExecutor().parallelism == 1


def test_random_search_without_an_lr_bound_is_refused():
    rnd = {"bounds": {"weight_decay": (1e-4, 1e-2)}, "n": 3, "seed": 0}
    with pytest.raises(ValueError, match="random bounds must include 'lr'") as info:
        settings(lrs=(), random=rnd)
    assert "\n" not in str(info.value)


def test_a_task_that_cannot_be_built_creates_no_study(db):
    with pytest.raises(ValueError, match="unknown task 'no_such_task'"):
        Study.open("s", settings(task="no_such_task"), db)
    with pytest.raises(ValueError, match="no such file"):
        Study.open("s", settings(task="/no/such/file.py:build"), db)
    Study.open("other", settings(), db)
    with pytest.raises(ValueError, match="no study named 's'"):
        Study.open("s", None, db)


def test_optimizer_options_define_the_study(db):
    s = settings(optimizer="adamw", optimizer_options={"weight_decay": 0.25, "beta1": 0.8})
    assert list(s.optimizer_options) == ["beta1", "weight_decay"]
    assert s.resolved_options == {"beta1": 0.8, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.25}
    cfg = s.config({"lr": 0.5}, "cosine", 1)
    assert cfg.optimizer == "adamw" and cfg.options == {"beta1": 0.8, "weight_decay": 0.25}
    # every key of a point other than lr overrides the option of that name
    assert s.config({"lr": 0.5, "weight_decay": 0.01}, "cosine", 1).options["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="adamw has no option 'momentum'"):
        s.config({"lr": 0.5, "momentum": 0.5}, "cosine", 1)
    study = Study.open("o", s, db)
    study.run(LocalExecutor(runner=fake_runner))
    df = study.results()
    assert (df.weight_decay == 0.25).all()
    row = df[(df.schedule == "cosine") & (df.lr == 2.0) & (df.seed == 1)].iloc[0]
    assert row.final_loss == pytest.approx(1.01 + 0.25)
    assert Study.open("o", None, db).settings == s
    other = settings(optimizer="adamw", optimizer_options={"weight_decay": 0.5, "beta1": 0.8})
    with pytest.raises(ValueError, match="different settings.*optimizer_options"):
        Study.open("o", other, db)
    # the default weight decay of the method fills the results' column
    assert (Study.open("d", settings(optimizer="adamw"), db).settings.resolved_options[
        "weight_decay"] == 0.01)


def test_settings_stored_before_optimizer_options_load():
    d = settings(optimizer="adam").to_dict()
    del d["optimizer_options"]
    d.update(momentum=0.9, weight_decay=0.0)
    assert StudySettings.from_dict(d) == settings(optimizer="adam")
    d.update(momentum=0.5, weight_decay=0.01)
    assert StudySettings.from_dict(d).optimizer_options == {"beta1": 0.5, "weight_decay": 0.01}


def test_every_write_of_a_study_needs_its_lease(tmp_path) -> None:
    """Growing the grid, storing an outside run and training all refuse while another
    driver (another host, a fresh heartbeat) holds the study."""
    db = tmp_path / "l.db"
    study = Study.open("s", settings(), str(db))
    study.run(LocalExecutor(runner=fake_runner))
    res = fake_runner(None, [study.settings.config({"lr": 4.0}, "constant", 0)])[0]
    study.close()
    hold_elsewhere(db, "s")
    held = "is being run by pid 1 on elsewhere"
    # reading needs no lease: the study opens, with or without its settings
    assert len(Study.open("s", settings(), str(db)).results()) == len(study.results())
    assert len(Study.open("s", None, str(db)).results()) == len(study.results())
    with pytest.raises(ValueError, match=held):
        study.add_lrs("constant", [4.0])
    with pytest.raises(ValueError, match=held):
        study.extend_edges()
    with pytest.raises(ValueError, match=held):
        study.record("constant", 0.5, 0, res, "pilot")
    with pytest.raises(ValueError, match=held):
        study.run(LocalExecutor(runner=fake_runner))
    assert study.extra_lrs == {}


def test_a_study_name_must_be_a_non_empty_string(tmp_path) -> None:
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="study name must be a non-empty string"):
            Study.open(bad, settings(), str(tmp_path / "n.db"))


class _Outcomes:
    """A trial executor that answers each spec at once: lr 0.8 fails, the others complete
    with loss = lr."""

    parallelism = 1

    def map_trials(self, specs):
        for i, spec in enumerate(specs):
            lr = spec["params"]["lr"]
            if lr == 0.8:
                yield i, {"status": "failed", "error": "boom"}
                continue
            yield i, {"status": "ok", "error": None, "loss": lr, "metric": None,
                      "diverged": False, "diverged_at": None, "steps": [0], "losses": [1.0]}


def test_trials_of_user_code_are_told_one_by_one_with_progress(tmp_path) -> None:
    s = StudySettings(task="true {lr}", schedules=("constant",), lrs=(0.2, 0.4, 0.8),
                      seeds=(0,), steps=5, kind="command", workdir=str(tmp_path))
    study = Study.open("c", s, str(tmp_path / "c.db"))
    seen = []
    assert study.run(_Outcomes(), on_batch=lambda told, n: seen.append((told, n))) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert study.counts() == {"COMPLETE": 2, "FAIL": 1}
    assert sorted(study.results()["final_loss"]) == [0.2, 0.4]
    assert study.failures()["error"].tolist() == ["boom"]


def test_failed_trials_are_retried_only_when_asked(tmp_path) -> None:
    s = StudySettings(task="true {lr}", schedules=("constant",), lrs=(0.4, 0.8), seeds=(0,),
                      steps=5, kind="command", workdir=str(tmp_path))
    study = Study.open("r", s, str(tmp_path / "r.db"))
    assert study.run(_Outcomes()) == 2
    assert study.run(_Outcomes()) == 0  # a failure with a reason counts as done
    assert study.run(_Outcomes(), retry_failed=True) == 1
    assert study.counts() == {"COMPLETE": 1, "FAIL": 2}


def test_results_have_the_documented_columns_and_a_plain_index(db) -> None:
    study = Study.open("s", settings(), db)
    study.run(LocalExecutor(runner=fake_runner))
    df = study.results()
    assert list(df.columns) == ["trial", "schedule", "seed", "lr", "weight_decay", "final_loss",
                                "test_metric", "diverged", "diverged_at"]
    assert list(df.index) == list(range(len(df)))


def test_ask_hands_out_each_queued_trial_once_into_one_folder(tmp_path) -> None:
    s = StudySettings("job", ("constant",), lrs=(0.1, 0.2), seeds=(0,), steps=5,
                      kind="external")
    study = Study.open("x", s, str(tmp_path / "x.db"))
    files = str(tmp_path / "files")
    a, b = study.ask(files), study.ask(files)  # the folder exists for the second call
    assert sorted([a["lr"], b["lr"]]) == [0.1, 0.2] and a["trial"] != b["trial"]
    assert os.path.dirname(a["schedule"]) == files and study.ask(files) is None


def test_a_study_not_made_by_lrlab_is_refused_and_leaves_no_lease(tmp_path) -> None:
    import optuna

    db = tmp_path / "o.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="plain")
    with pytest.raises(ValueError, match="exists but was not made by lrlab"):
        Study.open("plain", None, str(db))
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from lrlab_leases").fetchone()[0] == 0


def test_a_half_created_study_is_completed_only_by_the_lease_holder(tmp_path) -> None:
    """A study stored without its refined schedule (its creator stopped in between) gets the
    pilot run by whoever opens it next, but not while another driver holds it."""
    import optuna

    from lrlab.tune.study import REFINED_ATTR, SETTINGS_ATTR

    db = tmp_path / "h.db"
    s = StudySettings(task="iris_logreg", schedules=("refined",), lrs=(0.5,), seeds=(0,),
                      steps=10, pilot_lr=0.5)
    raw = optuna.create_study(storage=f"sqlite:///{db}", study_name="h")
    raw.set_user_attr(SETTINGS_ATTR, s.to_dict())
    Study.open("other", settings(), str(db)).close()  # creates the lease table
    hold_elsewhere(db, "h")
    with pytest.raises(ValueError, match="is being run by pid 1 on elsewhere"):
        Study.open("h", None, str(db))
    with sqlite3.connect(db) as con:
        con.execute("delete from lrlab_leases where study = 'h'")
    assert REFINED_ATTR in Study.open("h", None, str(db)).optuna_study.user_attrs


def test_results_follow_the_settings_schedule_order_and_trial_0_can_be_told(tmp_path) -> None:
    s = StudySettings("job", ("cosine", "constant"), lrs=(0.1,), seeds=(0,), steps=5,
                      kind="external")
    study = Study.open("o", s, str(tmp_path / "o.db"))
    first = study.ask(str(tmp_path / "f"))
    assert first["trial"] == 0
    study.tell(0, loss=1.0)
    second = study.ask(str(tmp_path / "f"))
    study.tell(second["trial"], loss=2.0)
    assert study.results()["schedule"].tolist() == ["cosine", "constant"]  # as given


def test_creating_a_study_needs_its_lease(tmp_path) -> None:
    """A new study whose name another driver holds (two creators started at once) is refused,
    and nothing is created."""
    db = tmp_path / "c.db"
    Study.open("other", settings(), str(db)).close()  # creates the lease table
    hold_elsewhere(db, "new")
    with pytest.raises(ValueError, match="is being run by pid 1 on elsewhere"):
        Study.open("new", settings(), str(db))
    with pytest.raises(ValueError, match="no study named 'new'"):
        Study.open("new", None, str(db))
