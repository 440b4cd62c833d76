"""One-run and batched training (see ``lrlab.train.types`` for the contract).

Example::

    from lrlab.schedules import Cosine
    from lrlab.train import RunConfig, run, run_batched

    res = run("digits_logreg", lr=0.5, schedule=Cosine(steps=500))
    many = run_batched("digits_logreg", [RunConfig(lr, Cosine(steps=500), seed=s)
                                         for lr in (0.1, 0.5) for s in range(3)])
"""

from lrlab.train.api import run, run_batched, run_config
from lrlab.train.types import OPTIMIZERS, RunConfig, RunResult

__all__ = ["OPTIMIZERS", "RunConfig", "RunResult", "run", "run_batched", "run_config"]
