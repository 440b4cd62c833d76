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
    known_f_star, convex = _task_constants(s.task_spec) if s.kind == "batched" else (0.0, None)
    return write_report(
        study.results(),
        out_dir,
        schedules=schedules,
        steps=s.steps,
        title=f"lrlab sweep: {s.task}"
        + (f", {s.optimizer}" if s.kind == "batched" else ""),
        description=desc,
        f_star=known_f_star if f_star is None else f_star,
        slack=slack,
        theory=s.optimizer not in LR_FREE,
        failures=failures,
        convex=convex if s.optimizer == "sgd" and f_star is None else None,
    )


def _task_constants(task_spec: str | dict) -> tuple[float, tuple[float, float] | None]:
    """The task's f* (0.0 when unknown) and, for a convex Lipschitz task that knows them and
    its exact f*, (D, G) (``Task.info["D"]``, ``Task.info["G"]``)."""
    spec = {"name": task_spec} if isinstance(task_spec, str) else dict(task_spec)
    task = get_task(spec.pop("name"), **spec)
    if task.f_star is None:
        return 0.0, None
    D, G = task.info.get("D"), task.info.get("G")
    return float(task.f_star), (float(D), float(G)) if D is not None and G is not None else None
