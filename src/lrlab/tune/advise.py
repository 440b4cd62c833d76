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
3. **Coarse grid**: both schedules around the pilot's lr ``lr0``, bought in this order while
   the budget lasts (``grid_candidates``): refined at ``lr0``, linear at ``lr0 * F`` and
   ``lr0 / F`` (linear at ``lr0`` is the pilot itself, stored as a trial, never trained again),
   refined at ``lr0 * F`` and ``lr0 / F``; trained in one batch together with one
   learning-rate-free run (D-Adaptation SGD for SGD-like optimizers, Prodigy for Adam-like
   ones; lr multiplier 1, constant schedule, their published defaults). A diverged pilot that
   lands on the grid is stored too, not trained again.
4. **Follow-up** with the whole runs left (``follow_up``), one point a round on the schedule of
   the best point so far: past the edge of that schedule's lrs when the best sits on it (the
   edge rule), the geometric midpoint towards its better neighbour when it is inside.
5. **Answer**: the measured point with the lowest final loss (both schedules, seed 0); the
   peaks of its schedule within 1 % and 5 % of that loss (grid resolution); what the
   learning-rate-free run reached; the runs spent.

At the default budget of 8: the pilot, five grid runs, the learning-rate-free run and one
follow-up round.

Everything is stored in a ``Study`` named ``<study>-advise`` (schedules ``linear`` and
``refined``, seed 0, ``lr0`` and the grid's lrs; the pilot as the trial of linear at ``lr0``,
with user attribute ``lrlab_recorded = "pilot"``; its refined schedule as the study's own, so
it is never derived twice) with the advice as the study's user attribute ``lrlab_advice``
(``load_advice``).
``lrlab report <study>-advise`` reads it like any study; a later ``lrlab sweep`` of the same task
(same steps, optimizer and options) in the same storage takes the pilot's refined schedule and
every advised run on its grid from it (``lrlab.tune.reuse``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lrlab._checks import check_int
from lrlab.refine import refine
from lrlab.schedules import Constant, Linear, Schedule
from lrlab.tasks.spec import callable_spec
from lrlab.train.types import RunConfig, RunResult
from lrlab.tune import lease, pilot
from lrlab.tune.executors import CURVE_POINTS, Executor, resolve_task
from lrlab.tune.settings import REFINED, StudySettings
from lrlab.tune.space import edge_side
from lrlab.tune.study import (
    DEFAULT_STORAGE,
    REFINED_ATTR,
    SETTINGS_ATTR,
    Study,
    open_storage,
    outcome_result,
    plain_storage_errors,
    storage_url,
    study_names,
    value_key,
)

ADVICE_ATTR = "lrlab_advice"
SUFFIX = "-advise"
TOLERANCE = 1.25
MIN_BUDGET = 4
#: The schedules advise compares: linear decay (the pilot's), the refined one, a constant lr.
SCHEDULES = ("linear", REFINED, "constant")
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


def grid_candidates(lr0: float, factor: float) -> list[tuple[str, float]]:
    """The grid around the pilot's lr ``lr0`` in the order it is bought: the refined schedule
    and a constant lr at ``lr0``, linear decay one factor above and below (linear at ``lr0`` is
    the pilot), a constant lr above and below, then the refined schedule above and below."""
    up, down = lr0 * factor, lr0 / factor
    return [(REFINED, lr0), ("constant", lr0), ("linear", up), ("linear", down),
            ("constant", up), ("constant", down), (REFINED, up), (REFINED, down)]


def follow_up(results, factor: float, start: float = math.inf) -> tuple[str, float | None, str]:
    """The next point to buy from a study's ``results()``: (schedule, lr or None, why).

    The best measured point's schedule gets one more lr: a factor past the edge when the best
    is at the edge of that schedule's measured lrs (the edge rule), the geometric midpoint
    towards its better neighbour when it is inside (None once they are within sqrt 2; a
    diverged neighbour next to a finite one counts as the better: the loss just short of a
    divergence is unmeasured, while the finite side is known to be worse), the
    other schedule's direction when it is that schedule's only point. If every run diverged:
    a factor below the lowest lr tried. A run that ended at or above ``start`` (the loss the
    runs started from) blew up: it counts as diverged here.
    """
    loss = results["final_loss"].to_numpy(float)
    loss = np.where(results["diverged"] | ~(loss < start), np.inf, loss)
    if not np.isfinite(loss).any():
        i = int(np.argmin(results["lr"].to_numpy(float)))
        sched, x = results["schedule"].iloc[i], float(results["lr"].iloc[i])
        return sched, x / factor, "every run diverged; going lower"
    b = int(np.argmin(loss))
    sched = results["schedule"].iloc[b]
    mine = results["schedule"].to_numpy() == sched
    x = results["lr"].to_numpy(float)[mine]
    v = loss[mine]
    order = np.argsort(x)
    x, v = x[order], v[order]
    if x.size == 1:
        others = np.where(~mine & np.isfinite(loss))[0]
        other = float(results["lr"].iloc[others[np.argmin(loss[others])]]) if others.size else x[0]
        new = x[0] / factor if other < x[0] else x[0] * factor
        return sched, float(new), f"the best point is the only {sched} run"
    side = edge_side(x, v)
    if side == "high":
        return sched, float(x[-1] * factor), f"the best {sched} lr sat on the high edge"
    if side == "low":
        return sched, float(x[0] / factor), f"the best {sched} lr sat on the low edge"
    i = int(np.argmin(v))
    lo_inf, hi_inf = math.isinf(v[i - 1]), math.isinf(v[i + 1])
    if lo_inf != hi_inf:  # a diverged neighbour hides what lies just short of it
        nb = i - 1 if lo_inf else i + 1
        why = "the midpoint towards the neighbour that blew up"
    else:
        nb = i - 1 if v[i - 1] <= v[i + 1] else i + 1
        why = "the midpoint towards its better neighbour"
    if max(x[i], x[nb]) / min(x[i], x[nb]) < 2.0 ** 0.5 * (1 + 1e-9):
        return sched, None, "the grid is fine enough"
    return sched, float(math.sqrt(x[i] * x[nb])), f"the best {sched} lr lies inside; {why}"


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
    free: dict[str, Any] | None
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
        who = self.optimizer if self.free else "your script's optimizer"
        lines = [
            f"Recommendation for {self.task}: {who} with the {self.schedule} schedule "
            f"at peak lr {self.lr:.4g}, {self.steps} steps.",
            f"Expected final loss {self.final_loss:.5g}{metric} (seed 0).",
            f"Peaks within 1 % of it: {self.within_1pct[0]:.4g} .. {self.within_1pct[1]:.4g}; "
            f"within 5 %: {self.within_5pct[0]:.4g} .. {self.within_5pct[1]:.4g} (measured grid "
            "points; the grid's resolution limits these ranges).",
        ]
        free = self.free or {}
        if not free:
            pass  # a command: no learning-rate-free run (a message says so)
        elif free["final_loss"] is None:
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
            f"{self.grid_factor:.3g} cost at most {TOLERANCE:g}x the best bound for the "
            "annealed schedules (the largest factor each schedule tolerates alone: "
            + ", ".join(f"{k} {v:.3g}" for k, v in self.factor_per_schedule.items())
            + "); annealing makes an over-estimated peak cheap, so the grid can be coarse. "
            "The three schedules were tried on that grid around the pilot's lr, then the best "
            "point's schedule got the runs left (the edge rule past an edge, a midpoint "
            "inside).",
            f"Why this schedule: it had the lowest measured loss of the three; the refined "
            f"schedule follows the pilot's gradient norms (peak at step "
            f"{self.refined['pilot']['peak_step']}, anneal fraction "
            f"{self.refined['pilot']['anneal_fraction']:.2f}), linear decay is the worst-case "
            "optimal schedule, a constant lr the one without a horizon.",
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


@contextlib.contextmanager
def _trial_pool(batched: bool, processes: int, timeout: float | None):
    """The worker pool the runs of a command or a trial function share (None for a task)."""
    if batched:
        yield None
        return
    from lrlab.tune.trial_executors import LocalTrials

    with LocalTrials(processes, timeout=timeout) as pool:
        yield pool


def _train(st: Study, device: str, pool: Any, extra: Sequence[RunConfig] = ()
           ) -> tuple[int, list[RunResult]]:
    """Train the study's pending trials (a batched task: one batch, with the ``extra``
    configurations riding along; a command or a function: on ``pool``); return how many
    trials were told and the extra runs' results."""
    if pool is None:
        ex = _Batch(device, extra)
        return st.run(ex), ex.extra_results
    return st.run(pool), []


def _points(df, pilots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every measured (schedule, lr): the study's runs (``results()``) and the pilots not
    stored in it, with final loss and test metric (None: diverged or none)."""
    points = [
        {"schedule": r.schedule, "lr": float(r.lr),
         "final_loss": None if r.diverged else float(r.final_loss),
         "test_metric": None if r.diverged or math.isnan(r.test_metric)
         else float(r.test_metric)}
        for r in df.itertuples()
    ]
    on_grid = {value_key(p["lr"]) for p in points if p["schedule"] == "linear"}
    points += [
        {"schedule": "linear", "lr": p["lr"], "final_loss": p["final_loss"],
         "test_metric": p["test_metric"]}
        for p in pilots if value_key(p["lr"]) not in on_grid
    ]
    return points


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


def _base_settings(task, command, train_fn, options, *, lr, steps, optimizer, workdir,
                   timeout, processes, device) -> tuple[StudySettings, str, str | None, float]:
    """The advice study's settings (its lrs are filled in later), the label of what is
    advised, its metric's name, and the pilot's lr; ValueError for options that do not fit."""
    given = [x for x in (task, command, train_fn) if x is not None]
    if len(given) != 1:
        raise ValueError("give one of a task, a command or a train_fn")
    if task is not None:
        if (workdir, timeout, processes) != (None, None, 1):
            raise ValueError("workdir, timeout and processes are for a command or a train_fn")
        task_obj = resolve_task({"name": task, **options})
        base = StudySettings(
            task, SCHEDULES, task_options=options, lrs=(1.0,),
            steps=task_obj.default_steps if steps is None else check_int("steps", steps, lo=1),
            optimizer=optimizer or task_obj.default_optimizer, device=device,
        )
        return base, task, task_obj.metric_name, float(task_obj.default_lr if lr is None else lr)
    what = "a command" if command is not None else "a train_fn"
    if options:
        raise ValueError(f"task options are for a task, not {what}")
    if steps is None or lr is None:
        raise ValueError(f"{what} needs steps (the schedules' horizon) and lr (the "
                         "pilot's: your code's usual learning rate)")
    if command is None and workdir is not None:
        raise ValueError("workdir is for a command")
    check_int("processes", processes, lo=1)
    spec = command if command is not None else callable_spec(train_fn)
    base = StudySettings(
        spec, SCHEDULES, lrs=(1.0,), steps=check_int("steps", steps, lo=1),
        optimizer=optimizer or "sgd", kind="command" if command is not None else "function",
        timeout=timeout, workdir=(workdir or os.getcwd()) if command is not None else None,
        pilot_lr=float(lr),
    )
    return base, spec, None, float(lr)


def _pilots(base: StudySettings, lr0: float, budget: int, free_runs: int, device: str,
            pool: Any, say: Callable[[str], None], messages: list[str]):
    """Run the pilot at ``lr0``, retried at lr / 4 while it diverges or its norms cannot be
    refined and ``budget`` runs leave two grid points besides ``free_runs``; return the
    pilots' records (the last one refined), the refinement and the final lr."""
    norm = pilot.pilot_norm(base.optimizer)
    pilots: list[dict[str, Any]] = []
    while True:
        settings = dataclasses.replace(base, pilot_lr=lr0)
        say(f"pilot: linear decay at lr {lr0:.4g}, {base.steps} steps")
        res, norms = _pilot_run(settings, lr0, device, pool)
        pilots.append(
            {"schedule": "linear", "lr": lr0, "final_loss": _loss(res),
             "diverged_at": res.diverged_at, "test_metric": res.test_metric, "result": res,
             "start": float(res.curve_loss[0]) if len(res.curve_loss) else math.inf}  # step 0
        )
        if res.diverged or not math.isfinite(res.final_loss):
            why = f"diverged at step {res.diverged_at}"
        else:
            try:
                with warnings.catch_warnings():
                    if base.kind != "batched":  # steps the code did not report are gaps
                        warnings.simplefilter("ignore", RuntimeWarning)
                    out = refine(norms, norm=norm, tau=pilot.TAU, steps=base.steps)
                return pilots, out, lr0
            except ValueError as exc:
                why = f"gave gradient norms that cannot be refined ({exc})"
        if budget - len(pilots) - free_runs < 2:  # a retry must leave two grid points
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


def _pilot_run(settings: StudySettings, lr0: float, device: str,
               pool: Any) -> tuple[RunResult, np.ndarray]:
    """Train the pilot (linear decay at ``lr0``, seed 0): its result and per-step gradient
    norms (the norm ``pilot_norm`` names). A command that fails is a one-line ValueError."""
    cfg = pilot.pilot_config(settings, lr0)
    l1 = pilot.pilot_norm(settings.optimizer) == "l1"
    if settings.kind == "batched":
        from lrlab.train import run_config

        task = resolve_task(settings.task_spec)
        res = run_config(task, cfg, record_grad_norms=True, curve_points=1, device=device)
        return res, np.asarray(res.grad_norm_l1 if l1 else res.grad_norm_l2, dtype=np.float64)
    out = pilot.run_trial(settings, cfg, pool=pool)
    where = f"the pilot run (linear decay, lr {lr0:.4g}, seed 0)"
    if out["status"] != "ok":
        raise ValueError(f"{where} failed: {pilot.last_error_line(out)}")
    res = outcome_result(out)
    if res.diverged:
        return res, np.full(settings.steps, np.nan)
    return res, pilot.trial_norms(settings, out, where)


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
    task: str | None = None,
    budget: int = 12,
    *,
    command: str | None = None,
    train_fn: Callable[[Any], Any] | None = None,
    workdir: str | None = None,
    timeout: float | None = None,
    processes: int = 1,
    task_options: Mapping[str, Any] | None = None,
    lr: float | None = None,
    steps: int | None = None,
    optimizer: str | None = None,
    storage: str = DEFAULT_STORAGE,
    study: str = "lrlab-default",
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
) -> Advice:
    """Advise a schedule and peak lr within ``budget`` runs (see the module docstring) for a
    batched ``task`` (a name or ``path/file.py:builder``) or a ``command``: a shell template
    of your own training script, as ``lrlab sweep --command`` runs it (placeholders ``{lr}``,
    ``{seed}``, ``{schedule}``, ``{steps}``, ...; it reports with ``lrlab.report``, gradient
    norms included for the refined schedule), in ``workdir``, each run killed after
    ``timeout`` seconds, ``processes`` at a time. A command needs ``lr`` and ``steps``, and
    gets no learning-rate-free run (its script picks its optimizer).

    ``lr``: the pilot's lr (default: the task's ``default_lr``); ``optimizer``: default the
    task's ``default_optimizer`` (for a command: ``"sgd"``; an Adam-like name makes the pilot
    read ``grad_norm_l1``); ``say``: called with progress messages.

    Example: ``advise("digits_logreg", budget=8, task_options={"l2": 0.01}).text()``.
    """
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
    base, label, metric_name, lr0 = _base_settings(
        task, command, train_fn, options, lr=lr, steps=steps, optimizer=optimizer,
        workdir=workdir, timeout=timeout, processes=processes, device=device)
    batched, steps, optimizer = base.kind == "batched", base.steps, base.optimizer
    url = storage_url(storage)
    name = study + SUFFIX
    if name in study_names(open_storage(url)):
        raise ValueError(
            f"study {name!r} already exists in {url}; read its advice (lrlab.tune.advise."
            "load_advice) or choose another --study"
        )
    norm = pilot.pilot_norm(optimizer)
    free_runs = 1 if batched else 0  # the learning-rate-free run
    messages: list[str] = []
    if not batched:
        messages.append("No learning-rate-free run: your code picks its own optimizer.")

    with _trial_pool(batched, processes, timeout) as pool:
        # 1. the pilot, retried at lr / 4 while it diverges and the budget allows
        pilots, out, lr0 = _pilots(base, lr0, budget, free_runs, device, pool, say, messages)
        used = len(pilots)
        start = pilots[-1]["start"]
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
            per["constant"] = theory_factor({"constant": Constant()}, steps)[0]
        # 3. the grid, by priority, and the learning-rate-free run, one batch; a diverged pilot
        # that lands on the grid is recorded instead of trained again
        tried = {(p["schedule"], value_key(p["lr"])) for p in pilots}
        cands = grid_candidates(lr0, factor)
        measured = [(s, x) for s, x in cands if (s, value_key(x)) in tried]
        grid = [c for c in cands if c not in measured][: budget - used - free_runs]
        settings = dataclasses.replace(base, lrs=(lr0,), pilot_lr=lr0)
        st = _create(name, url, settings, refined)
        for sched, x in grid + measured:
            st.add_lrs(sched, [x])
        for p in pilots:
            st.record("linear", p["lr"], pilot.PILOT_SEED, p["result"], "pilot")
        free_name = FREE_METHODS[norm]
        extra = []
        if batched:
            extra = [RunConfig(1.0, Constant(), seed=0, steps=steps, optimizer=free_name)]
        say(
            "grid: " + "; ".join(
                f"{sched} at lr {', '.join(f'{x:.4g}' for s2, x in grid if s2 == sched)}"
                for sched in SCHEDULES if any(s2 == sched for s2, _ in grid)
            ) + f" (factor {factor:.3g})"
            + (f" and {free_name} at lr 1, one batch" if batched else "")
        )
        told, free = _train(st, device, pool, extra)
        used += told + free_runs

        # 4. follow-up rounds with the runs left, on the best point's schedule
        while budget - used >= 1:
            sched, new, why = follow_up(st.results(), factor, start)
            if not new or not st.add_lrs(sched, [new]):
                break
            say(f"{why}: adding {sched} at lr {new:.4g}")
            messages.append(f"{why[0].upper()}{why[1:]}: added {sched} at lr {new:.4g}.")
            told, _ = _train(st, device, pool)
            used += told
            if told == 0:
                break

        # 5. the answer
        df = st.results()
        points = _points(df, pilots)
        finite = [p for p in points if p["final_loss"] is not None]
        if not finite:
            raise ValueError("every run diverged; give a smaller --lr")
        best = min(finite, key=lambda p: p["final_loss"])
        same = [p for p in points if p["schedule"] == best["schedule"]]
        sl = [p["lr"] for p in same]
        sv = [math.inf if p["final_loss"] is None else p["final_loss"] for p in same]
        member_steps = used * steps
        advice = Advice(
            task=label,
            task_options=options,
            optimizer=optimizer,
            steps=steps,
            budget=budget,
            schedule=best["schedule"],
            lr=best["lr"],
            final_loss=best["final_loss"],
            test_metric=best["test_metric"],
            metric_name=metric_name,
            within_1pct=_within(sl, sv, 0.01),
            within_5pct=_within(sl, sv, 0.05),
            grid_factor=factor,
            factor_per_schedule=per,
            free=None if not free else {
                "optimizer": free_name, "lr": 1.0, "schedule": "constant",
                "final_loss": _loss(free[0]), "test_metric": free[0].test_metric},
            pilots=[{k: v for k, v in p.items() if k not in ("result", "start")}
                    for p in pilots],
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
    # a run far above the others (it blew up) is drawn at the top, like a diverged one
    top = 10.0 * float(np.median(finite)) if finite else 1.0
    off = False
    for sched, style in ((REFINED, "o-"), ("linear", "s--"), ("constant", "^:")):
        pts = sorted((p for p in advice.points if p["schedule"] == sched), key=lambda p: p["lr"])
        ok = [p for p in pts if p["final_loss"] is not None and p["final_loss"] <= top]
        bad = [p for p in pts if p not in ok]
        if ok:
            ax.plot([p["lr"] for p in ok], [p["final_loss"] for p in ok], style, label=sched)
        if bad:
            ax.plot([p["lr"] for p in bad], [top] * len(bad), "x", color="red", ms=9)
            off = True
    if off:
        ax.plot([], [], "x", color="red", label="diverged or blew up (drawn at the top)")
    ax.axvspan(*advice.within_5pct, color="tab:green", alpha=0.08, label="within 5 %")
    ax.axvspan(*advice.within_1pct, color="tab:green", alpha=0.18, label="within 1 %")
    if advice.free is not None and advice.free["final_loss"] is not None:
        ax.axhline(advice.free["final_loss"], color="gray", ls=":",
                   label=f"{advice.free['optimizer']} (lr-free)")
    ax.plot([advice.lr], [advice.final_loss], "*", ms=16, color="gold", mec="black",
            label=f"recommended: {advice.schedule} @ {advice.lr:.3g}")
    ax.set_xscale("log")
    if finite and min(finite) > 0:
        ax.set_yscale("log")
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
