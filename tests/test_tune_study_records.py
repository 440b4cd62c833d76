"""What a study records in its storage besides results: the search distributions, which
failures are reported, and how opening its database reacts to errors."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from lrlab.tune import LocalExecutor, Study
from test_tune_study import fake_runner, settings

REAL_STORAGE = optuna.storages.RDBStorage


def test_searched_values_are_log_scale_distributions(tmp_path) -> None:
    study = Study.open("s", settings(), str(tmp_path / "s.db"))
    study.run(LocalExecutor(runner=fake_runner))
    dist = study.optuna_study.trials[0].distributions
    assert dist["lr"].log and dist["lr"].low > 0
    rnd = {"bounds": {"lr": (0.1, 10.0), "weight_decay": (1e-4, 1e-2)}, "n": 2, "seed": 0}
    r = Study.open("r", settings(lrs=(), random=rnd), str(tmp_path / "r.db"))
    r.run(LocalExecutor(runner=fake_runner))
    dist = r.optuna_study.trials[0].distributions
    assert dist["lr"].log and dist["weight_decay"].log


def test_trials_lost_with_their_worker_are_not_reported_as_failures(tmp_path) -> None:
    calls = []

    def flaky(task, configs, progress=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return fake_runner(task, configs)

    study = Study.open("s", settings(), str(tmp_path / "s.db"))
    with pytest.raises(RuntimeError, match="worker lost"):
        study.run(LocalExecutor(runner=flaky), batch_size=10)
    assert study.counts()["FAIL"] > 0
    assert study.failures().empty  # no reason was given: the exception itself was the report


def _storage(fail):
    """An RDB storage class whose construction fails while ``fail(calls)`` gives an error."""
    calls: list[str] = []

    class Storage(REAL_STORAGE):
        def __init__(self, url, **kw):
            calls.append(url)
            error = fail(len(calls))
            if error is not None:
                raise RuntimeError(error)
            super().__init__(url, **kw)

    return Storage, calls


def test_opening_a_database_retries_only_the_table_creation_race(tmp_path, monkeypatch) -> None:
    broken, calls = _storage(lambda n: "disk I/O error")
    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(ValueError, match="cannot open storage .*disk I/O error"):
        Study.open("s", settings(), str(tmp_path / "a.db"))
    assert len(calls) == 1  # any other error is raised at once

    racing, calls = _storage(lambda n: "table studies already exists" if n < 3 else None)
    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    study = Study.open("s", settings(), str(tmp_path / "b.db"))
    assert len(calls) == 3 and study.counts()

    always, calls = _storage(lambda n: "table studies already exists")
    monkeypatch.setattr(optuna.storages, "RDBStorage", always)
    with pytest.raises(ValueError, match="cannot open storage .*already exists"):
        Study.open("s", settings(), str(tmp_path / "c.db"))
    assert len(calls) == 5


def test_stored_curves_read_back_with_nan_after_divergence(tmp_path) -> None:
    study = Study.open("s", settings(), str(tmp_path / "s.db"))
    study.run(LocalExecutor(runner=fake_runner))
    df = study.results().set_index("trial")
    curves = study.curves()
    assert set(curves) == set(df.index)
    for trial, (steps, loss) in curves.items():
        assert list(steps) == [0, 1, 2] and loss.dtype == np.float64
        assert loss[:2].tolist() == [2.0, 1.5]
        if df.loc[trial, "diverged"]:
            assert np.isnan(loss[2])
        else:
            assert loss[2] == df.loc[trial, "final_loss"]


def test_the_database_is_in_write_ahead_log_mode(tmp_path) -> None:
    # readers (a report, a second driver's check) do not wait for a running sweep's writes
    import sqlite3

    path = tmp_path / "s.db"
    Study.open("s", settings(), str(path)).run(LocalExecutor(runner=fake_runner))
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_storage_errors_become_one_line_value_errors_and_others_pass_through() -> None:
    import sqlite3

    from lrlab.tune.study import plain_storage_errors, storage_url

    with pytest.raises(ValueError, match=r"^storage 'sqlite:///x.db': read-only"):
        with plain_storage_errors("sqlite:///x.db"):
            raise sqlite3.OperationalError("attempt to write a readonly database")
    with pytest.raises(KeyError, match="not a database error"):  # unchanged
        with plain_storage_errors("sqlite:///x.db"):
            raise KeyError("not a database error")
    assert storage_url("a.db") == "sqlite:///a.db"
    assert storage_url("postgresql://h/db") == "postgresql://h/db"
    for bad in ("", None):
        with pytest.raises(ValueError, match="storage must be a non-empty URL"):
            storage_url(bad)


def test_open_storage_creates_a_new_file_unless_it_must_exist(tmp_path) -> None:
    from lrlab.tune.study import open_storage, study_names

    new = tmp_path / "new.db"
    with pytest.raises(ValueError, match="new.db"):
        open_storage(f"sqlite:///{new}", must_exist=True)
    assert not new.exists()
    assert study_names(open_storage(f"sqlite:///{new}")) == [] and new.exists()


def test_an_unreachable_postgres_server_is_not_called_a_missing_driver() -> None:
    pytest.importorskip("psycopg")
    from lrlab.tune.study import open_storage

    with pytest.raises(ValueError, match="cannot open storage") as err:
        open_storage("postgresql://nobody@127.0.0.1:1/none")
    assert "not installed" not in str(err.value)


def test_a_long_reported_curve_is_thinned_to_its_ends_and_curve_points() -> None:
    from lrlab.tune.executors import CURVE_POINTS
    from lrlab.tune.study import outcome_result

    n = 5 * CURVE_POINTS + 3
    out = {"steps": list(range(n)), "losses": [float(i) for i in range(n)], "loss": 0.5,
           "metric": None, "diverged": False, "diverged_at": None}
    res = outcome_result(out)
    assert res.curve_steps[0] == 0 and res.curve_steps[-1] == n - 1
    assert len(res.curve_steps) == CURVE_POINTS
    np.testing.assert_array_equal(res.curve_loss, res.curve_steps.astype(float))


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgresql+psycopg://u@h/db"])
def test_a_missing_postgres_driver_says_what_to_install(url, monkeypatch) -> None:
    from lrlab.tune import study as study_module

    def no_driver(url, kwargs):
        raise ImportError("No module named 'psycopg'")

    monkeypatch.setattr(study_module, "_rdb_storage", no_driver)
    with pytest.raises(ValueError, match=r"driver psycopg is not installed: pip install"):
        study_module.open_storage(url)
    with pytest.raises(ValueError, match="cannot open storage") as err:  # another scheme
        study_module.open_storage("mysql://u@h/db")
    assert "pip install" not in str(err.value)


@pytest.mark.parametrize("prepared", [False, True])
def test_a_recorded_run_is_marked_with_its_source(tmp_path, prepared) -> None:
    """Stored into a new trial or into the waiting trial the grid already enqueued, an outside
    run is COMPLETE and names its source in ``lrlab_recorded``; the trials the study trains
    carry no such mark."""
    study = Study.open("s", settings(), str(tmp_path / "r.db"))
    if prepared:
        study.prepare()
    res = fake_runner(None, [study.settings.config({"lr": 4.0}, "constant", 0)])[0]
    assert study.record("constant", 4.0, 0, res, "pilot")
    study.run(LocalExecutor(runner=fake_runner))
    marked = [t for t in study.optuna_study.get_trials() if "lrlab_recorded" in t.user_attrs]
    assert len(marked) == 1 and marked[0].user_attrs["lrlab_recorded"] == "pilot"
    assert marked[0].state == optuna.trial.TrialState.COMPLETE
    assert (marked[0].params["schedule"], marked[0].params["lr"]) == ("constant", 4.0)
