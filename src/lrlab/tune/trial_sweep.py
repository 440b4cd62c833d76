"""``lrlab.tune.sweep``: lrlab's grid, stored study and report for a training function.

Example::

    from lrlab.tune import sweep

    def train(trial):                      # at module level, importable by workers
        ...                                # train with trial.lr, trial.seed, trial.scheduler(opt)
        return final_loss

    if __name__ == "__main__":
        study = sweep(train, lrs=log_grid(1e-3, 1, factor=2), steps=1000,
                      schedules=("linear", "cosine"), seeds=(0, 1), processes=4)
        print(robustness(study.results()))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from lrlab._checks import check_int
from lrlab.tasks.spec import callable_spec
from lrlab.tune.settings import StudySettings
from lrlab.tune.study import DEFAULT_STORAGE, Study


def sweep(
    train_fn: Callable[[Any], Any],
    *,
    steps: int,
    lrs: Sequence[float] = (),
    random: dict[str, Any] | None = None,
    schedules: Sequence[str] = ("linear", "cosine", "constant"),
    seeds: Sequence[int] = (0,),
    study: str = "lrlab-trials",
    storage: str = DEFAULT_STORAGE,
    processes: int = 1,
    timeout: float | None = None,
    edge_rounds: int = 2,
    pilot_lr: float | None = None,
    optimizer: str = "sgd",
    executor: str = "local",
    ray_address: str | None = None,
    retry_failed: bool = False,
    report: str | os.PathLike | None = None,
    on_trial: Callable[[int, int], None] | None = None,
) -> Study:
    """Train ``train_fn(trial)`` for every (lr, schedule, seed), store it, return the study.

    Each call of ``train_fn`` gets a ``lrlab.tune.trials.Trial`` (``lr``, ``seed``,
    ``schedule``, ``scheduler(optimizer)``, ``report``, ``should_stop``) and returns the final
    loss or ``{"loss": ..., "metric": ...}``. Trials run in worker processes (``processes`` at
    a time, or Ray with ``executor="ray"``): one that raises, dies or exceeds ``timeout``
    seconds is a failed trial, stored with its reason, and the others go on. Calling
    ``sweep`` again with the same arguments resumes the study: every trial ends complete (or
    failed with a reason) exactly once; ``retry_failed`` trains the failed ones again.

    Args:
        train_fn: a module-level function (workers import it by name; a script's function
            needs the ``if __name__ == "__main__":`` guard).
        steps: the schedules' horizon: the number of optimizer steps a trial takes.
        lrs: the peak learning-rate grid (or ``random``, as ``StudySettings.random``).
        schedules: schedule specs (``lrlab.tune.build_schedule``); ``refined`` runs a pilot
            trial (linear decay at ``pilot_lr``, seed 0) whose reported gradient norms
            (``trial.report(step, grad_norm=...)``; ``grad_norm_l1`` when ``optimizer`` is
            Adam-like) give the refined schedule.
        seeds: one trial per seed and point.
        study, storage: the study's name and its Optuna RDB storage (SQLite path or URL).
        edge_rounds: rounds of the edge rule: a best lr on the grid's edge adds two points
            past it (0: never).
        optimizer: the family of the optimizer ``train_fn`` uses (``sgd`` or an Adam-like
            name such as ``adamw``); it only picks the norm the pilot reads.
        report: a folder to write the study's report to (``lrlab.report.study_report``).
        on_trial: ``on_trial(told, total)`` after each trial of a round.

    Returns:
        The ``Study``: ``results()``, ``failures()``, ``curves()``.
    """
    from lrlab.tune.trial_executors import LocalTrials, RayTrials

    settings = StudySettings(
        task=callable_spec(train_fn),
        schedules=tuple(schedules),
        lrs=tuple(float(x) for x in lrs),
        random=random,
        seeds=tuple(seeds),
        steps=steps,
        optimizer=optimizer,
        pilot_lr=pilot_lr,
        kind="function",
        timeout=timeout,
    )
    edge_rounds = check_int("edge_rounds", edge_rounds, lo=0)
    if executor == "local":
        ex = LocalTrials(processes, timeout=timeout)
    elif executor == "ray":
        ex = RayTrials(ray_address, local_cpus=max(1, processes), timeout=timeout)
    else:
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    with ex:
        st = Study.open(study, settings, storage)
        try:
            for round_ in range(edge_rounds + 1):
                st.run(ex, on_batch=on_trial, retry_failed=retry_failed and round_ == 0)
                if round_ == edge_rounds or settings.random or not st.extend_edges():
                    break
        finally:
            st.close()
    if report is not None:
        from lrlab.report import study_report

        study_report(st, report)
    return st
