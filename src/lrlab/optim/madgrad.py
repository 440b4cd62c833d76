r"""MADGRAD and Mirror-MADGRAD: momentumized, adaptive dual averaging with a cube-root
denominator.

``lr`` is the step itself: it enters the dual-averaging weight of every new gradient
(:math:`\lambda_k`), so an lrlab schedule (via :class:`lrlab.torchx.ScheduleLR` or any
``LRScheduler``) scales the weight given to the gradients of later steps. As in the published
method, a non-zero ``lr`` is used as ``lr + eps`` (0 stays 0). :meth:`effective_lr` reports
:math:`\lambda_k` of the last step. The step counter is optimizer-wide and saved in
``state_dict()``. With coupled weight decay the gradient buffers are overwritten by
:math:`g + \text{wd}\, x`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lrlab._checks import check_real
from lrlab.optim._base import DualWeightOptimizer
from lrlab.optim._foreach import batches, with_grad
from lrlab.optim._validate import check_bool, check_lr

__all__ = ["MADGRAD", "MirrorMADGRAD"]


def _cube_root_denominator(sums: list[torch.Tensor], eps: float) -> list[torch.Tensor]:
    """``sums ** (1/3) + eps``. With ``eps = 0`` it is floored at half the cube root of the
    smallest positive number of the dtype: no non-zero sum is changed, and a zero sum (whose
    gradients were all 0, or underflowed when squared) gives a zero or vanishing step instead
    of 0/0."""
    rms = torch._foreach_pow(sums, 1.0 / 3.0)
    if eps != 0:
        torch._foreach_add_(rms, eps)
    elif rms:
        info = torch.finfo(rms[0].dtype)
        torch._foreach_clamp_min_(rms, 0.5 * (info.tiny * info.eps) ** (1.0 / 3.0))
    return rms


class _MadgradBase(DualWeightOptimizer):
    def __init__(self, params: Any, lr: float, momentum: float, weight_decay: float,
                 eps: float, decouple_decay: bool) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps,
                        decouple_decay=decouple_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        check_real("momentum", group["momentum"], 0.0, 1.0, hi_open=True)
        check_real("weight_decay", group["weight_decay"], 0.0)
        check_real("eps", group["eps"], 0.0)
        check_bool("decouple_decay", group["decouple_decay"])

    @staticmethod
    def _lr(group: dict[str, Any]) -> float:
        lr = check_lr(group["lr"])
        return lr + group["eps"] if lr != 0 else 0.0


class MADGRAD(_MadgradBase):
    r"""MADGRAD.

    With :math:`\gamma` = ``lr + eps``, momentum :math:`\beta`, :math:`c = 1-\beta` and step
    :math:`k = 0, 1, \dots`:

    .. math::
        \lambda_k = \gamma\sqrt{k+1},\quad
        \nu_{k+1} = \nu_k + \lambda_k g_k^2,\quad
        s_{k+1} = s_k + \lambda_k g_k,\quad
        z_{k+1} = x_0 - \frac{s_{k+1}}{\nu_{k+1}^{1/3} + \epsilon},

        x_{k+1} = (1-c)\,x_k + c\,z_{k+1}\ \big[-\ \gamma\,\text{wd}\,x_k
        \text{ with decoupled decay}\big].

    Coupled decay uses :math:`g_k + \text{wd}\,x_k`. With ``eps = 0`` a coordinate whose
    :math:`\nu` is 0 stays at :math:`x_0` (the denominator is floored, see
    ``_cube_root_denominator``). Without momentum :math:`x_0` is recovered from
    :math:`x_k, s_k, \nu_k` instead of stored.

    Args:
        params: parameters or param groups (all options may differ per group).
        lr: step size, >= 0.
        momentum: beta in [0, 1).
        weight_decay: >= 0.
        eps: >= 0.
        decouple_decay: apply the decay to x directly instead of to the gradient.

    Example:
        >>> opt = MADGRAD(model.parameters(), lr=1e-2)  # doctest: +SKIP
        >>> loss.backward(); opt.step()                # doctest: +SKIP
    """

    def __init__(self, params: Any, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0, eps: float = 1e-6,
                 decouple_decay: bool = False) -> None:
        super().__init__(params, lr, momentum, weight_decay, eps, decouple_decay)

    def _step_group(self, group: dict[str, Any], k: int) -> float:
        lr, eps, momentum = self._lr(group), group["eps"], group["momentum"]
        decay, decoupled = group["weight_decay"], group["decouple_decay"]
        lam = lr * math.sqrt(k + 1)
        params = with_grad(group)
        if params:
            states = self._states(params, zeros=("grad_sum_sq", "s"),
                                  copies=("x0",) if momentum != 0 else ())
            grads = [p.grad for p in params]
            if decay != 0 and not decoupled:
                torch._foreach_add_(grads, params, alpha=decay)
            sums = [st["grad_sum_sq"] for st in states]
            duals = [st["s"] for st in states]
            if momentum != 0:
                origins = [st["x0"] for st in states]
            else:
                origins = params
            keep = 1 - (1 - momentum)
            for p_c, g_c, v_c, s_c, o_c in batches(params, grads, sums, duals, origins):
                if momentum == 0:
                    o_c = torch._foreach_addcdiv(p_c, s_c, _cube_root_denominator(v_c, eps))
                torch._foreach_addcmul_(v_c, g_c, g_c, value=lam)
                rms = _cube_root_denominator(v_c, eps)
                torch._foreach_add_(s_c, g_c, alpha=lam)
                z = torch._foreach_addcdiv(o_c, s_c, rms, value=-1)
                del rms
                if momentum == 0:
                    if decay != 0 and decoupled:
                        torch._foreach_mul_(p_c, -lr * decay)
                        torch._foreach_add_(p_c, z)
                    else:
                        torch._foreach_copy_(p_c, z)
                else:
                    shrink = keep - lr * decay if decoupled else keep
                    torch._foreach_mul_(p_c, shrink)
                    torch._foreach_add_(p_c, z, alpha=1 - momentum)
        return lam


class MirrorMADGRAD(_MadgradBase):
    r"""Mirror-MADGRAD.

    With :math:`\gamma` = ``lr + eps``, momentum :math:`\beta`, :math:`c = 1-\beta` and step
    :math:`k = 0, 1, \dots`:

    .. math::
        \nu_{k+1} = \sqrt{\tfrac{k}{k+1}}\,\nu_k + g_k^2,\qquad
        \lambda_k = \gamma\,(k+1)^{1/3},

        z_{k+1} = z_k\,[1 - \gamma\,\text{wd}] - \lambda_k\,\frac{g_k}{\nu_{k+1}^{1/3} + \epsilon},
        \qquad x_{k+1} = (1-c)\,x_k + c\,z_{k+1},

    with :math:`z_0 = x_0`; the bracket is the decoupled decay (coupled decay uses
    :math:`g_k + \text{wd}\,x_k`). With ``eps = 0`` (the default) a coordinate whose
    :math:`\nu` is 0 does not move (the denominator is floored).

    Args:
        params: parameters or param groups (all options may differ per group).
        lr: step size, >= 0.
        momentum: beta in [0, 1).
        weight_decay: >= 0.
        eps: >= 0.
        decouple_decay: decay z directly instead of adding to the gradient.

    Example:
        >>> opt = MirrorMADGRAD(model.parameters(), lr=1e-2)  # doctest: +SKIP
        >>> loss.backward(); opt.step()                      # doctest: +SKIP
    """

    def __init__(self, params: Any, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0, eps: float = 0.0,
                 decouple_decay: bool = False) -> None:
        super().__init__(params, lr, momentum, weight_decay, eps, decouple_decay)

    def _step_group(self, group: dict[str, Any], k: int) -> float:
        ratio = math.sqrt(k / (k + 1))
        growth = (k + 1) ** (1.0 / 3.0)
        lr, eps, momentum = self._lr(group), group["eps"], group["momentum"]
        decay, decoupled = group["weight_decay"], group["decouple_decay"]
        params = with_grad(group)
        if params:
            states = self._states(params, zeros=("grad_sum_sq",), copies=("z",))
            grads = [p.grad for p in params]
            sums = [st["grad_sum_sq"] for st in states]
            zs = [st["z"] for st in states]
            if decay != 0:
                if decoupled:
                    torch._foreach_add_(zs, zs, alpha=-lr * decay)
                else:
                    torch._foreach_add_(grads, params, alpha=decay)
            torch._foreach_mul_(sums, ratio)
            torch._foreach_addcmul_(sums, grads, grads)
            for g_c, v_c, z_c in batches(grads, sums, zs):
                rms = _cube_root_denominator(v_c, eps)
                torch._foreach_addcdiv_(z_c, g_c, rms, value=-lr * growth)
            torch._foreach_mul_(params, 1 - (1 - momentum))
            torch._foreach_add_(params, zs, alpha=1 - momentum)
        return lr * growth
