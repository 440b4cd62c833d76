"""Batched vs one-at-a-time training through the same code path (``lrlab.train.run_batched``).

105 configurations = 7 learning rates x 3 schedules x 5 seeds, SGD, float32, one intra-op
thread (the trainer's default). For each task, "sequential" trains them one by one (a batch of
one each), "batched" trains all 105 as one stacked computation (median of 3 repeats). Each
measurement runs in a fresh child process so its peak resident memory (``ru_maxrss``) is its
own; we report the peak and the growth over the RSS after imports and data loading.

Run: ``python bench/batched.py`` (about two minutes on 2 CPU cores); writes
``bench/results/batched.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from pathlib import Path

LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SEEDS = (0, 1, 2, 3, 4)
CASES = {"digits_logreg": 500, "digits_mlp": 200}  # task -> steps
# The machine is shared: the short batched run is repeated and its median kept; the long
# sequential loop (105 runs) averages the noise by itself.
REPEATS = {"batched": 3, "sequential": 1}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _configs(steps: int):
    from lrlab.schedules import Constant, Cosine, InverseSqrt
    from lrlab.train import RunConfig

    scheds = (Constant(), Cosine(steps=steps), InverseSqrt())
    return [
        RunConfig(lr, s, seed=seed, steps=steps) for lr in LRS for s in scheds for seed in SEEDS
    ]


def _measure(task_name: str, steps: int, mode: str, queue: mp.Queue) -> None:
    import torch

    from lrlab.tasks import get_task
    from lrlab.train import run_batched

    task = get_task(task_name)
    configs = _configs(steps)
    run_batched(task, configs[:1], dtype=torch.float32)  # warm-up (lazy imports, allocator)
    base = _rss_mb()
    times = []
    for _ in range(REPEATS[mode]):
        t0 = time.perf_counter()
        if mode == "batched":
            results = run_batched(task, configs)
        else:
            results = [run_batched(task, [c])[0] for c in configs]
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_mb": peak,
            "rss_growth_mb": max(0.0, peak - base),
            "final_loss": [r.final_loss for r in results],
            "diverged": sum(r.diverged for r in results),
        }
    )


def _child(task_name: str, steps: int, mode: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(task_name, steps, mode, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    import argparse
    import math

    import torch

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()

    load_before = os.getloadavg()
    rows = []
    for task_name, steps in CASES.items():
        seq = _child(task_name, steps, "sequential")
        bat = _child(task_name, steps, "batched")
        pairs = [
            (a, b)
            for a, b in zip(seq["final_loss"], bat["final_loss"], strict=True)
            if math.isfinite(a) and math.isfinite(b)
        ]
        rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)
        rows.append(
            {
                "task": task_name,
                "configs": len(LRS) * 3 * len(SEEDS),
                "steps": steps,
                "sequential_s": round(seq["seconds"], 3),
                "batched_s": round(bat["seconds"], 3),
                "speedup": round(seq["seconds"] / bat["seconds"], 1),
                "sequential_peak_rss_mb": round(seq["peak_rss_mb"], 1),
                "batched_peak_rss_mb": round(bat["peak_rss_mb"], 1),
                "sequential_rss_growth_mb": round(seq["rss_growth_mb"], 1),
                "batched_rss_growth_mb": round(bat["rss_growth_mb"], 1),
                "max_rel_diff_final_loss": rel,
                "diverged": bat["diverged"],
            }
        )
    head = (
        f"{'task':15s} {'configs':>7s} {'steps':>5s} {'seq s':>8s} {'batch s':>8s} "
        f"{'speedup':>8s} {'seq MB':>7s} {'batch MB':>8s} {'max rel diff':>12s}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['task']:15s} {r['configs']:7d} {r['steps']:5d} {r['sequential_s']:8.2f} "
            f"{r['batched_s']:8.2f} {r['speedup']:7.1f}x {r['sequential_peak_rss_mb']:7.0f} "
            f"{r['batched_peak_rss_mb']:8.0f} {r['max_rel_diff_final_loss']:12.2e}"
        )
    out = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": 1,
            "dtype": "float32",
            "gpu": "none available for this run",
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "grid": {"lrs": LRS, "schedules": ["constant", "cosine", "inverse_sqrt"], "seeds": SEEDS},
        "results": rows,
    }
    dest = Path(__file__).parent / "results" / "batched.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
