"""Every error of the ``lrlab`` command: one line on stderr, a non-zero exit, no traceback, and
whatever existed before (a study, a report) left as it was."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

import lrlab._io
from lrlab.cli import COMMAND_MODULES, build_parser, main
from lrlab.tune import Study, StudySettings

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
TINY = ["--task", "iris_logreg", "--steps", "5", "--seeds", "1", "--grid", "0.1,0.2",
        "--schedules", "constant", "--edge-rounds", "0"]


def one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("lrlab: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def study(tmp_path, capsys):
    """A tiny stored study and its report: (db, report folder, results before)."""
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    assert main(["sweep", *TINY, "--storage", db, "--study", "t", "--out", out]) == 0
    capsys.readouterr()
    return db, out, Study.open("t", None, db).results()


def intact(db, before) -> None:
    s = Study.open("t", None, db)
    assert s.results().equals(before)
    assert s.counts() == {"COMPLETE": len(before)}


def study_names(db) -> list[str]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("select study_name from studies")]


# -- 1. bounded work ------------------------------------------------------------------------------
def test_a_huge_grid_is_refused_with_the_count_and_the_limit(tmp_path, capsys):
    db = tmp_path / "a.db"
    assert main(["sweep", "--factor", "1.0000001", "--storage", str(db)]) == 2
    one_line(capsys, "90,109,138 lrs", "over the limit of 10,000", "--max-runs")
    assert not db.exists()
    argv = ["sweep", *TINY, "--seeds", "3", "--storage", str(db), "--out", str(tmp_path / "r")]
    assert main([*argv, "--max-runs", "5"]) == 2  # 2 lrs x 1 schedule x 3 seeds = 6 runs
    one_line(capsys, "up to 6 runs", "limit of 5")
    assert main(["sweep", "--random", "20000", "--storage", str(db)]) == 2
    one_line(capsys, "20,000 random points")
    assert not db.exists()


def test_a_batch_too_large_for_memory_is_refused(tmp_path, capsys):
    db = tmp_path / "a.db"
    argv = ["sweep", *TINY, "--steps", "1000000000", "--storage", str(db)]
    assert main(argv) == 2
    one_line(capsys, "2 runs x 1,000,000,000 steps", "limit of 4.0 GiB", "--batch-size")
    assert not db.exists()


def test_a_long_bound_is_computed_in_bounded_memory(capsys):
    import tracemalloc

    tracemalloc.start()
    try:
        assert main(["bound", "cosine", "--steps", "1e9", "--rho", "2", "4"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 600 * 2**20  # the step-by-step arrays alone would need 8 GB each
    out = capsys.readouterr().out
    assert "T = 1000000000 (subsampled grid" in out and "best peak c* =" in out


def test_plot_of_a_long_horizon_draws_a_few_thousand_points(tmp_path, capsys):
    from lrlab.cli.limits import PLOT_POINTS, plot_steps

    t = plot_steps(10**12)
    assert t.size == PLOT_POINTS and t[0] == 0 and t[-1] == 10**12 - 1
    assert np.array_equal(plot_steps(7), np.arange(7))
    png = tmp_path / "a.png"
    assert main(["schedules", "plot", "cosine", "--steps", "1e12", "-o", str(png)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {png}"
    assert png.read_bytes()[:4] == b"\x89PNG"


# -- 2. one-line errors, files written whole -------------------------------------------------------
def test_sweep_out_must_be_a_writable_folder_before_anything_runs(study, tmp_path, capsys):
    db, _, before = study
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out, needle in ((afile, "is a file, not a folder"), (afile / "sub", "is a file")):
        argv = ["sweep", *TINY, "--storage", db, "--study", "new", "--out", str(out)]
        assert main(argv) == 2
        one_line(capsys, "--out", needle)
    assert afile.read_text() == "keep"
    assert study_names(db) == ["t"]  # no study was created
    intact(db, before)


def test_sweep_out_unwritable(study, tmp_path, capsys):
    db, _, before = study
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("permissions do not apply (running as root)")
        argv = ["sweep", *TINY, "--storage", db, "--study", "new", "--out", str(locked / "r")]
        assert main(argv) == 2
        one_line(capsys, "--out", "permission denied")
    finally:
        locked.chmod(0o700)
    assert study_names(db) == ["t"]
    intact(db, before)


def test_report_out_a_file(study, tmp_path, capsys):
    db, _, before = study
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["report", "t", "--storage", db, "--out", str(afile)]) == 2
    one_line(capsys, f"--out {str(afile)!r} is a file")
    assert afile.read_text() == "keep"
    intact(db, before)


def test_a_full_disk_leaves_the_old_report_whole(study, monkeypatch, capsys):
    db, out, before = study
    old = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lrlab._io.os, "fsync", full)
    assert main(["report", "t", "--storage", db, "--out", out]) == 2
    one_line(capsys, "disk full", os.path.join(out, ""))
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == old
    intact(db, before)


def test_atomic_write_replaces_whole_and_keeps_permissions(tmp_path):
    from lrlab._io import atomic_write

    p = tmp_path / "x.txt"
    assert atomic_write(p, "one") == str(p)
    mode = p.stat().st_mode & 0o777
    atomic_write(p, b"two")
    assert p.read_text() == "two" and p.stat().st_mode & 0o777 == mode
    with pytest.raises(RuntimeError):
        atomic_write(p, lambda fh: (fh.write(b"half"), (_ for _ in ()).throw(RuntimeError())))
    assert p.read_text() == "two" and os.listdir(tmp_path) == ["x.txt"]


def _log(tmp_path):
    import pandas as pd

    log = tmp_path / "pilot.csv"
    g = np.full(50, 2.0)
    pd.DataFrame({"step": np.arange(50), "grad_norm_l2": g, "grad_norm_l1": g, "loss": g}).to_csv(
        log, index=False
    )
    return str(log)


def test_refine_outputs_are_checked_before_reading(tmp_path, capsys):
    log = _log(tmp_path)
    assert main(["refine", log, "-o", "/nonexistent/x.json"]) == 2
    one_line(capsys, "-o '/nonexistent/x.json': no such folder")
    out = str(tmp_path / "s.json")
    assert main(["refine", log, "-o", out, "--plot", str(tmp_path / "no" / "p.png")]) == 2
    one_line(capsys, "--plot", "no such folder")
    assert not os.path.exists(out)  # nothing written when an output is refused
    assert main(["refine", log, "-o", out, "--tau", "2"]) == 2
    one_line(capsys, "--tau")
    assert main(["refine", log, "-o", str(tmp_path / "noext"), "--plot", str(tmp_path / "p")]) == 0
    assert (tmp_path / "noext.json").exists() and (tmp_path / "p.png").exists()


def test_schedules_plot_output_errors(tmp_path, capsys):
    assert main(["schedules", "plot", "cosine", "--steps", "10", "-o", "/nonexistent/a.png"]) == 2
    one_line(capsys, "no such folder '/nonexistent'")
    assert main(["schedules", "plot", "cosine", "--steps", "10", "-o", str(tmp_path)]) == 2
    one_line(capsys, "is a folder; give a file name")
    assert main(["schedules", "plot", "cosine", "--steps", "10", "-o", "a.xyz"]) == 2
    one_line(capsys, "unknown image format '.xyz'")
    assert os.listdir(tmp_path) == []


def test_argparse_errors_are_one_line(capsys):
    assert main(["bound", "linear"]) == 2
    one_line(capsys, "lrlab bound: the following arguments are required: --steps")
    assert main(["sweep", "--processes", "x"]) == 2
    one_line(capsys, "--processes: invalid int value")
    assert main(["nosuch"]) == 2
    one_line(capsys, "invalid choice")


def _read_only(monkeypatch):
    import lrlab.tune.study as study_mod

    def connect(path):
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    monkeypatch.setattr(study_mod, "_sqlite_connect", connect)


def test_a_read_only_database_says_read_only(study, monkeypatch, capsys):
    db, out, before = study
    _read_only(monkeypatch)
    argv = ["sweep", *TINY, "--storage", db, "--study", "new", "--out", out]
    assert main(argv) == 2
    one_line(capsys, f"storage 'sqlite:///{db}': read-only")
    monkeypatch.undo()
    assert study_names(db) == ["t"]
    intact(db, before)


def test_a_read_only_database_file(study, capsys):
    db, out, before = study
    os.chmod(db, 0o400)
    try:
        if os.access(db, os.W_OK):
            pytest.skip("permissions do not apply (running as root)")
        argv = ["sweep", *TINY, "--storage", db, "--study", "new", "--out", out]
        assert main(argv) == 2
        one_line(capsys, "read-only")
    finally:
        os.chmod(db, 0o600)
    intact(db, before)


def test_a_full_database_says_disk_full(study, monkeypatch, capsys):
    import lrlab.tune.study as study_mod

    db, out, before = study
    connect = study_mod._sqlite_connect

    def full(path):
        con = connect(path)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count={pages}")
        return con

    monkeypatch.setattr(study_mod, "_sqlite_connect", full)
    grid = ",".join(f"{0.01 * (i + 1):g}" for i in range(200))
    argv = ["sweep", *TINY, "--grid", grid, "--storage", db, "--study", "new", "--out", out]
    assert main(argv) == 2
    one_line(capsys, "disk full (database or disk is full)")
    monkeypatch.undo()
    intact(db, before)


# -- 3. every option is checked before the study is created ----------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--edge-rounds", "-1"], "--edge-rounds must be >= 0, got -1"),
        (["--processes", "-1"], "--processes must be >= 0, got -1"),
        (["--batch-size", "-1"], "--batch-size must be >= 0, got -1"),
        (["--max-runs", "0"], "--max-runs must be >= 1, got 0"),
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--pilot-lr", "-1"], "--pilot-lr must be a finite number > 0, got -1"),
        (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1"),
        (["--grid", "0.1,-1"], "--grid values must be finite lrs > 0, got -1"),
    ],
)
def test_bad_options_create_no_study(tmp_path, capsys, extra, message):
    db = tmp_path / "a.db"
    args = list(TINY)
    if extra[0] in args:
        i = args.index(extra[0])
        del args[i : i + 2]
    assert main(["sweep", *args, *extra, "--storage", str(db), "--out", str(tmp_path)]) == 2
    one_line(capsys, message)
    assert not db.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr-min", "10", "--lr-max", "1"], "--lr-max must be >= --lr-min (10), got 1"),
        (["--lr-min", "0"], "--lr-min must be a finite lr > 0, got 0"),
        (["--factor", "1"], "--factor must be a finite number > 1, got 1"),
        (["--per-decade", "0"], "--per-decade must be >= 1, got 0"),
        (["--random", "3", "--random-seed", "-1"], "--random-seed must be >= 0, got -1"),
        (["--random", "3", "--random-weight-decay", "0,1"], "--random-weight-decay LO must be > 0"),
    ],
)
def test_grid_options_are_named_as_typed(tmp_path, capsys, extra, message):
    db = tmp_path / "a.db"
    assert main(["sweep", *extra, "--storage", str(db), "--out", str(tmp_path)]) == 2
    one_line(capsys, message)
    assert not db.exists()


def test_bound_options_are_named_as_typed(capsys):
    assert main(["bound", "linear", "--steps", "10", "--D", "0"]) == 2
    one_line(capsys, "--D must be a finite number > 0, got 0")
    assert main(["bound", "linear", "--steps", "10", "--rho", "2", "-1"]) == 2
    one_line(capsys, "--rho values must be finite numbers > 0, got -1")


# -- 4. honest parsing -----------------------------------------------------------------------------
def test_seeds_must_be_integers(tmp_path, capsys):
    db = tmp_path / "a.db"
    argv = ["sweep", *TINY, "--seeds", "0.5,1", "--storage", str(db), "--out", str(tmp_path)]
    assert main(argv) == 2
    one_line(capsys, "--seeds must list integers >= 0, got '0.5,1'")
    assert not db.exists()


def test_plot_prints_the_path_it_wrote(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["schedules", "plot", "cosine", "--steps", "10", "-o", "noext"]) == 0
    assert capsys.readouterr().out.strip() == "wrote noext.png"
    assert sorted(os.listdir(tmp_path)) == ["noext.png"]
    assert main(["schedules", "plot", "cosine", "--steps", "10", "-o", "s.svg"]) == 0
    assert capsys.readouterr().out.strip() == "wrote s.svg"
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")


def test_the_sweep_header_counts_the_points_the_edge_rule_added(tmp_path, capsys):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "r")
    argv = ["sweep", *TINY, "--storage", db, "--study", "t", "--out", out]
    argv[argv.index("--edge-rounds") + 1] = "1"
    assert main(argv) == 0
    added = Study.open("t", None, db).extra_lrs["constant"]
    assert len(added) == 2
    capsys.readouterr()
    assert main(["sweep", "--resume", "--storage", db, "--study", "t", "--out", out,
                 "--edge-rounds", "0"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # the console may wrap the line
    assert "1 schedules x 4 lrs (2 added by the edge rule) x 1 seeds = 4 runs" in text


def test_random_search_without_lr_bounds_is_refused():
    with pytest.raises(ValueError, match="random bounds must include 'lr'"):
        StudySettings(
            "digits_logreg",
            ("constant",),
            random={"bounds": {"weight_decay": (1e-5, 1e-3)}, "n": 3, "seed": 0},
        )


# -- 6. modules named for their commands -----------------------------------------------------------
def test_each_command_module_is_named_for_its_commands():
    import argparse
    import importlib

    for mod in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(f"lrlab.cli.{mod}").register(sub)
        names = set(sub.choices)
        stem = mod.removesuffix("_cmd")
        assert stem in names or mod == "trials_cmd" and names == {"ask", "tell"}, (mod, names)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"schedules", "bound", "refine", "sweep", "report", "find", "advise",
                                "ask", "tell"}


def test_a_real_process_reports_one_line_and_status_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run(
        [sys.executable, "-m", "lrlab", "schedules", "plot", "cosine", "--steps", "10",
         "-o", str(tmp_path / "no" / "a.png")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such folder" in proc.stderr
