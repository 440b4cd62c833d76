"""One-run and batched training (see ``lrlab.train.types`` for the contract).

Example::

    from lrlab.schedules import Cosine
    from lrlab.train import RunConfig, run, run_batched

    res = run("digits_logreg", lr=0.5, schedule=Cosine(steps=500))
    many = run_batched("digits_logreg", [RunConfig(lr, Cosine(steps=500), seed=s)
                                         for lr in (0.1, 0.5) for s in range(3)])
    wd = run_batched("digits_logreg", [RunConfig(0.01, Cosine(steps=500), optimizer="adamw",
                                                 options={"weight_decay": w})
                                       for w in (0.0, 0.1)])
"""

from lrlab.train.api import run, run_batched, run_config
from lrlab.train.methods import BATCHED_METHODS, batched_method
from lrlab.train.types import LR_FREE, OPTIMIZERS, SCHEDULE_FREE, RunConfig, RunResult

__all__ = [
    "BATCHED_METHODS",
    "LR_FREE",
    "OPTIMIZERS",
    "SCHEDULE_FREE",
    "RunConfig",
    "RunResult",
    "batched_method",
    "run",
    "run_batched",
    "run_config",
]
