"""Learning-rate-free methods at their published defaults against Adam with a tuned schedule.

What it measures. On each task, the final training objective (the full training set's loss,
L2 penalty included, after the last step) and the held-out metric of six methods run at their
published defaults, with no tuning at all, against Adam with a linear-decay schedule and Adam
with a cosine schedule whose peak learning rates are tuned on a grid. The gap is reported as
``final loss / tuned best - 1`` (the tuned best: linear or cosine, whichever has the lower mean
final loss), next to the compute each side used.

Protocol.

- Methods (``lrlab.optim``), each run once per seed:
  Prodigy (lr 1, a multiplier on the estimated step), D-Adapt Adam (lr 1, likewise),
  Schedule-Free AdamW (lr 0.0025, its documented default, with the built-in linear warm-up over
  5 % of the steps), Mechanic over ``torch.optim.Adam(lr=1)`` (the learned scale multiplies the
  base's lr), MoMo-Adam (lr 0.01: the cap on its adaptive step), MADGRAD (lr 0.01). All other
  options at their defaults, constant lr. Prodigy, D-Adapt Adam and Mechanic are also run
  under a cosine decay of their lr multiplier (rows "x cosine"): their papers run them under the
  baseline's decaying schedule, and without one they would be compared on unequal terms.
- Baselines (``lrlab.train.run_batched``, optimizer ``adam``, torch's defaults): peak lr on the
  grid 2^k, k from the task's initial range; while the lowest mean final loss is at an end of
  the grid, the grid is extended by one point past that end (at most ``MAX_EXTEND`` per end).
  The best lr of a schedule is the one with the lowest mean final loss over the seeds (a lr at
  which any seed diverged is not eligible).
- Same start and same data: every method's run for seed s starts from the task's
  initialisation for s and draws the minibatches of ``lrlab.train.engine.MemberOrder(n, s)``, as
  the batched trainer's member with seed s does, and is scored by the same final objective
  (Schedule-Free at its averaged point x, after ``optimizer.eval()``). The single-model loop
  (``train_single``) calls the task model's own ``loss_and_grad`` with one member, so the
  objective and its gradient are the trainer's. ``parity`` checks this: in float64, the loop
  with ``torch.optim.Adam`` + ``lrlab.torchx.ScheduleLR`` against ``run_batched``'s ``adam``,
  and the loop with ``Prodigy`` / ``AdamWScheduleFree`` against the trainer's ``prodigy`` /
  ``schedulefree_adamw``; in float32, Adam again at full length.
- Training runs in float32 with one torch thread. Paired statistics use the same seeds on both
  sides (mean difference and a paired t-test against the tuned best's runs).
- Compute: an LR-free method needs one run per seed; a tuned schedule needs one run per grid
  point and seed (runs and member-steps = runs x steps, as this script ran them).

Usage (from the repository root)::

    python bench/reproduce/lr_free.py            # full size, writes docs/results/lr_free*.{md,png}
    python bench/reproduce/lr_free.py --smoke --out /tmp/x    # tiny sizes, not evidence
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_map

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, Report, mean_sd, paired, parser, pyplot, table  # noqa: E402

from lrlab.optim import (  # noqa: E402
    MADGRAD,
    AdamWScheduleFree,
    DAdaptAdam,
    Mechanic,
    MomoAdam,
    Prodigy,
)
from lrlab.schedules import Schedule  # noqa: E402
from lrlab.tasks import Task, get_task  # noqa: E402
from lrlab.torchx import ScheduleLR  # noqa: E402
from lrlab.train import RunConfig, run_batched  # noqa: E402
from lrlab.train.engine import MemberOrder, evaluate  # noqa: E402
from lrlab.train.methods.schedulefree import warmup_steps  # noqa: E402
from lrlab.tune.settings import build_schedule  # noqa: E402

NAME = "lr_free"
CPU = torch.device("cpu")
DTYPE = torch.float32
MAX_EXTEND = 4  # grid points added past an end of the initial grid, at most, per end
SF_LR, SF_WARMUP = 0.0025, 0.05  # Schedule-Free AdamW: documented default lr, warm-up fraction
SCHEDULES = ("linear", "cosine")
SF_TUNED = "schedulefree"
#: The tuned arms: name -> (batched optimizer, schedule, options). The two Adam schedules make
#: the tuned best; Schedule-Free AdamW with its lr tuned is one extra, labelled row.
ARMS = {"linear": ("adam", "linear", {}), "cosine": ("adam", "cosine", {}),
        SF_TUNED: ("schedulefree_adamw", "constant", {"warmup_fraction": SF_WARMUP})}


# ----------------------------------------------------------------------------- tasks


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task of the comparison: how to build it, its seeds, steps and initial Adam grid."""

    label: str
    name: str  # get_task name or import spec
    options: dict[str, Any]
    seeds: int
    steps: int | None  # None: the task's default
    grid: tuple[int, int]  # initial Adam peak lrs 2^lo .. 2^hi
    parity_steps: int | None = None  # float64 parity length (None: full)
    max_members: int | None = None
    note: str = ""

    def build(self) -> Task:
        task = get_task(self.name, **self.options)
        return task if self.steps is None else task.replace(default_steps=self.steps)


CNN = f"{ROOT / 'examples' / 'digits_cnn.py'}:build_task"

FULL = [
    TaskSpec("digits_logreg (l2=0.01)", "digits_logreg", {"l2": 0.01}, 5, None, (-8, 1)),
    TaskSpec("breast_cancer_logreg (l2=0.01)", "breast_cancer_logreg", {"l2": 0.01}, 5, None,
             (-8, 1)),
    TaskSpec("digits_mlp", "digits_mlp", {}, 5, None, (-11, -2)),
    TaskSpec("stdlib_charlm", "stdlib_charlm", {}, 3, None, (-9, -5), parity_steps=20,
             max_members=16),
    TaskSpec("digits_cnn (examples/digits_cnn.py)", CNN, {}, 3, 150, (-8, -3), parity_steps=30,
             note="fewer steps than the example's default 300, and 3 seeds, for CPU time. "
             "Schedule-Free is evaluated at its average x with the BatchNorm running statistics "
             "gathered at y during training, as the batched trainer does; its authors recommend "
             "recomputing them at x, which is not done here"),
]

SMOKE = [
    TaskSpec("breast_cancer_logreg (l2=0.01)", "breast_cancer_logreg", {"l2": 0.01}, 2, 20,
             (-4, -2)),
    TaskSpec("iris_logreg (l2=0.01)", "iris_logreg", {"l2": 0.01}, 2, 20, (-4, -2)),
]


# ----------------------------------------------------------------------------- methods


@dataclasses.dataclass(frozen=True)
class Method:
    """An LR-free method: ``make(params, steps)`` builds its optimizer; ``cosine``: its lr is
    multiplied by a cosine decay over the run (``ScheduleLR``)."""

    name: str
    setting: str
    make: Callable[[list[torch.Tensor], int], torch.optim.Optimizer]
    cosine: bool = False


def _prodigy(p, T):
    return Prodigy(p, lr=1.0)


def _dadapt(p, T):
    return DAdaptAdam(p, lr=1.0)


def _mechanic(p, T):
    return Mechanic(torch.optim.Adam(p, lr=1.0))


METHODS = [
    Method("Prodigy", "lr 1 (multiplier on d), constant", _prodigy),
    Method("D-Adapt Adam", "lr 1 (multiplier on d), constant", _dadapt),
    Method("Schedule-Free AdamW", f"lr {SF_LR:g}, warm-up {SF_WARMUP:.0%} of the steps",
           lambda p, T: AdamWScheduleFree(p, lr=SF_LR,
                                          warmup_steps=warmup_steps(SF_WARMUP, T))),
    Method("Mechanic(Adam)", "base Adam lr 1, constant", _mechanic),
    Method("MoMo-Adam", "lr 0.01 (cap), constant", lambda p, T: MomoAdam(p, lr=1e-2)),
    Method("MADGRAD", "lr 0.01, constant", lambda p, T: MADGRAD(p, lr=1e-2)),
    Method("Prodigy × cosine", "lr 1 × cosine decay", _prodigy, cosine=True),
    Method("D-Adapt Adam × cosine", "lr 1 × cosine decay", _dadapt, cosine=True),
    Method("Mechanic(Adam) × cosine", "base Adam lr 1 × cosine decay", _mechanic, cosine=True),
]


SF_ROW = "Schedule-Free AdamW, lr tuned"
#: The rows compared with the tuned best: the LR-free methods, then the tuned Schedule-Free.
ROWS = [m.name for m in METHODS] + [SF_ROW]


# ----------------------------------------------------------------------------- training


@dataclasses.dataclass
class Outcome:
    """One run's final objective and test metric (NaN if diverged)."""

    final: float
    metric: float
    diverged_at: int | None = None


def _to(data: Any, dtype: torch.dtype) -> Any:
    return tree_map(lambda t: t.to(device=CPU, dtype=dtype if t.is_floating_point() else t.dtype),
                    data)


def _rows(data: Any, rows: torch.Tensor) -> Any:
    """data[rows] for rows [1, B], as [1, B, ...] (the trainer's minibatch layout)."""
    return tree_map(lambda a: a.index_select(0, rows.reshape(-1)).view(*rows.shape,
                                                                         *a.shape[1:]), data)


def train_single(
    task: Task,
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    seed: int,
    steps: int,
    schedule: Schedule | None = None,
    dtype: torch.dtype = DTYPE,
    jitter: torch.Generator | None = None,
) -> Outcome:
    """One run of a ``torch.optim.Optimizer`` on the task's own model with one member.

    The parameters are the trainer's member ``seed`` (``task.model.init([seed])``, shape
    ``[1, ...]``), the minibatch of step t is the trainer's (``MemberOrder(n, seed)``), the
    gradient is ``task.model.loss_and_grad`` (the minibatch objective incl. any penalty), then
    ``optimizer.step()`` (MoMo: ``step(loss=...)``) and, with a ``schedule``, ``ScheduleLR``
    sets lr = peak * s(t) for step t. A non-finite loss or gradient ends the run as diverged.
    ``jitter``: multiply every gradient entry, at every step, by 1 + e u, u ~ U(-1, 1) drawn
    from this generator and e the dtype's machine epsilon: rounding-sized noise (the control of
    ``parity``).
    The final objective is the trainer's: the full training set's mean loss + penalty, at the
    optimizer's evaluation point (Schedule-Free: after ``eval()``).
    """
    model, B = task.model, task.default_batch_size
    Xtr, ytr = _to(task.X_train, dtype), _to(task.y_train, dtype)
    members = model.init([seed], dtype=dtype, device=CPU)
    opt = make(members.params)
    sched = None if schedule is None else ScheduleLR(opt, schedule)
    takes_loss = isinstance(opt, MomoAdam)
    order = MemberOrder(task.n_train, seed)
    if hasattr(opt, "train"):
        opt.train()
    with torch.no_grad():
        for t in range(steps):
            rows = torch.from_numpy(order.take(B)).view(1, B)
            loss, grads, buffers = model.loss_and_grad(members, _rows(Xtr, rows),
                                                       _rows(ytr, rows))
            total = sum(g.sum() for g in grads)
            if not (bool(torch.isfinite(loss).all()) and bool(torch.isfinite(total))):
                return Outcome(math.nan, math.nan, t)
            if jitter is not None:
                eps = torch.finfo(dtype).eps
                grads = [g * (1 + eps * (2 * torch.rand(g.shape, generator=jitter, dtype=dtype)
                                         - 1)) for g in grads]
            for p, g in zip(members.params, grads, strict=True):
                p.grad = g
            members.buffers = buffers
            if takes_loss:
                opt.step(loss=loss[0])
            else:
                opt.step()
            if sched is not None:
                sched.step()
        if hasattr(opt, "eval"):
            opt.eval()
        final = evaluate(task, members, Xtr, ytr, "loss_sum") + model.penalty(members.params)
        metric = evaluate(task, members, _to(task.X_test, dtype), _to(task.y_test, dtype),
                          "metric_sum")
    f = float(final[0])
    if not math.isfinite(f):
        return Outcome(math.nan, math.nan, steps)
    return Outcome(f, float(metric[0]))


PARITY = ("adam", "prodigy", "schedulefree")


def parity(task: Task, steps: int, lr: float, seed: int = 1, dtype: torch.dtype = torch.float64,
           methods: Sequence[str] = PARITY) -> dict[str, tuple[float, float]]:
    """Single-model loop against ``run_batched``, per method: (|loop / batched - 1|,
    |loop with rounding-sized noise / loop - 1|) of the final objective, in ``dtype``.

    Methods: ``adam`` (``torch.optim.Adam`` + ``ScheduleLR(linear)`` at peak ``lr`` against the
    trainer's ``adam``), ``prodigy`` (``Prodigy(lr=1)``, constant, against ``prodigy``),
    ``schedulefree`` (``AdamWScheduleFree`` at its default lr and warm-up against
    ``schedulefree_adamw``). The second number is the control: the loop against itself with
    every gradient entry moved by a random fraction of the dtype's epsilon at every step
    (``train_single(jitter=...)``), how far rounding alone can move the end of the run; a first
    number at rounding level or of the control's size means the same computation."""
    const, lin = build_schedule("constant", steps), build_schedule("linear", steps)
    cases = {
        "adam": (RunConfig(lr, lin, seed=seed, steps=steps, optimizer="adam"),
                 lambda p: torch.optim.Adam(p, lr=lr), lin),
        "prodigy": (RunConfig(1.0, const, seed=seed, steps=steps, optimizer="prodigy"),
                    lambda p: _prodigy(p, steps), None),
        "schedulefree": (RunConfig(SF_LR, const, seed=seed, steps=steps,
                                   optimizer="schedulefree_adamw",
                                   options={"warmup_fraction": SF_WARMUP}),
                         lambda p: AdamWScheduleFree(
                             p, lr=SF_LR, warmup_steps=warmup_steps(SF_WARMUP, steps)), None),
    }
    batched = run_batched(task, [cases[m][0] for m in methods], dtype=dtype, max_members=1)
    out = {}
    for m, b in zip(methods, batched, strict=True):
        _, make, sched = cases[m]
        loop = train_single(task, make, seed, steps, sched, dtype).final
        noisy = train_single(task, make, seed, steps, sched, dtype,
                             jitter=torch.Generator().manual_seed(seed)).final
        out[m] = (abs(loop / b.final_loss - 1.0), abs(noisy / loop - 1.0))
    return out


# ----------------------------------------------------------------------------- tuning


@dataclasses.dataclass
class Tuned:
    """A schedule's grid: per exponent k (lr 2^k) the seeds' outcomes, the best k."""

    schedule: str
    runs: dict[int, list[Outcome]]
    best: int
    bracketed: bool

    def mean(self, k: int) -> float:
        v = [o.final for o in self.runs[k]]
        return float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.inf

    @property
    def lr(self) -> float:
        return 2.0 ** self.best

    @property
    def outcomes(self) -> list[Outcome]:
        return self.runs[self.best]


def tune(task: Task, spec: TaskSpec, seeds: Sequence[int], steps: int,
         max_extend: int) -> dict[str, Tuned]:
    """Each arm of ``ARMS`` on the grid 2^k (see the module docstring), every arm's new points
    in one batched run per round."""
    grids = {a: list(range(spec.grid[0], spec.grid[1] + 1)) for a in ARMS}
    runs: dict[str, dict[int, list[Outcome]]] = {a: {} for a in ARMS}
    added = {a: {"lo": 0, "hi": 0} for a in ARMS}
    while True:
        todo = [(a, k) for a in ARMS for k in grids[a] if k not in runs[a]]
        if not todo:
            break
        configs = [RunConfig(2.0 ** k, build_schedule(ARMS[a][1], steps), seed=seed,
                             steps=steps, optimizer=ARMS[a][0], options=ARMS[a][2])
                   for a, k in todo for seed in seeds]
        res = run_batched(task, configs, dtype=DTYPE, max_members=spec.max_members)
        for i, (a, k) in enumerate(todo):
            part = res[i * len(seeds):(i + 1) * len(seeds)]
            runs[a][k] = [Outcome(r.final_loss, math.nan if r.test_metric is None
                                  else r.test_metric) for r in part]
        for a in ARMS:
            best = _best(runs[a])
            if best == min(grids[a]) and added[a]["lo"] < max_extend:
                grids[a].insert(0, best - 1)
                added[a]["lo"] += 1
            elif best == max(grids[a]) and added[a]["hi"] < max_extend:
                grids[a].append(best + 1)
                added[a]["hi"] += 1
    out = {}
    for a in ARMS:
        best = _best(runs[a])
        out[a] = Tuned(a, dict(sorted(runs[a].items())), best,
                       min(runs[a]) < best < max(runs[a]))
    return out


def _best(runs: dict[int, list[Outcome]]) -> int:
    def key(k: int) -> float:
        v = [o.final for o in runs[k]]
        return float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.inf

    return min(runs, key=key)


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass
class ParityRow:
    label: str
    lr: float
    steps64: int
    p64: dict[str, tuple[float, float]]
    steps32: int
    p32: tuple[float, float]


@dataclasses.dataclass
class TaskResult:
    spec: TaskSpec
    task: Task
    steps: int
    seeds: list[int]
    tuned: dict[str, Tuned]
    methods: dict[str, list[Outcome]]
    seconds: float

    @property
    def short(self) -> str:
        return self.spec.label.split(" ")[0]

    @property
    def best(self) -> Tuned:
        return min((self.tuned[s] for s in SCHEDULES), key=lambda t: t.mean(t.best))

    @property
    def best_mean(self) -> float:
        return self.best.mean(self.best.best)

    @property
    def undefined(self) -> bool:
        """The tuned best's mean final loss is 0 (float32 underflow): no ratio to it."""
        return not self.best_mean > 0

    def outcomes(self, name: str) -> list[Outcome]:
        """A method's runs, or (``SF_ROW``) the tuned Schedule-Free AdamW's best lr's."""
        return self.tuned[SF_TUNED].outcomes if name == SF_ROW else self.methods[name]

    def mean(self, name: str) -> float:
        v = [o.final for o in self.outcomes(name)]
        return float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.nan

    def rel(self, name: str) -> float:
        """Mean final loss / tuned best - 1 (NaN: diverged or undefined)."""
        return math.nan if self.undefined else self.mean(name) / self.best_mean - 1.0

    def pct(self, name: str) -> str:
        if self.undefined:
            return "n/a"
        return _pct(self.rel(name))


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "diverged"
    return f"{100 * x:+.2f} %" if abs(x) < 10 else f"{100 * x:+,.0f} %"


def _sci(x: float) -> str:
    return f"{x:,.0f}"


def _verdict(r: TaskResult, name: str) -> str:
    x = r.rel(name)
    if r.undefined:
        return "no ratio (tuned best 0)"
    if not math.isfinite(x):
        return "diverged"
    if x < 0:
        return "below the tuned best"
    if x <= 0.01:
        return "within 1 %"
    if x <= 0.05:
        return "within 5 %"
    return "beyond 5 %"


VERDICTS = ("below the tuned best", "within 1 %", "within 5 %", "beyond 5 %", "diverged",
            "no ratio (tuned best 0)")


# ----------------------------------------------------------------------------- formatting


def parity_section(rows: list[ParityRow]) -> str:
    def cell(d: tuple[float, float]) -> str:
        return f"{d[0]:.1e} ({d[1]:.1e})"

    body = [[r.label, f"{r.lr:.3g}", r.steps64, *[cell(r.p64[m]) for m in PARITY], r.steps32,
             cell(r.p32)] for r in rows]
    return (
        "Relative difference |loop / `run_batched` − 1| of the final objective, seed 1, and in "
        "brackets the control: |loop with rounding-sized noise / loop − 1|, the loop against "
        "itself with every gradient entry multiplied by 1 + εu at every step (u uniform in "
        "[−1, 1], ε the dtype's machine epsilon), how far rounding alone can move the end of "
        "the run. A difference at rounding level or no larger than the control's order means the "
        "two compute the same thing. float64: "
        "the loop with `torch.optim.Adam` + `ScheduleLR(linear)` against the trainer's `adam`, "
        "`Prodigy(lr=1)` against `prodigy`, `AdamWScheduleFree` against `schedulefree_adamw` "
        "(same lr and warm-up); the float64 checks on the two deeper models are shorter (CPU "
        "time; and on stdlib_charlm, Prodigy at lr 1 makes the end of a run sensitive to "
        "rounding from about step 20 on, so a longer check would measure rounding, not the "
        "computation). The float64 columns are the evidence of equality.\n\n"
        "The float32 column (Adam, the comparison's full length) is not a test of equality: the "
        "two sides round differently at every step (autograd against the hand-written "
        "logistic-regression gradient, a different order of the operations in the Adam update), "
        "and it shows how far that alone moves the end of a float32 run, to set against the "
        "seed spreads below. Its control perturbs only the gradients, so it can be smaller."
        "\n\n"
        + table(["task", "Adam peak lr", "steps (float64)", "Adam", "Prodigy", "Schedule-Free",
                 "steps (float32)", "Adam, float32"], body))


def task_section(r: TaskResult) -> str:
    t, best, T, S = r.task, r.best, r.steps, len(r.seeds)
    metric = t.metric_name or "metric"
    metric = metric if metric.startswith("test") else f"test {metric}"
    lines = [f"### {r.spec.label}", "",
             f"{t.description}. {T} steps of batch {t.default_batch_size}, {S} seeds"
             + (f"; {r.spec.note}" if r.spec.note else "") + "."]
    if t.f_star is not None:
        lines[-1] += (f" The objective's minimum is f* = {t.f_star:.5f}; the tuned best ends "
                      f"{r.best_mean - t.f_star:.2e} above it.")
    grid_text = []
    for s in ARMS:
        tu = r.tuned[s]
        ks = sorted(tu.runs)
        zeros = [k for k in ks if tu.mean(k) == 0.0]
        grid_text.append(
            (f"Adam + {s}" if s in SCHEDULES else SF_ROW)
            + f": grid 2^{ks[0]} … 2^{ks[-1]} ({len(ks)} points), best peak lr "
            f"2^{tu.best} = {tu.lr:.3g}"
            + ("" if tu.bracketed else " (**at the edge of the grid**)")
            + (f" (mean final loss exactly 0 at {len(zeros)} grid points: the lowest of them)"
               if len(zeros) > 1 else ""))
    lines += ["", "; ".join(grid_text) + f". Tuned best: Adam + {best.schedule}."]
    if r.undefined:
        lines += ["", "**The tuned best's final training loss is 0 in float32** (every training "
                      "example fitted to float32 precision), so \"vs tuned best\" has no value "
                      "here; read the absolute final losses and the test metric."]
    header = ["method", "setting", "final loss (mean ± sd)", "vs tuned best", "paired Δ (p)",
              metric, "runs", "member-steps"]
    rows = []
    b_final = [o.final for o in best.outcomes]
    for s in SCHEDULES:
        tu = r.tuned[s]
        f = [o.final for o in tu.outcomes]
        n_runs = len(tu.runs) * S
        d, p = paired(f, b_final)
        rel = "n/a" if r.undefined else _pct(tu.mean(tu.best) / r.best_mean - 1.0)
        rows.append([f"Adam + {s} (tuned)", f"peak lr {tu.lr:.3g}", _fmt(f), rel,
                     "–" if tu is best else _delta(d, p),
                     mean_sd([o.metric for o in tu.outcomes]), n_runs, _sci(n_runs * T)])
    for m in METHODS:
        out = r.methods[m.name]
        f = [o.final for o in out]
        d, p = paired(f, b_final)
        rows.append([m.name, m.setting, _fmt(f), r.pct(m.name), _delta(d, p),
                     mean_sd([o.metric for o in out]), S, _sci(S * T)])
    sf = r.tuned[SF_TUNED]
    f = [o.final for o in sf.outcomes]
    d, p = paired(f, b_final)
    rows.append([f"*{SF_ROW}*", f"*lr {sf.lr:.3g}, warm-up {SF_WARMUP:.0%}*", _fmt(f),
                 r.pct(SF_ROW), _delta(d, p), mean_sd([o.metric for o in sf.outcomes]),
                 len(sf.runs) * S, _sci(len(sf.runs) * S * T)])
    lines += ["", table(header, rows)]
    div = [f"{m.name} (seed{'s' if len(d) > 1 else ''} {', '.join(map(str, d))})"
           for m in METHODS
           if (d := [s for s, o in zip(r.seeds, r.outcomes(m.name), strict=True)
                     if o.diverged_at is not None])]
    if div:
        lines += ["", "Diverged (non-finite loss or gradient): " + "; ".join(div) + "."]
    return "\n".join(lines)


def _delta(d: float, p: float) -> str:
    if not math.isfinite(d):
        return "–"
    return f"{d:+.2e} ({p:.2g})" if math.isfinite(p) else f"{d:+.2e} (–)"


def _fmt(values: list[float]) -> str:
    """mean ± sd with 4 decimals, or 3 significant digits for small losses."""
    v = np.asarray(values, dtype=np.float64)
    if np.isfinite(v).all() and 0 < abs(v.mean()) < 0.01:
        return f"{v.mean():.3g} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2g}"
    return mean_sd(values)


def summary(results: list[TaskResult]) -> str:
    header = ["method", *[r.short for r in results]]
    rows = [[m, *[r.pct(m) for r in results]] for m in ROWS[:-1]]
    rows.append([f"*{SF_ROW} (not LR-free)*", *[r.pct(SF_ROW) for r in results]])
    rows.append(["*tuned best: schedule, peak lr*",
                 *[f"{r.best.schedule}, {r.best.lr:.3g}" for r in results]])
    rows.append(["*tuned best: final loss*", *[f"{r.best_mean:.4g}" for r in results]])
    return table(header, rows)


def verdicts(results: list[TaskResult]) -> str:
    lines = []
    for m in ROWS:
        groups: dict[str, list[str]] = {}
        for r in results:
            v = _verdict(r, m)
            text = (f"{r.short} (final loss {r.mean(m):.3g})" if r.undefined
                    else f"{r.short} {r.pct(m)}")
            groups.setdefault(v, []).append(text)
        parts = [f"{v}: {', '.join(groups[v])}" for v in VERDICTS if v in groups]
        label = f"*{m}* (its lr tuned: not LR-free)" if m == SF_ROW else f"**{m}**"
        lines.append(f"- {label} — " + "; ".join(parts) + ".")
    scored = [r for r in results if not r.undefined]
    skipped = [r.short for r in results if r.undefined]
    for tol in (0.01, 0.05):
        every = [m.name for m in METHODS
                 if all(math.isfinite(r.rel(m.name)) and r.rel(m.name) <= tol for r in scored)]
        but = f" (all but {', '.join(skipped)})" if skipped else ""
        lines.append(f"- LR-free rows within {tol:.0%} of the tuned best (or below it) on all "
                     f"{len(scored)} tasks with a ratio{but}: "
                     + (", ".join(every) if every else "none") + ".")
    return "\n".join(lines)


def findings(results: list[TaskResult]) -> str:
    """Two comparisons the rows allow: constant lr against × cosine, and Schedule-Free AdamW at
    its default lr against its tuned lr."""
    lines = []
    parts = []
    for base in ("Prodigy", "D-Adapt Adam", "Mechanic(Adam)"):
        lower = [r.short for r in results if r.mean(f"{base} × cosine") < r.mean(base)]
        parts.append(f"{base} on {len(lower)} of {len(results)}"
                     + (f" ({', '.join(lower)})" if 0 < len(lower) < len(results) else ""))
    lines.append("- Decaying the lr multiplier by a cosine lowered the mean final loss of "
                 + "; ".join(parts) + " tasks.")
    sf = "; ".join(
        f"{r.short}: lr {r.tuned[SF_TUNED].lr:.3g} ({r.tuned[SF_TUNED].lr / SF_LR:g}× the "
        "default), " + (f"{r.pct('Schedule-Free AdamW')} → {r.pct(SF_ROW)}" if not r.undefined
                        else f"final loss {r.mean('Schedule-Free AdamW'):.3g} → "
                             f"{r.mean(SF_ROW):.3g}")
        for r in results)
    lines.append(f"- Schedule-Free AdamW, default lr {SF_LR:g} → its lr tuned on the grid "
                 f"(vs tuned best): {sf}.")
    return "\n".join(lines)


def compute_section(results: list[TaskResult]) -> str:
    header = ["task", "steps", "seeds", "LR-free method: runs (member-steps)",
              "Adam + linear grid: runs (member-steps)", "Adam + cosine grid: runs (member-steps)",
              "both grids / one LR-free method"]
    rows = []
    for r in results:
        S, T = len(r.seeds), r.steps
        g = {s: len(r.tuned[s].runs) * S for s in SCHEDULES}
        rows.append([r.short, T, S, f"{S} ({_sci(S * T)})",
                     f"{g['linear']} ({_sci(g['linear'] * T)})",
                     f"{g['cosine']} ({_sci(g['cosine'] * T)})",
                     f"{(g['linear'] + g['cosine']) / S:.0f}×"])
    return table(header, rows)


def figures(rep: Report, results: list[TaskResult]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    n = len(METHODS)
    cmap = plt.get_cmap("tab10")
    width = 0.8
    for j, m in enumerate(METHODS):
        xs, ys, seed_x, seed_y = [], [], [], []
        for i, r in enumerate(results):
            x = i - width / 2 + width * (j + 0.5) / n
            if math.isfinite(r.rel(m.name)):
                xs.append(x)
                ys.append(100 * r.rel(m.name))
            for o in r.outcomes(m.name):
                if math.isfinite(o.final) and not r.undefined:
                    seed_x.append(x)
                    seed_y.append(100 * (o.final / r.best_mean - 1.0))
        color = cmap([0, 1, 2, 3, 4, 5, 0, 1, 3][j])
        ax.scatter(seed_x, seed_y, s=8, color=color, alpha=0.35, linewidths=0)
        ax.scatter(xs, ys, s=42, marker="D" if m.cosine else "o",
                   facecolors="none" if m.cosine else color, edgecolors=color, label=m.name,
                   zorder=3)
    for i, r in enumerate(results):
        if r.undefined:
            ax.text(i, 0.5, "tuned best = 0:\nno ratio", ha="center", va="bottom", fontsize=8,
                    transform=ax.get_xaxis_transform())
    for y, style in ((1, ":"), (5, "--"), (0, "-")):
        ax.axhline(y, color="0.4", lw=0.8, ls=style)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([r.short for r in results])
    ax.set_ylabel("final loss / tuned best − 1  (%)")
    ax.set_title("LR-free methods at their defaults vs Adam with a tuned schedule "
                 "(large: mean over seeds; small: each seed)", fontsize=10)
    for i, r in enumerate(results):
        if math.isfinite(r.rel(SF_ROW)):
            ax.scatter([i + width / 2 + 0.06], [100 * r.rel(SF_ROW)], marker="x", s=40,
                       color="k", zorder=3, label=f"{SF_ROW} (not LR-free)" if i == 0 else None)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    rep.figure(fig, "relative", "Relative final loss of each method against the tuned best, "
                                "per task (symlog axis, linear within ±1 %; dotted 1 %, dashed "
                                "5 %; open diamonds: × cosine)")

    fig, axes = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.6))
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes, results, strict=True):
        floor = min([v for v in (r.tuned[s].mean(k) for s in ARMS for k in r.tuned[s].runs)
                     if 0 < v < math.inf] + [r.mean(m.name) for m in METHODS[:6]
                                             if r.mean(m.name) > 0], default=1e-6)
        for s, style in zip(SCHEDULES, ("-o", "-s"), strict=True):
            tu = r.tuned[s]
            ks = sorted(tu.runs)
            ax.plot([2.0 ** k for k in ks], [max(tu.mean(k), floor / 2) for k in ks], style,
                    ms=3, color="k" if s == "linear" else "0.55", label=f"Adam + {s}")
        sf = r.tuned[SF_TUNED]
        ks = sorted(sf.runs)
        ax.plot([2.0 ** k for k in ks], [max(sf.mean(k), floor / 2) for k in ks], ":x", ms=4,
                color=cmap(2), label=f"{SF_ROW.split(',')[0]} (lr on the x axis)")
        for j, m in enumerate(METHODS[:6]):
            y = r.mean(m.name)
            if math.isfinite(y):
                ax.axhline(max(y, floor / 2), color=cmap(j), lw=0.9, ls="--", label=m.name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("peak lr (Adam) / lr (Schedule-Free)")
        ax.set_title(r.short + (" (0 drawn at the bottom)" if r.undefined else ""), fontsize=9)
    axes[0].set_ylabel("mean final training loss")
    fig.tight_layout()
    fig.legend(*axes[-1].get_legend_handles_labels(), fontsize=7, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=5)
    rep.figure(fig, "grids", "The tuning grids (mean final loss over seeds against the peak lr "
                             "of Adam, and against the lr of Schedule-Free AdamW; diverged points "
                             "are missing) with each constant-lr LR-free method's mean final "
                             "loss as a dashed line")


def papers_section(results: list[TaskResult]) -> str:
    def worst(names: Sequence[str]) -> str:
        parts = []
        for r in results:
            if r.undefined:
                continue
            vals = [(r.rel(n), n) for n in names]
            parts.append(f"{r.short} " + ", ".join(f"{_pct(v)}" for v, _ in vals))
        return "; ".join(parts)

    claims = [
        ("Prodigy (arXiv:2306.06101)", ("Prodigy", "Prodigy × cosine"),
         "reports test accuracy and loss close to Adam with a hand-tuned learning rate, with lr 1 "
         "and the baseline's schedule"),
        ("D-Adaptation (arXiv:2301.07733)", ("D-Adapt Adam", "D-Adapt Adam × cosine"),
         "reports that D-Adapted Adam matches hand-tuned Adam, run under the baseline's "
         "schedule"),
        ("Schedule-Free (arXiv:2405.15682)", ("Schedule-Free AdamW", SF_ROW),
         "reports matching or beating cosine and linear-decay schedules without a decay (its "
         "lr set per problem in the paper's experiments)"),
        ("Mechanic (arXiv:2306.00144)", ("Mechanic(Adam)", "Mechanic(Adam) × cosine"),
         "reports matching or beating the base optimizer with a tuned learning-rate scale"),
        ("MoMo (arXiv:2305.07583)", ("MoMo-Adam",),
         "reports MoMo-Adam less sensitive to its lr than Adam, reaching tuned Adam's results "
         "over a wider range of lr"),
        ("MADGRAD (arXiv:2101.11075)", ("MADGRAD",),
         "reports matching or beating SGD and Adam, with its own lr tuned (here: its default, "
         "untuned)"),
    ]
    lines = []
    scored = [r for r in results if not r.undefined]
    for paper, names, claim in claims:
        free = [n for n in names if n != SF_ROW]
        best = {r.short: min((r.rel(n) for n in free), key=lambda x: (math.isnan(x), x))
                for r in scored}
        far = [f"{k} {_pct(v)}" for k, v in best.items() if not v <= 0.05]
        tally = (f" Its best LR-free row is within 5 % of the tuned best (or below it) on "
                 f"{len(scored) - len(far)} of {len(scored)} tasks with a ratio"
                 + (f"; beyond on {', '.join(far)}." if far else "."))
        lines.append(f"- **{paper}** {claim}. Here ({' / '.join(names)}, vs tuned best): "
                     f"{worst(names)}.{tally}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def run_task(spec: TaskSpec, max_extend: int) -> TaskResult:
    t0 = time.perf_counter()
    task = spec.build()
    T = task.default_steps
    seeds = list(range(spec.seeds))
    tuned = tune(task, spec, seeds, T, max_extend)
    cos = build_schedule("cosine", T)
    methods = {}
    for m in METHODS:
        methods[m.name] = [train_single(task, lambda p, m=m: m.make(p, T), s, T,
                                        cos if m.cosine else None) for s in seeds]
        print(f"  {spec.label}: {m.name} {[round(o.final, 5) for o in methods[m.name]]}",
              flush=True)
    return TaskResult(spec, task, T, seeds, tuned, methods, time.perf_counter() - t0)


def run_parity(spec: TaskSpec) -> ParityRow:
    task = spec.build()
    T = task.default_steps
    P = min(T, spec.parity_steps or T)
    lr = 2.0 ** round(sum(spec.grid) / 2)
    p64 = parity(task, P, lr)
    p32 = parity(task, T, lr, dtype=torch.float32, methods=("adam",))["adam"]
    return ParityRow(spec.label.split(" ")[0], lr, P, p64, T, p32)


def collect(specs: Sequence[TaskSpec], max_extend: int) -> tuple[list[ParityRow],
                                                                   list[TaskResult]]:
    """Run everything: the parity checks, then per task the tuning grids and the methods."""
    rows = []
    for spec in specs:
        rows.append(run_parity(spec))
        print(f"parity {rows[-1]}", flush=True)
    results = []
    for spec in specs:
        print(f"task {spec.label}", flush=True)
        results.append(run_task(spec, max_extend))
    return rows, results


INTRO = (
    "Six methods that need no learning-rate tuning, or claim not to, run at their published "
    "defaults and are compared with Adam whose peak learning rate is tuned for a linear-decay "
    "and for a cosine schedule. Every number is the **final training objective** (full "
    "training set, L2 penalty included, after the last step; Schedule-Free at its averaged "
    "point) unless it says test. \"vs tuned best\" is mean final loss / mean final loss of "
    "the better tuned schedule − 1; \"paired Δ\" is the mean over seeds of the per-seed "
    "difference to the tuned best's run with the same seed (same initialisation, same "
    "minibatches) and the p-value of a paired t-test.\n\n"
    "- **Methods and settings.** Prodigy and D-Adapt Adam: lr = 1 (a multiplier on the "
    "estimated step; 1 is the published method). Mechanic over `torch.optim.Adam(lr=1)` (the "
    "learned scale multiplies the base's lr). Schedule-Free AdamW: it does need a step size; "
    f"its documented default lr = {SF_LR:g}, with its built-in linear warm-up over "
    f"{SF_WARMUP:.0%} of the steps, no decay. MoMo-Adam: lr = 0.01, the cap on its adaptive "
    "step (its default). MADGRAD: lr = 0.01, its default step size. Every other option at the "
    "class default (no weight decay, no bias correction, no safeguard warm-up). Constant lr; "
    "Prodigy, D-Adapt Adam and Mechanic also run with their lr multiplier decayed by a cosine "
    "over the run (\"× cosine\"), as their papers use them under the baseline's schedule. "
    "None of them is tuned.\n"
    "- **One extra row, not learning-rate-free:** *Schedule-Free AdamW, lr tuned*, its lr "
    "tuned on the same kind of grid as Adam's (batched `schedulefree_adamw`, same warm-up), to "
    "tell the method apart from its default lr. It does not enter the tuned best.\n"
    "- **Baselines.** `run_batched` with `adam` (β = (0.9, 0.999), ε = 1e-8) and "
    "`build_schedule(\"linear\" | \"cosine\", steps)`; peak lr on the grid 2^k, {extend} "
    "best = lowest mean final loss over the seeds (a lr at which a seed diverged is not "
    "eligible).\n"
    "- **Same problem on both sides.** The LR-free methods are `lrlab.optim` optimizers "
    "stepped by a single-model loop that uses the task model's own objective and gradient "
    "with one member, the trainer's initialisation and minibatch order for the seed, and "
    "the trainer's final objective (`train_single` in the script). The parity check below "
    "shows that the loop and the batched trainer compute the same thing. float32, one torch "
    "thread.")


def render(rep: Report, max_extend: int, rows: list[ParityRow],
           results: list[TaskResult]) -> None:
    extend = (f"extended one point at a time (at most {max_extend} per end) while the best "
              "mean is at an end;" if max_extend else "not extended in this smoke run;")
    rep.add(INTRO.replace("{extend}", extend))
    rep.add("## Parity: the single-model loop equals the batched trainer")
    rep.add(parity_section(rows))
    rep.add("## Summary: final loss against the tuned best\n\n"
            "Mean final loss / mean final loss of the better tuned Adam schedule − 1 (negative: "
            "lower than tuned; n/a: the tuned best's loss is 0).\n\n" + summary(results))
    rep.add(verdicts(results))
    rep.add(findings(results))
    figures(rep, results)
    rep.add("## Against the papers\n\n"
            "Each paper reports its method matching tuned baselines on its own benchmarks and "
            "protocols (larger models, longer runs, test metrics). Measured here, on small "
            "CPU tasks, as final training loss against Adam with a tuned schedule. A paper's "
            "claim holds here on a task where its method's best LR-free row ends within 5 % of "
            "the tuned best or below it; the tally says on how many tasks it does:\n\n"
            + papers_section(results))
    rep.add("## Per task")
    for r in results:
        rep.add(task_section(r))
    rep.add("## Compute\n\n"
            "An LR-free method here is one run per seed. A tuned schedule is one run per grid "
            "point and seed; the grids are the ones this script ran (their initial ranges were "
            "chosen around where Adam trains these tasks, so a search without that knowledge "
            "would need more points; a factor-2 grid that brackets its best needs at least 3). "
            "Member-steps = runs × steps.\n\n" + compute_section(results))
    minutes = "; ".join(f"{r.short} {r.seconds / 60:.1f} min" for r in results)
    rep.add(f"Time per task (tuning + LR-free runs, one thread, on a shared machine): "
            f"{minutes}.")


def main(argv: Sequence[str] | None = None) -> Path:
    args = parser(__doc__).parse_args(argv)
    torch.set_num_threads(1)
    specs = SMOKE if args.smoke else FULL
    max_extend = 0 if args.smoke else MAX_EXTEND
    rep = Report(NAME, "Learning-rate-free methods against tuned schedules", args)
    rows, results = collect(specs, max_extend)
    render(rep, max_extend, rows, results)
    seeds = "; ".join(f"{r.short}: {', '.join(map(str, r.seeds))}" for r in results)
    return rep.write(f"{seeds} (seed s: the initialisation and minibatch order of member s, on "
                     "every side)")


if __name__ == "__main__":
    main()
