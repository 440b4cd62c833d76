r"""MoMo and MoMo-Adam: momentum with a Polyak-type step size that uses the loss value.

Both keep exponential averages of the loss :math:`\bar f_k`, of the gradient :math:`d_k` and of
:math:`\gamma_k = \text{avg}\langle g_i, x_i\rangle`, and take the largest step
:math:`\tau_k \le \text{lr}/\rho_k` that does not overshoot the model's lower bound ``lb``:

.. math::
    \tau_k = \min\Big(\frac{\text{lr}}{\rho_k},
        \frac{\big[(1+\text{lr}\,\lambda)(\bar f_k - \rho_k\,\text{lb})
              + \langle d_k, x_k\rangle - (1+\text{lr}\,\lambda)\gamma_k\big]_+}
             {\|d_k\|^2_{D_k^{-1}}}\Big)

``lr`` is the step-size *cap*: the adaptive step never exceeds it, so an lrlab schedule (via
:class:`lrlab.torchx.ScheduleLR` or any ``LRScheduler``) scales the cap, and the adaptive step
:math:`\tau_k` is what :meth:`effective_lr` reports. ``step`` needs the loss value of the
current mini-batch: ``opt.step(loss=loss)`` after ``loss.backward()``, or ``opt.step(closure)``.

The step counter ``k``, the running loss average ``loss_avg``, ``gamma`` and the lower-bound
estimate ``fstar`` are entries of every param group, and each group's last step size ``tau`` an
entry of that group, so the standard ``state_dict()`` carries them and a reload continues
exactly where the run stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lrlab._checks import check_real
from lrlab.optim._base import ValidatedOptimizer, evaluate
from lrlab.optim._foreach import blocks, dot_sum, into, sq_norm_sum, with_grad
from lrlab.optim._validate import check_betas, check_bool, check_lr

__all__ = ["Momo", "MomoAdam"]


def _loss_value(
    closure: Callable[[], Any] | None, loss: torch.Tensor | float | None, name: str
) -> tuple[Any, float]:
    if closure is not None and loss is not None:
        raise ValueError(f"{name}.step takes either loss= or a closure, not both")
    if closure is None and loss is None:
        raise ValueError(
            f"{name}.step needs the current loss value: call step(loss=loss) after "
            "loss.backward(), or step(closure) with a closure that returns the loss"
        )
    if closure is not None:
        loss = evaluate(closure)
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise ValueError(f"{name}.step got a non-finite loss value {value}")
    return loss, value


def _step_size(
    sc: dict[str, Any], group: dict[str, Any], rho: float, xd: float, sq: float
) -> float:
    """Polyak-type step for one group; updates the online lower bound ``sc["fstar"]`` if
    enabled."""
    lr = check_lr(group["lr"])
    shrink = 1.0 + lr * group["weight_decay"]
    loss_avg, gamma = sc["loss_avg"], sc["gamma"]
    if group["use_fstar"]:
        cap = shrink * loss_avg + xd - shrink * gamma
        if cap < shrink * rho * sc["fstar"]:
            sc["fstar"] = max(cap / (2.0 * shrink * rho), group["lb"])
    numerator = shrink * (loss_avg - rho * sc["fstar"]) + xd - shrink * gamma
    ratio = max(numerator, 0.0) / sq if sq > 0.0 else math.inf
    tau = min(lr / rho, ratio)
    if group["use_fstar"]:
        level = loss_avg + xd - gamma
        sc["fstar"] = max((level - 0.5 * tau * sq) / rho, group["lb"])
    return tau


class _MomoBase(ValidatedOptimizer):
    GLOBALS = ("k", "loss_avg", "gamma", "fstar")
    GROUP_STATE = ("tau",)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, {**defaults, "k": 0, "loss_avg": 0.0, "gamma": 0.0,
                                  "tau": None})

    def _check_common(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        check_real("weight_decay", group["weight_decay"], 0.0)
        check_real("lb", group["lb"])
        check_bool("use_fstar", group["use_fstar"])
        group.setdefault("fstar", float(group["lb"]))

    def _from_scalars(self, scalars: dict[str, Any], index: int) -> dict[str, Any]:
        taus = scalars["tau"]
        return {"k": int(scalars["step"]), "loss_avg": float(scalars["loss_avg"]),
                "gamma": float(scalars["gamma"]), "fstar": float(scalars["lb"]),
                "tau": float(taus[index]) if index < len(taus) else None}

    def _globals(self) -> dict[str, Any]:
        first = self.param_groups[0]
        return {key: first[key] for key in self.GLOBALS}

    def effective_lr(self) -> list[float]:
        """Per group, the adaptive step size tau_k of the last step (``lr`` before any step)."""
        return [float(g["lr"] if g["tau"] is None else g["tau"]) for g in self.param_groups]

    @property
    def lower_bound(self) -> float:
        """Current lower-bound estimate ``fstar`` (moves only with ``use_fstar=True``)."""
        return float(self.param_groups[0]["fstar"])

    @property
    def loss_average(self) -> float:
        """Current running loss average f̄_k."""
        return float(self.param_groups[0]["loss_avg"])


class Momo(_MomoBase):
    r"""MoMo: SGD with momentum and a model-based adaptive step size.

    With :math:`\beta` the momentum, :math:`\lambda` the weight decay and step
    :math:`k = 1, 2, \dots`:

    .. math::
        \bar f_k = \beta \bar f_{k-1} + (1-\beta) f_k,\quad
        d_k = \beta d_{k-1} + (1-\beta) g_k,\quad
        \gamma_k = \beta\gamma_{k-1} + (1-\beta)\langle g_k, x_k\rangle,

        x_{k+1} = \frac{x_k - \tau_k d_k}{1 + \text{lr}\,\lambda}

    with :math:`\tau_k` as in the module docstring and :math:`\|\cdot\|_{D^{-1}}` the Euclidean
    norm. Without bias correction the averages start at the first values
    (:math:`\rho_k = 1`); with it they start at 0 and :math:`\rho_k = 1 - \beta^k`.

    Args:
        params: parameters or param groups (``lr`` and ``weight_decay`` may differ per group).
        lr: step-size cap, >= 0 (default 1.0; the adaptive step never exceeds ``lr / rho_k``).
        weight_decay: proximal L2 weight decay lambda, >= 0 (default 0.0).
        beta: momentum, in [0, 1) (default 0.9); optimizer-wide.
        lb: lower bound on the loss (default 0.0, for non-negative losses); with
            ``use_fstar`` the floor of the online estimate; optimizer-wide.
        bias_correction: start the averages at 0 and correct them by rho_k (default False);
            optimizer-wide.
        use_fstar: estimate the lower bound online (default False); optimizer-wide.

    Returns:
        ``step`` returns the loss it was given (or the closure's value).

    State: per parameter ``grad_avg`` (d); in every param group ``k``, ``loss_avg`` (f̄),
    ``gamma`` (γ) and ``fstar`` (the lower-bound estimate), and in each its last τ_k
    (``tau``).

    References:
        Schaipp, Ohana, Eickenberg, Defazio & Gower, "MoMo: Momentum Models for Adaptive
        Learning Rates", ICML 2024, arXiv:2305.07583.

    Example:
        >>> import torch
        >>> from lrlab.optim import Momo
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = Momo(model.parameters(), lr=1.0)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step(loss=loss)
        >>> 0 < opt.effective_lr()[0] <= 1.0
        True
    """

    SHARED = ("beta", "lb", "bias_correction", "use_fstar")

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        weight_decay: float = 0.0,
        beta: float = 0.9,
        lb: float = 0.0,
        bias_correction: bool = False,
        use_fstar: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, weight_decay=weight_decay, beta=beta, lb=lb,
            bias_correction=bias_correction, use_fstar=use_fstar,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        self._check_common(group)
        check_real("beta", group["beta"], 0.0, 1.0, hi_open=True)
        check_bool("bias_correction", group["bias_correction"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:
        """One MoMo step; ``loss`` (or ``closure``) gives the current mini-batch loss."""
        loss, f = _loss_value(closure, loss, "Momo")
        first = self.param_groups[0]
        beta, corrected = first["beta"], first["bias_correction"]
        sc = self._globals()
        k = sc["k"] + 1
        start_from_value = k == 1 and not corrected
        sc["loss_avg"] = beta * (f if start_from_value else sc["loss_avg"]) + (1 - beta) * f
        rho = 1.0 - beta**k if corrected else 1.0

        active, xg, xd, sq = [], [], [], []
        for group in self.param_groups:
            params = with_grad(group)
            grads = [p.grad for p in params]
            avgs = []
            for p in params:
                state = self.state[p]
                if "grad_avg" not in state:
                    init = torch.zeros_like(p) if corrected else p.grad.clone()
                    state["grad_avg"] = init
                avgs.append(state["grad_avg"])
            active.append((params, avgs))
            if not params:
                continue
            for p_c, g_c, d_c in blocks(params, grads, avgs):
                torch._foreach_lerp_(d_c, g_c, 1 - beta)
                xg.append(dot_sum(p_c, g_c))
                xd.append(dot_sum(p_c, d_c))
                sq.append(sq_norm_sum(d_c))
        if not xg:
            sc["k"] = k
            self._sync(sc)
            return loss
        xg_v, xd_v, sq_v = torch.stack([torch.stack(v).sum() for v in (xg, xd, sq)]).tolist()
        gamma = xg_v if start_from_value else sc["gamma"]
        sc["gamma"] = beta * gamma + (1 - beta) * xg_v

        for group, (params, avgs) in zip(self.param_groups, active, strict=True):
            tau = group["tau"] = _step_size(sc, group, rho, xd_v, sq_v)
            if not params:
                continue
            decay = group["lr"] * group["weight_decay"]
            for p_c, d_c in blocks(params, avgs):
                torch._foreach_add_(p_c, d_c, alpha=-tau)
                if decay > 0:
                    torch._foreach_div_(p_c, 1.0 + decay)
        sc["k"] = k
        self._sync(sc)
        return loss


class MomoAdam(_MomoBase):
    r"""MoMo-Adam: Adam's preconditioner with the MoMo adaptive step size.

    With :math:`\beta_1, \beta_2` the betas and step :math:`k = 1, 2, \dots` (all averages start
    at 0):

    .. math::
        d_k = \beta_1 d_{k-1} + (1-\beta_1) g_k,\quad
        v_k = \beta_2 v_{k-1} + (1-\beta_2) g_k^2,\quad
        D_k = \sqrt{v_k / (1-\beta_2^k)} + \epsilon,

        \bar f_k,\ \gamma_k \text{ as in Momo with } \beta_1,\quad \rho_k = 1-\beta_1^k,\quad
        \|d_k\|^2_{D_k^{-1}} = \textstyle\sum d_k^2 / D_k,

        x_{k+1} = \frac{x_k - \tau_k\, d_k / D_k}{1 + \text{lr}\,\lambda}
        \ (\text{divide=True}),\qquad
        x_{k+1} = (1 - \text{lr}\,\lambda)\,x_k - \tau_k\, d_k / D_k\ (\text{divide=False}).

    State per parameter: ``grad_avg`` (d) and ``rms`` = √v. Both passes of a step (the norm
    ‖d‖²_{D⁻¹} before τ is known, the update after) need √v; keeping the root takes one square
    root per step instead of two, and v is recovered as ``rms²`` when it is updated (the results
    change only by rounding).

    Args:
        params: parameters or param groups (``lr``, ``eps``, ``weight_decay`` may differ).
        lr: step-size cap, >= 0 (default 1e-2).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)); optimizer-wide.
        eps: added to the denominator, >= 0 (default 1e-8).
        weight_decay: lambda, >= 0 (default 0.0).
        lb: lower bound on the loss (default 0.0; floor of the online estimate with
            ``use_fstar``); optimizer-wide.
        divide: proximal weight decay (True, the default) or AdamW-style decoupled decay
            (False).
        use_fstar: estimate the lower bound online (default False); optimizer-wide.

    Returns:
        ``step`` returns the loss it was given (or the closure's value).

    In every param group: ``k``, ``loss_avg``, ``gamma``, ``fstar``, and in each its last τ_k
    (``tau``).

    References:
        Schaipp, Ohana, Eickenberg, Defazio & Gower, "MoMo: Momentum Models for Adaptive
        Learning Rates", ICML 2024, arXiv:2305.07583.

    Example:
        >>> import torch
        >>> from lrlab.optim import MomoAdam
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = MomoAdam(model.parameters(), lr=1e-2)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step(loss=loss)
        >>> opt.param_groups[0]["k"]
        10
    """

    SHARED = ("betas", "lb", "use_fstar")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        lb: float = 0.0,
        divide: bool = True,
        use_fstar: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, lb=lb,
            divide=divide, use_fstar=use_fstar,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        self._check_common(group)
        group["betas"] = check_betas(group["betas"])
        check_real("eps", group["eps"], 0.0)
        check_bool("divide", group["divide"])

    def _denominators(self, rms: list[torch.Tensor], root_bc2: float,
                      eps: float) -> list[torch.Tensor]:
        """``sqrt(v) + eps * sqrt(1 - beta2^k)`` = D_k * sqrt(1 - beta2^k) in a work buffer: the
        bias correction is applied to the scalars instead of to every element."""
        return into(torch.add, self._scratch.views(1, rms), rms, eps * root_bc2)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:
        """One MoMo-Adam step; ``loss`` (or ``closure``) gives the current mini-batch loss."""
        loss, f = _loss_value(closure, loss, "MomoAdam")
        beta1, beta2 = self.param_groups[0]["betas"]
        sc = self._globals()
        k = sc["k"] + 1
        bc1, root_bc2 = 1.0 - beta1**k, math.sqrt(1.0 - beta2**k)

        active, xg, xd, sq = [], [], [], []
        for group in self.param_groups:
            params = with_grad(group)
            grads = [p.grad for p in params]
            self._states(params, zeros=("grad_avg", "rms"))
            avgs, roots = self._entries(params, "grad_avg", "rms")
            active.append((params, avgs, roots))
            if not params:
                continue
            for p_c, g_c, d_c, r_c in blocks(params, grads, avgs, roots):
                torch._foreach_lerp_(d_c, g_c, 1 - beta1)
                torch._foreach_mul_(r_c, r_c)  # v from its root
                torch._foreach_mul_(r_c, beta2)
                torch._foreach_addcmul_(r_c, g_c, g_c, value=1 - beta2)
                torch._foreach_sqrt_(r_c)
                xg.append(dot_sum(p_c, g_c))
                xd.append(dot_sum(p_c, d_c))
                denom = self._denominators(r_c, root_bc2, group["eps"])
                scaled = into(torch.div, denom, d_c, denom)
                sq.append(dot_sum(d_c, scaled) * root_bc2)
        sc["loss_avg"] = (1 - beta1) * f + beta1 * sc["loss_avg"]
        if not xg:
            sc["k"] = k
            self._sync(sc)
            return loss
        xg_v, xd_v, sq_v = torch.stack([torch.stack(v).sum() for v in (xg, xd, sq)]).tolist()
        sc["gamma"] = beta1 * sc["gamma"] + (1 - beta1) * xg_v

        for group, (params, avgs, roots) in zip(self.param_groups, active, strict=True):
            tau = group["tau"] = _step_size(sc, group, bc1, xd_v, sq_v)
            if not params:
                continue
            decay = group["lr"] * group["weight_decay"]
            for p_c, d_c, r_c in blocks(params, avgs, roots):
                if decay > 0 and not group["divide"]:
                    torch._foreach_mul_(p_c, 1.0 - decay)
                denom = self._denominators(r_c, root_bc2, group["eps"])
                torch._foreach_addcdiv_(p_c, d_c, denom, value=-tau * root_bc2)
                if decay > 0 and group["divide"]:
                    torch._foreach_div_(p_c, 1.0 + decay)
        sc["k"] = k
        self._sync(sc)
        return loss
