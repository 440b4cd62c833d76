"""Without the reference packages the optimizer tests skip their parity modules and run the rest:
run here in a fresh interpreter in which importing any of them fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REFERENCES = ("prodigyopt", "dadaptation", "schedulefree", "madgrad", "mechanic_pytorch", "momo")
PARITY = sorted(p.name for p in TESTS.glob("test_optim_*_parity.py"))
BLOCKED = f"""
import sys
for name in {REFERENCES!r}:
    sys.modules[name] = None  # import name -> ModuleNotFoundError
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def run_blocked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED, *args], cwd=TESTS.parent,
                          capture_output=True, text=True, timeout=600)


def test_every_oracle_import_is_in_a_parity_module():
    """A module that imports a reference package at the top fails collection without it."""
    assert len(PARITY) == 6
    for path in TESTS.glob("test_optim_*.py"):
        top = [line for line in path.read_text().splitlines() if line.startswith(("import ",
                                                                                   "from "))]
        for name in REFERENCES:
            assert not any(line.split()[1].split(".")[0] == name for line in top), (path, name)


def test_parity_modules_skip_and_the_rest_runs_without_the_references():
    files = sorted(str(p.relative_to(TESTS.parent)) for p in TESTS.glob("test_optim_*.py")
                   if p.name != Path(__file__).name)
    collected = run_blocked("--collect-only", "-rs", *files)
    out = collected.stdout + collected.stderr
    assert collected.returncode == 0, out
    assert "ERROR" not in out and "error" not in out.strip().splitlines()[-1], out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert sorted(name for name in PARITY if any(name in line for line in skipped)) == PARITY
    assert all("could not import" in line for line in skipped), skipped
    # the modules the parity tests were split from run in full
    split_from = [f.replace("_parity", "") for f in files if "_parity" in f]
    result = run_blocked("-rs", *split_from)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
    assert int(summary.split()[0]) > 100, summary


@pytest.mark.parametrize("name", REFERENCES)
def test_the_block_itself_works(name):
    probe = subprocess.run([sys.executable, "-c", BLOCKED.replace(
        "import pytest\nsys.exit(pytest.main(sys.argv[1:]))", f"import {name}")],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
