"""What the Hugging Face and Lightning callbacks share; imports neither framework.

* ``LrDriver``: writes ``peak * s(t)`` into param groups, the values ``ScheduleLR`` sets;
* ``NormLog``: per-step gradient norms and loss in the ``GradNormRecorder`` log format;
* ``innermost`` / ``mode_switchers`` / ``set_mode``: unwrap optimizer wrappers and switch the
  Schedule-Free ones (anything with callable ``train()`` and ``eval()``) between modes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

from lrlab._checks import check_int, check_real
from lrlab.refine import LOG_COLUMNS
from lrlab.schedules import Schedule
from lrlab.torchx.scheduler import ScheduleLR


def innermost(optimizer: Any) -> Any:
    """Follow ``.optimizer`` through wrappers (accelerate's, Lightning's) to the torch optimizer."""
    seen = 0
    while isinstance(getattr(optimizer, "optimizer", None), Optimizer) and seen < 16:
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


def has_modes(optimizer: Any) -> bool:
    """True for a Schedule-Free style optimizer: callable ``train()`` and ``eval()``."""
    train, evaluate = getattr(optimizer, "train", None), getattr(optimizer, "eval", None)
    return callable(train) and callable(evaluate)


def mode_switchers(optimizers: Iterable[Any]) -> list[Any]:
    """The innermost optimizers among ``optimizers`` that have ``train()``/``eval()``."""
    out = []
    for opt in optimizers:
        if opt is None:
            continue
        inner = innermost(opt)
        if has_modes(inner) and all(inner is not o for o in out):
            out.append(inner)
    return out


def set_mode(optimizers: Iterable[Any], train: bool) -> None:
    """Call ``train()`` (``train=True``) or ``eval()`` on every Schedule-Free optimizer given."""
    for opt in mode_switchers(optimizers):
        opt.train() if train else opt.eval()


def parse_peaks(peak_lr: float | Sequence[float] | None) -> list[float] | None:
    """``None``, or the peak lrs as a list of floats (one number stands for every group)."""
    if peak_lr is None:
        return None
    if isinstance(peak_lr, (list, tuple)):
        if not peak_lr:
            raise ValueError("peak_lr must not be empty")
        return [check_real(f"peak_lr[{i}]", p, 0.0) for i, p in enumerate(peak_lr)]
    return [check_real("peak_lr", peak_lr, 0.0)]


def parse_log_path(
    log_path: str | Path | bool | None, flush_every: int
) -> tuple[str | Path | bool | None, NormLog | None]:
    """``(log_path, norm_log)`` of a callback: ``True`` is the default path (None), ``False``
    records nothing (no log); anything else must be a path."""
    if log_path is True:
        log_path = None
    if not (log_path is None or log_path is False or isinstance(log_path, (str, Path))):
        raise ValueError(f"log_path must be a path, None or False, got {log_path!r}")
    return log_path, None if log_path is False else NormLog(flush_every)


def expand_peaks(peaks: list[float], groups: int) -> list[float]:
    """One peak per param group: a single value is repeated, a list must match in length."""
    if len(peaks) == 1:
        return peaks * groups
    if len(peaks) != groups:
        raise ValueError(f"peak_lr has {len(peaks)} entries but the optimizer has {groups} groups")
    return list(peaks)


class LrDriver:
    """Write ``lr = peak_g * s(t)`` into every param group ``g``, exactly as ``ScheduleLR`` does.

    The factors are computed ``chunk`` steps at a time with one array call and cached, as in
    ``ScheduleLR``; a tensor lr is filled in place.
    """

    def __init__(self, schedule: Schedule, chunk: int = 1024) -> None:
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be an lrlab Schedule, got {schedule!r}")
        self.schedule = schedule
        self.config = schedule.to_dict()
        self._chunk = check_int("chunk", chunk, lo=1)
        self._cache: list[float] = []
        self._start = 0

    def factor(self, t: int) -> float:
        """s(t) as a Python float."""
        i = t - self._start
        if not 0 <= i < len(self._cache):
            self._start = t
            self._cache = self.schedule(np.arange(t, t + self._chunk, dtype=np.float64)).tolist()
            i = 0
        return self._cache[i]

    def apply(self, optimizer: Any, peaks: Sequence[float], t: int) -> list[float]:
        """Set every group's lr for step ``t``; returns the lrs written."""
        f = self.factor(t)
        groups = optimizer.param_groups
        if len(groups) != len(peaks):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but {len(peaks)} peak lrs are set"
            )
        lrs = [p * f for p in peaks]
        for group, lr in zip(groups, lrs, strict=True):
            current = group["lr"]
            if isinstance(current, torch.Tensor):
                current.fill_(lr)
            else:
                group["lr"] = lr
        return lrs

    def check_scheduler(self, scheduler: Any, peaks: list[float] | None) -> list[float]:
        """Check that a ``ScheduleLR`` held by the trainer agrees with this schedule (and with
        ``peaks`` when given); return the peaks to drive with (its ``base_lrs``)."""
        if scheduler.schedule.to_dict() != self.config:
            raise ValueError(
                f"the trainer's ScheduleLR follows {scheduler.schedule!r} but the callback was "
                f"given {self.schedule!r}; give both the same schedule"
            )
        base = [float(b) for b in scheduler.base_lrs]
        if peaks is not None and expand_peaks(peaks, len(base)) != base:
            raise ValueError(
                f"the trainer's ScheduleLR has peak lrs {base} but the callback was given "
                f"peak_lr={peaks}; give one of the two only"
            )
        return base


def is_schedule_lr(scheduler: Any) -> bool:
    return isinstance(scheduler, ScheduleLR)


def model_loss(output: Any) -> torch.Tensor | None:
    """The ``loss`` of a model's output (a mapping or an object with ``.loss``), if any."""
    loss = output.get("loss") if hasattr(output, "get") else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return loss.detach().reshape(())
    return None


class NormLog:
    """Per-step global gradient norms and loss, in the ``GradNormRecorder`` log format.

    ``record(optimizer, step)`` reads the gradients of all parameters of all param groups::

        grad_norm_l2 = sqrt(sum_i ||g_i||_2^2)      grad_norm_l1 = sum_i ||g_i||_1

    and the loss of the step from the losses given to ``add_loss`` since the previous row: their
    sum if they were marked ``part`` (each already divided by the step's whole size), else
    their mean (NaN if none).
    Rows stay on the device and are copied to the host every ``flush_every`` steps.
    """

    def __init__(self, flush_every: int = 256) -> None:
        self.flush_every = check_int("flush_every", flush_every, lo=1)
        self._pending: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._host: list[np.ndarray] = []
        self._losses: list[torch.Tensor | float] = []
        self._parts = False

    def add_loss(self, loss: torch.Tensor | float, part: bool = False) -> None:
        """Add one (micro-)batch loss to the coming row; ``part``: it is a share of the step's
        loss (normalised by the whole step), to be summed rather than averaged."""
        self._losses.append(loss.detach().reshape(()) if isinstance(loss, torch.Tensor) else loss)
        self._parts = self._parts or part

    def clear_loss(self) -> None:
        self._losses, self._parts = [], False

    def record(self, optimizer: Any, step: int) -> None:
        """Append the row of optimizer step ``step`` from the gradients held now."""
        grads = [
            p.grad._values() if p.grad.is_sparse else p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        losses, parts = self._losses, self._parts
        self.clear_loss()
        if not grads:
            dev, acc = torch.device("cpu"), torch.float64
            l2 = l1 = torch.full((), math.nan, dtype=acc)
        else:
            dev = grads[0].device
            acc = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
            per_l2 = [torch.linalg.vector_norm(g, 2, dtype=acc).to(dev) for g in grads]
            per_l1 = [g.abs().sum(dtype=acc).to(dev) for g in grads]
            l2 = torch.linalg.vector_norm(torch.stack(per_l2))
            l1 = torch.stack(per_l1).sum()
        if losses:
            stacked = torch.stack([torch.as_tensor(x, dtype=acc).to(dev) for x in losses])
            loss = stacked.sum() if parts else stacked.mean()
        else:
            loss = torch.full((), math.nan, dtype=acc, device=dev)
        self._pending.append(torch.stack((l2, l1, loss.to(dtype=acc))))
        self._steps.append(int(step))
        if len(self._pending) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            rows = torch.stack([r.to("cpu", torch.float64) for r in self._pending]).numpy()
            self._host.append(rows)
            self._pending = []

    def __len__(self) -> int:
        return len(self._steps)

    def frame(self):
        """The log as a DataFrame: columns step, grad_norm_l2, grad_norm_l1, loss."""
        import pandas as pd

        self._flush()
        rows = np.concatenate(self._host) if self._host else np.zeros((0, 3))
        return pd.DataFrame(
            {
                LOG_COLUMNS[0]: np.asarray(self._steps, dtype=np.int64),
                LOG_COLUMNS[1]: rows[:, 0],
                LOG_COLUMNS[2]: rows[:, 1],
                LOG_COLUMNS[3]: rows[:, 2],
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the log: Parquet if the suffix is ``.parquet`` (needs pyarrow), else CSV."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        frame = self.frame()
        if p.suffix == ".parquet":
            frame.to_parquet(p, index=False)
        else:
            frame.to_csv(p, index=False)
        return p

    def state_dict(self) -> dict[str, Any]:
        frame = self.frame()
        return {
            "steps": frame[LOG_COLUMNS[0]].tolist(),
            "rows": torch.tensor(frame[list(LOG_COLUMNS[1:])].to_numpy(dtype=np.float64)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows = torch.as_tensor(state["rows"], dtype=torch.float64).cpu().numpy()
        steps = [int(s) for s in state["steps"]]
        if rows.ndim != 2 or rows.shape != (len(steps), 3):
            raise ValueError(f"log state has {len(steps)} steps but rows of shape {rows.shape}")
        self._pending, self._host, self._steps = [], [rows.copy()], steps
        self.clear_loss()
