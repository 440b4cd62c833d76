r"""Averaging forms of momentum: MDA (modernized dual averaging) and SGD with momentum in
primal-averaging form.

Both keep a base sequence :math:`z` and move the parameters :math:`x` (where gradients are taken)
a fraction :math:`c = 1 - \text{momentum}` of the way towards it each step:
:math:`x_{k+1} = (1-c)\,x_k + c\,z_{k+1}`. The coefficient is constant; ``momentum = 0``
(:math:`c = 1`) gives :math:`x = z`. Steps are counted :math:`k = 0, 1, \dots`; coupled weight
decay replaces :math:`g_k` by :math:`g_k + \text{wd}\,x_k`. Gradient buffers are not modified.

``lr`` is the step itself (see each class); an lrlab schedule applies through
:class:`lrlab.torchx.ScheduleLR` or any ``LRScheduler`` and changes it step by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lrlab._checks import check_real
from lrlab.optim._base import DualWeightOptimizer, ValidatedOptimizer, evaluate
from lrlab.optim._foreach import blocks, with_grad
from lrlab.optim._validate import check_lr

__all__ = ["MDA", "PrimalAveragingSGD"]


def _check_common(group: dict[str, Any]) -> None:
    check_lr(group["lr"])
    check_real("momentum", group["momentum"], 0.0, 1.0, hi_open=True)
    check_real("weight_decay", group["weight_decay"], 0.0)


class MDA(DualWeightOptimizer):
    r"""Modernized dual averaging.

    With :math:`x_0` the initial parameters, :math:`s_0 = 0` and :math:`c = 1-\text{momentum}`:

    .. math::
        \lambda_k = \text{lr}_k\sqrt{k+1},\qquad s_{k+1} = s_k + \lambda_k g_k,\qquad
        z_{k+1} = x_0 - \frac{s_{k+1}}{\sqrt{k+1}},\qquad
        x_{k+1} = (1-c)\,x_k + c\,z_{k+1}.

    Under a constant ``lr`` the new gradient enters :math:`z` with weight ``lr`` and older ones
    with weight ``lr`` times :math:`\sqrt{(i+1)/(k+1)}` (< 1): SGD on :math:`z` with a decaying
    pull back to :math:`x_0`. :meth:`effective_lr` reports :math:`\lambda_k` of the last step.
    The step counter is optimizer-wide and saved in ``state_dict()``.

    Args:
        params: parameters or param groups (all options may differ per group).
        lr: step size, >= 0 (default 1e-2).
        momentum: in [0, 1); c = 1 - momentum (default 0.9).
        weight_decay: coupled L2 decay, >= 0 (default 0.0).

    State: per parameter ``s`` and ``x0``; in every param group the step counter ``k``, and in
    each its last λ_k (``dual_weight``).

    References:
        Jelassi & Defazio, "Dual Averaging is Surprisingly Effective for Deep Learning
        Optimization", arXiv:2010.10502.

    Example:
        >>> import torch
        >>> from lrlab.optim import MDA
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = MDA(model.parameters(), lr=1e-2, momentum=0.9)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.effective_lr() == [1e-2 * 10 ** 0.5]
        True
    """

    def __init__(self, params: Any, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_common(group)

    def _step_group(self, group: dict[str, Any], k: int) -> float:
        root = math.sqrt(k + 1)
        lam = check_lr(group["lr"]) * root
        params = with_grad(group)
        if params:
            states = self._states(params, zeros=("s",), copies=("x0",))
            sums = [st["s"] for st in states]
            origins = [st["x0"] for st in states]
            c, decay = 1.0 - group["momentum"], group["weight_decay"]
            for p_c, g_c, s_c, o_c in blocks(params, [p.grad for p in params], sums, origins):
                torch._foreach_add_(s_c, g_c, alpha=lam)
                if decay != 0:
                    torch._foreach_add_(s_c, p_c, alpha=lam * decay)
                # x <- (1 - c) x + c (x0 - s / sqrt(k + 1)), without materialising z
                torch._foreach_lerp_(p_c, o_c, c)
                torch._foreach_add_(p_c, s_c, alpha=-c / root)
        return lam


class PrimalAveragingSGD(ValidatedOptimizer):
    r"""SGD with momentum in primal-averaging form.

    With :math:`z_0 = x_0` and :math:`c = 1-\beta` (:math:`\beta` = ``momentum``):

    .. math::
        z_{k+1} = z_k - \text{lr}_k\, g_k,\qquad x_{k+1} = (1-c)\,x_k + c\,z_{k+1},
        \qquad g_k = \nabla f(x_k).

    Under a constant ``lr`` this is exactly heavy-ball SGD
    (``torch.optim.SGD(lr=(1 - beta) * lr, momentum=beta)``, same weight decay): with
    :math:`\Delta_k = x_k - x_{k-1}` both give
    :math:`\Delta_{k+1} = \beta\Delta_k - (1-\beta)\,\text{lr}\, g_k` and
    :math:`\Delta_1 = -(1-\beta)\,\text{lr}\, g_0`. Under a changing ``lr`` the two differ: here
    the schedule acts on :math:`z`. ``lr`` is the step on :math:`z`; :meth:`effective_lr`
    reports it.

    Args:
        params: parameters or param groups (all options may differ per group).
        lr: step size on z, >= 0 (default 0.1).
        momentum: beta in [0, 1); c = 1 - beta (default 0.9).
        weight_decay: coupled L2 decay, >= 0 (default 0.0).

    State: per parameter ``z``.

    References:
        Defazio, "Momentum via Primal Averaging: Theoretical Insights and Learning Rate
        Schedules for Non-Convex Optimization", arXiv:2010.00406.

    Example:
        >>> import torch
        >>> from lrlab.optim import PrimalAveragingSGD
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = PrimalAveragingSGD(model.parameters(), lr=1.0, momentum=0.9)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.effective_lr()
        [1.0]
    """

    def __init__(self, params: Any, lr: float = 1e-1, momentum: float = 0.9,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_common(group)

    def _from_scalars(self, scalars: dict[str, Any], index: int) -> dict[str, Any]:
        return {}  # older state dicts carried an empty "scalars" entry

    def effective_lr(self) -> list[float]:
        """Per group, the step size on z (the group's ``lr``)."""
        return [float(g["lr"]) for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One primal-averaging step."""
        loss = evaluate(closure)
        for group in self.param_groups:
            lr = check_lr(group["lr"])
            params = with_grad(group)
            if not params:
                continue
            zs = [st["z"] for st in self._states(params, copies=("z",))]
            decay = group["weight_decay"]
            for p_c, g_c, z_c in blocks(params, [p.grad for p in params], zs):
                torch._foreach_add_(z_c, g_c, alpha=-lr)
                if decay != 0:
                    torch._foreach_add_(z_c, p_c, alpha=-lr * decay)
                torch._foreach_lerp_(p_c, z_c, 1.0 - group["momentum"])
        return loss
