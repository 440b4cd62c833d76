"""Optimizer bases: validated param groups, and the two ways optimizer-wide scalars are saved.

- ``GlobalStepOptimizer`` keeps its global scalars (a step-size estimate ``d``, accumulators, the
  step counter) as entries of every param group, so the standard ``state_dict`` carries them.
- ``ScalarStateOptimizer`` keeps them in ``self.scalars`` and adds a ``"scalars"`` entry to
  ``state_dict()``.

Either way a reload resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lrlab.optim._foreach import Scratch
from lrlab.optim._validate import (
    check_growth_rate,
    check_lr,
    check_nonneg,
    check_positive,
    check_shared,
    common_lr,
)


def evaluate(closure: Callable[[], Any] | None) -> Any:
    """The closure's value computed with gradients enabled (``None`` without a closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class ValidatedOptimizer(torch.optim.Optimizer):
    """Every param group (also one added later) passes ``_check_group``; the options named in
    ``SHARED`` must then agree across groups. Work buffers (``self._scratch``) are kept between
    steps but not saved."""

    SHARED: tuple[str, ...] = ()

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._scratch = Scratch()
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_scratch", Scratch())

    def _check_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])
        if len(self.param_groups) > 1:
            check_shared(self.param_groups, self.SHARED)

    def _states(
        self, params: Sequence[torch.Tensor], zeros: Sequence[str] = (),
        copies: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The parameters' states. At a parameter's first step the buffers named in ``zeros``
        start at 0 and those in ``copies`` at the parameter's value."""
        states = [self.state[p] for p in params]
        first = (*zeros, *copies)[0]
        for p, st in zip(params, states, strict=True):
            if first not in st:
                for name in zeros:
                    st[name] = torch.zeros_like(p)
                for name in copies:
                    st[name] = p.detach().clone()
        return states

    def _entries(self, params: Sequence[torch.Tensor], *names: str) -> list[list[torch.Tensor]]:
        """Per name, the list of that state entry of each parameter."""
        return [[self.state[p][name] for p in params] for name in names]


class ScalarStateOptimizer(ValidatedOptimizer):
    """Optimizer-wide scalars live in ``self.scalars`` and are saved in ``state_dict()``."""

    scalars: dict[str, Any]

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["scalars"] = dict(self.scalars)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        if "scalars" not in state_dict:
            raise ValueError(
                f"state_dict lacks the 'scalars' entry that {type(self).__name__} saves"
            )
        scalars = dict(state_dict.pop("scalars"))
        super().load_state_dict(state_dict)
        self.scalars = scalars


class DualWeightOptimizer(ScalarStateOptimizer):
    """A step counter ``k`` (from 0) and, per group, the weight λ_k that the step gives the new
    gradient, which ``effective_lr()`` reports. Subclasses update one group in ``_step_group``.
    """

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self.scalars = {"step": 0, "dual_weight": []}

    def _step_group(self, group: dict[str, Any], k: int) -> float:
        """Update the group's parameters at step ``k``; return its λ_k."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = evaluate(closure)
        k = self.scalars["step"]
        weights = [self._step_group(group, k) for group in self.param_groups]
        self.scalars["step"] = k + 1
        self.scalars["dual_weight"] = weights
        return loss

    def effective_lr(self) -> list[float]:
        """Per group, the dual-averaging weight λ_k of the last step (0 before any)."""
        weights = self.scalars["dual_weight"]
        return [float(weights[i]) if i < len(weights) else 0.0
                for i in range(len(self.param_groups))]


class GlobalStepOptimizer(ValidatedOptimizer):
    """One global step-size estimate ``d`` shared by all groups.

    Subclasses list the hyperparameters that must agree across groups (``SHARED``) and the
    global scalars kept in every group (``GLOBALS``); a group added later receives the current
    values.
    """

    GLOBALS: tuple[str, ...] = ("d", "k")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if len(self.param_groups) > 1:
            first, group = self.param_groups[0], self.param_groups[-1]
            group.update({key: first[key] for key in self.GLOBALS if key in first})

    def _check_group(self, group: dict[str, Any]) -> None:
        """The options every such optimizer has; subclasses check theirs after these."""
        check_lr(group["lr"])
        check_nonneg("weight_decay", group["weight_decay"])
        check_positive("d0", group["d0"])
        check_growth_rate(group["growth_rate"])

    def _common_lr(self) -> float:
        """Re-check the optimizer-wide options (they may have been changed since the groups
        were added) and return the ``lr`` shared by the groups that are not frozen."""
        check_shared(self.param_groups, self.SHARED)
        return common_lr(self.param_groups)

    def _sync(self, values: dict[str, Any]) -> None:
        """Write the global scalars into every group (so each group's state_dict entry has
        them)."""
        for group in self.param_groups:
            group.update(values)

    @property
    def d(self) -> float:
        """Current step-size estimate d (shared by every group)."""
        return float(self.param_groups[0]["d"])

    def effective_lr(self) -> list[float]:
        """Per group, the step size in use: ``d * lr``."""
        return [self.d * float(g["lr"]) for g in self.param_groups]
