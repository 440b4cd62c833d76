"""The default sweep through lrlab vs the same runs one trial at a time through plain Optuna.

lrlab: ``Study`` + ``LocalExecutor`` (all runs of the study batched into one computation), SQLite;
its time includes the pilot run that derives the ``refined`` schedule.
Peer: ``optuna.Study.optimize`` with a ``GridSampler`` over the same (lr, schedule, seed) grid,
SQLite storage, and a per-trial PyTorch loop: ``nn.Linear`` (zero init), ``torch.optim.SGD``
(weight decay = the task's L2 on the weights), ``LambdaLR`` with the same schedule (for
``refined``, the one lrlab's study derived; the peer is not charged for the pilot), the same
minibatch order (concatenated permutations from ``numpy.random.default_rng(seed)``), float32.
Both use one torch thread (``torch.set_num_threads(1)``). Prints a table and writes
``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time

import numpy as np
import optuna
import torch

from lrlab.cli.sweep_cmd import DEFAULT_TASK, DEFAULT_TASK_OPTIONS
from lrlab.tasks import get_task
from lrlab.tune import (
    STUDY_SCHEDULES,
    LocalExecutor,
    Study,
    StudySettings,
    log_grid,
    open_storage,
)


def default_settings(steps: int | None) -> StudySettings:
    task = get_task(DEFAULT_TASK, **DEFAULT_TASK_OPTIONS)
    return StudySettings(
        task=DEFAULT_TASK,
        task_options=dict(DEFAULT_TASK_OPTIONS),
        schedules=STUDY_SCHEDULES,
        lrs=tuple(log_grid(2.0**-6, 2.0**7, factor=2)),
        seeds=(0, 1, 2),
        steps=steps or task.default_steps,
    )


def run_lrlab(settings: StudySettings, db: str) -> tuple[float, dict, dict]:
    """Wall time, final loss per (schedule, lr, seed), and the study's schedules by label."""
    t0 = time.perf_counter()
    study = Study.open("bench", settings, db)
    study.run(LocalExecutor())
    elapsed = time.perf_counter() - t0
    df = study.results()
    losses = {(r.schedule, r.lr, r.seed): r.final_loss for r in df.itertuples()}
    return elapsed, losses, study.schedules()


def train_one(task, lr: float, schedule, seed: int, steps: int) -> float:
    X = task.X_train.float()
    y = task.y_train
    model = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    l2 = DEFAULT_TASK_OPTIONS["l2"]
    opt = torch.optim.SGD(
        [{"params": [model.weight], "weight_decay": l2}, {"params": [model.bias]}], lr=lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: float(schedule(t)))
    rng = np.random.default_rng(seed)
    B = task.default_batch_size
    need = steps * B
    order = np.concatenate([rng.permutation(len(X)) for _ in range(math.ceil(need / len(X)))])
    idx = torch.from_numpy(order[:need].reshape(steps, B))
    loss_fn = torch.nn.CrossEntropyLoss()
    for t in range(steps):
        rows = idx[t]
        opt.zero_grad()
        loss = loss_fn(model(X[rows]), y[rows])
        if not torch.isfinite(loss):
            return math.nan
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        final = loss_fn(model(X), y) + 0.5 * l2 * model.weight.square().sum()
    return float(final) if torch.isfinite(final) else math.nan


def run_optuna(settings: StudySettings, schedules: dict, storage) -> tuple[float, dict]:
    task = get_task(settings.task, **settings.task_options)
    space = {
        "lr": list(settings.lrs),
        "schedule": list(settings.schedules),
        "seed": list(settings.seeds),
    }
    out = {}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_categorical("lr", space["lr"])
        label = trial.suggest_categorical("schedule", space["schedule"])
        seed = trial.suggest_categorical("seed", space["seed"])
        loss = train_one(task, lr, schedules[label], seed, settings.steps)
        out[(label, lr, seed)] = loss
        return loss if math.isfinite(loss) else math.inf

    n = len(settings.lrs) * len(settings.schedules) * len(settings.seeds)
    t0 = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.GridSampler(space, seed=0))
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: task's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = default_settings(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        get_task(settings.task, **settings.task_options)  # data loading is not timed
        t_lrlab, ours, schedules = run_lrlab(settings, os.path.join(tmp, "lrlab.db"))
        t_optuna, peer = run_optuna(
            settings, schedules, "sqlite:///" + os.path.join(tmp, "optuna.db")
        )
        # the same peer on lrlab's SQLite setting (write-ahead log, no fsync per commit)
        t_wal, _ = run_optuna(
            settings, schedules, open_storage(os.path.join(tmp, "optuna_wal.db"))
        )
    keys = sorted(ours)
    a = np.array([ours[k] for k in keys])
    b = np.array([peer[k] for k in keys])
    rel = np.abs(a - b) / np.abs(b)
    agree = int(np.sum(rel <= 1e-4) + np.sum(np.isnan(a) & np.isnan(b)))
    res = {
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})",
        "torch_threads": 1,
        "runs": len(keys),
        "steps": settings.steps,
        "schedules": list(settings.schedules),
        "lrs": len(settings.lrs),
        "seeds": len(settings.seeds),
        "lrlab_seconds": round(t_lrlab, 3),
        "optuna_per_trial_seconds": round(t_optuna, 3),
        "optuna_per_trial_wal_sqlite_seconds": round(t_wal, 3),
        "speedup": round(t_optuna / t_lrlab, 2),
        "speedup_vs_wal_sqlite_peer": round(t_wal / t_lrlab, 2),
        "runs_agreeing_within_1e-4_rel": agree,
        "diverged_lrlab": int((~np.isfinite(a)).sum()),
        "diverged_peer": int((~np.isfinite(b)).sum()),
    }
    print(f"{'path':<36}{'wall s':>10}")
    print(f"{'lrlab Study + LocalExecutor':<36}{t_lrlab:>10.2f}")
    print(f"{'optuna optimize, per-trial torch':<36}{t_optuna:>10.2f}")
    print(f"{'  same, WAL SQLite (as lrlab)':<36}{t_wal:>10.2f}")
    print(
        f"speedup {res['speedup']}x ({res['speedup_vs_wal_sqlite_peer']}x vs the WAL peer) "
        f"over {res['runs']} runs x {res['steps']} steps; final losses agree within 1e-4 "
        f"(relative) for {agree} of {len(keys)} runs (the rest: chaotic large-lr runs)"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "results"), exist_ok=True)
    with open(os.path.join(here, "results", "sweep.json"), "w") as fh:
        json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
