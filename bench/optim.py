"""Per-step time and memory of lrlab.optim vs the reference packages and torch AdamW (CPU).

Model: 10 Linear(1000, 1000) layers (10.01M float32 parameters) with fixed synthetic gradients
(no forward/backward: only ``optimizer.step()`` is timed). One thread (``torch.set_num_threads(1)``)
so that runs on a shared machine are comparable.

Time: for each case, ours, the reference and ``torch.optim.AdamW(foreach=True)`` are stepped in
turn (interleaved, rotating who goes first), each on its own copy of the model; after warm-up the
median (and the minimum, less sensitive to other load on a shared machine) of the per-step wall
times is reported, and ratios are taken within the case.

Memory, two figures per optimizer:
- ``state_mb``: bytes of all tensors in the optimizer state after warm-up (for a wrapper, its own
  state plus the base optimizer's);
- ``peak_mb``: the process's peak resident set (VmHWM) minus its resident set once the model and
  gradients exist, over construction and 3 steps, measured in a fresh child process per
  optimizer (after one step on a tiny model, so library loading is not counted; glibc's mmap
  threshold fixed at 128 KiB so freed tensors leave the resident set at once): state, work
  buffers and the largest temporaries of a step.

Usage: ``python bench/optim.py`` (prints a table, writes ``bench/results/optim.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lrlab.optim import DAdaptAdaGrad, DAdaptAdam, DAdaptSGD, Mechanic, Prodigy  # noqa: E402

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
LAYERS, WIDTH = 10, 1000
WARMUP, STEPS = 3, 25


def _dadapt(name: str, **kw: Any) -> Factory:
    def make(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        import dadaptation

        return getattr(dadaptation, name)(params, **kw)

    return make


def _prodigy_ref(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    import prodigyopt

    return prodigyopt.Prodigy(params)


def _mechanic_ref(base: type, **kw: Any) -> Factory:
    def make(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        from mechanic_pytorch import mechanize

        return mechanize(base)(params, **kw)

    return make


def adamw(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, foreach=True)


# (name, our factory, reference factory or None); other optimizer families append rows here.
CASES: list[tuple[str, Factory, Factory | None]] = [
    ("DAdaptSGD", lambda p: DAdaptSGD(p, momentum=0.9), _dadapt("DAdaptSGD", momentum=0.9)),
    ("DAdaptAdam", DAdaptAdam, _dadapt("DAdaptAdam")),
    ("DAdaptAdaGrad", DAdaptAdaGrad, _dadapt("DAdaptAdaGrad")),
    ("Prodigy", Prodigy, _prodigy_ref),
    ("Mechanic(SGD)", lambda p: Mechanic(torch.optim.SGD(p, lr=0.01, momentum=0.9)),
     _mechanic_ref(torch.optim.SGD, lr=0.01, momentum=0.9)),
    ("Mechanic(AdamW)", lambda p: Mechanic(torch.optim.AdamW(p, lr=1e-3, foreach=True)),
     _mechanic_ref(torch.optim.AdamW, lr=1e-3, foreach=True)),
]


def make_model(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for _ in range(LAYERS):
        # filled in place: no temporaries that would raise the peak RSS before the optimizer runs
        w = torch.empty(WIDTH, WIDTH).normal_(0.0, WIDTH**-0.5, generator=g).requires_grad_()
        b = torch.empty(WIDTH).uniform_(-0.01, 0.01, generator=g).requires_grad_()
        for p in (w, b):
            p.grad = torch.empty_like(p).normal_(0.0, 1e-3, generator=g)
        params += [w, b]
    return params


def state_bytes(opt: torch.optim.Optimizer) -> int:
    seen: set[int] = set()

    def walk(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            if id(obj) in seen:
                return 0
            seen.add(id(obj))
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(walk(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(walk(v) for v in obj)
        return 0

    total = walk(dict(opt.state))
    if isinstance(opt, Mechanic):
        total += walk(opt.tuner) + walk(dict(opt.base.state))
    return total


def child_peak(case: str, side: str) -> float:
    """Peak RSS growth (MB) for one optimizer, measured in a fresh interpreter."""
    # glibc's mmap threshold fixed at 128 KiB: every freed tensor leaves the resident set at
    # once, so the peak counts live bytes rather than the allocator's caching of the moment
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, side],
        capture_output=True, text=True, check=True, env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run_child(case: str, side: str) -> None:
    torch.set_num_threads(1)
    factories = {name: (ours, ref) for name, ours, ref in CASES}
    factory = adamw if side == "adamw" else factories[case][0 if side == "ours" else 1]
    # one step on a tiny model first: loads the kernels and libraries the method uses, so their
    # one-time memory is not counted against the optimizer
    tiny = [torch.zeros(4, 4).normal_().requires_grad_() for _ in range(2)]
    for p in tiny:
        p.grad = torch.ones_like(p)
    factory(tiny).step()
    params = make_model()
    base_kib = _status_kib("VmRSS")
    opt = factory(params)
    for _ in range(3):
        opt.step()
    print((_status_kib("VmHWM") - base_kib) / 1024)


def _status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM: this process's own peak RSS; unlike
    ``ru_maxrss`` it does not inherit the parent's peak across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def time_case(factories: list[Factory]) -> tuple[list[float], list[float], list[int]]:
    """Median and minimum step time of each optimizer, and its state bytes.

    Steps are interleaved, one of each optimizer per round, starting with a different one each
    round so that no method always follows the same neighbour."""
    models = [make_model() for _ in factories]
    opts = [f(m) for f, m in zip(factories, models, strict=True)]
    times: list[list[float]] = [[] for _ in opts]
    for i in range(WARMUP + STEPS):
        for r in range(len(opts)):
            j = (i + r) % len(opts)
            t0 = time.perf_counter()
            opts[j].step()
            dt = time.perf_counter() - t0
            if i >= WARMUP:
                times[j].append(dt)
    return ([statistics.median(t) for t in times], [min(t) for t in times],
            [state_bytes(o) for o in opts])


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    adamw_peak = child_peak("", "adamw")
    for name, ours, ref in CASES:
        factories = [ours, adamw] + ([ref] if ref is not None else [])
        med, best, mem = time_case(factories)
        row: dict[str, Any] = {
            "method": name,
            "ours_ms": 1e3 * med[0], "adamw_ms": 1e3 * med[1],
            "ours_min_ms": 1e3 * best[0], "adamw_min_ms": 1e3 * best[1],
            "min_time_vs_adamw": best[0] / best[1],
            "ours_state_mb": mem[0] / 2**20, "adamw_state_mb": mem[1] / 2**20,
            "ours_peak_mb": child_peak(name, "ours"), "adamw_peak_mb": adamw_peak,
            "time_vs_adamw": med[0] / med[1],
        }
        if ref is not None:
            row.update({
                "ref_ms": 1e3 * med[2], "ref_state_mb": mem[2] / 2**20,
                "ref_min_ms": 1e3 * best[2], "min_time_vs_ref": best[0] / best[2],
                "ref_peak_mb": child_peak(name, "ref"),
                "time_vs_ref": med[0] / med[2],
            })
            row["state_vs_ref"] = row["ours_state_mb"] / row["ref_state_mb"]
            row["peak_vs_ref"] = row["ours_peak_mb"] / row["ref_peak_mb"]
        rows.append(row)
        print(f"done {name}", file=sys.stderr)

    head = (f"{'method':<16}{'ours ms':>9}{'ref ms':>9}{'AdamW ms':>10}{'t/ref':>7}{'t/AdamW':>9}"
            f"{'min t/ref':>11}{'min t/AdamW':>13}{'state MB ours/ref':>19}"
            f"{'peak MB ours/ref':>18}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ref_ms = f"{r['ref_ms']:9.1f}" if "ref_ms" in r else f"{'-':>9}"
        t_ref = f"{r['time_vs_ref']:7.2f}" if "ref_ms" in r else f"{'-':>7}"
        st = f"{r['ours_state_mb']:.0f}/{r.get('ref_state_mb', float('nan')):.0f}"
        pk = f"{r['ours_peak_mb']:.0f}/{r.get('ref_peak_mb', float('nan')):.0f}"
        m_ref = f"{r['min_time_vs_ref']:11.2f}" if "ref_ms" in r else f"{'-':>11}"
        print(f"{r['method']:<16}{r['ours_ms']:9.1f}{ref_ms}{r['adamw_ms']:10.1f}{t_ref}"
              f"{r['time_vs_adamw']:9.2f}{m_ref}{r['min_time_vs_adamw']:13.2f}{st:>19}{pk:>18}")
    print(f"AdamW(foreach) state {rows[0]['adamw_state_mb']:.0f} MB, peak {adamw_peak:.0f} MB")

    out = Path(__file__).resolve().parent / "results" / "optim.json"
    out.parent.mkdir(exist_ok=True)
    meta = {
        "params": sum(p.numel() for p in make_model()), "dtype": "float32", "threads": 1,
        "warmup_steps": WARMUP, "timed_steps": STEPS, "torch": torch.__version__,
        "machine": platform.machine(), "cpu_count_visible": torch.get_num_threads(),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
    else:
        main()
