"""Schedule evaluation speed: one vectorised call vs stepping ``LambdaLR``, and the per-``step()``
cost of ``ScheduleLR`` vs ``LambdaLR``.

Run: ``python bench/schedules.py [--steps 1000000] [--lambda-steps 1000000]``. Prints a table and
writes ``bench/results/schedules.json``. torch runs with ``torch.set_num_threads(1)``.

1. Array evaluation: ``s(np.arange(N))`` for N = 1,000,000 steps (best of 5) against stepping
   ``torch.optim.lr_scheduler.LambdaLR`` (whose lambda is the same formula in plain ``math``)
   through the same N steps. With ``--lambda-steps M < N`` LambdaLR is timed on M steps and
   scaled per step to N (it is linear in the number of steps); the table says so.
2. Per-step overhead: ``ScheduleLR.step()`` vs ``LambdaLR.step()`` on the same optimizer shape
   (no ``optimizer.step()`` in the loop), best of 5 interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lrlab.schedules import Cosine, Warmup
from lrlab.torchx import ScheduleLR

WARM, S_MIN = 10_000, 0.1


def schedule_for(total: int) -> Warmup:
    return Warmup(Cosine(total - WARM, S_MIN), WARM)


def lambda_for(total: int):
    decay = total - WARM

    def f(t: int) -> float:
        if t < WARM:
            return t / WARM
        u = min(t - WARM, decay) / decay
        return S_MIN + (1.0 - S_MIN) * 0.5 * (1.0 + math.cos(math.pi * u))

    return f


def make_opt(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(4))]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=0.1)


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def time_lambda_steps(total: int, n: int) -> float:
    opt = make_opt(1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda_for(total))
    opt.step()
    t0 = time.perf_counter()
    for _ in range(n):
        sched.step()
    return time.perf_counter() - t0


def per_step(groups: int, n: int, total: int, rounds: int = 5) -> tuple[float, float]:
    """Best-of-``rounds`` seconds per step for (ScheduleLR, LambdaLR)."""
    ours, theirs = [], []
    for _ in range(rounds):
        for kind, out in (("ours", ours), ("lambda", theirs)):
            opt = make_opt(groups)
            if kind == "ours":
                sched = ScheduleLR(opt, schedule_for(total))
            else:
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda_for(total))
            opt.step()
            step = sched.step
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            out.append((time.perf_counter() - t0) / n)
    return min(ours), min(theirs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--lambda-steps", type=int, default=1_000_000)
    ap.add_argument("--step-calls", type=int, default=50_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.steps
    sched = schedule_for(n)

    # correctness guard: both paths give the same numbers
    probe = np.arange(0, n, 997)
    f = lambda_for(n)
    np.testing.assert_allclose(sched(probe), [f(int(t)) for t in probe], rtol=1e-12, atol=1e-15)

    t_array = best(lambda: sched(np.arange(n)))
    m = min(args.lambda_steps, n)
    t_lambda_m = time_lambda_steps(n, m)
    t_lambda = t_lambda_m * n / m
    rows = []
    for groups in (1, 4):
        ours, theirs = per_step(groups, args.step_calls, n)
        rows.append(
            {
                "param_groups": groups,
                "schedulelr_us": ours * 1e6,
                "lambdalr_us": theirs * 1e6,
                "ratio": ours / theirs,
            }
        )

    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"torch {torch.__version__}, numpy {np.__version__}, torch threads 1",
        "schedule": repr(sched),
        "array_eval": {
            "steps": n,
            "array_seconds": t_array,
            "lambdalr_steps_timed": m,
            "lambdalr_seconds_timed": t_lambda_m,
            "lambdalr_seconds_scaled_to_steps": t_lambda,
            "speedup": t_lambda / t_array,
        },
        "step_overhead": rows,
    }
    print(f"schedule: {result['schedule']}")
    print(f"{'array evaluation':<40}{'seconds':>12}")
    label = f"  s(np.arange({n}))"
    print(f"{label:<40}{t_array:>12.4f}")
    label = f"  LambdaLR x {n} steps"
    note = f" (timed {m}, scaled)" if m < n else ""
    print(f"{label:<40}{t_lambda:>12.4f}{note}")
    print(f"  speedup (LambdaLR / array): {t_lambda / t_array:,.0f}x")
    print(f"{'per step()':<20}{'ScheduleLR us':>15}{'LambdaLR us':>15}{'ratio':>8}")
    for r in rows:
        print(
            f"  {r['param_groups']} group(s){'':<8}{r['schedulelr_us']:>15.2f}"
            f"{r['lambdalr_us']:>15.2f}{r['ratio']:>8.2f}"
        )
    out = Path(__file__).parent / "results" / "schedules.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
