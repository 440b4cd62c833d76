"""A study's whole life on a real PostgreSQL server (``tests/pg_server.py``, one per session;
a fresh database per test): the CLI's sweep and report, a driver killed mid-study and resumed,
the one-driver lease across hosts, ``lrlab ask``/``tell`` from concurrent processes, and the
Ray executor. Skipped where the PostgreSQL server is not installed."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

import pg_server
from lrlab.cli import main
from lrlab.tune import LocalExecutor, LocalTrials, Study, StudySettings, lease
from lrlab.tune.study import open_storage

# command trials of a fixed length that report their lr as the loss
COMMAND = "sleep {secs} && echo '{{{{\"loss\": {{lr}}}}}}'"


@pytest.fixture(scope="session")
def pg_server_running():
    if pg_server.binaries() is None:
        pytest.skip("the PostgreSQL server (initdb, pg_ctl) is not installed")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'lrlab[postgres]'")
    server = pg_server.Server().start()
    yield server
    for url, name in list(lease._held):  # leases this process took on the server's databases
        if url.startswith(server.url("")):
            lease.release(url, name)
    server.stop()


@pytest.fixture
def pg_url(pg_server_running):
    """A fresh, empty database on the session's server."""
    return pg_server_running.create_database()


def _count(url, sql, **params):
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    except sa.exc.ProgrammingError:  # the table is not there yet
        return 0
    finally:
        engine.dispose()


def _wait(cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sweep(url, *args, env=None, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", "lrlab", "sweep", "--storage", url, "--edge-rounds", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _command_study(url, study, lrs, secs, env=None, cwd=None):
    grid = ",".join(str(x) for x in lrs)
    return _sweep(
        url, "--study", study, "--command", COMMAND.format(secs=secs), "--steps", "5",
        "--grid", grid, "--seeds", "1", "--schedules", "constant", env=env, cwd=cwd,
    )


def _complete_once(url, study, lrs):
    s = Study.open(study, None, url)
    assert s.counts().get("COMPLETE") == len(lrs)
    assert sorted(s.complete_counts().values()) == [1] * len(lrs)
    assert sorted(s.results()["final_loss"]) == sorted(lrs)
    return s


# -- the driver -------------------------------------------------------------------------------
def test_a_missing_driver_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    with pytest.raises(ValueError) as err:
        open_storage("postgresql://u@127.0.0.1:1/lrlab")
    assert "pip install 'lrlab[postgres]'" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bare_postgresql_url_opens_with_the_installed_driver(pg_url):
    rdb = open_storage(pg_url)
    assert rdb.engine.dialect.name == "postgresql"
    assert rdb.engine.dialect.driver == "psycopg"  # what lrlab[postgres] installs
    rdb.engine.dispose()


# -- create, run, report ----------------------------------------------------------------------
SWEEP = ["--task", "iris_logreg", "--schedules", "constant,cosine", "--grid", "0.1,0.8,6.4",
         "--seeds", "2", "--steps", "30"]


def test_sweep_and_report_through_the_cli_store_what_sqlite_stores(pg_url, tmp_path, capsys):
    out, again = tmp_path / "out", tmp_path / "again"
    assert main(["sweep", *SWEEP, "--storage", pg_url, "--study", "pg", "--out", str(out),
                 "--edge-rounds", "0"]) == 0
    assert main(["report", "pg", "--storage", pg_url, "--out", str(again)]) == 0
    capsys.readouterr()
    db = str(tmp_path / "peer.db")
    assert main(["sweep", *SWEEP, "--storage", db, "--study", "pg", "--out",
                 str(tmp_path / "peer"), "--edge-rounds", "0"]) == 0
    pg = pd.read_csv(again / "results.csv")
    peer = pd.read_csv(tmp_path / "peer" / "results.csv")
    assert len(pg) == 12 and (again / "report.html").stat().st_size > 0
    cols = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]
    pd.testing.assert_frame_equal(pg[cols], peer[cols])
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv")[cols], pg[cols])
    assert _count(pg_url, "select count(*) from trials where state = 'COMPLETE'") == 12
    assert _count(pg_url, "select count(*) from lrlab_leases") == 0  # released at the end


def test_a_driver_killed_mid_study_resumes_with_every_trial_complete_once(
    pg_url, tmp_path, capsys
):
    lrs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    driver = _command_study(pg_url, "kill", lrs, secs=0.5, cwd=tmp_path)
    done = "select count(*) from trials where state = 'COMPLETE'"
    _wait(lambda: _count(pg_url, done) >= 2, "two complete trials")
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    before = _count(pg_url, done)
    assert 0 < before < len(lrs)  # killed mid-study
    assert _count(pg_url, "select count(*) from lrlab_leases") == 1  # the dead driver's
    assert main(["sweep", "--resume", "--storage", pg_url, "--study", "kill",
                 "--edge-rounds", "0", "--out", str(tmp_path / "r")]) == 0
    assert "its process is gone" in capsys.readouterr().err
    study = _complete_once(pg_url, "kill", lrs)
    assert study.counts().get("RUNNING", 0) == 0 and study.counts().get("WAITING", 0) == 0


# -- one driver per study, across hosts ---------------------------------------------------------
def test_two_drivers_started_together_on_a_fresh_database_resolve_to_one(pg_url, tmp_path):
    lrs = [0.1, 0.2, 0.4, 0.8]  # two seconds of trials: the second driver starts meanwhile
    a = _command_study(pg_url, "s", lrs, secs=0.5, cwd=tmp_path)
    b = _command_study(pg_url, "s", lrs, secs=0.5, cwd=tmp_path)
    (_, err_a), (_, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    assert sorted([a.returncode, b.returncode]) == [0, 2], (err_a, err_b)
    loser = err_a if a.returncode == 2 else err_b
    assert "is being run by pid" in loser and "Traceback" not in loser
    _complete_once(pg_url, "s", lrs)


class _Said(logging.Handler):
    """What the ``lrlab`` logger said (the CLI's own handler may write to a closed stream)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"


def test_a_driver_on_another_host_is_refused_until_its_heartbeat_is_older_than_the_lease(
    pg_url, tmp_path, monkeypatch
):
    env = {"LRLAB_LEASE_SECONDS": "3"}  # heartbeat every 0.5 s
    monkeypatch.setenv("LRLAB_LEASE_SECONDS", "3")
    said = _Said()
    monkeypatch.setattr(logging.getLogger("lrlab"), "handlers", [said])
    lrs = [0.1, 0.2, 0.3, 0.4]
    holder = _command_study(pg_url, "hosts", lrs, secs=1, env=env, cwd=tmp_path)
    try:
        # the holder has its lease and has stored the study (its trials wait)
        _wait(lambda: _count(pg_url, "select count(*) from lrlab_leases") == 1
              and _count(pg_url, "select count(*) from trials") > 0, "the lease and the trials")
        # the holder now looks like a driver on another machine: its pid means nothing here
        engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("update lrlab_leases set host = 'node-b'"))
        engine.dispose()
        study = Study.open("hosts", None, pg_url)
        with pytest.raises(ValueError, match=f"is being run by pid {holder.pid} on node-b"):
            study.hold()
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
        killed = time.monotonic()
        # another host cannot see that the process is gone: refused until the lease expires
        with pytest.raises(ValueError, match="one driver per study"):
            study.hold()
        assert time.monotonic() - killed < 2.5
        time.sleep(max(0.0, killed + 3.2 - time.monotonic()))
        study.hold()
        assert f"took over study 'hosts' from pid {holder.pid} on node-b" in said.text
        assert "no heartbeat for" in said.text
        with LocalTrials(2) as ex:
            study.run(ex)
        study.close()
    finally:
        holder.kill()
        holder.communicate()
    _complete_once(pg_url, "hosts", lrs)
    assert _count(pg_url, "select count(*) from lrlab_leases") == 0


def test_lease_table_created_by_another_process_meanwhile_is_not_an_error(pg_url):
    """PostgreSQL reports a table created concurrently as an IntegrityError (a duplicate
    type name), not as SQLite's OperationalError."""
    first, second, watch = (sa.create_engine(pg_url) for _ in range(3))
    result = {}

    def ensure():
        try:
            lease.Lease(second, "x")._ensure_table()
            result["ok"] = True
        except Exception as exc:  # reported below
            result["error"] = exc

    try:
        with first.connect() as conn:
            tx = conn.begin()
            lease._meta.create_all(conn)  # created, not yet committed
            thread = threading.Thread(target=ensure)
            thread.start()
            blocked = "select count(*) from pg_locks where not granted"
            _wait(lambda: _count(pg_url, blocked) > 0, "the second CREATE TABLE to wait")
            tx.commit()
        thread.join(timeout=30)
        assert result == {"ok": True}, result.get("error")
        with watch.connect() as conn:
            assert conn.execute(sa.text("select count(*) from lrlab_leases")).scalar() == 0
    finally:
        for engine in (first, second, watch):
            engine.dispose()


# -- lrlab ask / tell ---------------------------------------------------------------------------
LOOP = """
while out=$({py} -m lrlab ask --study ext --storage {url} --schedule-dir {dir}); do
  n=$(printf '%s' "$out" | {py} -c 'import json,sys; print(json.load(sys.stdin)["trial"])')
  echo "$n" >> {got}
  {py} -m lrlab tell --study ext --storage {url} --trial "$n" --loss "0.$n" || exit 9
done
"""


def test_ask_and_tell_from_concurrent_shells_hand_each_trial_out_once(pg_url, tmp_path):
    assert main(["sweep", "--external", "job", "--steps", "10", "--grid", "0.1,0.2",
                 "--seeds", "1", "--schedules", "linear", "--storage", pg_url,
                 "--study", "ext"]) == 0
    got = tmp_path / "got.txt"
    loop = LOOP.format(py=sys.executable, url=pg_url, dir=tmp_path / "s", got=got)
    shells = [subprocess.Popen(["bash", "-c", loop]) for _ in range(2)]
    assert [s.wait(timeout=120) for s in shells] == [0, 0]  # no tell refused (exit 9)
    numbers = [int(x) for x in got.read_text().split()]
    assert sorted(numbers) == [0, 1]  # each trial handed out exactly once
    study = Study.open("ext", None, pg_url)
    assert study.counts() == {"COMPLETE": 2}
    df = study.results().set_index("trial")
    assert all(df.loc[n, "final_loss"] == float(f"0.{n}") for n in numbers)


WORKER = """
import json, sys
from lrlab.tune import Study
study = Study.open("many", None, sys.argv[1])
got = []
while (t := study.ask(sys.argv[2])) is not None:
    study.tell(t["trial"], t["lr"])
    got.append(t["trial"])
print(json.dumps(got))
"""


def test_many_workers_asking_at_once_claim_each_trial_exactly_once(pg_url, tmp_path):
    lrs = tuple(round(0.01 * (i + 1), 4) for i in range(60))
    settings = StudySettings("job", ("constant",), lrs=lrs, steps=5, kind="external")
    Study.open("many", settings, pg_url)
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, pg_url, str(tmp_path / "s")],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 3
    claimed = [n for out in outs for n in json.loads(out)]
    assert sorted(claimed) == list(range(60))  # every trial once, none twice
    assert sum(1 for out in outs if json.loads(out)) >= 2  # they did work side by side
    study = Study.open("many", None, pg_url)
    assert study.counts() == {"COMPLETE": 60}
    assert sorted(study.results()["final_loss"]) == sorted(lrs)


# -- Ray ----------------------------------------------------------------------------------------
def test_the_ray_executor_writes_through_the_driver(pg_url, tmp_path):
    pytest.importorskip("ray")
    ray = _sweep(pg_url, *SWEEP, "--study", "ray", "--executor", "ray", "--batch-size", "6",
                 "--out", str(tmp_path / "out"), cwd=tmp_path)
    _, err = ray.communicate(timeout=300)
    assert ray.returncode == 0, err
    settings = Study.open("ray", None, pg_url).settings
    peer = Study.open("local", settings, str(tmp_path / "local.db"))
    peer.run(LocalExecutor(), batch_size=6)
    a = Study.open("ray", None, pg_url)
    cols = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]
    assert len(a.results()) == 12
    assert a.results()[cols].equals(peer.results()[cols])
    assert set(a.complete_counts().values()) == {1}
