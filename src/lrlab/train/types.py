"""The trainer's public contract: what a run is asked to do and what it returns.

``lrlab.tune`` depends on these types only (plus ``run_batched``), never on trainer internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.schedules import Schedule

#: Batched optimizer names. ``schedulefree_sgd``: Schedule-Free SGD (``momentum`` is its
#: interpolation beta, in (0, 1); the run is evaluated at the averaged point x).
#: ``dadapt_sgd``: D-Adaptation SGD (``lr`` multiplies the estimated step; ``momentum`` is beta).
#: ``schedulefree_adamw``: Schedule-Free AdamW (as ``schedulefree_sgd``, Adam-preconditioned).
#: ``prodigy``: Prodigy (``lr`` multiplies the estimated step; ``momentum`` is beta1).
OPTIMIZERS = ("sgd", "momentum", "adam", "schedulefree_sgd", "schedulefree_adamw", "dadapt_sgd",
              "prodigy")
#: The learning-rate-free methods among ``OPTIMIZERS``.
LR_FREE = ("schedulefree_sgd", "schedulefree_adamw", "dadapt_sgd", "prodigy")
#: The Schedule-Free methods: their parameters hold y, and a run is evaluated at the average x.
SCHEDULE_FREE = ("schedulefree_sgd", "schedulefree_adamw")


@dataclass(frozen=True)
class RunConfig:
    """One training run: peak learning rate ``lr`` times ``schedule``, for ``steps`` steps.

    ``steps=None`` means the task's default. A schedule with a horizon must have
    ``schedule.horizon == steps`` (resolved against the task default by the trainer).
    ``optimizer`` is one of ``OPTIMIZERS`` (the trainers may accept more names).
    """

    lr: float
    schedule: Schedule
    seed: int = 0
    steps: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", check_real("lr", self.lr, 0.0, lo_open=True))
        object.__setattr__(self, "seed", check_int("seed", self.seed, lo=0))
        if self.steps is not None:
            object.__setattr__(self, "steps", check_int("steps", self.steps, lo=1))
        if not isinstance(self.schedule, Schedule):
            kind = type(self.schedule).__name__
            raise ValueError(f"schedule must be a lrlab Schedule, got {kind}")
        check_real("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        check_real("weight_decay", self.weight_decay, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (the schedule as its own dict)."""
        return {
            "lr": self.lr,
            "schedule": self.schedule.to_dict(),
            "seed": self.seed,
            "steps": self.steps,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        d["schedule"] = Schedule.from_dict(d["schedule"])
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
