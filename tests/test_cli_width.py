"""The CLI fits the terminal it prints to: run under a pseudo-terminal of 80 and 120 columns,
no printed line is wider than the terminal."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pytest

from lrlab.cli import main

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(args, columns, rows=40, cwd=None):
    """Run ``python -m lrlab *args`` with its output on a pty of ``columns`` x ``rows``;
    return the lines it printed (ANSI codes removed, carriage returns split)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrlab", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    text = ANSI.sub("", out.decode("utf-8", errors="replace"))
    return proc.returncode, [line for part in text.split("\n") for line in part.split("\r")]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("width")
    db = str(tmp / "w.db")
    args = ["sweep", "--steps", "40", "--seeds", "2", "--storage", db, "--study", "w"]
    args += ["--schedules", "constant,inverse_sqrt,cosine,linear,poly2", "--edge-rounds", "0"]
    args += ["--out", str(tmp / "rep")]
    assert main(args) == 0
    return tmp, db


@pytest.mark.parametrize("columns", [80, 120])
def test_report_fits_the_terminal(study, columns):
    tmp, db = study
    code, lines = run_in_terminal(
        ["report", "w", "--storage", db, "--out", str(tmp / f"rep{columns}")], columns
    )
    assert code == 0
    assert any("constant" in line for line in lines)  # the table is there
    wide = [line for line in lines if len(line.rstrip()) > columns]
    assert not wide, "\n".join(wide)


@pytest.mark.parametrize("columns", [80, 120])
def test_sweep_fits_the_terminal(tmp_path, columns):
    args = ["sweep", "--steps", "30", "--seeds", "1", "--storage", str(tmp_path / "s.db")]
    args += ["--study", "s", "--edge-rounds", "0", "--out", str(tmp_path / "rep")]
    args += ["--schedules", "constant,cosine", "--grid", "0.5,1,2"]
    code, lines = run_in_terminal(args, columns)
    assert code == 0
    assert any("trained" in line for line in lines)
    wide = [line for line in lines if len(line.rstrip()) > columns]
    assert not wide, "\n".join(wide)


def test_a_pipe_gets_a_fixed_width(study):
    tmp, db = study
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrlab",
            "report",
            "w",
            "--storage",
            db,
            "--out",
            str(tmp / "rep-pipe"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert max(len(line) for line in out.splitlines()) <= 100
