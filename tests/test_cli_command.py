"""``lrlab sweep --command`` and ``lrlab ask``/``tell``: real subprocesses, real shells."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import trial_fns
from lrlab.cli import main
from lrlab.schedules import Constant, Cosine, Linear, Schedule
from lrlab.tune import Study, Trial
from processes import gone

HERE = Path(__file__).parent
SCRIPT = f"{sys.executable} {HERE / 'trial_script.py'}"
COMMAND = SCRIPT + " --lr {lr} --seed {seed} --schedule {schedule} --steps {steps}"


def expected(lr, seed, schedule, steps):
    trial = Trial(0, {"lr": lr, "seed": seed}, schedule, "x", steps)
    return trial_fns.quadratic(trial)["loss"]


def test_command_trials_results_and_failures_with_their_reasons(tmp_path, capsys):
    db = str(tmp_path / "c.db")
    rc = main(
        [
            "sweep",
            "--command",
            COMMAND,
            "--steps",
            "12",
            "--grid",
            "0.1,0.2,0.8,1.6,3.2",
            "--schedules",
            "constant,cosine",
            "--seeds",
            "1",
            "--processes",
            "2",
            "--timeout",
            "3",
            "--edge-rounds",
            "0",
            "--storage",
            db,
            "--study",
            "cmd",
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    study = Study.open("cmd", None, db)
    df = study.results()
    assert sorted(set(df["lr"])) == [0.1, 0.2]
    for row in df.itertuples():
        sched = {"constant": Constant(), "cosine": Cosine(12)}[row.schedule]
        assert row.final_loss == pytest.approx(expected(row.lr, row.seed, sched, 12), rel=1e-12)
    reasons = study.failures().groupby("lr")["error"].first()
    assert "command exited with status 3" in reasons[0.8]
    assert "out of memory (simulated)" in reasons[0.8]  # the stderr tail
    assert "printed no result" in reasons[1.6]
    assert "finished, but forgot to report" in reasons[1.6]
    assert "timed out after 3 s" in reasons[3.2]
    assert "6 trials failed" in out and "status 3" in out
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Failed trials (6)" in html and "timed out after 3 s" in html
    # the reported curve is stored: 12 steps of the constant-lr run at lr 0.1
    trial = int(df[(df["lr"] == 0.1) & (df["schedule"] == "constant")]["trial"].iloc[0])
    steps, curve = study.curves()[trial]
    assert steps.tolist() == list(range(12)) and curve[0] == pytest.approx(0.49)


def test_the_command_s_refined_pilot_reads_its_reported_norms(tmp_path, capsys):
    db = str(tmp_path / "p.db")
    args = ["sweep", "--command", COMMAND, "--steps", "16", "--grid", "0.1", "--seeds", "1"]
    args += ["--schedules", "linear,refined", "--storage", db, "--study", "p", "--out"]
    args += [str(tmp_path / "rep")]
    assert main([*args, "--edge-rounds", "0", "--pilot-lr", "0.05"]) == 0
    study = Study.open("p", None, db)
    got = Schedule.from_dict(study.refined["schedule"])
    pilot = Trial(-1, {"lr": 0.05, "seed": 0}, Linear(16), "linear", 16)
    trial_fns.quadratic(pilot)
    from lrlab.refine import refine

    want = refine([r["grad_norm"] for r in pilot.rows], steps=16).schedule
    assert [got(t) for t in range(16)] == pytest.approx([want(t) for t in range(16)], rel=1e-12)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "needs --steps"),
        (["--steps", "5", "--task", "digits_logreg"], "--task does not apply"),
        (["--steps", "5", "--schedules", "linear,refined"], "needs pilot_lr"),
    ],
)
def test_command_options_are_checked_before_anything_is_stored(tmp_path, capsys, extra, message):
    db = tmp_path / "x.db"
    rc = main(["sweep", "--command", COMMAND, "--storage", str(db), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # nothing was created


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("python t.py --lr {lr} --x {nope}", "unknown placeholder(s) nope"),
        ("python t.py --lr {lr} --schedule {schedule}", "must use {seed}"),
        ("python t.py --lr {lr} {", "write {{ and }} for braces"),
    ],
)
def test_command_templates_are_checked(tmp_path, capsys, command, message):
    rc = main(["sweep", "--command", command, "--steps", "5", "--seeds", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err


def _cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "lrlab", *args], capture_output=True, text=True, check=check
    )


LOOP = """
while out=$({py} -m lrlab ask --study {study} --storage {db} --schedule-dir {dir}); do
  n=$(printf '%s' "$out" | {py} -c 'import json,sys; print(json.load(sys.stdin)["trial"])')
  echo "$n" >> {got}
  {py} -m lrlab tell --study {study} --storage {db} --trial "$n" --loss "0.$n" || exit 9
done
"""


def test_ask_and_tell_from_concurrent_shells_hand_each_trial_out_once(tmp_path):
    db, got = str(tmp_path / "a.db"), tmp_path / "got.txt"
    _cli(
        "sweep",
        "--external",
        "slurm job",
        "--steps",
        "10",
        "--grid",
        "0.1,0.2,0.4",
        "--seeds",
        "1",
        "--schedules",
        "linear",
        "--storage",
        db,
        "--study",
        "ext",
    )
    loop = LOOP.format(py=sys.executable, study="ext", db=db, dir=tmp_path / "s", got=got)
    shells = [subprocess.Popen(["bash", "-c", loop]) for _ in range(3)]
    assert [s.wait() for s in shells] == [0, 0, 0]  # no tell refused (exit 9)
    numbers = [int(x) for x in got.read_text().split()]
    assert sorted(numbers) == list(range(3))  # three trials, each handed out exactly once
    study = Study.open("ext", None, db)
    assert study.counts() == {"COMPLETE": 3}
    df = study.results().set_index("trial")
    assert all(df.loc[n, "final_loss"] == float(f"0.{n}") for n in numbers)
    schedule = Schedule.load(tmp_path / "s" / "linear.json")
    assert schedule == Linear(10)


def test_tell_refuses_a_trial_that_is_not_claimed_and_records_a_failure(tmp_path, capsys):
    db = str(tmp_path / "t.db")
    common = ["--study", "t", "--storage", db]
    main(
        [
            "sweep",
            "--external",
            "--steps",
            "5",
            "--grid",
            "0.1,0.2",
            "--seeds",
            "1",
            "--schedules",
            "constant",
            *common,
        ]
    )
    capsys.readouterr()
    assert main(["tell", *common, "--trial", "0", "--loss", "1"]) == 2
    err = capsys.readouterr().err
    assert "is WAITING, not RUNNING" in err and len(err.strip().splitlines()) == 1
    assert main(["ask", *common]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["ask", *common]) == 0
    second = json.loads(capsys.readouterr().out)
    assert {first["trial"], second["trial"]} == {0, 1} and first["lr"] != second["lr"]
    assert main(["tell", *common, "--trial", "0", "--failed", "node lost"]) == 0
    assert main(["tell", *common, "--trial", "1", "--loss", "inf"]) == 0
    study = Study.open("t", None, db)
    assert study.failures()["error"].tolist() == ["node lost"]
    assert study.results()["diverged"].tolist() == [True]
    assert main(["ask", *common]) == 3
    assert "no waiting trial" in capsys.readouterr().err


def test_closing_the_executor_stops_running_commands(tmp_path):
    import threading
    import time

    from lrlab.tune import LocalTrials

    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    spec = {
        "kind": "command",
        "target": f'{sys.executable} -c "{code}" {tmp_path}/pid{{trial}}',
        "number": 0,
        "params": {"lr": 0.1, "seed": 0},
        "schedule_name": "constant",
        "schedule": {"name": "constant"},
        "steps": 3,
        "timeout": None,
        "workdir": None,
        "files": str(tmp_path),
    }
    ex = LocalTrials(2)
    got = []
    runner = threading.Thread(
        target=lambda: got.extend(ex.map_trials([spec, {**spec, "number": 1}])), daemon=True
    )
    runner.start()
    pidfiles = [tmp_path / "pid0", tmp_path / "pid1"]
    while not all(p.exists() and p.read_text() for p in pidfiles):
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in pidfiles]
    ex.close()  # what the driver does when it stops (Ctrl-C, an error)
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert sorted(i for i, _ in got) == [0, 1]
    assert all("killed by signal SIGKILL" in out["error"] for _, out in got)

    deadline = time.monotonic() + 10  # SIGKILL is delivered asynchronously
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(p) for p in pids)
