"""Per-trial overhead of lrlab's trial-function and command paths over the code's own run time.

Trial functions: a study of N trials of a function that sleeps ``--work`` seconds, through
``Study.run`` with a warm ``LocalTrials`` pool (one worker; the pool is started and warmed by
a first study that is not timed), SQLite storage. Peer in the same run: the same N calls
in-process. Overhead per trial = (lrlab - peer) / N.

Commands: a study of N command trials of a trivial script (``python -c`` that sleeps
``--work`` seconds and prints its result as a JSON line), one at a time. Peer in the same run:
the same N commands run with ``subprocess.run``. Overhead per trial = (lrlab - peer) / N.

Prints a table and writes ``bench/results/trials.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import optuna

from lrlab.schedules import Constant
from lrlab.tune import LocalTrials, Study, StudySettings, Trial

HERE = os.path.dirname(os.path.abspath(__file__))


def work(trial):
    """The benchmark's trial function: ``--work`` seconds of sleep, then a loss."""
    time.sleep(float(os.environ.get("LRLAB_BENCH_WORK", "0")))
    return trial.lr


def _settings(kind: str, task: str, n: int) -> StudySettings:
    lrs = tuple(0.001 * 1.01**k for k in range(n))
    return StudySettings(task, ("constant",), lrs=lrs, steps=10, kind=kind)


def _study(db: str, name: str, settings: StudySettings) -> Study:
    return Study.open(name, settings, f"sqlite:///{db}")


def bench_functions(n: int, seconds: float, db: str) -> dict:
    os.environ["LRLAB_BENCH_WORK"] = str(seconds)
    spec = f"{os.path.abspath(__file__)}:work"
    with LocalTrials(1) as ex:
        _study(db, "warm", _settings("function", spec, 2)).run(ex)  # start + warm the worker
        study = _study(db, "functions", _settings("function", spec, n))
        t0 = time.perf_counter()
        study.run(ex)
        lrlab = time.perf_counter() - t0
    assert study.counts() == {"COMPLETE": n}
    t0 = time.perf_counter()
    for i in range(n):
        work(Trial(i, {"lr": 0.1, "seed": 0}, Constant(), "constant", 10))
    peer = time.perf_counter() - t0
    return {"n": n, "work_s": seconds, "lrlab_s": lrlab, "peer_s": peer}


SCRIPT = "import json, time; time.sleep({work}); print(json.dumps({{'loss': 1.0}}))"


def bench_commands(n: int, seconds: float, db: str) -> dict:
    code = SCRIPT.format(work=seconds)
    command = f"{sys.executable} -c \"{code}\""
    escaped = command.replace("{", "{{").replace("}", "}}")
    template = escaped + " --lr {lr}"  # the script ignores its arguments
    study = _study(db, "commands", _settings("command", template, n))
    with LocalTrials(1) as ex:
        t0 = time.perf_counter()
        study.run(ex)
        lrlab = time.perf_counter() - t0
    assert study.counts() == {"COMPLETE": n}, study.counts()
    t0 = time.perf_counter()
    for i in range(n):
        subprocess.run(f"{command} --lr {i}", shell=True, check=True, capture_output=True)
    peer = time.perf_counter() - t0
    return {"n": n, "work_s": seconds, "lrlab_s": lrlab, "peer_s": peer}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--work", type=float, default=0.05, help="seconds of work per trial")
    p.add_argument("--out", default=os.path.join(HERE, "results", "trials.json"))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        rows["function"] = bench_functions(args.trials, args.work, db)
        rows["command"] = bench_commands(args.trials, args.work, db)
    print(f"{'path':10} {'trials':>6} {'lrlab s':>9} {'peer s':>9} {'overhead s/trial':>17}")
    for name, r in rows.items():
        r["overhead_per_trial_s"] = (r["lrlab_s"] - r["peer_s"]) / r["n"]
        print(
            f"{name:10} {r['n']:6d} {r['lrlab_s']:9.2f} {r['peer_s']:9.2f} "
            f"{r['overhead_per_trial_s']:17.3f}"
        )
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "target_overhead_per_trial_s": 0.2,
        "results": rows,
    }
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
