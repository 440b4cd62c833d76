"""SP, TAPS and MOTAPS against SGD with a tuned linear decay and against Prodigy, on the logistic
tasks, through the batched trainer (``lrlab.train.engine.train_group``), float32, 3 seeds.

- SGD + linear decay to 0: the best of an lr grid (mean final loss over the seeds);
- Prodigy: lr 1, constant (the published method);
- SP, TAPS, MOTAPS: gamma = lr = 1, constant; TAPS is given the task's f* where it is known
  (``logistic_synthetic``), MOTAPS uses lambd = 0.5 and reports its final target tau.

Cost, on the same model and batches: the wall time per step of a batch of M = 8 members
(median of 3 repeats) and the optimizer state in bytes (SGD keeps none; alpha is n float64
values per member).

Run: ``python bench/polyak.py`` (about a minute on 2 CPU cores); writes
``bench/results/polyak.json``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lrlab.schedules import Constant, Linear
from lrlab.tasks import get_task
from lrlab.train import RunConfig
from lrlab.train.engine import train_group
from lrlab.train.methods import batched_method, member_options

TASKS = ("logistic_synthetic", "digits_logreg")
SEEDS = (0, 1, 2)
SGD_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


def train(task, optimizer: str, lr: float, schedule, options=None) -> list:
    steps = task.default_steps
    configs = [RunConfig(lr, schedule, seed=s, steps=steps, optimizer=optimizer,
                         options=options or {}) for s in SEEDS]
    return train_group(task, configs, steps, optimizer, record_grad_norms=False,
                       curve_points=2, dtype=torch.float32)


def summary(task, results) -> dict:
    finals = [r.final_loss for r in results]
    out = {"final_loss": float(np.mean(finals)), "final_loss_sd": float(np.std(finals)),
           "test_metric": float(np.mean([r.test_metric for r in results])),
           "diverged": sum(r.diverged for r in results)}
    if task.f_star is not None:
        out["gap"] = out["final_loss"] - task.f_star
    return out


def quality(name: str) -> dict:
    task = get_task(name)
    rows: dict[str, dict] = {}
    steps = task.default_steps
    best = None
    for lr in SGD_GRID:
        s = summary(task, train(task, "sgd", lr, Linear(steps=steps)))
        if s["diverged"] == 0 and (best is None or s["final_loss"] < best[1]["final_loss"]):
            best = (lr, s)
    rows["sgd_linear_tuned"] = {"lr": best[0], **best[1]}
    rows["prodigy"] = {"lr": 1.0, **summary(task, train(task, "prodigy", 1.0, Constant()))}
    rows["sp"] = {"lr": 1.0, **summary(task, train(task, "sp", 1.0, Constant()))}
    if task.f_star is not None:
        rows["taps_fstar"] = {"lr": 1.0, **summary(
            task, train(task, "taps", 1.0, Constant(), {"target": task.f_star}))}
    res = train(task, "motaps", 1.0, Constant(), {"lambd": 0.5})
    rows["motaps"] = {"lr": 1.0, **summary(task, res)}
    return {"n_train": task.n_train, "steps": steps, "batch": task.default_batch_size,
            "f_star": task.f_star, "methods": rows}


def target_after(name: str) -> float:
    """MOTAPS's tau at the end of a default run (seed 0), to compare with f*."""
    task = get_task(name)
    model, n, B, T = task.model, task.n_train, task.default_batch_size, task.default_steps
    members = model.init([0], dtype=torch.float64, device=torch.device("cpu"))
    opt = batched_method("motaps")(members.params, {"lambd": 0.5}, T, examples=n)
    from lrlab.train.engine import MemberOrder, _take

    order = MemberOrder(n, 0)
    X, y = task.X_train.double(), task.y_train
    lr = torch.ones(1, dtype=torch.float64)
    for _ in range(T):
        rows = torch.from_numpy(order.take(B)).view(1, B)
        loss, grads, _ = model.loss_and_grad(members, _take(X, rows), _take(y, rows))
        opt.observe(rows, loss)
        opt.step(members.params, grads, lr, None)
    return float(opt.tau[0][0])


def cost(name: str, optimizer: str, M: int = 8) -> dict:
    task = get_task(name)
    steps = task.default_steps
    configs = [RunConfig(1.0 if optimizer != "sgd" else 0.3, Constant(), seed=s, steps=steps,
                         optimizer=optimizer) for s in range(M)]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        train_group(task, configs, steps, optimizer, record_grad_norms=False, curve_points=2,
                    dtype=torch.float32)
        times.append(time.perf_counter() - start)
    members = task.model.init(list(range(M)), dtype=torch.float32, device=torch.device("cpu"))
    method = batched_method(optimizer)
    extra = {"examples": task.n_train} if method.per_example else {}
    opt = method(members.params, member_options([{}] * M), steps, **extra)
    state = [t for name in method.STATE for t in getattr(opt, name)]
    return {"ms_per_step": 1e3 * statistics.median(times) / steps,
            "state_bytes": int(sum(t.numel() * t.element_size() for t in state)),
            "param_bytes": int(sum(p.numel() * p.element_size() for p in members.params)),
            "members": M}


def main() -> None:
    torch.set_num_threads(1)
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": 1, "seeds": list(SEEDS), "tasks": {}}
    for name in TASKS:
        entry = quality(name)
        entry["motaps_tau_end_seed0"] = target_after(name)
        entry["cost"] = {opt: cost(name, opt) for opt in ("sgd", "sp", "taps", "motaps")}
        out["tasks"][name] = entry
        print(name, json.dumps(entry, indent=1))
    path = Path(__file__).parent / "results" / "polyak.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
