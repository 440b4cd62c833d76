"""``lrlab advise`` (its default budget, 12 runs) vs the best of the full study on the same task.

Full study: the default schedules and ``refined`` (pilot at the task's default lr), lrs
2^-6..2^7 (factor 2; 2^-12..2^-3 for the Adam-trained character LM), seeds 0, 1, 2, the
task's default steps, all batched by ``LocalExecutor``; its best is the lowest seed-mean final
loss over every (schedule, lr). Advice: ``lrlab.tune.advise(task)``. The recommendation
(schedule, lr) is then trained with 3 fresh seeds (3, 4, 5); regret = its mean final loss /
the full study's best - 1. The full study's best (schedule, lr) is trained on the same fresh
seeds too: ``regret_same_seeds`` compares the two on equal seeds (the full study's best mean
was selected on seeds 0-2, which favours it where seeds differ much, e.g. the character LM).
Cost ratios: member-steps and wall time of the advice over those of the full study.
Writes ``bench/results/advise.json`` after every task.

The logistic-regression sets use L2 0.01 (without it the separable sets have a best loss
near 0, where a relative regret says little). The MLP runs twice: as it is (its best training
loss is near 0, so its regret is reported but says little) and with L2 1e-3 on its weights.

Usage: ``python bench/advise.py [TASK ...]``; with ``LRLAB_BENCH_DB=path.db`` the full studies
are kept in that file (with their wall time) and not trained again by a later invocation
(the advice studies are named per invocation, so advise always runs afresh).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

from lrlab.schedules import Schedule
from lrlab.tasks import get_task
from lrlab.train import run_batched
from lrlab.train.types import RunConfig
from lrlab.tune import STUDY_SCHEDULES, LocalExecutor, Study, StudySettings, advise, log_grid
from lrlab.tune.analysis import seed_table
from lrlab.tune.settings import build_schedule

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results", "advise.json")
EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "digits_mlp_module.py") + ":build_task"
#: Row label -> (task, options, grid exponents of 2).
WIDE = (-6, 7)
TASKS = {
    "iris_logreg": ("iris_logreg", {"l2": 0.01}, WIDE),
    "wine_logreg": ("wine_logreg", {"l2": 0.01}, WIDE),
    "breast_cancer_logreg": ("breast_cancer_logreg", {"l2": 0.01}, WIDE),
    "digits_logreg": ("digits_logreg", {"l2": 0.01}, WIDE),
    "abs_regression": ("abs_regression", {}, WIDE),
    "digits_mlp": ("digits_mlp", {}, WIDE),
    "digits_mlp l2=1e-3": ("digits_mlp", {"l2": 1e-3}, WIDE),
    "example:digits_mlp_module": ("example:digits_mlp_module", {}, WIDE),
    "stdlib_charlm": ("stdlib_charlm", {}, (-12, -3)),
}
FRESH_SEEDS = (3, 4, 5)
WALL_ATTR = "bench_wall_s"


def _name(task: str) -> str:
    return EXAMPLE if task.startswith("example:") else task


def bench(label: str, db: str) -> dict:
    task, options, (lo, hi) = TASKS[label]
    name = _name(task)
    t = get_task(name, **options)
    steps = t.default_steps
    settings = StudySettings(
        name, STUDY_SCHEDULES, task_options=options,
        lrs=tuple(log_grid(2.0**lo, 2.0**hi, factor=2)),
        seeds=(0, 1, 2), steps=steps, optimizer=t.default_optimizer, pilot_lr=t.default_lr,
    )
    t0 = time.perf_counter()
    tag = label.replace(" ", "-").replace("=", "")
    study = Study.open(f"full-{tag}", settings, db)
    if study.run(LocalExecutor()):
        study.optuna_study.set_user_attr(WALL_ATTR, time.perf_counter() - t0)
    full_wall = study.optuna_study.user_attrs[WALL_ATTR]
    table = seed_table(study.results())
    best = table.loc[table["mean_loss"].idxmin()]
    full_steps = (len(study.results()) + 1) * steps  # + the pilot of `refined`

    t0 = time.perf_counter()
    a = advise(name, task_options=options, storage=db, study=f"adv-{tag}-{time.time_ns()}")
    adv_wall = time.perf_counter() - t0
    sched = build_schedule(a.schedule, steps, refined=Schedule.from_dict(a.refined["schedule"]))
    best_sched = study.schedules()[best["schedule"]]
    # the advice and the full study's best, both on the same fresh seeds (one batch)
    cfgs = [RunConfig(lr, sc, seed=s, steps=steps, optimizer=a.optimizer)
            for lr, sc in ((a.lr, sched), (float(best["lr"]), best_sched)) for s in FRESH_SEEDS]
    res = run_batched(get_task(name, **options), cfgs, curve_points=1)
    losses = [r.final_loss if not r.diverged else float("inf") for r in res]
    fresh, best_fresh = losses[: len(FRESH_SEEDS)], losses[len(FRESH_SEEDS):]
    mean, best_mean = float(np.mean(fresh)), float(np.mean(best_fresh))
    row = {
        "task": label, "options": options, "steps": steps,
        "full_best": {"schedule": best["schedule"], "lr": float(best["lr"]),
                      "mean_loss": float(best["mean_loss"])},
        "advice": {"schedule": a.schedule, "lr": a.lr, "grid_factor": a.grid_factor,
                   "seed0_loss": a.final_loss, "free": a.free, "runs": a.runs_spent},
        "fresh_seed_losses": fresh, "fresh_mean_loss": mean,
        "regret": mean / float(best["mean_loss"]) - 1.0 if best["mean_loss"] > 0 else None,
        "full_best_fresh_seed_losses": best_fresh, "full_best_fresh_mean_loss": best_mean,
        "regret_same_seeds": mean / best_mean - 1.0 if best_mean > 0 else None,
        "member_steps": {"advice": a.member_steps, "full": full_steps,
                         "ratio": a.member_steps / full_steps},
        "wall_s": {"advice": adv_wall, "full": full_wall, "ratio": adv_wall / full_wall},
    }
    return row


def main(argv: list[str]) -> None:
    tasks = argv or list(TASKS)
    rows = []
    if os.path.exists(OUT):
        with open(OUT) as fh:
            rows = [r for r in json.load(fh)["rows"] if r["task"] not in tasks]
    with tempfile.TemporaryDirectory() as tmp:
        # LRLAB_BENCH_DB keeps the full studies (and their wall time) between invocations
        db = os.environ.get("LRLAB_BENCH_DB") or os.path.join(tmp, "bench.db")
        for task in tasks:
            row = bench(task, db)
            rows.append(row)
            reg = row["regret"]
            same = row["regret_same_seeds"]
            print(f"{task:28s} regret {'n/a' if reg is None else f'{100 * reg:+.2f} %'}"
                  f" (same seeds {'n/a' if same is None else f'{100 * same:+.2f} %'})"
                  f"  advice {row['advice']['schedule']}"
                  f" @ {row['advice']['lr']:.3g}  full best {row['full_best']['schedule']} @ "
                  f"{row['full_best']['lr']:.3g}  steps {100 * row['member_steps']['ratio']:.2f} %"
                  f"  wall {100 * row['wall_s']['ratio']:.1f} %", flush=True)
            os.makedirs(os.path.dirname(OUT), exist_ok=True)
            with open(OUT, "w") as fh:
                json.dump({"machine": platform.platform(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
