"""Runs a new study need not train: those another study in the same storage already trained.

Two batched studies share runs when they train the same task (name or spec, and options) for
the same number of steps with the same optimizer, options and searched hyperparameters. A run
of theirs is then fixed by its schedule (the schedule itself, not its label: ``refined`` only
matches a refined schedule equal to this study's), its point (lr and any other searched value,
to 12 significant digits) and its seed, so the stored result is the result.

When a batched study is created, ``Study.open`` asks ``donors`` for such studies. A ``refined``
schedule whose pilot one of them already ran (same pilot lr, seed, steps, optimizer, norm and
tau) is taken from it instead of running the pilot again (``refined_from``); then ``copy_runs``
adds every COMPLETE run of theirs that the new study expects to it as a COMPLETE trial (user
attribute ``lrlab_reused_from``: the study it came from), and ``prepare`` enqueues the rest.
``lrlab advise`` stores its runs in a study of its own, so a later ``lrlab sweep`` of the same
task reuses its pilot's refined schedule and every advised run that lies on the sweep's grid.

Example::

    Study.open("first", StudySettings("iris_logreg", ("linear",), lrs=(0.5, 1.0), seeds=(0,)))
    ...  # trained
    s = Study.open("second", StudySettings("iris_logreg", ("linear", "cosine"), lrs=(0.5, 1.0),
                                           seeds=(0, 1)))
    s.reused   # 2: linear at 0.5 and 1.0, seed 0
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from lrlab.tune import _optuna, pilot
from lrlab.tune.settings import REFINED, StudySettings

REUSED_ATTR = "lrlab_reused_from"
#: The pilot's settings that decide its refined schedule (``pilot.derive_refined``).
PILOT_KEYS = ("schedule", "lr", "seed", "steps", "optimizer", "norm", "tau")


def identity(settings: StudySettings) -> dict[str, Any] | None:
    """What two studies must share for a run of one to be a run of the other (None: runs of
    the user's own code, which lrlab cannot vouch for)."""
    if settings.kind != "batched":
        return None
    return {
        "task": settings.task,
        "task_options": settings.task_options,
        "steps": settings.steps,
        "optimizer": settings.optimizer,
        "optimizer_options": settings.optimizer_options,
        "searched": list(settings.searched),
    }


def donors(rdb: optuna.storages.RDBStorage, settings: StudySettings,
           names: Sequence[str]) -> list[Any]:
    """The lrlab studies among ``names`` (as ``lrlab.tune.Study``) whose runs are runs of
    ``settings``; a study still being created (its refined schedule not stored yet) is not."""
    from lrlab.tune.study import REFINED_ATTR, SETTINGS_ATTR, Study

    want = identity(settings)
    if want is None:
        return []
    out = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=rdb)
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            continue
        try:
            have = StudySettings.from_dict(stored)
        except (ValueError, TypeError):
            continue  # settings of another version: not comparable, not reused
        if REFINED in have.schedules and REFINED_ATTR not in study.user_attrs:
            continue
        if _same_json(identity(have), want):
            out.append(Study(study, have))
    return out


def refined_from(found: Sequence[Any], settings: StudySettings,
                 default_lr: float) -> dict[str, Any] | None:
    """A donor's stored refined schedule derived from the pilot this study would run, if any."""
    if REFINED not in settings.schedules:
        return None
    cfg = pilot.pilot_config(settings, default_lr)
    want = {"schedule": "linear", "lr": cfg.lr, "seed": cfg.seed, "steps": settings.steps,
            "optimizer": settings.optimizer, "norm": pilot.pilot_norm(settings.optimizer),
            "tau": pilot.TAU}
    for d in found:
        stored = d.refined
        if stored and _same_json({k: stored["pilot"].get(k) for k in PILOT_KEYS}, want):
            return stored
    return None


def copy_runs(study: Any, found: Sequence[Any]) -> int:
    """Add the donors' COMPLETE runs that ``study`` (a new ``lrlab.tune.Study``) expects as
    COMPLETE trials of it; return how many."""
    from lrlab.tune.study import _key

    mine = {_canonical(s): label for label, s in study.schedules().items()}
    expected = study.expected()
    searched = study.settings.searched
    dists = study._distributions()
    have: set = set()
    for d in found:
        theirs = {label: _canonical(s) for label, s in d.schedules().items()}
        for t in d.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            params = dict(_optuna.fixed_params(t))
            label = mine.get(theirs.get(params.get("schedule"), ""))
            if label is None:
                continue
            params["schedule"] = label
            key = _key(params, searched)
            if key not in expected or key in have:
                continue
            params = expected[key]  # this study's own values, exactly
            study.optuna_study.add_trial(optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                value=t.value,
                user_attrs={**t.user_attrs, REUSED_ATTR: d.name},
            ))
            have.add(key)
    return len(have)


def _canonical(schedule: Any) -> str:
    return json.dumps(schedule.to_dict(), sort_keys=True)


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
