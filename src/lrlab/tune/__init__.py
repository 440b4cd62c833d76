"""Sweeps: search spaces, stored studies, executors and robustness analysis.

Example::

    from lrlab.tune import LocalExecutor, Study, StudySettings, log_grid, robustness

    settings = StudySettings("digits_logreg", ("constant", "cosine", "poly2"),
                             lrs=tuple(log_grid(0.0625, 16, factor=2)), seeds=(0, 1, 2))
    study = Study.open("demo", settings, "sqlite:///lrlab.db")
    study.run(LocalExecutor())
    print(robustness(study.results()))
"""

from lrlab.tune.advise import Advice, advise, load_advice
from lrlab.tune.analysis import (
    RHOS,
    fit_exponent,
    predicted_exponent,
    robustness,
    seed_table,
    tolerable_factor,
)
from lrlab.tune.executors import Executor, LocalExecutor, RayExecutor, make_executor, train_batch
from lrlab.tune.pilot import derive_refined
from lrlab.tune.settings import (
    DEFAULT_SCHEDULES,
    REFINED,
    STUDY_SCHEDULES,
    StudySettings,
    build_schedule,
)
from lrlab.tune.space import LogUniform, edge_side, extend_edge, grid_factor, log_grid
from lrlab.tune.study import DEFAULT_STORAGE, Study, open_storage
from lrlab.tune.trial_executors import LocalTrials, RayTrials, TrialExecutor
from lrlab.tune.trial_sweep import sweep
from lrlab.tune.trials import Trial

__all__ = [
    "Advice",
    "DEFAULT_SCHEDULES",
    "DEFAULT_STORAGE",
    "REFINED",
    "RHOS",
    "STUDY_SCHEDULES",
    "Executor",
    "LocalExecutor",
    "LocalTrials",
    "LogUniform",
    "RayExecutor",
    "RayTrials",
    "Study",
    "StudySettings",
    "Trial",
    "TrialExecutor",
    "advise",
    "build_schedule",
    "derive_refined",
    "edge_side",
    "extend_edge",
    "fit_exponent",
    "grid_factor",
    "load_advice",
    "log_grid",
    "make_executor",
    "open_storage",
    "predicted_exponent",
    "robustness",
    "seed_table",
    "sweep",
    "tolerable_factor",
    "train_batch",
]
