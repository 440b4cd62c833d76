"""Benchmark cases for MoMo, Schedule-Free, MADGRAD and the averaging optimizers.

``CASES`` lists ``(name, our_factory(params), reference_factory(params) or None)`` for the shared
optimizer benchmark. Factories return optimizers that can be stepped with a plain ``step()``:
MoMo's steps get a fixed loss value bound in (its cost does not depend on the value), and the
reference Schedule-Free optimizers are switched to train mode (they start in eval mode). The
peer of the primal-averaging SGD is ``torch.optim.SGD`` heavy ball (the same method under a
constant lr); MDA has no reference package.

Run standalone, ``python bench/optim_cases_b.py`` times every case on 10 Linear(1000, 1000)
layers (10.01M float32 parameters, fixed synthetic gradients, only ``step()`` timed, one
thread): ours, the reference and ``torch.optim.AdamW(foreach=True)`` interleaved, median of the
per-step times; peak memory is the growth of the peak resident set over construction and 3 steps
in a fresh process per optimizer. Writes ``bench/results/optim_b.json``.

``--bandwidth --device cuda --width 4096 --layers 6`` (>= 100M parameters) reports instead each
method's achieved memory bandwidth, ``bytes moved / step time``, as a fraction of the device's
peak given by ``--peak-gbs``; bytes moved per step = (tensors read + written per element by our
kernels, ``TRAFFIC``) x parameters x 4 bytes. Writes ``bench/results/optim_b_<device>_bw.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import madgrad as madgrad_ref  # noqa: E402
import momo as momo_ref  # noqa: E402
import schedulefree as sf_ref  # noqa: E402

from lrlab.optim.averaging import MDA, PrimalAveragingSGD  # noqa: E402
from lrlab.optim.madgrad import MADGRAD, MirrorMADGRAD  # noqa: E402
from lrlab.optim.momo import Momo, MomoAdam  # noqa: E402
from lrlab.optim.schedulefree import (  # noqa: E402
    AdamWScheduleFree,
    ScheduleFreeWrapper,
    SGDScheduleFree,
)

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def _with_loss(make: Callable[..., Any], **kw: Any) -> Factory:
    def build(params: list[torch.Tensor]) -> Any:
        opt = make(params, **kw)
        opt.step = functools.partial(opt.step, loss=torch.tensor(1.0))
        return opt

    return build


def _in_train_mode(make: Callable[..., Any]) -> Factory:
    def build(params: list[torch.Tensor]) -> Any:
        opt = make(params)
        opt.train()
        return opt

    return build


CASES: list[tuple[str, Factory, Factory | None]] = [
    ("Momo", _with_loss(Momo), _with_loss(momo_ref.Momo)),
    ("MomoAdam", _with_loss(MomoAdam), _with_loss(momo_ref.MomoAdam)),
    ("SGDScheduleFree", SGDScheduleFree, _in_train_mode(sf_ref.SGDScheduleFree)),
    ("AdamWScheduleFree", AdamWScheduleFree, _in_train_mode(sf_ref.AdamWScheduleFree)),
    ("ScheduleFree(SGD)",
     lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)),
     _in_train_mode(lambda p: sf_ref.ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)))),
    ("MADGRAD", MADGRAD, madgrad_ref.MADGRAD),
    ("MirrorMADGRAD", MirrorMADGRAD, madgrad_ref.MirrorMADGRAD),
    ("MDA", MDA, None),
    ("PrimalAveragingSGD",
     lambda p: PrimalAveragingSGD(p, lr=1.0, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True)),
]

# Tensors of parameter size read + written per element by one step of our implementation
# (parameters, gradient, state buffers and chunked temporaries), for the bandwidth figure.
# Each foreach op counts its operands once (an in-place op: read + write of its target).
TRAFFIC = {
    "Momo": 13, "MomoAdam": 35, "SGDScheduleFree": 9, "AdamWScheduleFree": 23,
    "ScheduleFree(SGD)": 12, "MADGRAD": 19, "MirrorMADGRAD": 22, "MDA": 9,
    "PrimalAveragingSGD": 6, "AdamW": 20,
}


def adamw(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, foreach=True)


def make_model(layers: int, width: int, device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    params = []
    for _ in range(layers):
        w = torch.empty(width, width, device=device).normal_(0.0, width**-0.5, generator=g)
        b = torch.empty(width, device=device).uniform_(-0.01, 0.01, generator=g)
        for p in (w, b):
            p.requires_grad_()
            p.grad = torch.empty_like(p).normal_(0.0, 1e-3, generator=g)
        params += [w, b]
    return params


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _factory(case: str, side: str) -> Factory:
    if side == "adamw":
        return adamw
    ours, ref = {name: (o, r) for name, o, r in CASES}[case]
    return ours if side == "ours" else ref


def run_child(case: str, side: str, layers: int, width: int) -> None:
    torch.set_num_threads(1)
    factory = _factory(case, side)
    warm = factory(make_model(2, 8))
    for _ in range(2):
        warm.step()  # pages in the kernels' code, so the peak below counts data only
    del warm
    params = make_model(layers, width)
    base = _status_kib("VmRSS")
    opt = factory(params)
    for _ in range(3):
        opt.step()
    print((_status_kib("VmHWM") - base) / 1024)


def child_peak(case: str, side: str, layers: int, width: int, repeats: int = 3) -> float:
    """Median over ``repeats`` fresh processes (the C heap makes single readings noisy)."""
    peaks = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, side, "--layers", str(layers),
             "--width", str(width)],
            capture_output=True, text=True, check=True,
        )
        peaks.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(peaks)


def time_steps(factories: list[Factory], layers: int, width: int, device: str,
               warmup: int, steps: int) -> list[float]:
    models = [make_model(layers, width, device) for _ in factories]
    opts = [f(m) for f, m in zip(factories, models, strict=True)]
    times: list[list[float]] = [[] for _ in opts]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for j, opt in enumerate(opts):
            sync()
            t0 = time.perf_counter()
            opt.step()
            sync()
            if i >= warmup:
                times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def cpu_main(layers: int, width: int) -> None:
    torch.set_num_threads(1)
    rows = []
    adamw_peak = child_peak("", "adamw", layers, width)
    for name, ours, ref in CASES:
        factories = [ours, adamw] + ([ref] if ref is not None else [])
        med = time_steps(factories, layers, width, "cpu", warmup=3, steps=12)
        row: dict[str, Any] = {
            "method": name, "ours_ms": 1e3 * med[0], "adamw_ms": 1e3 * med[1],
            "time_vs_adamw": med[0] / med[1],
            "ours_peak_mb": child_peak(name, "ours", layers, width), "adamw_peak_mb": adamw_peak,
        }
        if ref is not None:
            ref_peak = child_peak(name, "ref", layers, width)
            row.update({"ref_ms": 1e3 * med[2], "time_vs_ref": med[0] / med[2],
                        "ref_peak_mb": ref_peak, "peak_vs_ref": row["ours_peak_mb"] / ref_peak})
        rows.append(row)
        print(f"done {name}", file=sys.stderr)
    head = (f"{'method':<20}{'ours ms':>9}{'ref ms':>9}{'AdamW ms':>10}{'t/ref':>7}"
            f"{'t/AdamW':>9}{'peak MB ours/ref':>18}")
    print(head)
    print("-" * len(head))
    for r in rows:
        has_ref = "ref_ms" in r
        ref_ms = f"{r['ref_ms']:9.1f}" if has_ref else f"{'-':>9}"
        t_ref = f"{r['time_vs_ref']:7.2f}" if has_ref else f"{'-':>7}"
        peak = f"{r['ours_peak_mb']:.0f}/" + (f"{r['ref_peak_mb']:.0f}" if has_ref else "-")
        print(f"{r['method']:<20}{r['ours_ms']:9.1f}{ref_ms}{r['adamw_ms']:10.1f}{t_ref}"
              f"{r['time_vs_adamw']:9.2f}{peak:>18}")
    print(f"AdamW(foreach) peak {adamw_peak:.0f} MB")
    meta = {"device": "cpu", "threads": 1, "params": layers * (width * width + width),
            "dtype": "float32", "torch": torch.__version__}
    _write("optim_b.json", {"meta": meta, "rows": rows})


def bandwidth_main(device: str, layers: int, width: int, peak_gbs: float) -> None:
    n = layers * (width * width + width)
    rows = []
    for name, ours, _ in [*CASES, ("AdamW", adamw, None)]:
        sec = time_steps([ours], layers, width, device, warmup=5, steps=20)[0]
        gbs = TRAFFIC[name] * n * 4 / sec / 1e9
        rows.append({"method": name, "ms": 1e3 * sec, "gb_per_s": gbs,
                     "fraction_of_peak": gbs / peak_gbs})
        print(f"{name:<20}{1e3 * sec:9.2f} ms {gbs:8.0f} GB/s {gbs / peak_gbs:6.1%}")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    meta = {"device": name, "params": n, "dtype": "float32", "peak_gbs": peak_gbs,
            "torch": torch.__version__}
    _write(f"optim_b_{device}_bw.json", {"meta": meta, "rows": rows})


def _write(name: str, payload: dict[str, Any]) -> None:
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bandwidth", action="store_true",
                        help="report achieved memory bandwidth instead of the peer comparison")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--peak-gbs", type=float, default=3350.0,
                        help="device peak memory bandwidth in GB/s (H100 SXM: 3350)")
    args = parser.parse_args()
    if args.child:
        run_child(*args.child, args.layers, args.width)
    elif args.bandwidth:
        bandwidth_main(args.device, args.layers, args.width, args.peak_gbs)
    else:
        cpu_main(args.layers, args.width)
