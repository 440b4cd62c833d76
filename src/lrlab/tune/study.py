"""``Study``: a sweep kept in Optuna RDB storage, driven in batches through ask/tell.

Every trial is one (point, schedule, seed), where a point is a learning rate (grid) or a dict
of hyperparameters (random search). The settings are saved as the study's user attributes; a
study reopened under the same name with other settings is refused before anything is written.

Each COMPLETE trial has params ``schedule``, ``seed`` and ``lr`` (plus the other searched
hyperparameters), value = final loss (+inf if diverged), user attributes ``diverged`` (bool)
and ``run`` = {final_loss, test_metric, diverged_at, curve_steps, curve_loss} (None for
non-finite numbers).

A new batched study first takes the runs other studies in the storage already trained for it
(``lrlab.tune.reuse``: same task, steps, optimizer and options; same schedule, point and seed).
A study whose schedules include ``refined`` runs its pilot (``lrlab.tune.pilot``) once, when
it is created (unless such a study already ran the same pilot), and keeps the derived schedule
and the pilot's description in the user attribute ``lrlab_refined``; reopening or resuming
uses the stored schedule and never re-derives it.

Exactly once: one driver process writes to the storage. It holds the study's lease
(``lrlab.tune.lease``: creating, preparing, training and growing the grid take it; a second
driver is refused with the holder's host, pid and start time). Before it trains, ``prepare``
marks trials left RUNNING by a crash as FAIL and enqueues every trial that has neither completed
nor is waiting, so each (point, schedule, seed) ends with exactly one COMPLETE trial (or one
trial that failed with a recorded reason).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from lrlab._checks import check_int
from lrlab.schedules import Schedule
from lrlab.train.types import RunResult
from lrlab.tune import _optuna, lease, pilot, reuse, trials
from lrlab.tune.executors import CURVE_POINTS, Executor, Progress, resolve_task
from lrlab.tune.settings import REFINED, StudySettings, build_schedule
from lrlab.tune.space import extend_edge

DEFAULT_STORAGE = "sqlite:///lrlab.db"
#: URL schemes whose driver ``lrlab[postgres]`` installs (SQLAlchemy >= 2.1 maps a bare
#: ``postgresql://`` to psycopg 3).
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg")
SETTINGS_ATTR = "lrlab_settings"
EXTRA_ATTR = "lrlab_extra_lrs"
REFINED_ATTR = "lrlab_refined"
RECORDED_ATTR = "lrlab_recorded"
ERROR_ATTR = "error"
Key = tuple[str, int, tuple[tuple[str, str], ...]]


def storage_url(url: str) -> str:
    """A bare path becomes ``sqlite:///path``; URLs (``postgresql://...``) pass through."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"storage must be a non-empty URL or SQLite file path, got {url!r}")
    return url if "://" in url else f"sqlite:///{url}"


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.RDBStorage:
    """Open an Optuna RDB storage; ValueError naming the URL if it cannot be opened.

    ``must_exist``: a SQLite file that does not exist is an error instead of being created.
    """
    url = storage_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if must_exist and not os.path.isfile(path):
            raise ValueError(f"cannot open storage {url!r}: no such file {path!r}")
        kwargs["creator"] = lambda: _sqlite_connect(path)
    try:
        return _rdb_storage(url, kwargs)
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot open"
        if isinstance(exc, ImportError) and url.split("://")[0] in POSTGRES_SCHEMES:
            raise ValueError(
                f"cannot open storage {url!r}: its driver psycopg is not installed: "
                "pip install 'lrlab[postgres]'"
            ) from None
        from lrlab._io import describe_error

        # SQLAlchemy wraps the driver's error (``orig``) and appends a link to its docs;
        # describe_error says it in plain words (read-only, disk full, ...) on one line.
        reason = getattr(exc, "orig", None) or exc
        text = describe_error(exc) or f"{type(reason).__name__}: {reason}"
        raise ValueError(f"cannot open storage {url!r}: {' '.join(text.split())}") from None


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; two processes creating the same new database at once race to
    create its tables (or to stamp its schema version: a unique-constraint error on
    ``alembic_version``), and the loser, which finds them created, tries again."""
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:
            lost = "already exists" in str(exc) or "alembic_version" in str(exc)
            if not lost or attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit survives the
    process being killed (what resume relies on) without an fsync per trial."""
    con = sqlite3.connect(path, timeout=60.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


@contextlib.contextmanager
def plain_storage_errors(url: str):
    """A database that cannot be written (read-only, disk full, locked) is a one-line
    ValueError saying so in plain words, not the driver's or Optuna's wording."""
    from lrlab._io import describe_error, is_database_error

    try:
        yield
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise ValueError(f"storage {url!r}: {describe_error(exc)}") from None


def study_names(rdb: optuna.storages.RDBStorage) -> list[str]:
    """The names of the studies in an opened storage."""
    return [s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)]


def value_key(x: float) -> str:  # the text a searched value names its trial by
    return f"{float(x):.12g}"


def _key(params: dict[str, Any], searched: Sequence[str]) -> Key:
    point = tuple((k, value_key(params[k])) for k in searched)
    return (str(params["schedule"]), int(params["seed"]), point)


def outcome_result(out: dict[str, Any]) -> RunResult:
    """A successful trial outcome (``lrlab.tune.trials``) as a ``RunResult`` (no config; the
    reported curve thinned to ``CURVE_POINTS``)."""
    steps = np.asarray(out["steps"], dtype=np.int64)
    losses = np.asarray(out["losses"], dtype=np.float64)
    if steps.size > CURVE_POINTS:
        keep = np.unique(np.linspace(0, steps.size - 1, CURVE_POINTS).round().astype(int))
        steps, losses = steps[keep], losses[keep]
    return RunResult(
        config=None,  # type: ignore[arg-type]
        final_loss=math.inf if out["loss"] is None else float(out["loss"]),
        test_metric=out["metric"],
        diverged=bool(out["diverged"]),
        diverged_at=out["diverged_at"],
        curve_steps=steps,
        curve_loss=losses,
    )


def _run_attrs(res: RunResult) -> dict[str, Any]:
    """A trial's user attributes ``diverged`` and ``run`` for a training result."""
    diverged = bool(res.diverged) or not math.isfinite(res.final_loss)
    return {"diverged": diverged, "run": {
        "final_loss": None if diverged else float(res.final_loss),
        "test_metric": _jsonable(res.test_metric),
        "diverged_at": None if res.diverged_at is None else int(res.diverged_at),
        "curve_steps": np.asarray(res.curve_steps).astype(int).tolist(),
        "curve_loss": [_jsonable(float(v)) for v in np.asarray(res.curve_loss, dtype=float)],
    }}


def _value(attrs: dict[str, Any]) -> float:
    return math.inf if attrs["diverged"] else float(attrs["run"]["final_loss"])


def _jsonable(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class Study:
    """A stored sweep. Open with ``Study.open(name, settings, storage)``.

    Example::

        settings = StudySettings("digits_logreg", ("cosine", "constant"),
                                 lrs=tuple(log_grid(0.1, 3.2, factor=2)), seeds=(0, 1))
        study = Study.open("demo", settings, "sqlite:///lrlab.db")
        study.run(LocalExecutor())
        df = study.results()
    """

    def __init__(self, study: optuna.Study, settings: StudySettings, url: str = "") -> None:
        self.optuna_study = study
        self.settings = settings
        self.url = url
        #: Runs this study took, when it was created, from studies that had trained them
        #: (``lrlab.tune.reuse``; 0 for a study reopened).
        self.reused = 0

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, name: str, settings: StudySettings | None = None, storage: str = DEFAULT_STORAGE
    ) -> Study:
        """Create the study ``name`` with ``settings``, or reopen it.

        Reopening with ``settings`` that differ from the stored ones raises ValueError (nothing
        is written). ``settings=None`` loads an existing study with its stored settings.
        A new study first builds its task (a task that cannot be built, e.g. an import spec
        whose builder fails, is a ValueError and no study is created); with ``refined`` among
        the schedules it then runs the pilot (a pilot that diverges is a ValueError, and no
        study is created).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"study name must be a non-empty string, got {name!r}")
        if settings is not None and not isinstance(settings, StudySettings):
            raise ValueError("settings must be a StudySettings or None")
        rdb = open_storage(storage, must_exist=settings is None)
        url = storage_url(storage)
        names = study_names(rdb)
        if name not in names and settings is not None:
            with plain_storage_errors(url):
                lease.hold(rdb.engine, url, name)  # one creator: a second one is refused here
            names = study_names(rdb)  # created by a driver that finished meanwhile?
        if name not in names:
            if settings is None:
                known = ", ".join(names) or "none"
                raise ValueError(
                    f"no study named {name!r} in {storage_url(storage)} (studies: {known})"
                )
            found: list[Study] = []
            refined = None
            if settings.kind == "batched":
                # a task that cannot be built creates no study
                task = resolve_task(settings.task_spec)
                found = reuse.donors(rdb, settings, names)
                refined = reuse.refined_from(found, settings, task.default_lr)
            if refined is None and REFINED in settings.schedules:
                refined = pilot.derive_refined(settings)
            with plain_storage_errors(url):
                study = optuna.create_study(storage=rdb, study_name=name, direction="minimize")
                study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
                if refined is not None:
                    study.set_user_attr(REFINED_ATTR, refined)
                out = cls(study, settings, url)
                out.reused = reuse.copy_runs(out, found)
                out.prepare()  # every trial waits in the storage from the start (lrlab ask)
            return out
        study = optuna.load_study(study_name=name, storage=rdb)
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            # a driver may be creating it this very moment: then its lease names it
            lease.hold(rdb.engine, url, name)
            lease.release(url, name)
            raise ValueError(f"study {name!r} exists but was not made by lrlab (no settings)")
        have = StudySettings.from_dict(stored)
        if settings is not None:
            diff = have.differences(settings)
            if diff:
                raise ValueError(
                    f"study {name!r} already exists with different settings ("
                    + "; ".join(diff)
                    + "); use another study name, or reopen it with its stored settings "
                    "(settings=None; lrlab sweep --resume)"
                )
        out = cls(study, have, url)
        if REFINED in have.schedules and REFINED_ATTR not in study.user_attrs:
            # created by a process that stopped between creating the study and storing it
            out.hold()
            study.set_user_attr(REFINED_ATTR, pilot.derive_refined(have))
        return out

    # -- the driver's lease (lrlab.tune.lease) ------------------------------------------------
    def hold(self) -> None:
        """Take this study's lease for this process (kept until ``close``); ValueError naming
        the holder if another live driver has it. Training and preparing take it themselves."""
        lease.hold(_optuna._rdb(self.optuna_study).engine, self.url, self.name)

    def close(self) -> None:
        """Release this process's lease of the study (other drivers may then run it)."""
        lease.release(self.url, self.name)

    @property
    def name(self) -> str:
        return self.optuna_study.study_name

    @property
    def extra_lrs(self) -> dict[str, list[float]]:
        """Grid values added by the edge rule, per schedule."""
        return dict(self.optuna_study.user_attrs.get(EXTRA_ATTR, {}))

    @property
    def refined(self) -> dict[str, Any] | None:
        """The stored refined schedule (``{"schedule": dict, "pilot": description}``), if any."""
        return self.optuna_study.user_attrs.get(REFINED_ATTR)

    def schedules(self) -> dict[str, Schedule]:
        """Label -> the schedule its trials train with (``refined``: the stored one)."""
        stored = self.refined
        refined = None if stored is None else pilot.refined_schedule(stored)
        s = self.settings
        return {label: build_schedule(label, s.steps, refined=refined) for label in s.schedules}

    # -- the trial set ------------------------------------------------------------------------
    def _distributions(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schedule": CategoricalDistribution(list(self.settings.schedules)),
            "seed": IntDistribution(0, 2**31 - 1),
        }
        for k in self.settings.searched:
            d[k] = FloatDistribution(1e-12, 1e12, log=True)
        return d

    def expected(self) -> dict[Key, dict[str, Any]]:
        """Every trial the study must complete: key -> params."""
        out: dict[Key, dict[str, Any]] = {}
        extra = self.extra_lrs
        for sched in self.settings.schedules:
            for point in self.settings.points(extra.get(sched, ())):
                for seed in self.settings.seeds:
                    params = {**point, "schedule": sched, "seed": seed}
                    out[_key(params, self.settings.searched)] = params
        return out

    def _trial_key(self, t: optuna.trial.FrozenTrial) -> Key:
        return _key(_optuna.fixed_params(t), self.settings.searched)

    def counts(self) -> dict[str, int]:
        """Number of trials by state name (``COMPLETE``, ``WAITING``, ``RUNNING``, ``FAIL``)."""
        c = Counter(t.state.name for t in self.optuna_study.get_trials(deepcopy=False))
        return dict(c)

    def complete_counts(self) -> Counter:
        """How many COMPLETE trials each key has (exactly one each once the study is done)."""
        done = self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return Counter(self._trial_key(t) for t in done)

    def prepare(self, *, retry_failed: bool = False) -> int:
        """Fail stale RUNNING trials, enqueue missing ones; return how many are waiting.

        A trial that failed with a recorded reason (the user's code raised, was killed or
        timed out; ``tell(failed=True)``) counts as done unless ``retry_failed``; one left
        RUNNING by a driver that died is always trained again.
        """
        self.hold()
        trials = self.optuna_study.get_trials(deepcopy=False)
        for t in trials:
            if t.state == TrialState.RUNNING:
                _optuna.fail(self.optuna_study, t)
        have = {
            self._trial_key(t)
            for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.WAITING)
            or (not retry_failed and t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs)
        }
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        for key, params in self.expected().items():
            if key not in have:
                self.optuna_study.enqueue_trial(params)
                waiting += 1
        return waiting

    # -- running ------------------------------------------------------------------------------
    def run(
        self,
        executor: Executor,
        *,
        batch_size: int = 0,
        progress: Progress | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        retry_failed: bool = False,
    ) -> int:
        """Train every pending trial; return how many were told now (complete or failed).

        Trials are asked all at once, split into batches of ``batch_size`` (0: one batch per
        worker of the executor, ``executor.parallelism``; in-process that is one batch of
        everything, the fastest on one machine) and told as each batch finishes.
        ``progress(done, total)`` counts member-steps; ``on_batch(told, pending)`` follows the
        trial count.
        """
        batch_size = check_int("batch_size", batch_size, lo=0)
        if self.settings.kind == "external":
            raise ValueError(
                f"the trials of study {self.name!r} are run by an external launcher: "
                "lrlab ask / lrlab tell"
            )
        if self.prepare(retry_failed=retry_failed) == 0:
            return 0
        asked = self._claim_waiting()
        if self.settings.kind != "batched":
            return self._run_trials(executor, asked, on_batch)
        n = len(asked)
        asked.sort(key=lambda t: (t.params["schedule"], t.params["seed"], t.params["lr"]))
        size = batch_size or math.ceil(n / max(1, executor.parallelism))
        groups = [asked[i : i + size] for i in range(0, n, size)]
        built = self.schedules()
        batches = [
            [
                self.settings.config(
                    self._point(t.params),
                    t.params["schedule"],
                    t.params["seed"],
                    refined=built.get(REFINED),
                )
                for t in g
            ]
            for g in groups
        ]
        told = 0
        pending = set(range(len(groups)))
        try:
            for i, results in executor.map_batches(self.settings.task_spec, batches, progress):
                for trial, res in zip(groups[i], results, strict=True):
                    self._tell(trial, res)
                told += len(results)
                pending.discard(i)
                if on_batch is not None:
                    on_batch(told, n)
        except BaseException:
            for i in pending:
                for trial in groups[i]:
                    # skip_if_finished: the error may have come after some were told
                    self.optuna_study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        return told

    def _claim_waiting(self) -> list[optuna.Trial]:
        """Move every WAITING trial to RUNNING and suggest its enqueued parameters.

        This is what ``optuna.Study.ask`` does for one enqueued trial, done for all of them
        with one read of the trial list (``ask`` rereads it per trial).
        """
        out = []
        for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if _optuna.claim(self.optuna_study, t):
                out.append(self._suggest(t))
        return out

    def _suggest(self, t: optuna.trial.FrozenTrial) -> optuna.Trial:
        """Suggest a claimed trial's enqueued parameters (so they become its params)."""
        trial = _optuna.attach(self.optuna_study, t)
        for name, dist in self._distributions().items():
            if isinstance(dist, CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                trial.suggest_int(name, dist.low, dist.high)
            else:
                trial.suggest_float(name, dist.low, dist.high, log=True)
        return trial

    def _point(self, params: dict[str, Any]) -> dict[str, float]:
        return {k: float(params[k]) for k in self.settings.searched}

    def _tell(self, trial: optuna.Trial, res: RunResult) -> None:
        attrs = _run_attrs(res)
        # two attributes, not one per field: each is a database round trip
        trial.set_user_attr("diverged", attrs["diverged"])
        trial.set_user_attr("run", attrs["run"])
        self.optuna_study.tell(trial, _value(attrs))

    def record(self, schedule: str, lr: float, seed: int, res: RunResult, source: str) -> bool:
        """Store a run trained outside the study as the COMPLETE trial of (``schedule``,
        ``lr``, ``seed``) when the grid expects that trial and none is stored; return whether
        it was stored. The trial's user attribute ``lrlab_recorded`` names ``source`` (e.g.
        ``"pilot"``). Grid studies only."""
        self.hold()
        params = {"schedule": schedule, "seed": int(seed), "lr": float(lr)}
        key = _key(params, self.settings.searched)
        expected = self.expected()
        if key not in expected:
            return False
        for t in self.optuna_study.get_trials(deepcopy=False):
            if self._trial_key(t) != key:
                continue
            if t.state == TrialState.WAITING and _optuna.claim(self.optuna_study, t):
                trial = self._suggest(t)
                trial.set_user_attr(RECORDED_ATTR, source)
                self._tell(trial, res)
                return True
            if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING):
                return False
        params = expected[key]
        dists = self._distributions()
        attrs = _run_attrs(res)
        self.optuna_study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=_value(attrs),
            user_attrs={**attrs, RECORDED_ATTR: source},
        ))
        return True

    def add_lrs(self, schedule: str, lrs: Sequence[float]) -> list[float]:
        """Add grid values for one schedule (``run`` then trains them); return the new ones."""
        if self.settings.random:
            raise ValueError("a random-search study has no grid to add to")
        if schedule not in self.settings.schedules:
            raise ValueError(f"schedule {schedule!r} is not in this study")
        self.hold()
        extra = self.extra_lrs
        have = set(self.settings.lrs) | set(extra.get(schedule, ()))
        new = sorted({float(x) for x in lrs} - have)
        if new:
            extra[schedule] = sorted(set(extra.get(schedule, [])) | set(new))
            self.optuna_study.set_user_attr(EXTRA_ATTR, extra)
        return new

    # -- trials of the user's code (lrlab.tune.trials) ------------------------------------------
    def trial_spec(
        self, params: dict[str, Any], number: int, files: str, built: dict[str, Schedule]
    ) -> dict[str, Any]:
        """The spec a worker trains (``lrlab.tune.trials``) for a trial with ``params``."""
        name = params["schedule"]
        return self.settings.trial_spec(
            number, self._point(params), params["seed"], name, built[name], files
        )

    def _run_trials(
        self,
        executor: Any,
        asked: list[optuna.Trial],
        on_batch: Callable[[int, int], None] | None,
    ) -> int:
        built = self.schedules()
        asked.sort(key=lambda t: (t.params["schedule"], t.params["seed"], t.params["lr"]))
        told, n = 0, len(asked)
        with tempfile.TemporaryDirectory(prefix="lrlab-trials-") as files:
            specs = [self.trial_spec(t.params, t.number, files, built) for t in asked]
            pending = set(range(n))
            try:
                for i, outcome in executor.map_trials(specs):
                    self._tell_outcome(asked[i], outcome)
                    pending.discard(i)
                    told += 1
                    if on_batch is not None:
                        on_batch(told, n)
            except BaseException:
                for i in pending:
                    self.optuna_study.tell(asked[i], state=TrialState.FAIL, skip_if_finished=True)
                raise
        return told

    def _tell_outcome(self, trial: optuna.Trial, out: dict[str, Any]) -> None:
        """Store a trial's outcome: COMPLETE with its result, or FAIL with its reason."""
        if out["status"] != "ok":
            trial.set_user_attr(ERROR_ATTR, str(out["error"]))
            self.optuna_study.tell(trial, state=TrialState.FAIL)
            return
        self._tell(trial, outcome_result(out))

    def ask(self, files: str) -> dict[str, Any] | None:
        """Claim the next waiting trial for an external launcher; None when none is waiting.

        Returns ``{"study", "trial", "lr", "seed", "schedule" (path of the schedule's JSON,
        written under ``files``), "schedule_name", "steps", **other searched values}``. Each
        trial is handed out once, also to concurrent callers on other machines.
        """
        built = self.schedules()
        os.makedirs(files, exist_ok=True)
        for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if _optuna.claim(self.optuna_study, t):
                trial = self._suggest(t)
                spec = self.trial_spec(trial.params, trial.number, files, built)
                path = trials.schedule_file(files, spec["schedule_name"], spec["schedule"])
                return {
                    "study": self.name,
                    "trial": trial.number,
                    **spec["params"],
                    "schedule": path,
                    "schedule_name": spec["schedule_name"],
                    "steps": spec["steps"],
                }
        return None

    def tell(
        self,
        number: int,
        loss: float | None = None,
        *,
        metric: float | None = None,
        failed: str | None = None,
    ) -> None:
        """Record the result of trial ``number`` claimed by ``ask``: its final ``loss``
        (non-finite: diverged) and ``metric``, or ``failed`` = the reason it failed.

        ValueError if the trial is not running (never claimed, already told, or re-queued by
        a resume after its claim went stale)."""
        t = _optuna.by_number(self.optuna_study, check_int("trial", number, lo=0))
        if t.state != TrialState.RUNNING:
            raise ValueError(
                f"trial {number} of study {self.name!r} is {t.state.name}, not RUNNING: it was "
                "never claimed with ask, is already told, or was re-queued by a resume"
            )
        if (failed is None) == (loss is None):
            raise ValueError("tell needs either a loss or failed=<reason>")
        trial = _optuna.attach(self.optuna_study, t)
        if failed is not None:
            out = trials.failed(str(failed) or "reported failed")
        else:
            out = trials.outcome(loss=float(loss), metric=metric)
        self._tell_outcome(trial, out)

    def failures(self) -> pd.DataFrame:
        """One row per (point, schedule, seed) whose latest trial failed with a reason (and
        that is not complete or queued again): trial, schedule, seed, lr, error."""
        rows = []
        done = {
            self._trial_key(t)
            for t in self.optuna_study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
            )
        }
        latest: dict[Key, optuna.trial.FrozenTrial] = {}
        for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if ERROR_ATTR in t.user_attrs and t.params and self._trial_key(t) not in done:
                latest[self._trial_key(t)] = t  # trials come in number order: the last wins
        for t in latest.values():
            p = t.params
            rows.append(
                {
                    "trial": t.number,
                    "schedule": p["schedule"],
                    "seed": int(p["seed"]),
                    "lr": float(p["lr"]),
                    "error": t.user_attrs[ERROR_ATTR],
                }
            )
        return pd.DataFrame(rows, columns=["trial", "schedule", "seed", "lr", "error"])

    # -- the edge rule ------------------------------------------------------------------------
    def extend_edges(self, points: int = 2) -> dict[str, list[float]]:
        """Apply the edge rule per schedule to the completed grid; return the values added.

        A schedule whose lowest mean loss sits at the edge of its grid gets ``points`` more
        grid values past that edge (``run`` then trains them). Random-search studies have no
        grid: ValueError.
        """
        if self.settings.random:
            raise ValueError("the edge rule needs a learning-rate grid; this study is random")
        self.hold()
        df = self.results()
        extra = self.extra_lrs
        added: dict[str, list[float]] = {}
        for sched in self.settings.schedules:
            grid = sorted(set(self.settings.lrs) | set(extra.get(sched, ())))
            sub = df[df["schedule"] == sched]
            if len(grid) < 2 or sub.empty:
                continue
            loss = sub.assign(final_loss=sub["final_loss"].where(~sub["diverged"], np.inf))
            mean = loss.groupby("lr")["final_loss"].mean()
            values = [float(mean.get(g, np.inf)) for g in grid]
            new = [float(x) for x in extend_edge(grid, values, points=points)]
            if new:
                added[sched] = new
                extra[sched] = sorted(set(extra.get(sched, [])) | set(new))
        if added:
            self.optuna_study.set_user_attr(EXTRA_ATTR, extra)
        return added

    # -- reading ------------------------------------------------------------------------------
    def results(self) -> pd.DataFrame:
        """One row per COMPLETE trial: trial, schedule, seed, lr, weight_decay, final_loss
        (NaN if diverged), test_metric, diverged, diverged_at; sorted by schedule, lr, seed."""
        rows = []
        weight_decay = self.settings.resolved_options["weight_decay"]
        for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            p, a = t.params, t.user_attrs.get("run", {})
            rows.append(
                {
                    "trial": t.number,
                    "schedule": p["schedule"],
                    "seed": int(p["seed"]),
                    "lr": float(p["lr"]),
                    "weight_decay": float(p.get("weight_decay", weight_decay)),
                    "final_loss": np.nan if a.get("final_loss") is None else a["final_loss"],
                    "test_metric": np.nan if a.get("test_metric") is None else a["test_metric"],
                    "diverged": bool(t.user_attrs.get("diverged", False)),
                    "diverged_at": a.get("diverged_at"),
                }
            )
        cols = [
            "trial",
            "schedule",
            "seed",
            "lr",
            "weight_decay",
            "final_loss",
            "test_metric",
            "diverged",
            "diverged_at",
        ]
        df = pd.DataFrame(rows, columns=cols)
        order = {s: i for i, s in enumerate(self.settings.schedules)}
        df = df.sort_values(
            ["schedule", "lr", "seed"],
            key=lambda c: c.map(order) if c.name == "schedule" else c,
            kind="stable",
        ).reset_index(drop=True)
        return df

    def curves(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Trial number -> (steps, subsampled minibatch loss; NaN after divergence)."""
        out = {}
        for t in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            run = t.user_attrs.get("run", {})
            s = np.asarray(run.get("curve_steps", []), dtype=np.int64)
            v = np.array([np.nan if x is None else x for x in run.get("curve_loss", [])])
            out[t.number] = (s, v.astype(np.float64))
        return out
