"""What a study sweeps: ``StudySettings`` and the schedule specs it is written in.

A schedule spec is the short string of ``Schedule.from_spec`` (``lrlab.schedules.spec``): a
registered schedule name (``constant``, ``inverse_sqrt``, ``cosine``, ``linear``, ...),
``poly<p>`` for ``Polynomial(power=p)``, or ``name:key=value,...`` for other arguments
(``cosine:s_min=0.1``). Schedules with a horizon are built with ``steps`` equal to the study's
number of steps.

``refined`` is the schedule ``lrlab.refine`` derives from a pilot run's gradient norms (see
``lrlab.tune.pilot``); it has no closed form, so ``build_schedule`` returns the one it is given.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab._checks import check_int, check_real
from lrlab.schedules import Schedule, known_specs, registry
from lrlab.schedules.spec import split_spec
from lrlab.tasks.spec import is_task_spec, resolve_task_spec
from lrlab.train.methods import batched_method, check_options
from lrlab.train.types import RunConfig, legacy_options
from lrlab.tune.space import LogUniform
from lrlab.tune.trials import PLACEHOLDERS, command_fields

#: How a study's trials are trained: lrlab's batched trainer on a ``Task``, the user's trial
#: function or command (``lrlab.tune.trials``), or by an external launcher (``lrlab ask/tell``).
KINDS = ("batched", "function", "command", "external")
EXECUTION_FIELDS = ("device", "timeout", "workdir")
DEFAULT_SCHEDULES = ("constant", "inverse_sqrt", "cosine", "linear", "poly2")
REFINED = "refined"
#: The schedules of the built-in study (``lrlab sweep``): the closed-form ones and ``refined``.
STUDY_SCHEDULES = (*DEFAULT_SCHEDULES, REFINED)
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def build_schedule(spec: str, steps: int, *, refined: Schedule | None = None) -> Schedule:
    """The schedule a spec names, with horizon ``steps`` where the schedule has one.

    ``refined`` is returned for the spec ``"refined"`` (its horizon must be ``steps``); it
    comes from a pilot run (``lrlab.tune.pilot.derive_refined``, kept by ``Study``).

    Example: ``build_schedule("poly2", 500)`` -> ``Polynomial(steps=500, power=2)``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"schedule spec must be a non-empty string, got {spec!r}")
    steps = check_int("steps", steps, lo=1)
    spec = spec.strip()
    if spec == REFINED:
        if refined is None:
            raise ValueError(
                "schedule 'refined' is derived from a pilot run: open the study "
                "(Study.open) and use Study.schedules(), or pass refined="
            )
        if not isinstance(refined, Schedule) or refined.horizon != steps:
            raise ValueError(f"refined must be a Schedule with horizon steps={steps}")
        return refined
    name, _ = split_spec(spec)
    if name not in registry():
        names = [*known_specs(), REFINED]
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(names)}")
    return Schedule.from_spec(spec, steps)


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Everything that defines a study's trials; saved with the study and compared on reopen.

    ``task`` is a registered task name or an import spec ``pkg.mod:builder`` /
    ``path/to/file.py:builder`` (a file's path is stored absolute, so a resumed study and every
    worker load the same file); ``task_options`` are passed to the builder through
    ``lrlab.tasks.get_task`` (e.g. ``{"l2": 0.01}``).
    ``pilot_lr``: the peak lr of the pilot run that derives the ``refined`` schedule (None: the
    task's ``default_lr``); only allowed when ``schedules`` contains ``refined``.
    ``optimizer`` is a batched method (``lrlab.train.OPTIMIZERS``) and ``optimizer_options``
    its options (e.g. ``{"weight_decay": 1e-4}``), validated against the method; every trial
    uses them. Trials are the product ``points x schedules x seeds``. ``points`` come from
    ``lrs`` (a grid) or, when ``random`` is given, from ``LogUniform(bounds)`` sampled ``n``
    times with ``seed``: ``random = {"bounds": {...}, "n": int, "seed": int}``. A point's keys
    other than ``lr`` (e.g. ``weight_decay``) override the optimizer option of that name.

    ``kind`` says how the trials train (``KINDS``): ``"batched"`` (lrlab's batched trainer on
    the task ``task`` names), ``"function"`` (``task`` is the import spec of a trial function,
    ``lrlab.tune.sweep``), ``"command"`` (``task`` is a shell command template,
    ``lrlab sweep --command``) or ``"external"`` (``task`` is a label; ``lrlab ask``/``tell``).
    For the last three the optimizer is the user's code's own: ``optimizer`` only names its
    family for the ``refined`` pilot's norm, and ``pilot_lr`` is required with ``refined``.
    ``timeout`` (seconds per trial) and ``workdir`` (where commands run) apply to function and
    command trials; like ``device`` they are never a difference between stored and requested
    settings.

    Example: ``StudySettings("digits_logreg", ("cosine",), lrs=(0.5, 1.0), seeds=(0,), steps=500)``.
    """

    task: str
    schedules: tuple[str, ...]
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    lrs: tuple[float, ...] = ()
    seeds: tuple[int, ...] = (0,)
    steps: int = 500
    optimizer: str = "sgd"
    optimizer_options: dict[str, float] = dataclasses.field(default_factory=dict)
    random: dict[str, Any] | None = None
    pilot_lr: float | None = None
    device: str = "cpu"
    kind: str = "batched"
    timeout: float | None = None
    workdir: str | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.task, str) or not self.task.strip():
            what = {
                "batched": "a task name or an import spec",
                "function": "the import spec of a trial function",
                "command": "a command template",
                "external": "a label",
            }[self.kind]
            raise ValueError(f"task must be {what}, got {self.task!r}")
        if self.kind == "batched" and is_task_spec(self.task):
            set_("task", resolve_task_spec(self.task))
        elif self.kind == "function":
            set_("task", resolve_task_spec(self.task))
        if not isinstance(self.task_options, dict):
            raise ValueError("task_options must be a dict of get_task options")
        if self.kind != "batched" and self.task_options:
            raise ValueError(f"task_options are for batched tasks, not {self.kind} trials")
        if self.timeout is not None:
            set_("timeout", check_real("timeout", self.timeout, 0.0, lo_open=True))
        if self.workdir is not None:
            if not isinstance(self.workdir, str) or not os.path.isdir(self.workdir):
                raise ValueError(f"workdir must be an existing folder, got {self.workdir!r}")
            set_("workdir", os.path.abspath(self.workdir))
        set_("task_options", dict(sorted(self.task_options.items())))
        set_("steps", check_int("steps", self.steps, lo=1))
        if isinstance(self.schedules, str) or not isinstance(self.schedules, Sequence):
            raise ValueError("schedules must be a sequence of schedule specs")
        specs = tuple(s.strip() if isinstance(s, str) else s for s in self.schedules)
        if not specs:
            raise ValueError("schedules must name at least one schedule")
        for s in specs:
            if s != REFINED:
                build_schedule(s, self.steps)
        if len(set(specs)) != len(specs):
            raise ValueError(f"schedules must be distinct, got {list(specs)}")
        set_("schedules", specs)
        seeds = tuple(check_int("seeds", s, lo=0) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(
                f"seeds must be a non-empty list of distinct integers >= 0, got {seeds}"
            )
        set_("seeds", seeds)
        method = batched_method(self.optimizer)
        set_("optimizer_options", check_options(self.optimizer, self.optimizer_options))
        if self.pilot_lr is not None:
            if REFINED not in specs:
                raise ValueError("pilot_lr is only used by the 'refined' schedule; add it or drop")
            set_("pilot_lr", check_real("pilot_lr", self.pilot_lr, 0.0, lo_open=True))
        if REFINED in specs and self.kind == "external":
            raise ValueError(
                "the 'refined' schedule needs a pilot run, which lrlab cannot start for external "
                "trials; sweep a command or a trial function instead"
            )
        if REFINED in specs and self.kind != "batched" and self.pilot_lr is None:
            raise ValueError(f"the 'refined' schedule of {self.kind} trials needs pilot_lr")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ValueError(f"device must be cpu, cuda, cuda:N, mps or auto, got {self.device!r}")
        lrs = tuple(check_real("lrs", x, 0.0, lo_open=True) for x in self.lrs)
        if self.random is None:
            if not lrs:
                raise ValueError("the learning-rate grid is empty: give at least one lr")
            if len(set(lrs)) != len(lrs):
                raise ValueError("the learning-rate grid has repeated values")
            set_("lrs", tuple(sorted(lrs)))
        else:
            if lrs:
                raise ValueError("give either lrs (a grid) or random (a random search), not both")
            r = dict(self.random)
            if set(r) != {"bounds", "n", "seed"}:
                raise ValueError("random must have exactly the keys bounds, n, seed")
            if not isinstance(r["bounds"], Mapping) or "lr" not in r["bounds"]:
                raise ValueError(
                    "random bounds must include 'lr' (every trial needs a learning rate), "
                    f"got {r['bounds']!r}"
                )
            space = LogUniform(r["bounds"])
            for key, (lo, hi) in space.bounds.items():
                if key != "lr":
                    for v in (lo, hi):
                        method.resolve({**self.optimizer_options, key: v})
            r = {
                "bounds": space.to_dict(),
                "n": check_int("random n", r["n"], lo=1),
                "seed": check_int("random seed", r["seed"], lo=0),
            }
            set_("random", r)
            set_("lrs", ())
        if self.kind == "command":
            self._check_command()

    def _check_command(self) -> None:
        """Every placeholder is known, and the ones that tell trials apart are there."""
        fields = command_fields(self.task)
        known = set(PLACEHOLDERS) | set(self.searched)
        unknown = sorted(fields - known)
        if unknown:
            raise ValueError(
                f"command {self.task!r}: unknown placeholder(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        need = [k for k in self.searched if k not in fields]
        if len(self.seeds) > 1 and "seed" not in fields:
            need.append("seed")
        if len(self.schedules) > 1 and not fields & {"schedule", "schedule_name"}:
            need.append("schedule")
        if need:
            raise ValueError(
                f"command {self.task!r} must use " + ", ".join(f"{{{k}}}" for k in need)
                + " (else its trials would all be the same run)"
            )

    @property
    def task_spec(self) -> dict[str, Any]:
        """``{"name": task, **task_options}``: what executors pass to ``get_task`` (which
        takes registered names and import specs alike)."""
        return {"name": self.task, **self.task_options}

    @property
    def searched(self) -> tuple[str, ...]:
        """The hyperparameters a trial carries besides schedule and seed."""
        return tuple(self.random["bounds"]) if self.random else ("lr",)

    def points(self, extra_lrs: Sequence[float] = ()) -> list[dict[str, float]]:
        """The hyperparameter points (``extra_lrs``: grid values added by the edge rule)."""
        if self.random:
            return LogUniform(self.random["bounds"]).sample(self.random["n"], self.random["seed"])
        return [{"lr": float(x)} for x in sorted(set(self.lrs) | set(extra_lrs))]

    def config(
        self,
        point: dict[str, float],
        schedule: str,
        seed: int,
        *,
        refined: Schedule | None = None,
    ) -> RunConfig:
        """The ``RunConfig`` of one trial (``refined``: the study's refined schedule).

        ``point["lr"]`` is the peak lr; every other key of ``point`` overrides the optimizer
        option of that name (ValueError if the method has no such option).
        """
        extra = {k: v for k, v in point.items() if k != "lr"}
        return RunConfig(
            lr=point["lr"],
            schedule=build_schedule(schedule, self.steps, refined=refined),
            seed=seed,
            steps=self.steps,
            optimizer=self.optimizer,
            options={**self.optimizer_options, **extra},
        )

    def trial_spec(
        self,
        number: int,
        point: dict[str, float],
        seed: int,
        schedule_name: str,
        schedule: Schedule,
        files: str,
    ) -> dict[str, Any]:
        """The spec a worker trains for one function or command trial (``lrlab.tune.trials``):
        ``point`` holds the searched values (``lr`` included)."""
        return {
            "kind": self.kind,
            "target": self.task,
            "number": int(number),
            "params": {**point, "seed": int(seed)},
            "schedule_name": schedule_name,
            "schedule": schedule.to_dict(),
            "steps": self.steps,
            "timeout": self.timeout,
            "workdir": self.workdir,
            "files": files,
        }

    @property
    def resolved_options(self) -> dict[str, float]:
        """Every option of the optimizer: ``optimizer_options`` with the method's defaults."""
        return batched_method(self.optimizer).resolve(self.optimizer_options)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["task_options"] = dict(self.task_options)
        d["optimizer_options"] = dict(self.optimizer_options)
        d["schedules"], d["lrs"], d["seeds"] = (
            list(self.schedules),
            list(self.lrs),
            list(self.seeds),
        )
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> StudySettings:
        d = dict(d)
        for k in ("schedules", "lrs", "seeds"):
            d[k] = tuple(d.get(k, ()))
        if "momentum" in d or "weight_decay" in d:  # stored before optimizer options existed
            old = legacy_options(d.get("optimizer", "sgd"), d)
            d["optimizer_options"] = {**old, **d.get("optimizer_options", {})}
        return StudySettings(**d)

    def differences(self, other: StudySettings) -> list[str]:
        """Human-readable ``key: stored -> requested`` lines where two settings differ.

        ``device``, ``timeout`` and ``workdir`` say where and how long the runs train, not what
        they are, so they are never a difference.
        """
        a, b = self.to_dict(), other.to_dict()
        out = []
        for k in a:
            if k not in EXECUTION_FIELDS and not _same(a[k], b[k]):
                out.append(f"{k}: stored {a[k]!r}, requested {b[k]!r}")
        return out


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    return x == y
