"""Speed of the last-iterate bound and of refinement at T = 10^6, against plain-Python loops.

Both sides run at the full T = 10^6 in the same process (no extrapolation):

- bound: ``last_iterate_bound`` of linear decay, the tail-restarted bound at one peak
  (``restarted_bound``) and a rho-curve (restarted bound at rho c* and c*/rho for 4 rho),
  vectorised (reversed cumulative sums) vs. the same O(T) formulas written as Python loops;
- refinement: ``refine`` of a noisy log with 0.1% NaNs (binned to 10^5 points, median window
  10^4 + 1) vs. the same algorithm in plain Python (per-bin sort, sliding-window median kept
  in a sorted list with ``bisect``, loops for the weights).

The loop results are checked against the vectorised ones. A last row measures the cost of
``GradNormRecorder`` (torch, 1 thread): SGD steps of a small MLP with the recorder attached
(logging the loss too) against the same steps without it.
Writes ``bench/results/theory.json``.
Run: ``python bench/theory.py``.
"""

from __future__ import annotations

import bisect
import json
import math
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from lrlab.refine import refine
from lrlab.schedules import Linear
from lrlab.theory import best_peak, last_iterate_bound, restarted_bound, rho_curve

T = 1_000_000
REPEATS = 5


def best_time(fn, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# -- plain-Python peers -----------------------------------------------------------------------
def loop_bound(eta, D, G):
    n = len(eta)
    S = [0.0] * (n + 1)
    Q = [0.0] * (n + 1)
    for k in range(n - 1, -1, -1):
        S[k] = S[k + 1] + eta[k]
        Q[k] = Q[k + 1] + (eta[k] * G) ** 2
    last = 0.0
    for k in range(n - 1):
        last += eta[k] * Q[k] / (S[k + 1] * S[k])
    return D**2 / (2 * S[0]) + Q[0] / (2 * S[0]) + 0.5 * last


def loop_restarted(eta, D, G, c):
    n = len(eta)
    S = Q = R = 0.0
    best = math.inf
    for k in range(n - 1, -1, -1):
        S_next = S
        S += c * eta[k]
        Q += (c * eta[k] * G) ** 2
        if k < n - 1:
            R += c * eta[k] * Q / (S_next * S)
        best = min(best, D**2 / (2 * S) + Q / (2 * S) + 0.5 * R)
    return best


def loop_refine(norms, tau, max_points):
    n = len(norms)
    kept = [(i, g) for i, g in enumerate(norms) if math.isfinite(g)]
    m = min(n, max_points)
    bins = [[] for _ in range(m)]
    for i, g in kept:
        bins[i * m // n].append(g)
    raw = []
    for b in bins:
        b.sort()
        raw.append(0.5 * (b[(len(b) - 1) // 2] + b[len(b) // 2]))
    h = (max(1, 2 * math.floor(tau * m / 2) + 1)) // 2
    padded = raw[:h][::-1] + raw + raw[-h:][::-1]
    window = sorted(padded[: 2 * h + 1])
    smoothed = [window[h]]
    for j in range(1, m):
        del window[bisect.bisect_left(window, padded[j - 1])]
        bisect.insort(window, padded[j + 2 * h])
        smoothed.append(window[h])
    lo = min(smoothed)
    w = [(lo / s) ** 2 for s in smoothed]
    shape = [0.0] * m
    tail = 0.0
    for k in range(m - 1, -1, -1):
        shape[k] = w[k] * tail
        tail += w[k]
    top = max(shape)
    return [s / top for s in shape]


def recorder_overhead(steps=300, repeats=7):
    """Seconds per run of `steps` SGD steps without and with a GradNormRecorder attached."""
    import torch

    from lrlab.torchx.recorder import GradNormRecorder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))

    def run(record):
        rec = GradNormRecorder(opt) if record else None
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if rec is not None:
                rec.log_loss(loss)
            opt.step()
        if rec is not None:
            rec.detach()
            assert len(rec.rows()) == steps

    run(False)
    plain, recorded = math.inf, math.inf
    for _ in range(repeats):  # interleaved, best of each: the machine is shared
        plain = min(plain, best_time(lambda: run(False), 1)[0])
        recorded = min(recorded, best_time(lambda: run(True), 1)[0])
    return plain, recorded


def main() -> None:
    eta = Linear(T).values(T)
    eta_list = eta.tolist()
    c = 3e-3
    rows = []

    t_vec, b_vec = best_time(lambda: last_iterate_bound(eta).total, REPEATS)
    t_loop, b_loop = best_time(lambda: loop_bound(eta_list, 1.0, 1.0), 1)
    rows.append(("last-iterate bound", t_vec, t_loop, abs(b_vec - b_loop) / b_vec))

    t_vec, r_vec = best_time(lambda: restarted_bound(eta, peak=c).bound, REPEATS)
    t_loop, r_loop = best_time(lambda: loop_restarted(eta_list, 1.0, 1.0, c), 1)
    rows.append(("tail-restarted bound", t_vec, t_loop, abs(r_vec - r_loop) / r_vec))

    rhos = [2.0, 4.0, 8.0, 16.0]
    t_vec, cv = best_time(lambda: rho_curve(eta, rhos), REPEATS)
    c_star = best_peak(eta).peak

    def loop_curve():
        peaks = [c_star * r for r in rhos] + [c_star / r for r in rhos]
        return [loop_restarted(eta_list, 1.0, 1.0, p) for p in peaks]

    t_loop, curve_loop = best_time(loop_curve, 1)
    curve_vec = np.concatenate((cv.over_restarted, cv.under_restarted))
    diff = float(np.max(np.abs(curve_vec - np.array(curve_loop)) / curve_vec))
    rows.append(("rho curve (4 rho x 2)", t_vec, t_loop, diff))

    rng = np.random.default_rng(0)
    t = np.arange(T)
    norms = (1.0 + 4.0 * np.exp(-t / 30_000)) * rng.lognormal(0.0, 0.3, T)
    norms[::1000] = np.nan
    norms_list = norms.tolist()

    def vec_refine():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return refine(norms, tau=0.1, max_points=100_000).shape

    t_vec, s_vec = best_time(vec_refine, REPEATS)
    t_loop, s_loop = best_time(lambda: loop_refine(norms_list, 0.1, 100_000), 1)
    rows.append(("refinement", t_vec, t_loop, float(np.max(np.abs(s_vec - np.array(s_loop))))))

    plain, recorded = recorder_overhead()
    print(f"T = {T:,}; vectorised: best of {REPEATS}; loop: 1 run; single process, NumPy")
    print(f"{'task':<22}{'vectorised s':>14}{'loop s':>10}{'speed-up':>10}{'max diff':>11}")
    results = []
    for name, tv, tl, diff in rows:
        print(f"{name:<22}{tv:>14.4f}{tl:>10.3f}{tl / tv:>9.0f}x{diff:>11.1e}")
        results.append(
            {"task": name, "steps": T, "vectorised_s": tv, "loop_s": tl,
             "speedup": tl / tv, "max_difference": diff}
        )
    print(
        f"recorder: 300 SGD steps of a 3-layer MLP (batch 64, 1 thread): {plain:.3f} s plain, "
        f"{recorded:.3f} s recorded, overhead {100 * (recorded / plain - 1):.1f}%"
    )
    results.append(
        {"task": "recorder overhead (300 SGD steps, MLP 256-256-256-10, 1 thread)",
         "plain_s": plain, "recorded_s": recorded, "ratio": recorded / plain}
    )
    out = Path(__file__).parent / "results" / "theory.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "note": "2-core shared CPU; both sides at full T"}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
