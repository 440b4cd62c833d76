"""Linear decay against cosine and the other schedules, each at its own tuned peak lr, and the
schedule refined from a linear-decay pilot's gradient norms.

Claim (Defazio et al., "Optimal linear decay learning rate schedules and further refinements",
arXiv:2310.07831): with the peak learning rate tuned for each schedule, linear decay matches or
beats cosine and the other common schedules, and the schedule refined from the gradient norms of
a linear-decay pilot run improves on linear decay further.

Protocol (the full run; ``--smoke`` shrinks every size):

- Tasks: ``iris_logreg``, ``wine_logreg``, ``breast_cancer_logreg``, ``digits_logreg`` (all with
  the task option ``l2=0.01``), ``digits_mlp``, ``stdlib_charlm`` and the example CNN
  ``examples/digits_cnn.py:build_task``; each with its default optimizer (SGD; Adam for
  ``stdlib_charlm``), batch size and steps, except ``stdlib_charlm`` (150 steps instead of 300)
  and fewer seeds and a coarser grid for the two expensive tasks (see ``PLANS``).
- Schedules: ``constant``, ``inverse_sqrt``, ``cosine``, ``linear``, ``poly2`` (the study's
  ``DEFAULT_SCHEDULES``, built by ``build_schedule(spec, steps)``), ``wsd``
  (``WarmupStableDecay``: no warm-up, constant, then a linear cool-down over the last 20 % of the
  steps) and ``refined``.
- Grid: lr = default_lr * g**i for integer i in the plan's range, the same lattice for every
  schedule (g = sqrt(2) on the five cheap tasks, 2 on the two expensive ones). Edge rule: while a
  schedule's best lr (lowest mean final loss over seeds; a diverged seed counts as +inf) is the
  lowest or highest lr it was trained at, that schedule gets more grid points on that side (at
  most ``MAX_ROUNDS`` times).
- Seeds: evaluation seeds 1..n (data order and initialisation); every schedule and lr uses the
  same seeds, so comparisons are paired by seed.
- refined: after the closed-form schedules are tuned, one pilot run with linear decay at linear
  decay's tuned best lr, seed 0 (``lrlab.tune.pilot.PILOT_SEED``, not an evaluation seed),
  through ``lrlab.tune.pilot.derive_refined`` (the code path of ``Study``): ``lrlab.refine.refine``
  of its l2 gradient norms (SGD) or l1 norms (Adam), default tau, horizon = the task's steps. The
  refined schedule is then tuned on the same grid with the same edge rule.
- Reported per task and schedule: best lr, final training loss and test metric (mean ± sd over
  seeds) at that lr. Refined - linear and cosine - linear: mean paired difference of the final
  loss (each at its own best lr, same seeds), relative to linear, paired t-test p-value.
- Every run goes to ``<out>/schedules_runs.csv`` (``grid_cost.py`` reuses the cheap tasks).

Usage: ``python bench/reproduce/schedules.py [--smoke] [--out DIR]`` from the repository root.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _common import ROOT, Report, mean_sd, paired, panels, parser, pyplot, table  # noqa: E402

from lrlab.schedules import Schedule, WarmupStableDecay  # noqa: E402
from lrlab.tasks import Task, get_task  # noqa: E402
from lrlab.train import RunConfig, run_batched  # noqa: E402
from lrlab.tune.analysis import seed_table  # noqa: E402
from lrlab.tune.pilot import (  # noqa: E402
    PILOT_SEED,
    derive_refined,
    describe,
    pilot_norms,
    refined_schedule,
)
from lrlab.tune.settings import DEFAULT_SCHEDULES, REFINED, StudySettings, build_schedule  # noqa: E402,E501

NAME = "schedules"
RUNS_CSV = "schedules_runs.csv"
WSD = "wsd"
WSD_DECAY = 0.2
CLOSED = (*DEFAULT_SCHEDULES, WSD)
SCHEDULES = (*CLOSED, REFINED)
MAX_ROUNDS = 4
SQRT2 = math.sqrt(2.0)
CNN = f"{ROOT / 'examples' / 'digits_cnn.py'}:build_task"
COLUMNS = ("task", "schedule", "i", "factor", "lr", "seed", "steps", "optimizer",
           "final_loss", "test_metric", "diverged")


@dataclass(frozen=True)
class Plan:
    """One task's sweep: lr = default_lr * factor**i for i in [lo, hi], extended by ``ext``
    points per edge-rule round; ``steps`` None means the task's default."""

    task: str
    spec: str
    options: dict = field(default_factory=dict)
    steps: int | None = None
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    factor: float = SQRT2
    lo: int = -12
    hi: int = 12
    ext: int = 4
    note: str = ""


L2 = {"l2": 0.01}
PLANS = (
    Plan("iris_logreg", "iris_logreg", L2),
    Plan("wine_logreg", "wine_logreg", L2),
    Plan("breast_cancer_logreg", "breast_cancer_logreg", L2),
    Plan("digits_logreg", "digits_logreg", L2),
    Plan("digits_mlp", "digits_mlp"),
    Plan("stdlib_charlm", "stdlib_charlm", steps=150, seeds=(1, 2, 3), factor=2.0, lo=0, hi=2,
         ext=1, note="150 steps (task default 300), 3 seeds, grid factor 2"),
    Plan("digits_cnn", CNN, seeds=(1, 2, 3), factor=2.0, lo=-1, hi=3, ext=1,
         note="3 seeds, grid factor 2"),
)
SMOKE_PLANS = (
    Plan("iris_logreg", "iris_logreg", L2, steps=20, seeds=(1, 2), lo=-2, hi=2, ext=1),
    Plan("wine_logreg", "wine_logreg", L2, steps=20, seeds=(1, 2), lo=-2, hi=2, ext=1),
)
#: One colour per schedule in every figure (``grid_cost.py`` uses them too).
COLORS = {name: f"C{k}" for k, name in enumerate(SCHEDULES)}
#: The tasks of the loss-vs-lr figure.
FIGURE_TASKS = ("breast_cancer_logreg", "digits_logreg", "digits_mlp", "stdlib_charlm",
                "digits_cnn")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def task_of(plan: Plan) -> Task:
    return get_task(plan.spec, **plan.options)


def steps_of(plan: Plan, task: Task) -> int:
    return task.default_steps if plan.steps is None else plan.steps


def closed_schedule(name: str, steps: int) -> Schedule:
    """A closed-form schedule of this study with horizon ``steps``."""
    if name == WSD:
        return WarmupStableDecay(steps, warmup=0, decay=max(1, round(WSD_DECAY * steps)))
    return build_schedule(name, steps)


def _train(plan: Plan, task: Task, scheds: dict[str, Schedule],
           todo: dict[str, list[int]]) -> list[dict]:
    """Train every (schedule, grid index, seed) in ``todo`` as one batched call."""
    steps, opt = steps_of(plan, task), task.default_optimizer
    keys, configs = [], []
    for name, idx in todo.items():
        for i in idx:
            lr = task.default_lr * plan.factor**i
            for s in plan.seeds:
                keys.append((name, i, lr, s))
                configs.append(RunConfig(lr, scheds[name], seed=s, steps=steps, optimizer=opt))
    if not configs:
        return []
    t0 = time.perf_counter()
    results = run_batched(task, configs, curve_points=1)
    log(f"  {plan.task}: {len(configs)} runs in {time.perf_counter() - t0:.1f} s")
    return [
        {"task": plan.task, "schedule": name, "i": i, "factor": plan.factor, "lr": lr,
         "seed": s, "steps": steps, "optimizer": opt, "final_loss": r.final_loss,
         "test_metric": math.nan if r.test_metric is None else r.test_metric,
         "diverged": bool(r.diverged)}
        for (name, i, lr, s), r in zip(keys, results, strict=True)
    ]


def mean_by_index(rows: pd.DataFrame, schedule: str) -> pd.Series:
    """Mean final loss over seeds per grid index (+inf where a seed diverged)."""
    sub = rows[rows["schedule"] == schedule]
    v = sub["final_loss"].to_numpy(dtype=np.float64)
    bad = sub["diverged"].to_numpy(dtype=bool) | ~np.isfinite(v)
    loss = pd.Series(np.where(bad, np.inf, v), index=sub.index)
    return loss.groupby(sub["i"]).mean().sort_index()


def best_index(rows: pd.DataFrame, schedule: str) -> tuple[int, bool]:
    """(grid index with the lowest mean final loss, whether it lies on the tried range's edge)."""
    mean = mean_by_index(rows, schedule)
    b = int(mean.idxmin())
    return b, b in (int(mean.index.min()), int(mean.index.max()))


def tune(plan: Plan, task: Task, scheds: dict[str, Schedule]) -> pd.DataFrame:
    """Train ``scheds`` on the plan's grid, growing it where a best lr sits on an edge."""
    todo = {name: list(range(plan.lo, plan.hi + 1)) for name in scheds}
    rows: list[dict] = []
    for _ in range(MAX_ROUNDS + 1):
        rows += _train(plan, task, scheds, todo)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        todo = {}
        for name in scheds:
            b, edge = best_index(frame, name)
            tried = frame.loc[frame["schedule"] == name, "i"]
            if not edge:
                continue
            if b == tried.min():
                todo[name] = list(range(b - plan.ext, b))
            else:
                todo[name] = list(range(b + 1, b + plan.ext + 1))
        if not todo:
            break
    return pd.DataFrame(rows, columns=COLUMNS)


def sweep(plan: Plan) -> tuple[pd.DataFrame, dict]:
    """Every run of one task (closed-form schedules, then refined) and the refined schedule as
    stored by ``derive_refined`` (``{"schedule": ..., "pilot": ...}``), plus ``"norms"``: the
    median pilot gradient norm over the first and over the last tenth of the run."""
    task = task_of(plan)
    steps = steps_of(plan, task)
    log(f"{plan.task}: {task.default_optimizer}, {steps} steps, seeds {list(plan.seeds)}")
    closed = tune(plan, task, {n: closed_schedule(n, steps) for n in CLOSED})
    lin_lr = task.default_lr * plan.factor ** best_index(closed, "linear")[0]
    settings = StudySettings(
        plan.spec, (REFINED,), task_options=dict(plan.options), lrs=(lin_lr,),
        seeds=(PILOT_SEED,), steps=steps, optimizer=task.default_optimizer, pilot_lr=lin_lr,
    )
    stored = derive_refined(settings)
    # the pilot's norms again (the same seeded run), for the page: median of the first and the
    # last tenth of the run
    _, norms = pilot_norms(settings)
    tenth = max(1, len(norms) // 10)
    stored["norms"] = (float(np.nanmedian(norms[:tenth])), float(np.nanmedian(norms[-tenth:])))
    refined = tune(plan, task, {REFINED: refined_schedule(stored)})
    return pd.concat([closed, refined], ignore_index=True), stored


# ---------------------------------------------------------------------------------- analysis


def at_best(rows: pd.DataFrame, schedule: str) -> pd.DataFrame:
    """The runs of ``schedule`` at its best lr, sorted by seed."""
    b, _ = best_index(rows, schedule)
    sub = rows[(rows["schedule"] == schedule) & (rows["i"] == b)]
    return sub.sort_values("seed")


def losses(sub: pd.DataFrame) -> np.ndarray:
    v = sub["final_loss"].to_numpy(dtype=np.float64)
    return np.where(sub["diverged"].to_numpy(dtype=bool), np.inf, v)


def loss_cell(values: np.ndarray) -> str:
    """mean ± sd with enough decimals to show two digits of the seed spread."""
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if v.size > 1 and np.isfinite(v).all() else 0.0
    digits = 6 if sd == 0.0 else min(8, max(4, 1 - math.floor(math.log10(sd))))
    return mean_sd(v, digits)


def excess_cell(values: np.ndarray, f_star: float | None) -> str:
    if f_star is None:
        return "–"
    e = np.asarray(values, dtype=np.float64) - f_star
    if not np.isfinite(e).all():
        return "inf"
    sd = float(e.std(ddof=1)) if e.size > 1 else 0.0
    return f"{e.mean():.3g} ± {sd:.2g}"


def fmt_p(p: float) -> str:
    return "–" if not np.isfinite(p) else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def verdict(diff: float, p: float, what: str) -> str:
    if not np.isfinite(diff):
        return "not comparable (divergence)"
    if not np.isfinite(p) or p >= 0.05:
        return "within noise (p ≥ 0.05)"
    return f"{what} lower" if diff < 0 else f"{what} higher (worse)"


def comparison(rows: pd.DataFrame, a: str, f_star: float | None, b: str = "linear") -> dict:
    """Paired comparison of schedule ``a`` against ``b``, each at its own best lr.

    ``ratio``: mean excess over f* of ``a`` over that of ``b`` (f* = 0 when unknown, so it is
    then the ratio of the mean losses)."""
    ra, rb = at_best(rows, a), at_best(rows, b)
    la, lb = losses(ra), losses(rb)
    diff, p = paired(la, lb)
    base = float(np.mean(lb))
    floor = 0.0 if f_star is None else f_star
    ma, mb = ra["test_metric"].to_numpy(float), rb["test_metric"].to_numpy(float)
    return {"a": la, "b": lb, "diff": diff, "rel": 100.0 * diff / base, "p": p,
            "ratio": (float(np.mean(la)) - floor) / (base - floor),
            "metric_diff": float(np.mean(ma - mb)), "n": len(la)}


def task_table(plan: Plan, task: Task, rows: pd.DataFrame) -> str:
    header = ["schedule", "best lr", "lrs tried", "final loss", "final loss − f*",
              task.metric_name]
    out = []
    for name in SCHEDULES:
        sub = rows[rows["schedule"] == name]
        b, edge = best_index(rows, name)
        best = at_best(rows, name)
        lr = task.default_lr * plan.factor**b
        tried = sorted(sub["lr"].unique())
        span = f"{tried[0]:.3g}–{tried[-1]:.3g} ({len(tried)})"
        out.append([name, f"{lr:.4g}" + (" (edge)" if edge else ""), span,
                    loss_cell(losses(best)), excess_cell(losses(best), task.f_star),
                    mean_sd(best["test_metric"].to_numpy(float))])
    return table(header, out)


OTHERS = tuple(s for s in SCHEDULES if s != "linear")


def all_comparisons(plans, rows_of, tasks_of) -> dict[str, dict[str, dict]]:
    """task -> schedule -> ``comparison`` against linear decay."""
    return {p.task: {s: comparison(rows_of[p.task], s, tasks_of[p.task].f_star)
                     for s in OTHERS} for p in plans}


def rel_table(plans, rows_of, comp) -> str:
    """Each schedule's mean final loss relative to linear decay's (%) and its paired p."""
    out = []
    for plan in plans:
        rows = rows_of[plan.task]
        lin = float(np.mean(losses(at_best(rows, "linear"))))
        means = {s: float(np.mean(losses(at_best(rows, s)))) for s in SCHEDULES}
        c = comp[plan.task]
        out.append([plan.task, f"{lin:.4g}"]
                   + [f"{c[s]['rel']:+.2f} % ({fmt_p(c[s]['p'])})" for s in OTHERS]
                   + [min(means, key=means.get)])
    return table(["task", "linear loss", *OTHERS, "lowest"], out)


def ratio_table(plans, tasks_of, comp) -> str:
    """Each schedule's mean excess over f* divided by linear decay's (tasks with f*)."""
    out = []
    for plan in plans:
        if tasks_of[plan.task].f_star is None:
            continue
        c = comp[plan.task]
        out.append([plan.task, f"{tasks_of[plan.task].f_star:.6g}"]
                   + [f"{c[s]['ratio']:.3g}" for s in OTHERS])
    return table(["task", "f*", *OTHERS], out)


def pair_table(plans, tasks_of, comp, a: str) -> str:
    out = []
    for plan in plans:
        c = comp[plan.task][a]
        has = tasks_of[plan.task].f_star is not None
        out.append([plan.task, loss_cell(c["b"]), loss_cell(c["a"]), f"{c['diff']:+.2e}",
                    f"{c['rel']:+.2f} %", f"{c['ratio']:.3g}" if has else "–",
                    f"{c['metric_diff']:+.4f}", c["n"], fmt_p(c["p"]),
                    verdict(c["diff"], c["p"], a)])
    header = ["task", "linear loss", f"{a} loss", f"{a} − linear", "relative",
              "excess ratio", "test metric diff", "seeds", "p (paired t)", "verdict"]
    return table(header, out)


# ----------------------------------------------------------------------------------- figures


def _ticks(ax, lrs: np.ndarray, factor: float) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    if factor >= 2.0:  # a short grid: label its points
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(lrs, [f"{x:.3g}" for x in lrs])


def fig_loss_vs_lr(plt, plans, rows_of, tasks_of):
    shown = [p for p in plans if p.task in FIGURE_TASKS] or list(plans)
    n = len(shown)
    fig, axes = panels(plt, n, 3, 4.8, 3.7)
    for ax, plan in zip(axes.flat, shown, strict=False):
        rows = rows_of[plan.task]
        curves = []
        for name in SCHEDULES:
            st = seed_table(rows[rows["schedule"] == name])
            y = st["mean_loss"].to_numpy(float)
            y = np.where(np.isfinite(y), y, np.nan)
            curves.append(y)
            ax.plot(st["lr"], y, marker=".", label=name, color=COLORS[name],
                    lw=2.2 if name in ("linear", REFINED) else 1.2)
        ax.set_xscale("log")
        allv = np.concatenate(curves)
        lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
        if hi / lo > 10:  # a log scale where the losses span decades
            ax.set_yscale("log")
            ax.set_ylim(lo / 1.15, min(hi, lo * 1000) * 1.15)
        _ticks(ax, np.sort(rows["lr"].unique()), plan.factor)
        ax.set_title(f"{plan.task} ({tasks_of[plan.task].default_optimizer})")
        ax.set_xlabel("peak lr")
        ax.set_ylabel("final training loss (mean over seeds)")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_relative(plt, plans, tasks_of, comp):
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(plans) + 1.6))
    ys = np.arange(len(plans))
    for k, s in enumerate(OTHERS):
        x = np.array([comp[p.task][s]["ratio"] for p in plans])
        ax.scatter(np.where(np.isfinite(x) & (x > 0), x, np.nan),
                   ys + (k - len(OTHERS) / 2) * 0.09, label=s, color=COLORS[s],
                   marker="D" if s == REFINED else "o", s=42 if s == REFINED else 22)
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    labels = [p.task + (" (L − f*)" if tasks_of[p.task].f_star is not None else " (L)")
              for p in plans]
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel("final loss (minus f* where known) / that of linear decay, each at its own "
                  "best lr; < 1: better")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def fig_refined(plt, plans, stored_of):
    n = len(plans)
    fig, axes = panels(plt, n, 4, 3.4, 2.6, sharex=True, sharey=True)
    for ax, plan in zip(axes.flat, plans, strict=False):
        sched = refined_schedule(stored_of[plan.task])
        T = sched.horizon
        t = np.arange(T)
        ax.plot(t / T, sched(t), color=COLORS[REFINED], lw=1.3, label=REFINED)
        ax.plot([0, 1], [1, 0], color=COLORS["linear"], ls="--", lw=1, label="linear")
        ax.set_title(f"{plan.task} (T = {T})", fontsize=9)
        ax.set_xticks([0, 0.5, 1], ["0", "T/2", "T"])
    for ax in axes[:, 0]:
        ax.set_ylabel("lr multiplier")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> Path:
    args = parser(__doc__).parse_args(argv)
    torch.set_num_threads(1)
    plans = SMOKE_PLANS if args.smoke else PLANS
    rep = Report(NAME, "Linear decay, cosine and the rest; refinement from a pilot run", args)
    rows_of, stored_of, tasks_of, secs = {}, {}, {}, {}
    for plan in plans:
        t0 = time.perf_counter()
        rows_of[plan.task], stored_of[plan.task] = sweep(plan)
        tasks_of[plan.task] = task_of(plan)
        secs[plan.task] = time.perf_counter() - t0
    runs = pd.concat(rows_of.values(), ignore_index=True)
    runs.to_csv(Path(args.out) / RUNS_CSV, index=False)

    rep.add(
        "Claim (Defazio et al., *Optimal linear decay learning rate schedules and further "
        "refinements*, arXiv:2310.07831): with each schedule's peak learning rate tuned, linear "
        "decay matches or beats cosine and the other common schedules, and the schedule refined "
        "from a linear-decay pilot's gradient norms improves on it further.\n\n"
        "Protocol: every schedule is trained on the same geometric lr grid (lr = default lr × "
        "g^i); a schedule whose best lr (lowest mean final training loss over seeds; a diverged "
        "seed counts as +∞) lands on the edge of what it was trained at gets more grid points on "
        f"that side (at most {MAX_ROUNDS} rounds). Schedules: "
        + ", ".join(f"`{s}`" for s in DEFAULT_SCHEDULES)
        + f" (`build_schedule`), `{WSD}` (`WarmupStableDecay`: no warm-up, constant, linear "
        f"cool-down over the last {WSD_DECAY:.0%} of the steps) and `refined`: "
        "`lrlab.tune.pilot.derive_refined` (what `Study` runs) from one pilot run with linear "
        f"decay at linear decay's tuned best lr, seed {PILOT_SEED} (not an evaluation seed), "
        "refining its l2 gradient norms (SGD) or l1 norms (Adam). The refined schedule is then "
        "tuned on the same grid. Comparisons are paired by seed, each schedule at its own best "
        "lr. `final loss` is the full training objective at the last iterate; all runs are "
        f"float32, batched (`run_batched`), one thread. Every run is in `{RUNS_CSV}`."
    )
    setup = []
    for plan in plans:
        task = tasks_of[plan.task]
        p = stored_of[plan.task]["pilot"]
        opts = ", ".join(f"{k}={v}" for k, v in plan.options.items()) or "–"
        setup.append([plan.task, opts, task.default_optimizer, steps_of(plan, task),
                      task.default_batch_size, f"{task.default_lr:g}", f"{plan.factor:.3g}",
                      len(plan.seeds), f"{p['lr']:.4g} ({p['norm']})",
                      "{:.3g} → {:.3g}".format(*stored_of[plan.task]["norms"]), p["peak_step"],
                      f"{p['anneal_fraction']:.2f}", f"{secs[plan.task]:.0f}",
                      plan.note or "task defaults"])
    rep.add("## Setup\n\n" + table(
        ["task", "options", "optimizer", "steps", "batch", "default lr", "grid factor g",
         "seeds", "pilot lr (norm)", "pilot norm, first → last tenth", "refined peak step",
         "anneal fraction", "time (s)",
         "sizes"], setup)
        + "\n\n`anneal fraction`: the share of the run after the refined schedule last stands "
        "at ≥ 1/2 of its peak (1/2 for linear decay). `pilot norm`: the median gradient norm "
        "of the pilot run over the first and over the last tenth of its steps. The CNN is "
        "trained without `torch.compile` (`run_batched(compile=False)`): timed beforehand on "
        "this machine, compiling cost more than it saved at this sweep's size.")

    parts = ["## Per task\n\nEach schedule at its own best lr; final training loss and test "
             "metric as mean ± sd over seeds. `(edge)` marks a best lr still on the edge of the "
             "grid after the edge rule."]
    for plan in plans:
        parts.append(f"### {plan.task}\n\n{describe(stored_of[plan.task])}.\n\n"
                     + task_table(plan, tasks_of[plan.task], rows_of[plan.task]))
    rep.add("\n\n".join(parts))

    comp = all_comparisons(plans, rows_of, tasks_of)
    rep.add("## Every schedule against linear decay\n\nMean final loss at each schedule's best "
            "lr relative to linear decay's (negative: lower than linear decay), with the paired "
            "t-test p-value over seeds in brackets.\n\n" + rel_table(plans, rows_of, comp)
            + "\n\nOn the tasks with a known minimum f*, relative differences of the loss "
            "understate how much closer to f* one schedule gets than another. "
            "Mean excess (final loss − f*) at each schedule's best lr divided by linear decay's "
            "(below 1: closer to f* than linear decay):\n\n" + ratio_table(plans, tasks_of, comp))
    rep.add("## Cosine against linear decay\n\nPaired by seed, each at its own best lr; "
            "`excess ratio` is (cosine − f*) / (linear − f*) of the mean losses, `test metric "
            "diff` is cosine − linear.\n\n" + pair_table(plans, tasks_of, comp, "cosine"))
    rep.add("## Refined against linear decay\n\nPaired by seed, each at its own best lr; "
            "`excess ratio` is (refined − f*) / (linear − f*) of the mean losses, `test metric "
            "diff` is refined − linear.\n\n" + pair_table(plans, tasks_of, comp, REFINED))
    rep.add(summary(plans, comp, stored_of))

    plt = pyplot()
    rep.figure(fig_loss_vs_lr(plt, plans, rows_of, tasks_of), "loss_vs_lr",
               "Final training loss vs peak lr per schedule")
    rep.figure(fig_relative(plt, plans, tasks_of, comp), "relative",
               "Final loss (minus f* where known) relative to linear decay, per task and schedule")
    rep.figure(fig_refined(plt, plans, stored_of), "refined",
               "The refined schedules (lr multiplier over the run) against linear decay")
    seeds = "; ".join(f"{p.task} {', '.join(map(str, p.seeds))}" for p in plans)
    return rep.write(f"evaluation seeds per task: {seeds}; pilot seed {PILOT_SEED}")


def _significant(c: dict, sign: int) -> bool:
    return bool(np.isfinite(c["p"]) and c["p"] < 0.05 and np.sign(c["diff"]) == sign)


def summary(plans, comp, stored_of) -> str:
    """What the tables say, computed from them."""
    n = len(plans)
    tasks = [p.task for p in plans]
    lin_best = [t for t in tasks if all(c["diff"] >= 0 for c in comp[t].values())]
    lower = {t: [s for s in OTHERS if _significant(comp[t][s], -1)] for t in tasks}
    higher = {t: [s for s in OTHERS if _significant(comp[t][s], 1)] for t in tasks}

    def split(a: str) -> tuple[list[str], list[str], list[str]]:
        better = [t for t in tasks if a in lower[t]]
        worse = [t for t in tasks if a in higher[t]]
        return better, worse, [t for t in tasks if t not in better + worse]

    def named(ts: list[str]) -> str:
        return f" ({', '.join(ts)})" if ts else ""

    cos_b, cos_w, cos_n = split("cosine")
    ref_b, ref_w, ref_n = split(REFINED)
    lines = [
        "## Summary",
        "",
        f"- Linear decay has the lowest mean final loss of all {len(SCHEDULES)} schedules on "
        f"{len(lin_best)} of {n} tasks{named(lin_best)}.",
        "- Schedules with a significantly lower final loss than linear decay (paired t, "
        "p < 0.05): " + "; ".join(f"{t}: {', '.join(lower[t]) or 'none'}" for t in tasks) + ".",
        "- Schedules with a significantly higher final loss than linear decay: "
        + "; ".join(f"{t}: {', '.join(higher[t]) or 'none'}" for t in tasks) + ".",
        f"- Cosine vs linear decay: cosine lower on {len(cos_b)} task(s){named(cos_b)}, higher "
        f"on {len(cos_w)}{named(cos_w)}, within noise on {len(cos_n)}{named(cos_n)}.",
        f"- Refined vs linear decay: refined lower on {len(ref_b)} task(s){named(ref_b)}, "
        f"higher on {len(ref_w)}{named(ref_w)}, within noise on {len(ref_n)}{named(ref_n)}. "
        "Relative change of the mean final loss: "
        + ", ".join(f"{t} {comp[t][REFINED]['rel']:+.2f} % (p {fmt_p(comp[t][REFINED]['p'])})"
                    for t in tasks) + ".",
    ]
    if len(ref_b) < n:
        lines.append(
            f"- The claim that refinement improves on linear decay holds here on {len(ref_b)} "
            f"of {n} tasks; on the others refinement "
            + ("loses or " if ref_w else "")
            + "differs from linear decay by less than the paired test can tell from seed "
            "noise (p ≥ 0.05)."
        )
    for t in ref_w:
        pilot, (first, last) = stored_of[t]["pilot"], stored_of[t]["norms"]
        if pilot["peak_step"] > pilot["steps"] / 2 and last < first / 10:
            lines.append(
                f"- On {t} the pilot's {pilot['norm']} gradient norm falls from {first:.3g} "
                f"(median over the first tenth of the run) to {last:.3g} (last tenth) as the "
                "training loss approaches zero; the refinement's weights (g^-2 for l2) are then "
                f"largest late in the run, so the refined schedule peaks at step "
                f"{pilot['peak_step']} of {pilot['steps']} (anneal fraction "
                f"{pilot['anneal_fraction']:.2f}) and trains with a small lr before that (see "
                "the last figure)."
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
