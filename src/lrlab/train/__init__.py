"""One-run and batched training (see ``lrlab.train.types`` for the contract)."""

from lrlab.train.types import OPTIMIZERS, RunConfig, RunResult

__all__ = ["OPTIMIZERS", "RunConfig", "RunResult"]
