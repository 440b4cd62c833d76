"""Per-step time and memory of every lrlab.optim optimizer vs its reference package and
``torch.optim.AdamW(foreach=True)``; optionally the achieved memory bandwidth on a GPU.

Model: ``--layers`` Linear(``--width``, ``--width``) layers (default 10 x 1000: 10.01M float32
parameters) with fixed synthetic gradients (no forward/backward: only ``optimizer.step()`` is
timed). One thread (``torch.set_num_threads(1)``) so that runs on a shared machine are comparable.
MoMo's steps get a fixed loss value bound in (the cost does not depend on it); the reference
Schedule-Free optimizers are switched to train mode (they start in eval mode). The peer of the
primal-averaging SGD is ``torch.optim.SGD`` heavy ball (the same method under a constant lr); MDA
has no reference package.

Time: for each case, ours, the reference and AdamW are stepped in turn (interleaved, rotating who
goes first), each on its own copy of the model; after warm-up the median (and the minimum) of
the per-step wall times is reported. A ratio is the median over rounds of the two step times of
the same round (paired, so load that changes between rounds cancels); the ratio of the minima
is reported too. The timing process runs with glibc's allocator keeping freed memory
(``MALLOC_MMAP_THRESHOLD_`` = 32 MiB, ``MALLOC_TRIM_THRESHOLD_`` = 1 TiB; the script re-executes
itself with them): a model-sized temporary allocated every step is then served from the heap
instead of being mapped and faulted in afresh. That is the setting most favourable to methods
that allocate temporaries (AdamW's foreach step and most references do; ours reuse work
buffers), and it makes the timings independent of the allocator's history (with glibc's
defaults the same AdamW step measured 23 or 40 ms depending on what ran before it).

Memory, two figures per optimizer:
- ``state_mb``: bytes of all tensors in the optimizer state after warm-up (for a wrapper, its own
  state plus the base optimizer's);
- ``peak_mb``: the process's peak resident set (VmHWM) minus its resident set once the model and
  gradients exist, over construction and 3 steps, measured in a fresh child process per
  optimizer (after two steps on a 360k-parameter model that is cut into blocks too, so loading
  libraries and kernels is not counted; glibc's mmap threshold fixed at 128 KiB so freed tensors
  leave the resident set at once): state, work buffers and the largest temporaries of a step.

``--bandwidth`` (use ``--device cuda --width 4096 --layers 6`` for >= 100M parameters) reports
instead each method's achieved memory bandwidth, ``bytes moved / step time``, as a fraction of the
device's peak ``--peak-gbs``; the bytes moved per step are counted operation by operation
while one step runs (``ByteCount``). It also runs with ``--device cpu``
(then give the machine's own ``--peak-gbs``).

Usage: ``python bench/optim.py`` (prints a table, writes ``bench/results/optim.json``; another
``--layers``/``--width`` writes ``optim_<layers>x<width>.json``);
``python bench/optim.py --bandwidth --device cuda`` (writes ``bench/results/optim_bw_cuda.json``).
"""

from __future__ import annotations

import argparse
import functools
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

# fixed allocator settings for the timing process (see the module docstring); glibc reads them
# at start-up, hence the re-execution
TIMING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
if __name__ == "__main__" and "--child" not in sys.argv and any(
        os.environ.get(k) != v for k, v in TIMING_MALLOC.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TIMING_MALLOC})

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dadaptation  # noqa: E402
import madgrad as madgrad_ref  # noqa: E402
import momo as momo_ref  # noqa: E402
import prodigyopt  # noqa: E402
import schedulefree as sf_ref  # noqa: E402
from mechanic_pytorch import mechanize  # noqa: E402

from lrlab.optim import (  # noqa: E402
    MADGRAD,
    MDA,
    AdamWScheduleFree,
    DAdaptAdaGrad,
    DAdaptAdam,
    DAdaptSGD,
    Mechanic,
    MirrorMADGRAD,
    Momo,
    MomoAdam,
    PrimalAveragingSGD,
    Prodigy,
    ScheduleFreeWrapper,
    SGDScheduleFree,
)

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
WARMUP, STEPS = 3, 40
DEFAULT_LAYERS, DEFAULT_WIDTH = 10, 1000


def adamw(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, foreach=True)


def _with_loss(make: Callable[..., Any]) -> Factory:
    def build(params: list[torch.Tensor]) -> Any:
        opt = make(params)
        opt.step = functools.partial(opt.step, loss=torch.tensor(1.0))
        return opt

    return build


def _in_train_mode(make: Callable[..., Any]) -> Factory:
    def build(params: list[torch.Tensor]) -> Any:
        opt = make(params)
        opt.train()
        return opt

    return build


# (name, our factory, reference factory or None)
CASES: list[tuple[str, Factory, Factory | None]] = [
    ("DAdaptSGD", lambda p: DAdaptSGD(p, momentum=0.9),
     lambda p: dadaptation.DAdaptSGD(p, momentum=0.9)),
    ("DAdaptAdam", DAdaptAdam, dadaptation.DAdaptAdam),
    ("DAdaptAdaGrad", DAdaptAdaGrad, dadaptation.DAdaptAdaGrad),
    ("Prodigy", Prodigy, prodigyopt.Prodigy),
    ("Mechanic(SGD)", lambda p: Mechanic(torch.optim.SGD(p, lr=0.01, momentum=0.9)),
     lambda p: mechanize(torch.optim.SGD)(p, lr=0.01, momentum=0.9)),
    ("Mechanic(AdamW)", lambda p: Mechanic(adamw(p)),
     lambda p: mechanize(torch.optim.AdamW)(p, lr=1e-3, foreach=True)),
    ("Momo", _with_loss(Momo), _with_loss(momo_ref.Momo)),
    ("MomoAdam", _with_loss(MomoAdam), _with_loss(momo_ref.MomoAdam)),
    ("SGDScheduleFree", SGDScheduleFree, _in_train_mode(sf_ref.SGDScheduleFree)),
    ("AdamWScheduleFree", AdamWScheduleFree, _in_train_mode(sf_ref.AdamWScheduleFree)),
    ("ScheduleFree(SGD)", lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)),
     _in_train_mode(lambda p: sf_ref.ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)))),
    ("MADGRAD", MADGRAD, madgrad_ref.MADGRAD),
    ("MirrorMADGRAD", MirrorMADGRAD, madgrad_ref.MirrorMADGRAD),
    ("MDA", MDA, None),
    ("PrimalAveragingSGD", lambda p: PrimalAveragingSGD(p, lr=1.0, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True)),
]

class ByteCount(TorchDispatchMode):
    """Bytes the operations of a step read and write, counted operation by operation from the
    operator schemas while the step runs: every tensor argument an operation only reads counts
    once, an argument it updates in place twice (read + write), an ``out=`` argument or the
    target of ``copy_``/``fill_``/``zero_`` once (written only), and a freshly allocated result
    once; views move nothing. Lists of tensors (``_foreach_*`` operations) count each tensor.

    This is the traffic of the operations as written: a GPU step whose chunks are larger than
    the cache moves about this much through memory; on the CPU blocks that stay in cache move
    less (so there the figure is an effective bandwidth)."""

    WRITE_ONLY = frozenset({"copy_", "fill_", "zero_"})

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        schema = func._schema
        if any(r.alias_info is not None and not r.alias_info.is_write for r in schema.returns):
            return result  # a view
        values = dict(zip((a.name for a in schema.arguments if not a.kwarg_only), args,
                          strict=False))
        values.update(kwargs)
        wrote = False
        for arg in schema.arguments:
            size = _nbytes(values.get(arg.name))
            if arg.alias_info is not None and arg.alias_info.is_write:
                wrote = True
                only_written = (func._overloadname == "out"
                                or schema.name.split("::")[-1] in self.WRITE_ONLY)
                self.bytes += size if only_written else 2 * size
            else:
                self.bytes += size
        if not wrote:
            self.bytes += _nbytes(result)
        return result


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def bytes_per_step(factory: Factory, layers: int, width: int, device: str) -> int:
    """Bytes moved by one step (after two warm-up steps), counted by :class:`ByteCount`."""
    opt = factory(make_model(layers, width, device))
    for _ in range(2):
        opt.step()
    with ByteCount() as count:
        opt.step()
    return count.bytes


def make_model(layers: int, width: int, device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    params = []
    for _ in range(layers):
        # filled in place: no temporaries that would raise the peak RSS before the optimizer runs
        w = torch.empty(width, width, device=device).normal_(0.0, width**-0.5, generator=g)
        b = torch.empty(width, device=device).uniform_(-0.01, 0.01, generator=g)
        for p in (w, b):
            p.requires_grad_()
            p.grad = torch.empty_like(p).normal_(0.0, 1e-3, generator=g)
        params += [w, b]
    return params


def state_bytes(opt: Any) -> int:
    """Bytes of the tensors in the optimizer's state (and a wrapped base optimizer's)."""
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

    total = walk(dict(opt.state)) + walk(getattr(opt, "tuner", {}))
    base = getattr(opt, "base", None)
    if isinstance(base, torch.optim.Optimizer):
        total += walk(dict(base.state))
    return total


def _factory(case: str, side: str) -> Factory:
    if side == "adamw":
        return adamw
    ours, ref = {name: (o, r) for name, o, r in CASES}[case]
    return ours if side == "ours" else ref


def _status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM: this process's own peak RSS; unlike
    ``ru_maxrss`` it does not inherit the parent's peak across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def run_child(case: str, side: str, layers: int, width: int) -> None:
    torch.set_num_threads(1)
    factory = _factory(case, side)
    warm = factory(make_model(1, 600))  # 360k elements: cut into blocks as the big model is
    for _ in range(2):
        warm.step()  # loads the kernels and libraries the method uses: not counted below
    del warm
    params = make_model(layers, width)
    base_kib = _status_kib("VmRSS")
    opt = factory(params)
    for _ in range(3):
        opt.step()
    print((_status_kib("VmHWM") - base_kib) / 1024)


def child_peak(case: str, side: str, layers: int, width: int) -> float:
    """Peak RSS growth (MB) for one optimizer, measured in a fresh interpreter."""
    # glibc's mmap threshold fixed at 128 KiB: every freed tensor leaves the resident set at
    # once, so the peak counts live bytes rather than the allocator's caching of the moment
    env = {k: v for k, v in os.environ.items() if k not in TIMING_MALLOC}
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, side, "--layers", str(layers),
         "--width", str(width)],
        capture_output=True, text=True, check=True, env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def time_steps(factories: list[Factory], layers: int, width: int, device: str, warmup: int,
               steps: int) -> tuple[list[list[float]], list[int]]:
    """Each optimizer's step times, round by round, and its state bytes.

    Steps are interleaved, one of each optimizer per round, starting with a different one each
    round so that no method always follows the same neighbour."""
    models = [make_model(layers, width, device) for _ in factories]
    opts = [f(m) for f, m in zip(factories, models, strict=True)]
    times: list[list[float]] = [[] for _ in opts]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for r in range(len(opts)):
            j = (i + r) % len(opts)
            sync()
            t0 = time.perf_counter()
            opts[j].step()
            sync()
            if i >= warmup:
                times[j].append(time.perf_counter() - t0)
    return times, [state_bytes(o) for o in opts]


def paired_ratio(ours: list[float], peer: list[float]) -> float:
    """Median over rounds of ours / peer within the round: load that changes from one round to
    the next affects both sides of each ratio."""
    return statistics.median(a / b for a, b in zip(ours, peer, strict=True))


def compare_main(layers: int, width: int, only: list[str] | None = None,
                 write_results: bool = True) -> None:
    rows = []
    adamw_peak = child_peak("", "adamw", layers, width)
    for name, ours, ref in CASES:
        if only and name not in only:
            continue
        factories = [ours, adamw] + ([ref] if ref is not None else [])
        times, mem = time_steps(factories, layers, width, "cpu", WARMUP, STEPS)
        med = [statistics.median(t) for t in times]
        best = [min(t) for t in times]
        row: dict[str, Any] = {
            "method": name,
            "ours_ms": 1e3 * med[0], "adamw_ms": 1e3 * med[1],
            "ours_min_ms": 1e3 * best[0], "adamw_min_ms": 1e3 * best[1],
            "time_vs_adamw": paired_ratio(times[0], times[1]),
            "min_time_vs_adamw": best[0] / best[1],
            "ours_state_mb": mem[0] / 2**20, "adamw_state_mb": mem[1] / 2**20,
            "ours_peak_mb": child_peak(name, "ours", layers, width), "adamw_peak_mb": adamw_peak,
        }
        if ref is not None:
            row.update({
                "ref_ms": 1e3 * med[2], "ref_min_ms": 1e3 * best[2],
                "time_vs_ref": paired_ratio(times[0], times[2]),
                "min_time_vs_ref": best[0] / best[2],
                "ref_state_mb": mem[2] / 2**20,
                "ref_peak_mb": child_peak(name, "ref", layers, width),
            })
            row["state_vs_ref"] = row["ours_state_mb"] / max(row["ref_state_mb"], 1e-9)
            row["peak_vs_ref"] = row["ours_peak_mb"] / max(row["ref_peak_mb"], 1e-9)
        rows.append(row)
        print(f"done {name}", file=sys.stderr)
    print_table(rows)
    print(f"AdamW(foreach) state {rows[0]['adamw_state_mb']:.0f} MB, peak {adamw_peak:.0f} MB")
    meta = {
        "params": layers * (width * width + width), "dtype": "float32", "threads": 1,
        "warmup_steps": WARMUP, "timed_steps": STEPS, "torch": torch.__version__,
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "timing_env": TIMING_MALLOC,
    }
    if write_results:
        default_shape = (layers, width) == (DEFAULT_LAYERS, DEFAULT_WIDTH)
        write("optim.json" if default_shape else f"optim_{layers}x{width}.json",
              {"meta": meta, "rows": rows})


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'method':<20}{'ours ms':>9}{'ref ms':>9}{'AdamW ms':>10}{'t/ref':>7}"
            f"{'t/AdamW':>9}{'min t/ref':>11}{'min t/AdamW':>13}{'state MB ours/ref':>19}"
            f"{'peak MB ours/ref':>18}")
    print(head)
    print("-" * len(head))
    for r in rows:
        has_ref = "ref_ms" in r
        ref_ms = f"{r['ref_ms']:9.1f}" if has_ref else f"{'-':>9}"
        t_ref = f"{r['time_vs_ref']:7.2f}" if has_ref else f"{'-':>7}"
        m_ref = f"{r['min_time_vs_ref']:11.2f}" if has_ref else f"{'-':>11}"
        st = f"{r['ours_state_mb']:.0f}/" + (f"{r['ref_state_mb']:.0f}" if has_ref else "-")
        pk = f"{r['ours_peak_mb']:.0f}/" + (f"{r['ref_peak_mb']:.0f}" if has_ref else "-")
        print(f"{r['method']:<20}{r['ours_ms']:9.1f}{ref_ms}{r['adamw_ms']:10.1f}{t_ref}"
              f"{r['time_vs_adamw']:9.2f}{m_ref}{r['min_time_vs_adamw']:13.2f}{st:>19}{pk:>18}")


def bandwidth_main(device: str, layers: int, width: int, peak_gbs: float) -> None:
    n = layers * (width * width + width)
    rows = []
    for name, ours, _ in [*CASES, ("AdamW", adamw, None)]:
        moved = bytes_per_step(ours, layers, width, device)
        sec = statistics.median(time_steps([ours], layers, width, device, warmup=5,
                                           steps=20)[0][0])
        gbs = moved / sec / 1e9
        rows.append({"method": name, "ms": 1e3 * sec, "bytes_per_param": moved / n,
                     "gb_per_s": gbs, "fraction_of_peak": gbs / peak_gbs})
        print(f"{name:<20}{1e3 * sec:9.2f} ms {moved / n:6.1f} B/param {gbs:8.1f} GB/s "
              f"{gbs / peak_gbs:6.1%}")
        if device == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    meta = {"device": name, "params": n, "dtype": "float32", "peak_gbs": peak_gbs,
            "torch": torch.__version__}
    write(f"optim_bw_{device}.json", {"meta": meta, "rows": rows})


def write(name: str, payload: dict[str, Any]) -> None:
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", action="store_true",
                        help="report achieved memory bandwidth instead of the peer comparison")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--layers", type=int, default=DEFAULT_LAYERS)
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    parser.add_argument("--only", nargs="+", metavar="METHOD",
                        help="time these methods only (nothing is written)")
    parser.add_argument("--peak-gbs", type=float, default=3350.0,
                        help="device peak memory bandwidth in GB/s (H100 SXM: 3350)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        run_child(*args.child, args.layers, args.width)
    elif args.bandwidth:
        bandwidth_main(args.device, args.layers, args.width, args.peak_gbs)
    else:
        compare_main(args.layers, args.width, args.only, write_results=not args.only)
