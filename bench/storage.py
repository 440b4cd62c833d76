"""Claim-and-record throughput of a study's storage: SQLite and PostgreSQL in the same run.

For each storage: an ``external`` study of N trials (one schedule, N learning rates, one seed)
is created with ``Study.open`` (every trial enqueued: timed as ``create_s``), then one process
claims and records every trial, ``Study.ask(folder)`` + ``Study.tell(n, loss)``, until none is
waiting (timed: trials per second). SQLite is a file in a temporary folder (write-ahead log,
``synchronous=NORMAL``, as lrlab opens it); PostgreSQL is ``--postgres URL``, or by default a
server started for the run on the loopback interface (``tests/pg_server.py``) with PostgreSQL's
default durability settings (``fsync`` and ``synchronous_commit`` on).

Prints a table and writes ``bench/results/storage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import optuna

from lrlab.tune import Study, StudySettings

HERE = os.path.dirname(os.path.abspath(__file__))


def bench(url: str, n: int, folder: str) -> dict:
    lrs = tuple(0.001 * 1.01**k for k in range(n))
    settings = StudySettings("job", ("constant",), lrs=lrs, steps=10, kind="external")
    t0 = time.perf_counter()
    study = Study.open("storage-bench", settings, url)
    create = time.perf_counter() - t0
    t0 = time.perf_counter()
    told = 0
    while (trial := study.ask(folder)) is not None:
        study.tell(trial["trial"], trial["lr"])
        told += 1
    elapsed = time.perf_counter() - t0
    assert told == n and study.counts() == {"COMPLETE": n}, study.counts()
    assert set(study.complete_counts().values()) == {1}
    study.close()
    return {"n": n, "create_s": create, "ask_tell_s": elapsed, "trials_per_s": n / elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--postgres", help="postgresql:// URL of an empty database (default: start "
                   "a local server for the run)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "storage.json"))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: dict[str, dict] = {}
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        rows["sqlite"] = bench(os.path.join(tmp, "bench.db"), args.trials, tmp)
        url = args.postgres
        if url is None:
            sys.path.insert(0, os.path.join(HERE, "..", "tests"))
            import pg_server

            server = pg_server.Server(durable=True).start()
            url = server.create_database("bench")
        try:
            rows["postgresql"] = bench(url, args.trials, tmp)
            if server is not None:
                rows["postgresql"]["server"] = "local, loopback TCP, default durability"
        finally:
            if server is not None:
                from lrlab.tune import lease

                lease.release_all()
                server.stop()
    print(f"{'storage':12} {'trials':>6} {'create s':>9} {'ask+tell s':>11} {'trials/s':>9}")
    for name, r in rows.items():
        print(
            f"{name:12} {r['n']:6d} {r['create_s']:9.2f} {r['ask_tell_s']:11.2f} "
            f"{r['trials_per_s']:9.1f}"
        )
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "optuna": optuna.__version__,
        "results": rows,
    }
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
