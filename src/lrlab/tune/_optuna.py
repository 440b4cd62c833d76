"""The few things lrlab needs from Optuna beyond its public API, in one place.

``Study`` keeps every trial of a sweep enqueued (WAITING) and claims them itself, many at a
time, so it reaches under ``optuna.Study``: the storage, a trial's id, the parameters an
enqueued trial carries, and ``optuna.Trial`` built for a claimed id. ``tests/test_tune_optuna``
pins each behaviour relied on here; check it against a new Optuna release before widening the
``optuna<6`` pin.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

#: How often a claim is retried when the database is busy with another writer.
RETRIES = 50


def _storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def fixed_params(t: FrozenTrial) -> dict[str, Any]:
    """The parameters of a trial: suggested ones, or those it was enqueued with."""
    return t.params if t.params else t.system_attrs.get("fixed_params", {})


def _retry(fn, *args: Any) -> Any:
    """Call ``fn``; a busy database (another process writing) is retried, not an error."""
    for attempt in range(RETRIES):
        try:
            return fn(*args)
        except optuna.exceptions.StorageInternalError:
            if attempt == RETRIES - 1:
                raise
        except Exception as exc:  # sqlalchemy's OperationalError: "database is locked"
            if "locked" not in str(exc) or attempt == RETRIES - 1:
                raise
        time.sleep(0.02 * (1 + attempt % 5))
    return None  # pragma: no cover


def _rdb(study: optuna.Study) -> optuna.storages.RDBStorage:
    """The RDB storage under Optuna's caching wrapper."""
    storage = _storage(study)
    return getattr(storage, "_backend", storage)


def _claim_once(study: optuna.Study, trial_id: int) -> bool:
    # One conditional UPDATE: atomic in SQLite and PostgreSQL alike. Optuna's own
    # set_trial_state_values reads the state, then writes it; under SQLite two processes can
    # both read WAITING and both claim the trial.
    table = models.TrialModel
    with _rdb(study).engine.begin() as conn:
        res = conn.execute(
            sqlalchemy.update(table)
            .where(table.trial_id == trial_id, table.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, datetime_start=datetime.now())
        )
        return res.rowcount == 1


def claim(study: optuna.Study, t: FrozenTrial) -> bool:
    """Move a WAITING trial to RUNNING; False if another process claimed or finished it.

    Each trial is claimed by exactly one caller, however many processes ask at once."""
    return bool(_retry(_claim_once, study, t._trial_id))


def fail(study: optuna.Study, t: FrozenTrial) -> None:
    """Mark a RUNNING trial (left by a driver or client that died) as FAIL."""
    _retry(_storage(study).set_trial_state_values, t._trial_id, TrialState.FAIL)


def attach(study: optuna.Study, t: FrozenTrial) -> optuna.Trial:
    """An ``optuna.Trial`` for a trial this process has claimed (to suggest and tell)."""
    return optuna.Trial(study, t._trial_id)


def by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """The trial with this number; ValueError if the study has none."""
    storage = _storage(study)
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    except KeyError:
        raise ValueError(f"study {study.study_name!r} has no trial {number}") from None
    return storage.get_trial(trial_id)


def set_user_attr(study: optuna.Study, t: FrozenTrial, key: str, value: Any) -> None:
    """Set a user attribute of a RUNNING trial known by its frozen record."""
    _retry(_storage(study).set_trial_user_attr, t._trial_id, key, value)
