"""The ``refined`` schedule of a study: one pilot run, then ``lrlab.refine``.

The pilot trains with linear decay ``Linear(steps)``, seed 0 (``PILOT_SEED``) and the study's
steps, at peak lr ``settings.pilot_lr``:

- batched studies (``kind="batched"``): the study's task, optimizer and optimizer options, trained
  by ``lrlab.train.run_config`` (a batch of one through ``run_batched``; float32, one thread) on
  ``settings.device`` with ``record_grad_norms=True``; ``pilot_lr`` None means the task's
  ``default_lr``. A pilot that diverges is a ``ValueError``.
- function and command studies: one trial (number -1) of the user's code, run through
  ``LocalTrials(1)`` (a worker process for a function, a subprocess for a command; also when the
  study's trials run on Ray), with ``pilot_lr`` (required). Its norms are those it reports per
  step (``grad_norm`` or ``grad_norm_l1``); steps it does not report are NaN, which
  ``lrlab.refine`` interpolates (its warning is silenced). A pilot that fails, diverges or reports
  no finite norm is a ``ValueError``.

Which norm, from ``pilot_norm(settings.optimizer)``:

- ``"l1"`` (``grad_norm_l1``, weights g^-1) when the optimizer is in ``L1_OPTIMIZERS``, the
  batched methods marked ``coordinatewise`` (Adam-like preconditioning): adam, adamw,
  schedulefree_adamw, prodigy;
- ``"l2"`` (``grad_norm_l2``, or a trial's ``grad_norm``; weights g^-2) for every other name:
  sgd, momentum, schedulefree_sgd, dadapt_sgd. For function and command trials the optimizer is
  the user's own and ``settings.optimizer`` only names its family, to pick the norm.

The norms go to ``lrlab.refine.refine`` with the default tau (``TAU``) and ``steps`` = the study's
steps; norms that cannot be refined are a ``ValueError``. ``Study`` runs the pilot once, when the
study is created, and stores the result; a reopened or resumed study uses the stored schedule and
never runs the pilot again.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from lrlab.refine import refine
from lrlab.schedules import Linear, Schedule
from lrlab.train.methods import BATCHED_METHODS
from lrlab.train.types import RunConfig
from lrlab.tune.settings import StudySettings

PILOT_SEED = 0
L1_OPTIMIZERS = tuple(n for n, m in BATCHED_METHODS.items() if m.coordinatewise)
#: ``lrlab.refine``'s default median-window fraction, the one the pilot's refinement uses.
TAU = float(inspect.signature(refine).parameters["tau"].default)


def pilot_norm(optimizer: str) -> str:
    """``"l1"`` for Adam-like (coordinate-wise) optimizers, ``"l2"`` for SGD-like ones."""
    return "l1" if optimizer in L1_OPTIMIZERS else "l2"


def pilot_config(settings: StudySettings, default_lr: float) -> RunConfig:
    """The pilot's ``RunConfig`` (``default_lr``: used when ``settings.pilot_lr`` is None)."""
    lr = settings.pilot_lr if settings.pilot_lr is not None else default_lr
    return RunConfig(
        lr=lr,
        schedule=Linear(steps=settings.steps),
        seed=PILOT_SEED,
        steps=settings.steps,
        optimizer=settings.optimizer,
        options=settings.optimizer_options,
    )


def pilot_norms(settings: StudySettings) -> tuple[RunConfig, np.ndarray]:
    """Train the pilot; return its config and its per-step gradient norms (the norm that
    ``pilot_norm(settings.optimizer)`` names). ValueError if the pilot diverged."""
    if settings.kind in ("function", "command"):
        return _trial_pilot(settings)
    from lrlab.train import run_config
    from lrlab.tune.executors import resolve_task

    task = resolve_task(settings.task_spec)
    cfg = pilot_config(settings, task.default_lr)
    res = run_config(task, cfg, record_grad_norms=True, curve_points=1, device=settings.device)
    if res.diverged:
        raise ValueError(
            f"the pilot run for the refined schedule (linear decay, lr {cfg.lr:g}, seed "
            f"{cfg.seed}) diverged at step {res.diverged_at}; choose a smaller pilot_lr "
            "(lrlab sweep --pilot-lr)"
        )
    norms = res.grad_norm_l1 if pilot_norm(settings.optimizer) == "l1" else res.grad_norm_l2
    return cfg, np.asarray(norms, dtype=np.float64)


def _trial_pilot(settings: StudySettings) -> tuple[RunConfig, np.ndarray]:
    """The pilot of a study of trial functions or commands: one trial (trial number -1) with
    linear decay, ``pilot_lr`` and seed 0, run like the others (a worker process or a
    subprocess); its reported ``grad_norm`` (l2) or ``grad_norm_l1`` per step."""
    cfg = pilot_config(settings, settings.pilot_lr)
    out = run_trial(settings, cfg)
    where = f"the pilot run for the refined schedule (linear decay, lr {cfg.lr:g}, seed 0)"
    if out["status"] != "ok":
        raise ValueError(f"{where} failed: {last_error_line(out)}")
    if out["diverged"]:
        raise ValueError(f"{where} diverged; choose a smaller pilot_lr (--pilot-lr)")
    return cfg, trial_norms(settings, out, where)


def run_trial(settings: StudySettings, cfg: RunConfig, name: str = "linear",
              pool: Any = None) -> dict[str, Any]:
    """Run ``cfg`` (lr, schedule labelled ``name``, seed) once as a trial of ``settings``
    (trial number -1, in a worker process or a subprocess, under the study's timeout) on
    ``pool`` (a trial executor; default: one of its own); return its outcome."""
    import tempfile

    from lrlab.tune.trial_executors import LocalTrials

    with tempfile.TemporaryDirectory(prefix="lrlab-pilot-") as files:
        spec = settings.trial_spec(-1, {"lr": cfg.lr}, cfg.seed, name, cfg.schedule, files)
        if pool is not None:
            ((_, out),) = list(pool.map_trials([spec]))
        else:
            with LocalTrials(1, timeout=settings.timeout) as ex:
                ((_, out),) = list(ex.map_trials([spec]))
    return out


def last_error_line(out: dict[str, Any]) -> str:
    """The last line of a failed trial's error, or ``"no reason"``."""
    text = str(out.get("error") or "").strip()
    return text.splitlines()[-1] if text else "no reason"


def trial_norms(settings: StudySettings, out: dict[str, Any], where: str) -> np.ndarray:
    """The per-step gradient norms a trial reported (NaN where it reported none);
    ValueError naming ``where`` if it reported none at all."""
    norm = pilot_norm(settings.optimizer)
    key = "grad_norms_l1" if norm == "l1" else "grad_norms"
    steps = np.asarray(out["steps"], dtype=np.int64)
    vals = np.asarray(out[key], dtype=np.float64)
    if not np.isfinite(vals).any():
        arg = "grad_norm_l1" if norm == "l1" else "grad_norm"
        raise ValueError(
            f"{where} reported no {arg}: report it each step (trial.report(step, {arg}=...) "
            f"or lrlab.report(step=..., {arg}=...)) for the refined schedule"
        )
    norms = np.full(settings.steps, np.nan)
    ok = (steps >= 0) & (steps < settings.steps)
    norms[steps[ok]] = vals[ok]
    return norms


def derive_refined(settings: StudySettings) -> dict[str, Any]:
    """Run the pilot and refine: ``{"schedule": FromArray dict, "pilot": description}``.

    The description holds the pilot's settings (schedule, lr, seed, steps, optimizer, norm,
    tau) and the refinement report's ``peak_step`` and ``anneal_fraction``.
    Example: ``Schedule.from_dict(derive_refined(settings)["schedule"])``.
    """
    cfg, norms = pilot_norms(settings)
    norm = pilot_norm(settings.optimizer)
    try:
        with warnings.catch_warnings():
            if settings.kind != "batched":  # steps the user's code did not report are gaps
                warnings.simplefilter("ignore", RuntimeWarning)
            out = refine(norms, norm=norm, tau=TAU, steps=settings.steps)
    except ValueError as exc:
        raise ValueError(
            f"the pilot run for the refined schedule (linear decay, lr {cfg.lr:g}) gave gradient "
            f"norms that cannot be refined ({exc}); choose another pilot_lr (--pilot-lr)"
        ) from None
    pilot = {
        "schedule": "linear",
        "lr": cfg.lr,
        "seed": cfg.seed,
        "steps": settings.steps,
        "optimizer": settings.optimizer,
        "norm": norm,
        "tau": TAU,
        "peak_step": out.report.peak_step,
        "anneal_fraction": out.report.anneal_fraction,
    }
    return {"schedule": out.schedule.to_dict(), "pilot": pilot}


def refined_schedule(stored: dict[str, Any]) -> Schedule:
    """The schedule of a ``derive_refined`` result (as stored with a study)."""
    return Schedule.from_dict(stored["schedule"])


def describe(stored: dict[str, Any]) -> str:
    """One line saying which pilot produced the refined schedule."""
    p = stored["pilot"]
    return (
        f"refined: lrlab.refine ({p['norm']} norms, tau {p['tau']:g}) of a pilot run with "
        f"linear decay, {p['optimizer']}, lr {p['lr']:g}, seed {p['seed']}, {p['steps']} "
        f"steps; peak at step {p['peak_step']}, anneal fraction {p['anneal_fraction']:.2f}"
    )
