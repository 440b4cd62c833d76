"""``study_report``: the report of a stored study."""

from __future__ import annotations

import os

from lrlab.report.html import Report, write_report
from lrlab.tasks import get_task
from lrlab.train.types import LR_FREE
from lrlab.tune.pilot import describe
from lrlab.tune.study import Study


def study_report(
    study: Study, out_dir: str | os.PathLike, *, slack: float = 0.02, f_star: float | None = None
) -> Report:
    """Write the report folder of ``study`` (see ``write_report``).

    ``f_star`` defaults to the study task's own ``f_star`` (0.0, the floor of a non-negative
    loss, when the task does not know it).
    Example: ``study_report(Study.open("lrlab-default"), "lrlab-report")``.
    """
    s = study.settings
    schedules = study.schedules()
    c = study.counts()
    options = ", ".join(
        f"{k} searched" if k in s.searched else f"{k} {v:g}"
        for k, v in s.resolved_options.items()
    )
    failures = study.failures()
    what = {"function": "trial function", "command": "command", "external": "external trials"}
    desc = [
        f"study {study.name!r}: {what.get(s.kind, 'task')} {s.task}, {s.steps} steps, "
        f"seeds {list(s.seeds)}",
        *([f"optimizer {s.optimizer} ({options})"] if s.kind == "batched" else []),
        *(
            [
                f"{s.optimizer} is learning-rate free: lr multiplies its own step, so the grid "
                "measures its sensitivity to that multiplier (no theory exponent)"
            ]
            if s.optimizer in LR_FREE
            else []
        ),
        f"trials: {c.get('COMPLETE', 0)} complete, {len(failures)} failed"
        + (" (listed below), " if len(failures) else ", ")
        + f"{c.get('FAIL', 0) - len(failures)} interrupted and re-run, "
        f"{c.get('WAITING', 0) + c.get('RUNNING', 0)} pending",
    ]
    if study.refined is not None:
        desc.append(describe(study.refined))
    return write_report(
        study.results(),
        out_dir,
        schedules=schedules,
        steps=s.steps,
        title=f"lrlab sweep: {s.task}"
        + (f", {s.optimizer}" if s.kind == "batched" else ""),
        description=desc,
        f_star=(_task_f_star(s.task_spec) if s.kind == "batched" else 0.0)
        if f_star is None
        else f_star,
        slack=slack,
        theory=s.optimizer not in LR_FREE,
        failures=failures,
    )


def _task_f_star(task_spec: str | dict) -> float:
    spec = {"name": task_spec} if isinstance(task_spec, str) else dict(task_spec)
    task = get_task(spec.pop("name"), **spec)
    return 0.0 if task.f_star is None else float(task.f_star)
