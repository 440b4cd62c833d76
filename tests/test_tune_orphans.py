"""No process outlives its driver: ``lrlab sweep --processes 2`` killed with SIGKILL."""

import os
import subprocess
import sys
import time
from pathlib import Path

from processes import gone


def _children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_workers_exit_when_their_driver_is_killed(tmp_path):
    args = [sys.executable, "-m", "lrlab", "sweep", "--task", "digits_logreg", "--steps", "3000"]
    args += ["--schedules", "constant,cosine", "--seeds", "2", "--processes", "2"]
    args += ["--storage", str(tmp_path / "o.db"), "--study", "o", "--out", str(tmp_path / "r")]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    kids = []
    while time.monotonic() < deadline and len(kids) < 2:
        kids = _children(driver.pid)  # the two workers (and multiprocessing's helper)
        time.sleep(0.1)
    assert len(kids) >= 2, "the pool never started"
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(gone(p) for p in kids):
        time.sleep(0.1)
    left = [p for p in kids if not gone(p)]
    for p in left:  # leave nothing behind even when the check fails
        os.kill(p, 9)
    assert not left, f"processes outlived their driver: {left}"
