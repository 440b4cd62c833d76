"""``ScheduleLR``: drive an optimizer's learning rate from an ``lrlab`` schedule, closed form."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrlab._checks import check_int, check_real
from lrlab.schedules import Schedule


class ScheduleLR(LRScheduler):
    """Set ``lr = peak_lr_of_group * s(t)`` for every param group; closed form, never chainable.

    Construction sets the lr of step 0, ``peak * s(0)``; each ``step()`` then advances t by
    one. With the usual per-batch loop ``optimizer.step(); scheduler.step()``, optimizer step t
    (0-indexed) uses exactly ``peak * s(t)``. The order of the two calls is not policed (there is
    no warning trap): the lr is a pure function of the count of ``scheduler.step()`` calls.
    ``step(t)`` jumps to step t (closed form, no warning), which torch's composite schedulers
    use.

    ``peak_lrs`` is one number or one per param group; by default each group's ``initial_lr``
    (set by the first scheduler built on the optimizer), else its lr at construction. The
    constructor runs ``LRScheduler.__init__``: groups without an ``initial_lr`` get the peak as
    their ``initial_lr``, and ``base_lrs`` holds the peaks. When a group's lr is a
    ``torch.Tensor`` it is written in place (``fill_``), so ``torch.compile`` sees the same
    tensor and does not recompile.

    Inside torch's composite schedulers:

    * ``SequentialLR(opt, [ScheduleLR(opt, s1), ScheduleLR(opt, s2)], milestones=[m])``: step t
      uses ``peak1 * s1(t)`` for t < m and ``peak2 * s2(t - m)`` for t >= m (each restarts its
      own count at its milestone).
    * ``ChainedScheduler``: each step sets ``peak * s(t)`` afresh, so schedulers listed before
      the ``ScheduleLR`` are overwritten and chainable ones after it (``MultiplicativeLR``,
      ``ExponentialLR``, ...) multiply that value for that step only.

    ``state_dict()`` holds the step count, the schedule's ``to_dict()`` and the peak lrs;
    ``load_state_dict`` refuses (``ValueError``) a state made with a different schedule, and sets
    the groups' lr for the restored step at once (unless the state is of a scheduler that has not
    started, ``last_epoch == -1``, as a later member of a ``SequentialLR`` before its milestone).

    Args:
        optimizer: the torch optimizer whose param groups are driven.
        schedule: the lrlab ``Schedule`` s(t).
        peak_lrs: the lr at s = 1, one number or one per param group.
        chunk: how many s(t) values are computed per array call and cached.

    Example::

        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = ScheduleLR(opt, Warmup(Cosine(900), warmup=100))
        for batch in data:
            loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        peak_lrs: float | list[float] | tuple[float, ...] | None = None,
        chunk: int = 1024,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be an lrlab Schedule, got {schedule!r}")
        groups = optimizer.param_groups
        if peak_lrs is None:
            peaks = [float(g.get("initial_lr", g["lr"])) for g in groups]
        elif isinstance(peak_lrs, (list, tuple)):
            if len(peak_lrs) != len(groups):
                raise ValueError(
                    f"peak_lrs must have one entry per param group ({len(groups)}), "
                    f"got {len(peak_lrs)}"
                )
            peaks = list(peak_lrs)
        else:
            peaks = [peak_lrs] * len(groups)
        self.schedule = schedule
        self._config = schedule.to_dict()
        self._chunk = check_int("chunk", chunk, lo=1)
        self._peaks = [check_real(f"peak_lrs[{i}]", p, 0.0) for i, p in enumerate(peaks)]
        self._cache: list[float] = []
        self._cache_start = 0
        for group, peak in zip(groups, self._peaks, strict=True):
            group.setdefault("initial_lr", peak)
        super().__init__(optimizer)

    def _initial_step(self) -> None:
        # LRScheduler.__init__ read base_lrs from the groups' initial_lr; the peaks rule here.
        self.base_lrs = list(self._peaks)
        super()._initial_step()

    def _factor(self, t: int) -> float:
        i = t - self._cache_start
        if not 0 <= i < len(self._cache):
            self._cache_start = t
            self._cache = self.schedule(np.arange(t, t + self._chunk, dtype=np.float64)).tolist()
            i = 0
        return self._cache[i]

    def _apply(self) -> None:
        f = self._factor(self.last_epoch)
        lrs = [base * f for base in self.base_lrs]
        groups = self.optimizer.param_groups
        if len(groups) != len(lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but this ScheduleLR was built "
                f"for {len(lrs)}; build the scheduler after the last add_param_group()"
            )
        for group, lr in zip(groups, lrs, strict=True):
            current = group["lr"]
            if isinstance(current, Tensor):
                current.fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = lrs

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step ``epoch``) and set every group's lr to
        ``peak * s(step)``."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        # also called directly by SequentialLR (``_update_lr(0)`` at a milestone)
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = check_int("epoch", epoch, lo=0)
        self._apply()

    def get_lr(self) -> list[float]:
        """The lrs for the current step, ``peak * s(last_epoch)`` per group (closed form)."""
        f = float(self.schedule(self.last_epoch))
        return [base * f for base in self.base_lrs]

    _get_closed_form_lr = get_lr

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The lrs set by the latest ``step()`` (floats, one per group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """``{"last_epoch", "step_count", "schedule", "base_lrs"}``: plain Python values only,
        so ``torch.load(..., weights_only=True)`` reads it."""
        return {
            "last_epoch": self.last_epoch,
            "step_count": self._step_count,
            "schedule": self._config,
            "base_lrs": list(self.base_lrs),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step and peak lrs; refuse a state made with a different schedule."""
        missing = {"last_epoch", "step_count", "schedule", "base_lrs"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}; not a ScheduleLR state")
        if state_dict["schedule"] != self._config:
            raise ValueError(
                "state_dict was made with a different schedule: saved "
                f"{Schedule.from_dict(state_dict['schedule'])!r}, this scheduler has "
                f"{self.schedule!r}; build the scheduler with the saved schedule to resume"
            )
        base = state_dict["base_lrs"]
        if len(base) != len(self.optimizer.param_groups):
            raise ValueError(
                f"state_dict has {len(base)} peak lrs but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self._peaks = [check_real(f"base_lrs[{i}]", b, 0.0) for i, b in enumerate(base)]
        self.base_lrs = list(self._peaks)
        self.last_epoch = check_int("last_epoch", state_dict["last_epoch"], lo=-1)
        self._step_count = check_int("step_count", state_dict["step_count"], lo=0)
        self._cache = []
        if self.last_epoch >= 0:  # -1: not started yet (a later member of a SequentialLR)
            self._apply()
