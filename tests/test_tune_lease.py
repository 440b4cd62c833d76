"""One driver per study (``lrlab.tune.lease``), with real ``lrlab sweep`` processes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from lrlab.tune import Study

# four command trials of half a second each: a driver holds its study for seconds
COMMAND = "sleep 0.5 && echo '{{\"loss\": {lr}}}'"


def _sweep(db, resume=False, env=None):
    args = [sys.executable, "-m", "lrlab", "sweep", "--storage", str(db), "--study", "s"]
    args += ["--edge-rounds", "0"]
    if resume:
        args += ["--resume"]
    else:
        args += ["--command", COMMAND, "--steps", "5", "--grid", "0.1,0.2,0.4,0.8"]
        args += ["--seeds", "1", "--schedules", "constant"]
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=os.path.dirname(db),
    )


def _wait_for_a_trial(db, timeout=120):
    """Until the driver has completed a trial: it is then in its training loop, between writes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as con:
                row = con.execute("select count(*) from trials where state = 'COMPLETE'")
                if row.fetchone()[0]:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError("the driver completed no trial")


def _complete_once(db):
    study = Study.open("s", None, str(db))
    assert study.counts().get("COMPLETE") == 4
    assert sorted(study.complete_counts().values()) == [1, 1, 1, 1]
    assert sorted(study.results()["final_loss"]) == [0.1, 0.2, 0.4, 0.8]


def test_two_drivers_started_together_on_a_fresh_file_resolve_to_one(tmp_path):
    db = tmp_path / "fresh.db"
    a, b = _sweep(db), _sweep(db)
    (_, err_a), (_, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (err_a, err_b)
    loser = err_a if a.returncode == 2 else err_b
    assert "is being run by pid" in loser and "one driver per study" in loser
    assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser
    _complete_once(db)


def test_a_hung_holder_is_refused_then_taken_over_after_its_lease_expires(tmp_path):
    db = tmp_path / "hung.db"
    env = {"LRLAB_LEASE_SECONDS": "8"}  # longer than a driver's start on a busy machine
    holder = _sweep(db, env=env)
    try:
        _wait_for_a_trial(db)
        holder.send_signal(signal.SIGSTOP)  # alive, but its heartbeat stops
        stopped = time.monotonic()
        second = _sweep(db, resume=True, env=env)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert f"is being run by pid {holder.pid}" in err
        assert time.monotonic() - stopped < 8  # it was refused while the lease was live
        time.sleep(max(0.0, stopped + 8.5 - time.monotonic()))
        third = _sweep(db, resume=True, env=env)
        _, err = third.communicate(timeout=120)
        assert third.returncode == 0, err
        assert f"took over study 's' from pid {holder.pid}" in err
        assert "no heartbeat for" in err
    finally:
        holder.kill()
        holder.communicate()
    _complete_once(db)


def test_a_killed_holder_on_this_host_is_taken_over_at_once(tmp_path):
    db = tmp_path / "killed.db"
    holder = _sweep(db)
    _wait_for_a_trial(db)  # the study exists and is mid-way
    holder.kill()
    holder.communicate()
    second = _sweep(db, resume=True)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "its process is gone" in err
    _complete_once(db)
    with sqlite3.connect(db) as con:  # a driver that finished leaves no lease behind
        assert con.execute("select count(*) from lrlab_leases").fetchone()[0] == 0
