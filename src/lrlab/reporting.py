"""What a training script swept by ``lrlab sweep --command`` reports back: ``lrlab.report``.

lrlab runs each command trial with two environment variables set:

- ``LRLAB_RESULT``: a file the script's ``lrlab.report(...)`` calls append JSON lines to;
- ``LRLAB_TRIAL``: the trial's parameters as JSON (``lr``, ``seed``, ``schedule`` (the path of
  the schedule's JSON), ``schedule_name``, ``steps``, ``trial``, and any other searched value).

``report(step=t, loss=..., grad_norm=...)`` records one point of the training curve (and the
gradient norms a ``refined`` schedule's pilot needs); ``report(loss=...)`` without ``step`` is
the trial's result. A script that cannot import lrlab may instead print its result as the last
JSON line of its standard output, ``{"loss": 0.31, "metric": 0.93}``. Run by hand (no
``LRLAB_RESULT``), ``report(loss=...)`` prints that line and step reports are ignored.

This module imports neither torch nor optuna: a script pays nothing for it.

Example::

    import lrlab
    for step in range(steps):
        ...
        lrlab.report(step=step, loss=loss.item(), grad_norm=norm)
    lrlab.report(loss=final_loss, metric=accuracy)
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

__all__ = ["RESULT_ENV", "TRIAL_ENV", "parse_stdout", "read_reports", "report", "trial_params"]

RESULT_ENV = "LRLAB_RESULT"
TRIAL_ENV = "LRLAB_TRIAL"
_FIELDS = ("loss", "metric", "grad_norm", "grad_norm_l1")


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # also a 0-d tensor or numpy scalar
    except (TypeError, ValueError):
        raise ValueError(f"lrlab.report: {name} must be a number, got {value!r}") from None


def report(
    loss: Any = None,
    *,
    step: int | None = None,
    metric: Any = None,
    grad_norm: Any = None,
    grad_norm_l1: Any = None,
) -> None:
    """Report a curve point (with ``step``) or the trial's result (without it).

    Args:
        loss: the minibatch loss at ``step``, or the final loss (required without ``step``;
            non-finite means the run diverged).
        step: the optimizer step (0-indexed) the values belong to; None for the result.
        metric: a test metric (result) or any metric at ``step``.
        grad_norm, grad_norm_l1: the global l2 / l1 gradient norm at ``step`` (what
            ``GradNormRecorder`` logs); the ``refined`` schedule's pilot reads them.
    """
    row: dict[str, Any] = {}
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"lrlab.report: step must be an integer >= 0, got {step!r}")
        row["step"] = step
    elif loss is None:
        raise ValueError("lrlab.report: the result needs loss= (or pass step= for a curve point)")
    for name, value in zip(_FIELDS, (loss, metric, grad_norm, grad_norm_l1), strict=True):
        v = _number(name, value)
        if v is not None:
            row[name] = v
    path = os.environ.get(RESULT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    elif step is None:
        print(json.dumps(row), flush=True)


def trial_params() -> dict[str, Any] | None:
    """The parameters of the trial this process runs (``LRLAB_TRIAL``), or None outside one."""
    text = os.environ.get(TRIAL_ENV)
    return None if not text else json.loads(text)


def read_reports(path: str) -> tuple[dict[str, float] | None, list[dict[str, float]]]:
    """``(result, rows)`` from a result file: the last report without a step, and the step
    reports in the order written. Lines that are not JSON objects are skipped."""
    result, rows = None, []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return None, []
    for line in lines:
        d = _object(line)
        if d is None:
            continue
        if "step" in d:
            rows.append(d)
        elif "loss" in d:
            result = d
    return result, rows


def parse_stdout(text: str) -> dict[str, float] | None:
    """The last line of ``text`` that is a JSON object with a ``loss``, or None."""
    for line in reversed(text.splitlines()):
        d = _object(line)
        if d is not None and "loss" in d and "step" not in d:
            return d
    return None


def _object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        d = json.loads(line)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "step" and isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
        elif k in _FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
        elif k in _FIELDS and v is None:
            out[k] = math.nan
    return out
