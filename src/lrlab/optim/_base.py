"""Optimizer bases: validated param groups, and optimizer state kept where ``state_dict`` saves it.

Every optimizer-wide scalar (a step-size estimate ``d``, accumulators, the step counter, a
running loss average, the train/eval mode, ...) is an entry of **every** param group (listed in
``GLOBALS``; a group added later receives the current values), and every per-group scalar (the
step size of the last step, ...) an entry of its group (``GROUP_STATE``). The standard
``{"state": ..., "param_groups": ...}`` of ``state_dict()`` therefore carries all of it: a reload
resumes exactly, also after a tool that rebuilds the state dict from those two entries.
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


def check_saved_groups(name: str, groups: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Raise ``ValueError`` if a saved param group lacks one of the state entries ``keys``."""
    missing = sorted({key for group in groups for key in keys if key not in group})
    if missing:
        raise ValueError(
            f"state_dict param groups lack {missing}, the optimizer state that {name} keeps in "
            "every param group (a state dict of another optimizer, or of an older lrlab whose "
            "extra entries were dropped, cannot resume exactly)"
        )


class ValidatedOptimizer(torch.optim.Optimizer):
    """Every param group (also one added later) passes ``_check_group``; the options named in
    ``SHARED`` must then agree across groups. Optimizer-wide state lives in every group
    (``GLOBALS``), per-group state in its group (``GROUP_STATE``). Work buffers
    (``self._scratch``) are kept between steps but not saved."""

    SHARED: tuple[str, ...] = ()
    GLOBALS: tuple[str, ...] = ()
    GROUP_STATE: tuple[str, ...] = ()

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
            self._copy_globals(self.param_groups[-1])

    def _copy_globals(self, group: dict[str, Any]) -> None:
        """Give ``group`` the current optimizer-wide state (that of the first group)."""
        first = self.param_groups[0]
        group.update({key: first[key] for key in self.GLOBALS if key in first})

    def _sync(self, values: dict[str, Any]) -> None:
        """Write optimizer-wide state into every group."""
        for group in self.param_groups:
            group.update(values)

    def _from_scalars(self, scalars: dict[str, Any], index: int) -> dict[str, Any]:
        """The group entries that the ``"scalars"`` entry of an older state dict held for the
        group at ``index`` (optimizers that never saved one refuse it)."""
        raise ValueError(f"state_dict has a 'scalars' entry, which {type(self).__name__} "
                         "never saves: it comes from another optimizer")

    def _upgrade(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with a ``"scalars"`` entry (saved by an older lrlab) moved into the
        param groups, then checked for the group entries this optimizer needs."""
        state_dict = dict(state_dict)
        groups = [dict(g) for g in state_dict.get("param_groups", [])]
        if "scalars" in state_dict:
            scalars = dict(state_dict.pop("scalars"))
            for i, group in enumerate(groups):
                group.update(self._from_scalars(scalars, i))
        check_saved_groups(type(self).__name__, groups, (*self.GLOBALS, *self.GROUP_STATE))
        state_dict["param_groups"] = groups
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(self._upgrade(state_dict))

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


class DualWeightOptimizer(ValidatedOptimizer):
    """A step counter ``k`` (from 0, in every group) and, per group, the weight
    ``dual_weight`` = λ_k that the last step gave the new gradient, which ``effective_lr()``
    reports. Subclasses update one group in ``_step_group``.
    """

    GLOBALS = ("k",)
    GROUP_STATE = ("dual_weight",)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, {**defaults, "k": 0, "dual_weight": 0.0})

    def _from_scalars(self, scalars: dict[str, Any], index: int) -> dict[str, Any]:
        weights = scalars["dual_weight"]
        return {"k": int(scalars["step"]),
                "dual_weight": float(weights[index]) if index < len(weights) else 0.0}

    def _step_group(self, group: dict[str, Any], k: int) -> float:
        """Update the group's parameters at step ``k``; return its λ_k."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = evaluate(closure)
        k = self.param_groups[0]["k"]
        for group in self.param_groups:
            group["dual_weight"] = self._step_group(group, k)
        self._sync({"k": k + 1})
        return loss

    def effective_lr(self) -> list[float]:
        """Per group, the dual-averaging weight λ_k of the last step (0 before any)."""
        return [float(g["dual_weight"]) for g in self.param_groups]


class GlobalStepOptimizer(ValidatedOptimizer):
    """One global step-size estimate ``d`` shared by all groups.

    Subclasses list the hyperparameters that must agree across groups (``SHARED``) and the
    global scalars kept in every group (``GLOBALS``).
    """

    GLOBALS: tuple[str, ...] = ("d", "k")

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

    @property
    def d(self) -> float:
        """Current step-size estimate d (shared by every group)."""
        return float(self.param_groups[0]["d"])

    def effective_lr(self) -> list[float]:
        """Per group, the step size in use: ``d * lr``."""
        return [self.d * float(g["lr"]) for g in self.param_groups]
