"""``lrlab sweep`` / ``lrlab report`` on the real trainer (tiny grids, few steps)."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from lrlab.cli import main
from lrlab.tune import LocalExecutor, Study, StudySettings
from task_files import write_builder, write_package

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
SMALL = [
    "--task",
    "iris_logreg",
    "--schedules",
    "constant,cosine",
    "--grid",
    "0.1,0.4,1.6",
    "--seeds",
    "2",
    "--steps",
    "40",
]


def count(db, state=None):
    with sqlite3.connect(db) as con:
        if state is None:
            return con.execute("select count(*) from trials").fetchone()[0]
        return con.execute("select count(*) from trials where state=?", (state,)).fetchone()[0]


def test_sweep_writes_db_report_and_table(tmp_path, capsys):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    rc = main(
        ["sweep", *SMALL, "--storage", db, "--study", "t", "--out", out, "--edge-rounds", "0"]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Robustness" in text and "constant" in text and "cosine" in text
    assert count(db, "COMPLETE") == 12
    for name in ("loss_vs_lr.png", "gap_vs_rho.png", "schedules.png", "report.html", "results.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    out2 = str(tmp_path / "rep2")
    assert main(["report", "t", "--storage", db, "--out", out2]) == 0
    assert os.path.exists(os.path.join(out2, "report.html"))
    # running the same sweep again trains nothing new
    assert (
        main(["sweep", *SMALL, "--storage", db, "--study", "t", "--out", out, "--edge-rounds", "0"])
        == 0
    )
    assert count(db) == 12


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--seeds", "3"], "different settings"),
        (["--grid", ""], "grid is empty"),
        (["--schedules", "constant,nosuch"], "unknown schedule 'nosuch'"),
        (["--resume", "--seeds", "3"], "drop --seeds"),
        (["--weight-decay", "0.01"], "optimizer_options: stored {}, requested {'weight_decay'"),
        (["--resume", "--weight-decay", "0.01"], "drop --weight-decay"),
        (["--resume", "--optimizer-option", "momentum=0.5"], "drop --optimizer-option"),
        (["--optimizer-option", "momentum=0.5"], "sgd has no option 'momentum'; its options"),
        (["--optimizer-option", "beta1"], "--optimizer-option must be KEY=VALUE"),
        (["--optimizer-option", "weight_decay=1", "--weight-decay", "1"], "not both"),
    ],
)
def test_bad_input_is_refused_and_stored_trials_survive(tmp_path, capsys, extra, match):
    db = str(tmp_path / "a.db")
    assert (
        main(
            [
                "sweep",
                *SMALL,
                "--storage",
                db,
                "--study",
                "t",
                "--out",
                str(tmp_path / "r"),
                "--edge-rounds",
                "0",
            ]
        )
        == 0
    )
    before = count(db)
    args = list(SMALL)
    for i in range(0, len(extra), 2):  # override or add the option
        if extra[i] in args:
            j = args.index(extra[i])
            del args[j : j + 2]
    if "--resume" in extra:
        args = []
    rc = main(
        ["sweep", *args, *extra, "--storage", db, "--study", "t", "--out", str(tmp_path / "r")]
    )
    assert rc == 2
    assert match in capsys.readouterr().err
    assert count(db) == before == 12


def test_bad_storage_and_missing_study(tmp_path, capsys):
    rc = main(["sweep", *SMALL, "--storage", str(tmp_path / "no" / "dir" / "a.db")])
    assert rc == 2 and "cannot open storage" in capsys.readouterr().err
    rc = main(["report", "t", "--storage", str(tmp_path / "none.db")])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


DRIVER = textwrap.dedent(
    """
    import sys, time
    from lrlab.tune import LocalExecutor, Study, StudySettings, train_batch

    def slow(task, configs, progress=None):
        out = train_batch(task, configs)
        time.sleep(0.25)
        return out

    settings = StudySettings(task="iris_logreg", schedules=("constant", "cosine"),
                             lrs=(0.1, 0.4, 1.6), seeds=(0, 1), steps=60)
    Study.open("k", settings, sys.argv[1]).run(LocalExecutor(runner=slow), batch_size=1)
    """
)


def test_killed_study_resumes_to_the_uninterrupted_result(tmp_path):
    db = str(tmp_path / "k.db")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, str(script), db], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if os.path.exists(db):
                try:
                    if count(db, "COMPLETE") >= 3:
                        break
                except sqlite3.OperationalError:  # tables not created yet
                    pass
            assert proc.poll() is None, "driver ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = count(db, "COMPLETE")
    assert 3 <= done < 12 and count(db, "RUNNING") == 12 - done
    rc = main(
        [
            "sweep",
            "--resume",
            "--storage",
            db,
            "--study",
            "k",
            "--batch-size",
            "1",
            "--edge-rounds",
            "0",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 0
    study = Study.open("k", None, db)
    counts = study.complete_counts()
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert study.counts() == {"COMPLETE": 12, "FAIL": 12 - done}
    ref = Study.open("ref", study.settings, str(tmp_path / "ref.db"))
    ref.run(LocalExecutor(), batch_size=1)
    cols = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]
    assert study.results()[cols].equals(ref.results()[cols])


def test_default_settings_are_the_builtin_study():
    from lrlab.cli import build_parser
    from lrlab.cli.sweep_cmd import settings_from_args
    from lrlab.tasks import get_task

    s = settings_from_args(build_parser().parse_args(["sweep"]))
    assert isinstance(s, StudySettings)
    assert s.task == "digits_logreg" and s.task_options == {"l2": 0.01}
    assert s.schedules == ("constant", "inverse_sqrt", "cosine", "linear", "poly2", "refined")
    assert s.pilot_lr == get_task("digits_logreg", l2=0.01).default_lr
    assert s.lrs[0] == 2.0**-6 and s.lrs[-1] == 2.0**7 and len(s.lrs) == 14
    assert s.seeds == (0, 1, 2) and s.steps == 500
    s = settings_from_args(build_parser().parse_args(["sweep", "--pilot-lr", "0.25"]))
    assert s.pilot_lr == 0.25
    s = settings_from_args(build_parser().parse_args(["sweep", "--schedules", "constant"]))
    assert s.pilot_lr is None


def test_refined_sweep_reports_its_pilot_and_resumes_with_it(tmp_path, capsys):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    args = [*SMALL, "--storage", db, "--study", "t", "--out", out, "--edge-rounds", "0"]
    args[args.index("constant,cosine")] = "linear,refined"
    assert main(["sweep", *args, "--pilot-lr", "0.4"]) == 0
    assert "refined" in capsys.readouterr().out
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "refined: lrlab.refine (l2 norms" in page and "lr 0.4, seed 0, 40 steps" in page
    stored = Study.open("t", None, db).refined
    assert stored["pilot"]["lr"] == 0.4
    rc = main(["sweep", "--resume", "--storage", db, "--study", "t", "--out", out])
    assert rc == 0 and Study.open("t", None, db).refined == stored
    # another pilot lr is another study
    assert main(["sweep", *args, "--pilot-lr", "0.2"]) == 2
    assert "pilot_lr: stored 0.4, requested 0.2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "optimizer", ["schedulefree_sgd", "schedulefree_adamw", "dadapt_sgd", "prodigy"])
def test_lr_free_optimizer_sweep(tmp_path, capsys, optimizer):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    args = [*SMALL, "--storage", db, "--study", "t", "--out", out, "--edge-rounds", "0"]
    args[args.index("constant,cosine")] = "constant"
    assert main(["sweep", *args, "--optimizer", optimizer]) == 0
    assert "(-)" in capsys.readouterr().out  # no theory exponent for an LR-free method
    study = Study.open("t", None, db)
    assert study.settings.optimizer == optimizer and study.refined is None
    df = study.results()
    assert len(df) == 6 and not df["diverged"].any() and df["final_loss"].notna().all()
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert f"{optimizer} is learning-rate free" in page


# -- tasks named by an import spec, random search ------------------------------------------------
TINY = ["--schedules", "constant,cosine", "--grid", "0.1,0.4,1.6", "--seeds", "2", "--steps", "30"]
COLS = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]


def in_process(settings, tmp_path, name="ref"):
    ref = Study.open(name, settings, str(tmp_path / f"{name}.db"))
    ref.run(LocalExecutor(), batch_size=1)
    return ref.results()[COLS]


def test_file_spec_study_resumes_from_another_directory(tmp_path, monkeypatch, capsys):
    write_builder(tmp_path / "proj")
    db = str(tmp_path / "s.db")
    monkeypatch.chdir(tmp_path / "proj")
    s = StudySettings(
        "user_tasks.py:build", ("constant", "cosine"), lrs=(0.1, 0.4, 1.6), seeds=(0, 1), steps=30
    )
    Study.open("u", s, db)  # created here, trained elsewhere
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    args = ["--resume", "--storage", db, "--study", "u", "--edge-rounds", "0", "--out", "r"]
    assert main(["sweep", *args]) == 0
    assert "user_tasks.py:build" in capsys.readouterr().out
    study = Study.open("u", None, db)
    assert study.settings == s and study.counts() == {"COMPLETE": 12}
    assert s.task == f"{tmp_path / 'proj' / 'user_tasks.py'}:build"
    assert study.results()[COLS].equals(in_process(s, tmp_path))
    # the same relative spec from another folder names another file: refused, nothing changes
    write_builder(tmp_path / "elsewhere")
    assert main(["sweep", "--task", "user_tasks.py:build", *TINY, "--storage", db,
                 "--study", "u", "--out", "r"]) == 2
    assert "different settings (task: stored" in capsys.readouterr().err
    assert Study.open("u", None, db).counts() == {"COMPLETE": 12}


def test_file_spec_in_a_spawned_process_pool(tmp_path, monkeypatch):
    write_builder(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    db = str(tmp_path / "p.db")
    rc = main(["sweep", "--task", "user_tasks.py:build", "--task-option", "l2=0.05", *TINY,
               "--processes", "2", "--batch-size", "3", "--storage", db, "--study", "p",
               "--edge-rounds", "0", "--out", str(tmp_path / "r")])
    assert rc == 0
    study = Study.open("p", None, db)
    assert study.settings.task == f"{tmp_path / 'proj' / 'user_tasks.py'}:build"
    assert study.settings.task_options == {"l2": 0.05}
    assert study.counts() == {"COMPLETE": 12}
    assert study.results()[COLS].equals(in_process(study.settings, tmp_path))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lrlab_no_such_module:build", "task spec 'lrlab_no_such_module:build': no module named"),
        ("{d}/missing.py:build", "task spec '{d}/missing.py:build': no such file"),
        ("{pkg}.tasks:nosuch", "task spec '{pkg}.tasks:nosuch': {pkg}.tasks has no attribute"),
        ("{pkg}.tasks:broken", "task builder {pkg}.tasks:broken raised RuntimeError: no data here"),
        ("{d}/user_tasks.py:not_a_task", "returned int, not a lrlab.tasks.Task"),
        ("{pkg}.tasks", "task spec '{pkg}.tasks' names no builder"),
        ("{d}/user_tasks.py", "names no builder"),
    ],
)
def test_bad_task_specs_are_one_line_errors_and_the_stored_study_survives(
    tmp_path, monkeypatch, capsys, spec, message
):
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = write_package(tmp_path, "lrlab_user_pkg_cli")
    write_builder(tmp_path)
    db = str(tmp_path / "a.db")
    one = ["--schedules", "constant", "--grid", "0.4", "--seeds", "1", "--steps", "10"]
    common = ["--storage", db, "--out", str(tmp_path / "r"), "--edge-rounds", "0"]
    assert main(["sweep", "--task", "iris_logreg", *one, *common, "--study", "t"]) == 0
    capsys.readouterr()
    spec, message = (x.format(d=tmp_path, pkg=pkg) for x in (spec, message))
    for study in ("t", "u"):  # the stored study, and a new one
        assert main(["sweep", "--task", spec, *one, *common, "--study", study]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrlab: error: ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert count(db) == 1
    assert Study.open("t", None, db).counts() == {"COMPLETE": 1}
    with pytest.raises(ValueError, match="no study named 'u'"):
        Study.open("u", None, db)


def test_random_search_from_the_cli(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    args = ["--task", "iris_logreg", "--schedules", "constant", "--seeds", "1", "--steps", "20",
            "--random", "4", "--lr-min", "0.05", "--lr-max", "2", "--random-seed", "3",
            "--random-weight-decay", "1e-4,1e-2", "--storage", db, "--study", "r",
            "--out", str(tmp_path / "rep")]
    assert main(["sweep", *args]) == 0
    assert "4 random points" in capsys.readouterr().out
    study = Study.open("r", None, db)
    assert study.settings.random == {
        "bounds": {"lr": [0.05, 2.0], "weight_decay": [1e-4, 1e-2]}, "n": 4, "seed": 3
    }
    df = study.results()
    assert len(df) == 4 and study.counts() == {"COMPLETE": 4}  # no edge rounds for random
    assert df.lr.between(0.05, 2).all() and df.weight_decay.between(1e-4, 1e-2).all()
    assert df["final_loss"].notna().all()
    # the default seed is 0: another study
    rc = main(["sweep", *[a for a in args if a not in ("--random-seed", "3")]])
    assert rc == 2 and "random: stored" in capsys.readouterr().err
    rc = main(["sweep", "--resume", "--random", "5", "--storage", db, "--study", "r"])
    assert rc == 2 and "drop --random" in capsys.readouterr().err
    assert count(db) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--random", "3", "--grid", "0.1,0.2"], "drop --grid"),
        (["--random", "3", "--factor", "4"], "drop --factor"),
        (["--random", "3", "--per-decade", "2"], "drop --per-decade"),
        (["--random", "0"], "--random must be >= 1"),
        (["--random-seed", "2"], "need --random N"),
        (["--random-weight-decay", "1e-4,1e-2"], "need --random N"),
        (["--random", "3", "--random-weight-decay", "1e-4"], "must be LO,HI"),
        (["--random", "3", "--lr-min", "1", "--lr-max", "0.5"],
         "--lr-max must be >= --lr-min (1), got 0.5"),
    ],
)
def test_random_search_flag_conflicts(tmp_path, capsys, extra, message):
    db = tmp_path / "x.db"
    rc = main(["sweep", "--task", "iris_logreg", "--schedules", "constant", *extra,
               "--storage", str(db)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not db.exists() or count(str(db)) == 0


def test_optimizer_options_sweep_and_report(tmp_path, capsys):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    args = ["--task", "iris_logreg", "--schedules", "constant", "--grid", "0.01,0.05",
            "--seeds", "1", "--steps", "20", "--storage", db, "--study", "t", "--out", out,
            "--edge-rounds", "0", "--optimizer", "adamw", "--weight-decay", "0.05",
            "--optimizer-option", "beta1=0.8"]
    assert main(["sweep", *args]) == 0
    assert "Robustness: iris_logreg, adamw (beta1 0.8, weight_decay 0.05)" in " ".join(
        capsys.readouterr().out.split())
    s = Study.open("t", None, db).settings
    assert s.optimizer == "adamw" and s.optimizer_options == {"beta1": 0.8, "weight_decay": 0.05}
    assert (Study.open("t", None, db).results().weight_decay == 0.05).all()
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "lrlab sweep: iris_logreg, adamw" in page
    assert "optimizer adamw (beta1 0.8, beta2 0.999, eps 1e-08, weight_decay 0.05)" in page
    # the stored options are the study's: --resume keeps them
    assert main(["sweep", "--resume", "--storage", db, "--study", "t", "--out", out]) == 0
    assert main(["sweep", "--help"]) == 0
    helptext = " ".join(capsys.readouterr().out.split())
    assert ("sgd, momentum, adam, adamw, schedulefree_sgd, schedulefree_adamw, dadapt_sgd, "
            "prodigy") in helptext and "--weight-decay" in helptext


def test_device_is_checked_first_stored_and_may_change_on_resume(tmp_path, capsys):
    db = str(tmp_path / "d.db")
    base = ["--task", "iris_logreg", "--schedules", "constant", "--grid", "0.4", "--seeds", "1",
            "--steps", "10", "--storage", db, "--study", "d", "--edge-rounds", "0",
            "--out", str(tmp_path / "r")]
    for bad, message in (("gpu", "device must be cpu, cuda, cuda:N, mps or auto"),
                         ("cuda:7", "cuda:7")):
        if bad.startswith("cuda") and torch.cuda.device_count() > 7:
            continue
        assert main(["sweep", *base, "--device", bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
        assert not os.path.exists(db) or count(db) == 0
    assert main(["sweep", *base, "--device", "auto"]) == 0
    study = Study.open("d", None, db)
    assert study.settings.device == "auto" and study.counts() == {"COMPLETE": 1}
    rc = main(["sweep", "--resume", "--device", "cpu", "--storage", db, "--study", "d",
               "--out", str(tmp_path / "r")])
    assert rc == 0 and Study.open("d", None, db).settings.device == "auto"
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N, mps or auto"):
        StudySettings("iris_logreg", ("constant",), lrs=(0.1,), device="gpu")


def test_compile_reaches_the_trainer_and_is_refused_for_trials(tmp_path, capsys, monkeypatch):
    import lrlab.tune.executors as executors

    seen = []
    real = executors.train_batch

    def spy(task, configs, progress=None, device="cpu", compile=False):
        seen.append(compile)
        return real(task, configs, progress, device, compile)

    monkeypatch.setattr(executors, "train_batch", spy)
    db = str(tmp_path / "c.db")
    base = ["--schedules", "constant", "--grid", "0.4", "--seeds", "1", "--steps", "10",
            "--storage", db, "--edge-rounds", "0", "--out", str(tmp_path / "r")]
    assert main(["sweep", "--task", "iris_logreg", *base, "--study", "c", "--compile"]) == 0
    assert seen == [True]
    # another study of the same runs would take them from "c": other steps make new runs
    assert main(["sweep", "--task", "iris_logreg", *base, "--steps", "11", "--study", "d"]) == 0
    assert seen == [True, False]
    capsys.readouterr()
    rc = main(["sweep", "--command", f"{sys.executable} -c 'print(1)' {{lr}}", *base,
               "--study", "e", "--compile"])
    err = capsys.readouterr().err
    assert rc == 2 and "--compile compiles the batched trainer's step" in err
    assert err.count("\n") == 1
    with sqlite3.connect(db) as con:  # refused before anything was stored
        assert [r[0] for r in con.execute("select study_name from studies")] == ["c", "d"]
