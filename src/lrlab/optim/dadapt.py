r"""D-Adaptation: SGD, Adam and AdaGrad with a step size estimated from the iterates.

D-Adaptation keeps a lower bound ``d`` on the distance D = ‖x₀ − x*‖ and steps with ``d · lr``;
``d`` never decreases. ``lr`` is a multiplier on the estimate (1 = the method as published), so a
learning-rate schedule (``lrlab.torchx.ScheduleLR`` or any ``LRScheduler``) scales the estimated
step. Every group must use the same ``lr``, except ``lr = 0``, which freezes a group: it adds
nothing to the estimate and takes no step (the dual-averaging forms, SGD and AdaGrad, keep moving
towards their current averaged point under momentum).

The global scalars (``d``, the numerator accumulators, the step counter ``k``) live in every
parameter group, so ``state_dict()`` / ``load_state_dict()`` resume exactly. Parameters whose
``grad`` is ``None`` are skipped. Coupled weight decay is added to a copy of the gradient;
``p.grad`` is never modified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from lrlab.optim._base import GlobalStepOptimizer, evaluate
from lrlab.optim._foreach import (
    abs_sums,
    blocks,
    dots,
    into,
    params_with_grad,
    square_sums,
    sums,
    total,
    with_decay,
)
from lrlab.optim._validate import (
    check_beta,
    check_betas,
    check_bool,
    check_nonneg,
    check_positive,
)

Closure = Callable[[], Any] | None


class DAdaptSGD(GlobalStepOptimizer):
    r"""SGD with D-Adaptation, in dual-averaging form.

    With γ_k = d_k · lr / ‖g₀‖ (g₀ the first gradient, without weight decay):

    .. math::
        g_k &\leftarrow g_k + \lambda x_k \\
        N_{k+1} &= N_k + γ_k ⟨g_k, s_k⟩, \quad s_{k+1} = s_k + γ_k g_k \\
        \hat d &= 2 N_{k+1} / ‖s_{k+1}‖, \quad d_{k+1} = \max(d_k, \min(\hat d, d_k · r)) \\
        x_{k+1} &= β x_k + (1 − β)(x_0 − s_{k+1})

    where β is ``momentum`` and r is ``growth_rate``. State per parameter: ``s`` and ``x0``.

    Args:
        params: parameters or param groups.
        lr: multiplier on the estimated step size d, >= 0 (default 1.0, the published
            method); groups share one ``lr``, 0 freezes a group.
        momentum: β in [0, 1) (default 0.0); optimizer-wide.
        weight_decay: coupled L2 decay λ, >= 0 (default 0.0).
        d0: initial estimate of d, > 0 (default 1e-6); optimizer-wide.
        growth_rate: bound r on d_{k+1} / d_k, >= 1 (default inf: unbounded).

    State: per parameter ``s``, ``x0``; in every param group ``d``, ``k``,
    ``numerator_weighted`` (N) and ``g0_norm`` (‖g₀‖).

    References:
        Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023,
        arXiv:2301.07733.

    Example:
        >>> import torch
        >>> from lrlab.optim import DAdaptSGD
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = DAdaptSGD(model.parameters(), momentum=0.9)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.d > 1e-6 and opt.effective_lr() == [opt.d]
        True
    """

    SHARED = ("momentum", "growth_rate", "d0")
    GLOBALS = ("d", "k", "numerator_weighted", "g0_norm")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, d0=d0,
            growth_rate=growth_rate, d=d0, k=0, numerator_weighted=0.0, g0_norm=0.0,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_beta("momentum", group["momentum"])

    @torch.no_grad()
    def step(self, closure: Closure = None) -> Any:
        loss = evaluate(closure)
        lr = self._common_lr()
        groups = self.param_groups
        first = groups[0]
        d, k = first["d"], first["k"]
        ck = 1.0 - first["momentum"]
        gathered = [(g, *params_with_grad(g)) for g in groups]
        g0_norm = first["g0_norm"]
        if k == 0:
            sq = [v for g, _, grads in gathered if g["lr"] > 0
                  for (gs,) in blocks(grads)
                  for v in square_sums(gs, self._scratch.views(1, gs))]
            g0_norm = math.sqrt(total(sq))
            if g0_norm == 0:
                return loss
        dlr = d * lr / g0_norm

        num_parts: list[torch.Tensor] = []
        sq_parts: list[torch.Tensor] = []
        for group, params, grads in gathered:
            states = self._states(params, zeros=("s",), copies=("x0",))
            s_all = [st["s"] for st in states]
            x0_all = [st["x0"] for st in states]
            for ps, g_c, ss, x0 in blocks(params, grads, s_all, x0_all):
                work = self._scratch.views(1, ps)
                if group["lr"] > 0:
                    gs = with_decay(g_c, ps, group["weight_decay"], self._scratch)
                    num_parts += dots(gs, ss)
                    torch._foreach_add_(ss, gs, alpha=dlr)
                    sq_parts += square_sums(ss, work)
                if ck == 1.0:
                    torch._foreach_copy_(ps, x0)
                    torch._foreach_sub_(ps, ss)
                else:
                    z = into(torch.sub, work, x0, ss)
                    torch._foreach_mul_(ps, 1 - ck)
                    torch._foreach_add_(ps, z, alpha=ck)

        numerator = total(num_parts, start=first["numerator_weighted"], scale=dlr)
        sk_sq = total(sq_parts)
        if lr > 0 and sk_sq > 0:
            d_hat = 2 * numerator / math.sqrt(sk_sq)
            d = max(d, min(d_hat, d * first["growth_rate"]))
        self._sync({"d": d, "k": k + 1, "numerator_weighted": numerator,
                             "g0_norm": g0_norm})
        return loss


class DAdaptAdam(GlobalStepOptimizer):
    r"""Adam with D-Adaptation.

    With γ_k = d_k · lr · c_k (c_k = √(1−β₂^{k+1}) / (1−β₁^{k+1}) if ``use_bias_correction``
    else 1), ρ the group's ``layer_scale`` and λ its ``weight_decay``:

    .. math::
        g &\leftarrow g + λx \ \text{(coupled only)}\\
        A_k &= \sum ρ γ_k ⟨g, s_k / (\sqrt{v_k} + ε)⟩ \\
        m &\leftarrow β_1 m + ργ_k(1−β_1) g, \quad v \leftarrow β_2 v + (1−β_2) g^2,
        \quad s_{k+1} = \sqrt{β_2} s_k + γ_k(1−\sqrt{β_2}) g \\
        N_{k+1} &= \sqrt{β_2} N_k + (1−\sqrt{β_2}) A_k, \quad
        \hat d = N_{k+1} / ((1−\sqrt{β_2}) \sum ρ‖s_{k+1}‖_1) \\
        d_{k+1} &= \max(d_k, \min(\hat d, d_k r)), \quad
        x \leftarrow x − λγ_k x \ \text{(decoupled only)} − m / (\sqrt{v} + ε)

    State per parameter: ``s``, ``exp_avg`` (m) and ``rms`` = √v. Keeping the root rather
    than v itself takes one square root per step instead of two (both ⟨g, s/(√v+ε)⟩ before the
    update and the step after it need √v); v is recovered as ``rms²`` when it is updated, which
    changes the results only by rounding.

    Args:
        params: parameters or param groups.
        lr: multiplier on the estimated step size d, >= 0 (default 1.0, the published
            method); groups share one ``lr``, 0 freezes a group.
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)); optimizer-wide.
        eps: denominator offset ε, > 0 (default 1e-8).
        weight_decay: λ, >= 0 (default 0.0).
        decouple: AdamW-style decay of x instead of adding λx to the gradient (default
            False); optimizer-wide.
        use_bias_correction: multiply the step by c_k (default False); optimizer-wide.
        d0: initial estimate of d, > 0 (default 1e-6); optimizer-wide.
        growth_rate: bound r on d_{k+1} / d_k, >= 1 (default inf: unbounded).
        layer_scale: the group's weight ρ in the estimate and the step, >= 0 (default 1.0).

    In every param group: ``d``, ``k`` and ``numerator_weighted`` (N).

    References:
        Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023,
        arXiv:2301.07733.

    Example:
        >>> import torch
        >>> from lrlab.optim import DAdaptAdam
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = DAdaptAdam(model.parameters(), weight_decay=0.01, decouple=True)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.param_groups[0]["k"]
        10
    """

    SHARED = ("betas", "growth_rate", "use_bias_correction", "decouple", "d0")
    GLOBALS = ("d", "k", "numerator_weighted")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
        layer_scale: float = 1.0,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decouple=decouple,
            use_bias_correction=use_bias_correction, d0=d0, growth_rate=growth_rate,
            layer_scale=layer_scale, d=d0, k=0, numerator_weighted=0.0,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        group["betas"] = check_betas(group["betas"])
        check_positive("eps", group["eps"])
        check_bool("decouple", group["decouple"])
        check_bool("use_bias_correction", group["use_bias_correction"])
        check_nonneg("layer_scale", group["layer_scale"])

    @torch.no_grad()
    def step(self, closure: Closure = None) -> Any:
        loss = evaluate(closure)
        lr = self._common_lr()
        groups = self.param_groups
        if lr == 0:
            return loss
        first = groups[0]
        beta1, beta2 = first["betas"]
        d, k = first["d"], first["k"]
        decouple = first["decouple"]
        bc = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) \
            if first["use_bias_correction"] else 1.0
        dlr = d * lr * bc
        sqrt_beta2 = beta2**0.5

        active = [(g, *params_with_grad(g)) for g in groups if g["lr"] > 0]
        numerator_acc = 0.0
        l1 = 0.0
        for group, params, grads in active:
            self._states(params, zeros=("s", "exp_avg", "rms"))
            r, eps = group["layer_scale"], group["eps"]
            decay = 0.0 if decouple else group["weight_decay"]
            group_dots: list[torch.Tensor] = []
            group_l1: list[torch.Tensor] = []
            state_lists = self._entries(params, "s", "exp_avg", "rms")
            for ps, g_c, ss, ms, rms in blocks(params, grads, *state_lists):
                gs = with_decay(g_c, ps, decay, self._scratch)
                work = into(torch.add, self._scratch.views(1, rms), rms, eps)
                group_dots += dots(gs, into(torch.div, work, ss, work))
                torch._foreach_mul_(ms, beta1)
                torch._foreach_add_(ms, gs, alpha=r * dlr * (1 - beta1))
                torch._foreach_mul_(rms, rms)  # v
                torch._foreach_mul_(rms, beta2)
                torch._foreach_addcmul_(rms, gs, gs, value=1 - beta2)
                torch._foreach_sqrt_(rms)
                torch._foreach_mul_(ss, sqrt_beta2)
                torch._foreach_add_(ss, gs, alpha=dlr * (1 - sqrt_beta2))
                group_l1 += abs_sums(ss, work)
            numerator_acc = total(group_dots, start=numerator_acc, scale=r * dlr)
            l1 = total(group_l1, start=l1, scale=r)

        numerator = sqrt_beta2 * first["numerator_weighted"] + (1 - sqrt_beta2) * numerator_acc
        if l1 == 0:
            return loss
        d_hat = numerator / ((1 - sqrt_beta2) * l1)
        d_new = max(d, min(d_hat, d * first["growth_rate"]))

        for group, params, _ in active:
            decay = group["weight_decay"] if decouple else 0.0
            for ps, m_c, r_c in blocks(params, *self._entries(params, "exp_avg", "rms")):
                den = into(torch.add, self._scratch.views(1, r_c), r_c, group["eps"])
                if decay != 0:
                    torch._foreach_add_(ps, ps, alpha=-decay * dlr)
                torch._foreach_addcdiv_(ps, m_c, den, value=-1)
        self._sync({"d": d_new, "k": k + 1, "numerator_weighted": numerator})
        return loss


class DAdaptAdaGrad(GlobalStepOptimizer):
    r"""AdaGrad with D-Adaptation, in dual-averaging form.

    With γ_k = d_k · lr, α₀ = 10⁻⁶ (elementwise), λ the group's ``weight_decay``:

    .. math::
        g &\leftarrow g + λx, \quad α \leftarrow α + g^2, \quad a = \sqrt{α} + ε \\
        G_{k+1} &= G_k + γ_k^2 \sum g^2 / a, \quad s_{k+1} = s_k + γ_k g \\
        \hat d &= (\sum s_{k+1}^2 / a − G_{k+1}) / ‖s_{k+1}‖_1,
        \quad d_{k+1} = \max(d_k, \min(\hat d, d_k r)) \\
        x &\leftarrow β x + (1−β)(x_0 − s_{k+1} / a)

    State per parameter: ``alphak``, ``sk``, ``x0``. Sparse gradients are not supported.

    Args:
        params: parameters or param groups.
        lr: multiplier on the estimated step size d, >= 0 (default 1.0, the published
            method); groups share one ``lr``, 0 freezes a group.
        momentum: β in [0, 1) (default 0.0); optimizer-wide.
        weight_decay: coupled L2 decay λ, >= 0 (default 0.0).
        eps: denominator offset ε, > 0 (default 1e-6).
        d0: initial estimate of d, > 0 (default 1e-6); optimizer-wide.
        growth_rate: bound r on d_{k+1} / d_k, >= 1 (default inf: unbounded).

    In every param group: ``d``, ``k`` and ``gsq_weighted`` (G).

    References:
        Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023,
        arXiv:2301.07733.

    Example:
        >>> import torch
        >>> from lrlab.optim import DAdaptAdaGrad
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = DAdaptAdaGrad(model.parameters(), momentum=0.5)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.d >= 1e-6
        True
    """

    SHARED = ("momentum", "growth_rate", "d0")
    GLOBALS = ("d", "k", "gsq_weighted")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps, d0=d0,
            growth_rate=growth_rate, d=d0, k=0, gsq_weighted=0.0,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_beta("momentum", group["momentum"])
        check_positive("eps", group["eps"])

    @torch.no_grad()
    def step(self, closure: Closure = None) -> Any:
        loss = evaluate(closure)
        lr = self._common_lr()
        groups = self.param_groups
        first = groups[0]
        d, k = first["d"], first["k"]
        ck = 1.0 - first["momentum"]
        dlr = d * lr

        gsq_parts: list[torch.Tensor] = []
        sksq_parts: list[torch.Tensor] = []
        l1_parts: list[torch.Tensor] = []
        for group in groups:
            params, grads = params_with_grad(group)
            for p in params:
                st = self.state[p]
                if "sk" not in st:
                    st["alphak"] = torch.full_like(p, 1e-6)
                    st["sk"] = torch.zeros_like(p)
                    st["x0"] = p.detach().clone()
            eps, active = group["eps"], group["lr"] > 0
            state_lists = self._entries(params, "alphak", "sk", "x0")
            for ps, g_c, alphas, ss, x0 in blocks(params, grads, *state_lists):
                work = self._scratch.views(1, ps)
                if active:
                    gs = with_decay(g_c, ps, group["weight_decay"], self._scratch)
                    gsq = into(torch.mul, work, gs, gs)
                    torch._foreach_add_(alphas, gsq)
                den = into(torch.sqrt, self._scratch.views(2, ps), alphas)
                torch._foreach_add_(den, eps)
                if active:
                    torch._foreach_div_(gsq, den)
                    gsq_parts += sums(gsq)
                    torch._foreach_add_(ss, gs, alpha=dlr)
                self._weighted_norms(ss, den, work, sksq_parts, l1_parts)
                # z = x0 − s / a, then x ← β x + (1 − β) z
                step = into(torch.div, work, ss, den)
                if ck == 1.0:
                    torch._foreach_copy_(ps, x0)
                    torch._foreach_sub_(ps, step)
                else:
                    torch._foreach_neg_(step)
                    torch._foreach_add_(step, x0)
                    torch._foreach_mul_(ps, 1 - ck)
                    torch._foreach_add_(ps, step, alpha=ck)
            idle = [p for p in group["params"]
                    if p.grad is None and p in self.state and "sk" in self.state[p]]
            for alphas, ss in blocks(*self._entries(idle, "alphak", "sk")):
                den = into(torch.sqrt, self._scratch.views(2, alphas), alphas)
                torch._foreach_add_(den, eps)
                self._weighted_norms(ss, den, self._scratch.views(1, alphas),
                                     sksq_parts, l1_parts)

        l1 = total(l1_parts)
        if l1 == 0:
            return loss
        sksq = total(sksq_parts)
        gsq_weighted = first["gsq_weighted"] + dlr * dlr * total(gsq_parts)
        if lr > 0:
            d_hat = (sksq - gsq_weighted) / l1
            d = max(d, min(d_hat, d * first["growth_rate"]))
        self._sync({"d": d, "k": k + 1, "gsq_weighted": gsq_weighted})
        return loss

    @staticmethod
    def _weighted_norms(
        ss: list[torch.Tensor],
        den: list[torch.Tensor],
        work: list[torch.Tensor],
        sksq_parts: list[torch.Tensor],
        l1_parts: list[torch.Tensor],
    ) -> None:
        """Append Σ s²/a and ‖s‖₁ of each tensor (``work``: buffers shaped like ``ss``)."""
        sq = into(torch.mul, work, ss, ss)
        torch._foreach_div_(sq, den)
        sksq_parts += sums(sq)
        l1_parts += abs_sums(ss, work)
