"""Any nn.Module, batched: lrlab's module path against the ways a user would otherwise train a grid.

Grid: 7 lrs (2^-3 .. 2^3) x 3 schedules (constant, cosine, linear) x 5 seeds = 105
configurations, 200 steps of SGD with batch 32, float32, one torch thread. Models:
(a) the digits MLP written as an nn.Module (examples/digits_mlp_module.py), (b) the example CNN
with BatchNorm and dropout (examples/digits_cnn.py). Approaches, each in its own process (the
time of the whole grid, after a 5-step warm-up of the same approach; peak RSS of the process):

- ``lrlab``:   ``run_batched`` on ``from_module``'s task (torch.func, all 105 members at once);
- ``loop``:    a plain PyTorch loop per configuration (torch.optim.SGD + lrlab ScheduleLR);
- ``ensemble``: a hand-written torch.func ensemble: ``stack_module_state`` + ``vmap(grad(...))``
  + an SGD update with a [105] learning-rate vector per step (no divergence checks, no
  evaluation: the least work that trains the grid);
- ``handmlp``: lrlab's hand-written batched MLP (the ``digits_mlp`` task), MLP only;
- ``lrlab_compiled`` and ``ensemble_compiled``: the same two through ``torch.compile``
  (``run_batched(compile=True)``; ``torch.compile`` of the ensemble's ``vmap(grad)`` step).
  Their compilation falls in the warm-up, whose time is recorded as ``warmup_seconds``.

Usage: ``python bench/modules.py [--device cuda]``; writes bench/results/modules[_cuda].json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LRS = [2.0**k for k in range(-3, 4)]
SCHEDULES = ("constant", "cosine", "linear")
SEEDS = range(5)
STEPS, BATCH = 200, 32


def _task(model: str):
    sys.path.insert(0, str(ROOT / "examples"))
    if model == "mlp":
        from digits_mlp_module import build_task, make_model
    else:
        from digits_cnn import build_task, make_model
    return build_task(steps=STEPS, batch_size=BATCH), make_model


def _configs(steps: int):
    from lrlab.train import RunConfig
    from lrlab.tune.settings import build_schedule

    return [RunConfig(lr, build_schedule(s, steps), seed=seed)
            for lr in LRS for s in SCHEDULES for seed in SEEDS]


def run_lrlab(task, make_model, steps, device):
    from lrlab.train import run_batched

    return run_batched(task, _configs(steps), device=device)


def run_lrlab_compiled(task, make_model, steps, device):
    from lrlab.train import run_batched

    return run_batched(task, _configs(steps), device=device, compile=True)


def run_handmlp(task, make_model, steps, device):
    from lrlab.tasks import get_task
    from lrlab.train import run_batched

    hand = get_task("digits_mlp", default_steps=steps)
    return run_batched(hand, _configs(steps), device=device)


def run_loop(task, make_model, steps, device):
    import numpy as np
    import torch

    from lrlab.torchx import ScheduleLR

    X, y = task.X_train.to(device), task.y_train.to(device)
    for cfg in _configs(steps):
        model = make_model(cfg.seed).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        sched = ScheduleLR(opt, cfg.schedule)
        rng = np.random.default_rng(cfg.seed)
        epochs = steps * BATCH // len(X) + 1
        order = np.concatenate([rng.permutation(len(X)) for _ in range(epochs)])
        idx = torch.from_numpy(order[: steps * BATCH].reshape(steps, BATCH)).to(device)
        for t in range(steps):
            loss = torch.nn.functional.cross_entropy(model(X[idx[t]]), y[idx[t]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    if device != "cpu":
        torch.cuda.synchronize()


def run_ensemble(task, make_model, steps, device, compile=False):
    import numpy as np
    import torch
    from torch.func import functional_call, grad, stack_module_state, vmap

    configs = _configs(steps)
    X, y = task.X_train.to(device), task.y_train.to(device)
    models = [make_model(c.seed).to(device) for c in configs]
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = make_model(0).to(device)

    def loss(p, b, x, t):
        return torch.nn.functional.cross_entropy(functional_call(base, (p, b), (x,)), t)

    step = vmap(grad(loss), randomness="different")
    if compile:
        step = _COMPILED.setdefault("ensemble", torch.compile(step))
    lrs = torch.tensor(np.stack([c.lr * c.schedule(np.arange(steps)) for c in configs], 1),
                       dtype=torch.float32, device=device)
    orders = [np.random.default_rng(c.seed) for c in configs]
    idx = np.stack([np.concatenate([r.permutation(len(X))
                                    for _ in range(steps * BATCH // len(X) + 1)])[: steps * BATCH]
                    for r in orders])
    idx = torch.from_numpy(idx.reshape(len(configs), steps, BATCH)).to(device)
    for t in range(steps):
        g = step(params, buffers, X[idx[:, t]], y[idx[:, t]])
        for k, p in params.items():
            p.sub_(lrs[t].view(-1, *([1] * (p.dim() - 1))) * g[k])
    if device != "cpu":
        torch.cuda.synchronize()


_COMPILED: dict = {}  # the compiled ensemble step, kept from the warm-up to the timed run


def run_ensemble_compiled(task, make_model, steps, device):
    return run_ensemble(task, make_model, steps, device, compile=True)


APPROACHES = {"lrlab": run_lrlab, "loop": run_loop, "ensemble": run_ensemble,
              "handmlp": run_handmlp, "lrlab_compiled": run_lrlab_compiled,
              "ensemble_compiled": run_ensemble_compiled}


def child(model: str, approach: str, device: str) -> dict:
    import torch

    torch.set_num_threads(1)
    task, make_model = _task(model)
    fn = APPROACHES[approach]
    t0 = time.perf_counter()
    fn(task.replace(default_steps=5), make_model, 5, device)  # warm-up: same approach, 5 steps
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn(task, make_model, STEPS, device)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else None
    return {"seconds": seconds, "warmup_seconds": warmup, "peak_rss_mb": rss,
            "peak_gpu_mb": gpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "APPROACH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.device)))
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    rows = {}
    for model in ("mlp", "cnn"):
        for approach in APPROACHES:
            if approach == "handmlp" and model != "mlp":
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--child", model, approach],
                capture_output=True, text=True, env=env, check=True,
            )
            rows[f"{model}/{approach}"] = json.loads(out.stdout.strip().splitlines()[-1])
            r = rows[f"{model}/{approach}"]
            gpu = f"  GPU {r['peak_gpu_mb']:.0f} MB" if r["peak_gpu_mb"] else ""
            print(f"{model:4} {approach:17} {r['seconds']:7.2f} s  (warm-up "
                  f"{r['warmup_seconds']:5.1f} s)  peak RSS {r['peak_rss_mb']:6.0f} MB{gpu}",
                  flush=True)
    ratios = {}
    for model in ("mlp", "cnn"):
        for ours in ("lrlab", "lrlab_compiled"):
            for peer in ("loop", "ensemble", "handmlp", "ensemble_compiled"):
                if f"{model}/{peer}" in rows:
                    ratios[f"{model}: {peer} / {ours}"] = (rows[f"{model}/{peer}"]["seconds"]
                                                           / rows[f"{model}/{ours}"]["seconds"])
    for k, v in ratios.items():
        print(f"{k:38} {v:6.2f}x")
    name = "modules" if args.device == "cpu" else f"modules_{args.device.split(':')[0]}"
    path = ROOT / "bench" / "results" / f"{name}.json"
    path.write_text(json.dumps({"device": args.device, "configs": 105, "steps": STEPS,
                                "batch": BATCH, "rows": rows, "speedups": ratios}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
