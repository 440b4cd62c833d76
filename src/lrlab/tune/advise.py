"""``advise``: a peak learning rate and a schedule for a task, at the cost of a few runs.

The budget is counted in runs: member-steps (one member trained one step) divided by the
run's steps. Every member-step is counted, the pilot's and a diverged run's included (a
diverged run counts all its steps), and the budget is never exceeded.

1. **Pilot**: one run with linear decay at the task's default lr (or ``lr``), seed 0,
   recording gradient norms; ``lrlab.refine`` turns them into the ``refined`` schedule, exactly
   as ``lrlab.tune.pilot.derive_refined`` does for a sweep. A pilot that diverges is retried at
   a quarter of its lr while the budget leaves room for the grid.
2. **Grid factor from theory**: for a schedule, ``lrlab.theory.rho_curve`` gives the bound's
   cost of a peak off by a factor rho, over (``rho c*``) and under (``c* / rho``). With a grid
   of factor F the best peak lies between two grid points g and g F; one of them is off by x
   (under) or F / x (over), so the worst case cost is ``max_x min(under(x), over(F / x))``.
   The grid factor is the largest F in 2, 2^1.5, ..., 8 whose worst case stays within
   ``TOLERANCE`` (1.25: the cost of a peak off by a factor 2 for a constant lr, i.e. what a
   factor-4 grid costs a constant schedule), for every schedule tried (refined and linear).
   Annealed schedules pay only about rho^(1/3) for an over-estimate, so they tolerate a wider
   factor than a constant lr.
3. **Coarse grid**: the refined schedule at ``lr0 * F**k`` around the pilot's lr ``lr0`` (3
   points, seed 0), trained in one batch together with one learning-rate-free run (D-Adaptation
   SGD for SGD-like optimizers, Prodigy for Adam-like ones; lr multiplier 1, constant schedule,
   their published defaults).
4. **Follow-up** with the runs left: a best point on an edge grows the grid past that edge
   (``Study.extend_edges``, one point a round); a best point inside gets the geometric midpoint
   towards its better neighbour.
5. **Answer**: the measured point with the lowest final loss (the refined grid and the linear
   pilot); the peaks of its schedule within 1 % and 5 % of that loss (grid resolution); what the
   learning-rate-free run reached; the runs spent.

Everything is stored in a ``Study`` named ``<study>-advise`` (schedule ``refined``, seed 0, the
grid as its lrs; the pilot's refined schedule as the study's own, so it is never derived
twice) with the advice as the study's user attribute ``lrlab_advice`` (``load_advice``).
``lrlab report <study>-advise`` reads it like any study; a later ``lrlab sweep`` of the same task
(same steps, optimizer and options) in the same storage takes the pilot's refined schedule and
every advised run on its grid from it (``lrlab.tune.reuse``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lrlab._checks import check_int
from lrlab.refine import refine
from lrlab.schedules import Constant, Linear, Schedule
from lrlab.train.types import RunConfig, RunResult
from lrlab.tune import lease, pilot
from lrlab.tune.executors import CURVE_POINTS, Executor, resolve_task
from lrlab.tune.settings import REFINED, StudySettings
from lrlab.tune.space import edge_side
from lrlab.tune.study import (
    DEFAULT_STORAGE,
    EXTRA_ATTR,
    REFINED_ATTR,
    SETTINGS_ATTR,
    Study,
    open_storage,
    plain_storage_errors,
    storage_url,
    study_names,
)

ADVICE_ATTR = "lrlab_advice"
SUFFIX = "-advise"
TOLERANCE = 1.25
MIN_BUDGET = 4
GRID_POINTS = 3
RETRY_DIVISOR = 4.0
#: The learning-rate-free baseline per optimizer family, at its published defaults.
FREE_METHODS = {"l1": "prodigy", "l2": "dadapt_sgd"}
_FACTORS = tuple(2.0 ** (k / 2) for k in range(2, 7))  # 2 .. 8


def _interp(rhos: np.ndarray, ratio: np.ndarray, x: float) -> float:
    lx = np.log(np.concatenate([[1.0], rhos]))
    ly = np.concatenate([[1.0], ratio])
    if x >= rhos[-1]:
        return float(ratio[-1])
    return float(np.interp(math.log(x), lx, ly))


def worst_case(schedule: Schedule, factor: float, steps: int) -> float:
    """The theory's worst-case cost (bound / best bound) of the best point of a grid of
    ``factor`` for ``schedule``: ``max_x min(under(x), over(factor / x))``, x in [1, factor]."""
    from lrlab.theory import rho_curve

    rhos = 2.0 ** np.arange(0.125, 3.01, 0.125)
    c = rho_curve(schedule, rhos, steps=steps)
    over = c.over_restarted / c.best_bound
    under = c.under_restarted / c.best_bound
    xs = np.exp(np.linspace(0.0, math.log(factor), 41))
    return max(
        min(_interp(rhos, under, x), _interp(rhos, over, factor / x)) for x in xs
    )


def theory_factor(schedules: Mapping[str, Schedule], steps: int) -> tuple[float, dict[str, float]]:
    """The grid factor (see the module docstring) and, per schedule, the largest factor it
    alone would tolerate."""
    per: dict[str, float] = {}
    for label, sched in schedules.items():
        ok = [f for f in _FACTORS if worst_case(sched, f, steps) <= TOLERANCE]
        per[label] = max(ok) if ok else _FACTORS[0]
    return min(per.values()), per


@dataclasses.dataclass
class Advice:
    """What ``advise`` found. Losses are final training losses (seed 0); ``points`` lists every
    measured (schedule, lr) with its loss (None: diverged)."""

    task: str
    task_options: dict[str, Any]
    optimizer: str
    steps: int
    budget: int
    schedule: str
    lr: float
    final_loss: float
    test_metric: float | None
    metric_name: str | None
    within_1pct: tuple[float, float]
    within_5pct: tuple[float, float]
    grid_factor: float
    factor_per_schedule: dict[str, float]
    free: dict[str, Any]
    pilots: list[dict[str, Any]]
    points: list[dict[str, Any]]
    runs_spent: float
    member_steps: int
    study: str
    storage: str
    messages: list[str]
    refined: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["within_1pct"], d["within_5pct"] = list(self.within_1pct), list(self.within_5pct)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Advice:
        d = dict(d)
        d["within_1pct"], d["within_5pct"] = tuple(d["within_1pct"]), tuple(d["within_5pct"])
        return Advice(**d)

    def text(self) -> str:
        """The advice in plain words, with its reasoning."""
        metric = ""
        if self.test_metric is not None:
            metric = f", {self.metric_name or 'metric'} {self.test_metric:.4g}"
        p = self.pilots[-1]
        lines = [
            f"Recommendation for {self.task}: {self.optimizer} with the {self.schedule} schedule "
            f"at peak lr {self.lr:.4g}, {self.steps} steps.",
            f"Expected final loss {self.final_loss:.5g}{metric} (seed 0).",
            f"Peaks within 1 % of it: {self.within_1pct[0]:.4g} .. {self.within_1pct[1]:.4g}; "
            f"within 5 %: {self.within_5pct[0]:.4g} .. {self.within_5pct[1]:.4g} (measured grid "
            "points; the grid's resolution limits these ranges).",
        ]
        free = self.free
        if free["final_loss"] is None:
            lines.append(f"The learning-rate-free baseline ({free['optimizer']}, lr 1, constant) "
                         "diverged.")
        else:
            gap = 100.0 * (free["final_loss"] / self.final_loss - 1.0)
            lines.append(
                f"The learning-rate-free baseline ({free['optimizer']}, lr 1, constant) reached "
                f"{free['final_loss']:.5g} ({gap:+.1f} % against the recommendation)."
            )
        lines += [
            f"Runs spent: {self.runs_spent:g} of {self.budget} ({self.member_steps} member-steps).",
            "Why this grid: a pilot with linear decay at lr "
            f"{p['lr']:.4g} gave the gradient norms of the refined schedule; the theory's bound "
            f"for a peak off by a factor rho (lrlab.theory.rho_curve) lets a grid of factor "
            f"{self.grid_factor:.3g} cost at most {TOLERANCE:g}x the best bound for "
            + ", ".join(f"{k} (alone: {v:.3g})" for k, v in self.factor_per_schedule.items())
            + "; annealing makes an over-estimated peak cheap, so the grid can be coarse.",
            f"Why this schedule: it had the lowest measured loss; the refined schedule follows "
            f"the pilot's gradient norms (peak at step {self.refined['pilot']['peak_step']}, "
            f"anneal fraction {self.refined['pilot']['anneal_fraction']:.2f}), linear decay is "
            "the pilot itself.",
            *self.messages,
            f"Stored in study {self.study!r} ({self.storage}).",
        ]
        return "\n".join(lines)


class _Batch(Executor):
    """Trains each batch with ``extra`` configurations appended to the first one (the
    learning-rate-free run rides in the grid's batch); their results go to ``extra_results``."""

    def __init__(self, device: str, extra: Sequence[RunConfig] = ()) -> None:
        self.device = device
        self.extra = list(extra)
        self.extra_results: list[RunResult] = []
        self.member_steps = 0

    def map_batches(self, task, batches, progress=None):
        from lrlab.train import run_batched

        for i, batch in enumerate(batches):
            configs = list(batch) + self.extra
            res = run_batched(
                resolve_task(task),
                configs,
                curve_points=CURVE_POINTS,
                progress=progress,
                num_threads=1,
                device=self.device,
            )
            self.member_steps += sum(int(c.steps) for c in configs)
            self.extra_results += res[len(batch):]
            self.extra = []
            yield i, res[: len(batch)]


def _loss(res: RunResult) -> float | None:
    if res.diverged or not math.isfinite(res.final_loss):
        return None
    return float(res.final_loss)


def _within(lrs: Sequence[float], losses: Sequence[float], slack: float) -> tuple[float, float]:
    """The contiguous grid range around the best point whose loss is within ``slack``."""
    order = np.argsort(lrs)
    x = np.asarray(lrs, dtype=float)[order]
    v = np.asarray(losses, dtype=float)[order]
    b = int(np.argmin(v))
    limit = (1.0 + slack) * v[b] if v[b] >= 0 else (1.0 - slack) * v[b]
    lo = hi = b
    while lo - 1 >= 0 and v[lo - 1] <= limit:
        lo -= 1
    while hi + 1 < x.size and v[hi + 1] <= limit:
        hi += 1
    return float(x[lo]), float(x[hi])


def _create(name: str, url: str, settings: StudySettings, refined: dict[str, Any]) -> Study:
    """Create the study with the pilot's refined schedule stored (never derived again)."""
    import optuna

    rdb = open_storage(url)
    with plain_storage_errors(url):
        lease.hold(rdb.engine, url, name)
        study = optuna.create_study(storage=rdb, study_name=name, direction="minimize")
        study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
        study.set_user_attr(REFINED_ATTR, refined)
        out = Study(study, settings, url)
        out.prepare()
    return out


def load_advice(study: str, storage: str = DEFAULT_STORAGE) -> Advice:
    """The stored advice of ``study`` (the name given to ``advise``, or its ``-advise``
    study); ValueError if there is none."""
    name = study if study.endswith(SUFFIX) else study + SUFFIX
    s = Study.open(name, None, storage)
    stored = s.optuna_study.user_attrs.get(ADVICE_ATTR)
    if stored is None:
        raise ValueError(f"study {name!r} holds no finished advice")
    return Advice.from_dict(stored)


def advise(
    task: str,
    budget: int = 6,
    *,
    task_options: Mapping[str, Any] | None = None,
    lr: float | None = None,
    steps: int | None = None,
    optimizer: str | None = None,
    storage: str = DEFAULT_STORAGE,
    study: str = "lrlab-default",
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
) -> Advice:
    """Advise a schedule and peak lr for ``task`` within ``budget`` runs (see the module
    docstring). ``lr``: the pilot's lr (default: the task's ``default_lr``); ``optimizer``:
    default the task's ``default_optimizer``; ``say``: called with progress messages.

    Example: ``advise("digits_logreg", budget=6, task_options={"l2": 0.01}).text()``.
    """
    from lrlab.train import run_config

    say = say or (lambda _msg: None)
    budget = check_int("budget", budget, lo=1)
    if budget < MIN_BUDGET:
        raise ValueError(
            f"budget must be at least {MIN_BUDGET} runs (a pilot, a learning-rate-free run and "
            f"two grid points), got {budget}"
        )
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    options = dict(task_options or {})
    task_obj = resolve_task({"name": task, **options})
    steps = task_obj.default_steps if steps is None else check_int("steps", steps, lo=1)
    optimizer = optimizer or task_obj.default_optimizer
    base = StudySettings(
        task, (REFINED,), task_options=options, lrs=(1.0,), steps=steps, optimizer=optimizer,
        device=device,
    )
    url = storage_url(storage)
    name = study + SUFFIX
    if name in study_names(open_storage(url)):
        raise ValueError(
            f"study {name!r} already exists in {url}; read its advice (lrlab.tune.advise."
            "load_advice) or choose another --study"
        )
    norm = pilot.pilot_norm(optimizer)
    used = 0  # runs
    messages: list[str] = []

    # 1. the pilot, retried at lr / 4 while it diverges and the budget allows
    lr0 = float(task_obj.default_lr if lr is None else lr)
    pilots: list[dict[str, Any]] = []
    while True:
        settings = dataclasses.replace(base, pilot_lr=lr0)
        cfg = pilot.pilot_config(settings, lr0)
        say(f"pilot: linear decay at lr {lr0:.4g}, {steps} steps")
        res = run_config(task_obj, cfg, record_grad_norms=True, curve_points=1, device=device)
        used += 1
        pilots.append(
            {"lr": lr0, "final_loss": _loss(res), "diverged_at": res.diverged_at,
             "test_metric": res.test_metric}
        )
        why = None
        if res.diverged or not math.isfinite(res.final_loss):
            why = f"diverged at step {res.diverged_at}"
        else:
            norms = res.grad_norm_l1 if norm == "l1" else res.grad_norm_l2
            try:
                out = refine(
                    np.asarray(norms, dtype=np.float64), norm=norm, tau=pilot.TAU, steps=steps
                )
                break
            except ValueError as exc:
                why = f"gave gradient norms that cannot be refined ({exc})"
        if budget - used - 2 < 2:  # a retry must leave two grid points and the lr-free run
            raise ValueError(
                f"the pilot at lr {lr0:.4g} {why}, and the budget of {budget} runs leaves no "
                "room for another try; give a smaller --lr"
            )
        msg = (
            f"the pilot at lr {lr0:.4g} {why}; retrying at lr {lr0 / RETRY_DIVISOR:.4g} "
            f"(lr / {RETRY_DIVISOR:g})"
        )
        say(msg)
        messages.append("Note: " + msg + ".")
        lr0 /= RETRY_DIVISOR
    refined = {
        "schedule": out.schedule.to_dict(),
        "pilot": {
            "schedule": "linear", "lr": lr0, "seed": pilot.PILOT_SEED, "steps": steps,
            "optimizer": optimizer, "norm": norm, "tau": pilot.TAU,
            "peak_step": out.report.peak_step, "anneal_fraction": out.report.anneal_fraction,
        },
    }

    # 2. the grid factor from theory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        factor, per = theory_factor({REFINED: out.schedule, "linear": Linear(steps)}, steps)
    left = budget - used - 1  # the learning-rate-free run
    n = min(GRID_POINTS, left)
    ks = np.arange(n) - (n - 1) // 2
    grid = tuple(float(lr0 * factor**k) for k in ks)
    settings = dataclasses.replace(base, lrs=grid, pilot_lr=lr0)
    st = _create(name, url, settings, refined)

    # 3. the grid and the learning-rate-free run, one batch
    free_name = FREE_METHODS[norm]
    free_cfg = RunConfig(1.0, Constant(), seed=0, steps=steps, optimizer=free_name)
    ex = _Batch(device, [free_cfg])
    say(
        f"grid: refined schedule at lr {', '.join(f'{g:.4g}' for g in grid)} (factor "
        f"{factor:.3g}) and {free_name} at lr 1, one batch"
    )
    st.run(ex)
    used += len(grid) + 1
    free_res = ex.extra_results[0]

    # 4. follow-up rounds with the runs left
    while budget - used >= 1:
        df = st.results()
        lrs = df["lr"].tolist()
        losses = [math.inf if d else v for v, d in zip(df["final_loss"], df["diverged"],
                                                       strict=True)]
        side = edge_side(lrs, losses)
        if side is not None:
            added = st.extend_edges(points=1).get(REFINED, [])
            if not added:
                break
            say(f"edge: the best lr is on the {side} edge; adding lr {added[0]:.4g}")
            messages.append(
                f"The best refined lr sat on the {side} edge of the grid; the edge rule added "
                f"lr {added[0]:.4g}."
            )
        else:
            order = np.argsort(lrs)
            x = np.asarray(lrs)[order]
            v = np.asarray(losses)[order]
            b = int(np.argmin(v))
            nb = b - 1 if v[b - 1] <= v[b + 1] else b + 1
            if max(x[b], x[nb]) / min(x[b], x[nb]) < 2.0 ** 0.5 * (1 + 1e-9):
                break
            mid = float(math.sqrt(x[b] * x[nb]))
            extra = st.extra_lrs
            extra[REFINED] = sorted(set(extra.get(REFINED, [])) | {mid})
            st.optuna_study.set_user_attr(EXTRA_ATTR, extra)
            say(f"refine: adding the midpoint lr {mid:.4g} between the best and its neighbour")
        told = st.run(_Batch(device))
        used += told
        if told == 0:
            break

    # 5. the answer
    df = st.results()
    points = [
        {"schedule": REFINED, "lr": float(r.lr),
         "final_loss": None if r.diverged else float(r.final_loss),
         "test_metric": None if r.diverged or math.isnan(r.test_metric) else float(r.test_metric)}
        for r in df.itertuples()
    ]
    points += [
        {"schedule": "linear", "lr": p["lr"], "final_loss": p["final_loss"],
         "test_metric": p["test_metric"]}
        for p in pilots
    ]
    finite = [p for p in points if p["final_loss"] is not None]
    if not finite:
        raise ValueError("every run diverged; give a smaller --lr")
    best = min(finite, key=lambda p: p["final_loss"])
    same = [p for p in points if p["schedule"] == best["schedule"]]
    sl = [p["lr"] for p in same]
    sv = [math.inf if p["final_loss"] is None else p["final_loss"] for p in same]
    member_steps = used * steps
    advice = Advice(
        task=settings.task,
        task_options=options,
        optimizer=optimizer,
        steps=steps,
        budget=budget,
        schedule=best["schedule"],
        lr=best["lr"],
        final_loss=best["final_loss"],
        test_metric=best["test_metric"],
        metric_name=task_obj.metric_name,
        within_1pct=_within(sl, sv, 0.01),
        within_5pct=_within(sl, sv, 0.05),
        grid_factor=factor,
        factor_per_schedule=per,
        free={"optimizer": free_name, "lr": 1.0, "schedule": "constant",
              "final_loss": _loss(free_res), "test_metric": free_res.test_metric},
        pilots=pilots,
        points=points,
        runs_spent=member_steps / steps,
        member_steps=member_steps,
        study=name,
        storage=url,
        messages=messages,
        refined=refined,
    )
    with plain_storage_errors(url):
        st.optuna_study.set_user_attr(ADVICE_ATTR, advice.to_dict())
    st.close()
    return advice


def plot(advice: Advice, path: str) -> str:
    """A PNG of final loss vs peak lr per schedule, the recommendation and the
    learning-rate-free baseline marked; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    finite = [p["final_loss"] for p in advice.points if p["final_loss"] is not None]
    top = max(finite) * 1.05 if finite else 1.0
    for sched, style in ((REFINED, "o-"), ("linear", "s--")):
        pts = sorted((p for p in advice.points if p["schedule"] == sched), key=lambda p: p["lr"])
        ok = [p for p in pts if p["final_loss"] is not None]
        bad = [p for p in pts if p["final_loss"] is None]
        if ok:
            ax.plot([p["lr"] for p in ok], [p["final_loss"] for p in ok], style, label=sched)
        if bad:
            ax.plot([p["lr"] for p in bad], [top] * len(bad), "x", color="red",
                    label=f"{sched}: diverged")
    ax.axvspan(*advice.within_5pct, color="tab:green", alpha=0.08, label="within 5 %")
    ax.axvspan(*advice.within_1pct, color="tab:green", alpha=0.18, label="within 1 %")
    if advice.free["final_loss"] is not None:
        ax.axhline(advice.free["final_loss"], color="gray", ls=":",
                   label=f"{advice.free['optimizer']} (lr-free)")
    ax.plot([advice.lr], [advice.final_loss], "*", ms=16, color="gold", mec="black",
            label=f"recommended: {advice.schedule} @ {advice.lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final training loss (seed 0)")
    ax.set_title(f"lrlab advise: {advice.task} ({advice.runs_spent:g} of {advice.budget} runs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(advice: Advice, folder: str) -> list[str]:
    """``advice.txt``, ``advice.json`` and ``advice.png`` in ``folder``; returns the paths."""
    import json
    import os

    os.makedirs(folder, exist_ok=True)
    txt = os.path.join(folder, "advice.txt")
    with open(txt, "w") as fh:
        fh.write(advice.text() + "\n")
    js = os.path.join(folder, "advice.json")
    with open(js, "w") as fh:
        json.dump(advice.to_dict(), fh, indent=1)
    png = plot(advice, os.path.join(folder, "advice.png"))
    return [txt, js, png]
