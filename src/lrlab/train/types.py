"""The trainer's public contract: what a run is asked to do and what it returns.

``lrlab.tune`` depends on these types only (plus ``run_batched``), never on trainer internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.schedules import Schedule
from lrlab.train.methods import BATCHED_METHODS, batched_method, check_options

#: Batched optimizer names, the keys of ``lrlab.train.methods.BATCHED_METHODS`` (each method's
#: options and formulas are in its unit there).
OPTIMIZERS = tuple(BATCHED_METHODS)
#: The learning-rate-free methods among ``OPTIMIZERS``: ``lr`` multiplies the step the method
#: estimates (D-Adaptation, Prodigy), or is Schedule-Free's step size.
LR_FREE = tuple(n for n, m in BATCHED_METHODS.items() if m.lr_free)
#: The Schedule-Free methods: their parameters hold y, and a run is evaluated at the average x.
SCHEDULE_FREE = tuple(n for n, m in BATCHED_METHODS.items() if m.evaluates_average)
#: What the removed ``momentum`` field of a stored configuration meant for each method.
_LEGACY_MOMENTUM = {"momentum": "momentum", "adam": "beta1", "schedulefree_sgd": "beta",
                    "schedulefree_adamw": "beta1", "dadapt_sgd": "momentum", "prodigy": "beta1"}


def legacy_options(optimizer: str, d: dict[str, Any]) -> dict[str, float]:
    """Pop the ``momentum`` and ``weight_decay`` of a dict stored before options existed and
    return them as that optimizer's options (values equal to the defaults left out)."""
    old = {}
    if "momentum" in d and optimizer in _LEGACY_MOMENTUM:
        old[_LEGACY_MOMENTUM[optimizer]] = d["momentum"]
    d.pop("momentum", None)
    if "weight_decay" in d:
        old["weight_decay"] = d.pop("weight_decay")
    defaults = batched_method(optimizer).resolve({})
    return {k: v for k, v in old.items() if v != defaults[k]}


@dataclass(frozen=True)
class RunConfig:
    """One training run: peak learning rate ``lr`` times ``schedule``, for ``steps`` steps.

    ``steps=None`` means the task's default. A schedule with a horizon must have
    ``schedule.horizon == steps`` (resolved against the task default by the trainer).
    ``optimizer`` is one of ``OPTIMIZERS``; ``options`` are its options (e.g.
    ``{"beta1": 0.95, "weight_decay": 0.01}`` for ``adam``; see the method's unit in
    ``lrlab.train.methods``), the defaults fill in the rest. Unknown names or values out of range
    raise ValueError. ``options`` is stored as a plain dict sorted by name.

    Example: ``RunConfig(0.01, Cosine(steps=500), optimizer="adamw",
    options={"weight_decay": 0.1})``.
    """

    lr: float
    schedule: Schedule
    seed: int = 0
    steps: int | None = None
    optimizer: str = "sgd"
    options: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", check_real("lr", self.lr, 0.0, lo_open=True))
        object.__setattr__(self, "seed", check_int("seed", self.seed, lo=0))
        if self.steps is not None:
            object.__setattr__(self, "steps", check_int("steps", self.steps, lo=1))
        if not isinstance(self.schedule, Schedule):
            kind = type(self.schedule).__name__
            raise ValueError(f"schedule must be a lrlab Schedule, got {kind}")
        object.__setattr__(self, "options", check_options(self.optimizer, self.options))

    def __hash__(self) -> int:
        return hash((self.lr, self.schedule, self.seed, self.steps, self.optimizer,
                     tuple(self.options.items())))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (the schedule as its own dict)."""
        return {
            "lr": self.lr,
            "schedule": self.schedule.to_dict(),
            "seed": self.seed,
            "steps": self.steps,
            "optimizer": self.optimizer,
            "options": dict(self.options),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        d["schedule"] = Schedule.from_dict(d["schedule"])
        if "momentum" in d or "weight_decay" in d:
            d["options"] = {**legacy_options(d.get("optimizer", "sgd"), d), **d.get("options", {})}
        return RunConfig(**d)


@dataclass
class RunResult:
    """What one run produced.

    - ``final_loss``: the task's full training objective at the last iterate (NaN if diverged).
    - ``test_metric``: the task's held-out metric at the last iterate (e.g. accuracy), or None.
    - ``diverged`` / ``diverged_at``: whether (and at which step) the loss became non-finite;
      a diverged run stops updating there.
    - ``curve_steps`` / ``curve_loss``: the minibatch training loss subsampled to a bounded
      number of points.
    - ``grad_norm_l2`` / ``grad_norm_l1``: one global gradient norm per step, when recorded.
    """

    config: RunConfig
    final_loss: float
    test_metric: float | None
    diverged: bool
    diverged_at: int | None = None
    curve_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    curve_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grad_norm_l2: np.ndarray | None = None
    grad_norm_l1: np.ndarray | None = None
