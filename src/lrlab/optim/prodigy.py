r"""Prodigy: Adam whose step size d is estimated from the distance travelled from x₀.

``lr`` multiplies the estimate (1 = the method as published); the step in use is
``d · lr`` (times the bias correction when enabled), so lrlab schedules scale it through
``lrlab.torchx.ScheduleLR`` or any ``LRScheduler``. Groups share one ``lr``; ``lr = 0`` freezes a
group (no contribution to the estimate, no step, no decay).

The global scalars (``d``, ``d_max``, ``d_numerator``, the step counter ``k``) are entries of
every parameter group, so ``state_dict()`` / ``load_state_dict()`` resume exactly. Parameters
with ``grad is None`` are skipped; ``p.grad`` is never modified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from lrlab.optim._base import GlobalStepOptimizer, evaluate
from lrlab.optim._foreach import (
    abs_sums,
    chunks,
    into,
    params_with_grad,
    plan,
    take,
    total,
    with_decay,
)
from lrlab.optim._validate import (
    check_beta,
    check_betas,
    check_bool,
    check_positive,
    check_slice,
)


def _sliced(t: torch.Tensor, step: int) -> torch.Tensor:
    """Every ``step``-th entry of ``t`` in row-major order (a view when possible)."""
    flat = t.reshape(-1)
    return flat if step == 1 else flat[::step]


class Prodigy(GlobalStepOptimizer):
    r"""Prodigy (Mishchenko & Defazio), with every option of the reference formulation.

    With c_k the bias correction (√(1−β₂^{k+1})/(1−β₁^{k+1}) if ``use_bias_correction``, else
    1), γ_k = d_k · lr · c_k, β₃ = ``beta3`` (default √β₂), a bar marking the slice of every
    ``slice_p``-th entry, λ the group's ``weight_decay``:

    .. math::
        g &\leftarrow g + λx \ \text{(if not decouple)} \\
        N_{k+1} &= β_3 N_k + (d_k/d_0) γ_k ⟨\bar g, \bar x_0 − \bar x_k⟩ \\
        m &\leftarrow β_1 m + d_k(1−β_1) g, \qquad v \leftarrow β_2 v + d_k^2 (1−β_2) g^2 \\
        s &\leftarrow β_3 s + (d_k/d_0)\, η_k\, \bar g, \qquad
            η_k = d_k \text{ if safeguard\_warmup else } γ_k \\
        \hat d &= \text{d\_coef} · N_{k+1} / ‖s‖_1;\quad
            d' = \max(d_k, \hat d) \text{ while } d_k = d_0;\quad
            d_{\max} \leftarrow \max(d_{\max}, \hat d);\quad
            d_{k+1} = \min(d_{\max}, d' · \text{growth\_rate}) \\
        x &\leftarrow x − λγ_k x \ \text{(if decouple)} − γ_k\, m / (\sqrt v + d_{k+1} ε)

    With β₁ = 0 no ``m`` is kept and the step is γ_k d_{k+1} g / (√v + d_{k+1} ε).
    ``slice_p > 1`` estimates d from a strided subset of each tensor (less memory for ``s`` and
    ``x₀``). A parameter that is all zeros at its first step stores ``x₀`` as a scalar zero.

    Args:
        params: parameters or param groups.
        lr: multiplier on the estimate d, >= 0 (default 1.0, the published method); groups
            share one ``lr``, 0 freezes a group.
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)); optimizer-wide.
        beta3: β₃ in [0, 1), or None for √β₂ (default None); optimizer-wide.
        eps: denominator offset ε, > 0 (default 1e-8).
        weight_decay: λ, >= 0 (default 0.0).
        decouple: AdamW-style decay of x instead of adding λx to the gradient (default True);
            optimizer-wide.
        use_bias_correction: multiply the step by c_k (default False); optimizer-wide.
        safeguard_warmup: use d_k instead of γ_k in the update of s (default False).
        d0: initial estimate of d, > 0 (default 1e-6); optimizer-wide.
        d_coef: multiplier on the estimate d̂, > 0 (default 1.0); optimizer-wide.
        growth_rate: bound on d_{k+1} / d_k, >= 1 (default inf: unbounded); optimizer-wide.
        slice_p: estimate d from every ``slice_p``-th entry, integer >= 1 (default 1).

    State: per parameter ``s``, ``p0`` (x₀), ``exp_avg`` (m, if β₁ > 0), ``exp_avg_sq`` (v);
    in every param group ``d``, ``d_max``, ``d_numerator`` (N) and ``k``.

    References:
        Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
        ICML 2024, arXiv:2306.06101.

    Example:
        >>> import torch
        >>> from lrlab.optim import Prodigy
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = Prodigy(model.parameters(), weight_decay=0.01, safeguard_warmup=True)
        >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.d > 1e-6
        True
    """

    SHARED = ("betas", "beta3", "use_bias_correction", "d0", "d_coef", "growth_rate", "decouple")
    GLOBALS = ("d", "d_max", "d_numerator", "k")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = float("inf"),
        slice_p: int = 1,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, beta3=beta3, eps=eps, weight_decay=weight_decay,
            decouple=decouple, use_bias_correction=use_bias_correction,
            safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef, growth_rate=growth_rate,
            slice_p=slice_p, d=d0, d_max=d0, d_numerator=0.0, k=0,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        group["betas"] = check_betas(group["betas"])
        if group["beta3"] is not None:
            group["beta3"] = check_beta("beta3", group["beta3"])
        check_positive("eps", group["eps"])
        check_bool("decouple", group["decouple"])
        check_bool("use_bias_correction", group["use_bias_correction"])
        check_bool("safeguard_warmup", group["safeguard_warmup"])
        check_positive("d_coef", group["d_coef"])
        group["slice_p"] = check_slice(group["slice_p"])

    def _init_state(self, p: torch.Tensor, slice_p: int, keep_avg: bool) -> None:
        st = self.state[p]
        if "s" not in st:
            st["s"] = torch.zeros_like(_sliced(p, slice_p))
            if p.any():
                st["p0"] = _sliced(p, slice_p).detach().clone()
            else:
                st["p0"] = torch.zeros((), dtype=p.dtype, device=p.device)
            if keep_avg:
                st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = evaluate(closure)
        lr = self._common_lr()
        groups = self.param_groups
        if lr == 0:
            return loss
        first = groups[0]
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else math.sqrt(beta2)
        d, d_max, d0, k = first["d"], first["d_max"], first["d0"], first["k"]
        decouple = first["decouple"]
        bc = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) \
            if first["use_bias_correction"] else 1.0
        dlr = d * lr * bc
        numerator = first["d_numerator"] * beta3

        active = [(g, *params_with_grad(g)) for g in groups if g["lr"] > 0]
        dot_parts: list[torch.Tensor] = []
        l1_parts: list[torch.Tensor] = []
        cut: list[dict[str, list[torch.Tensor]]] = []
        for group, params, grads in active:
            sp = group["slice_p"]
            for p in params:
                self._init_state(p, sp, beta1 > 0)
            names = ("exp_avg", "exp_avg_sq") if beta1 > 0 else ("exp_avg_sq",)
            lists = dict(zip(names, self._entries(params, *names), strict=True))
            # the cut points are multiples of slice_p: a block's every slice_p-th entry is then
            # the matching range of the sliced state s, p0
            pieces = plan(params, grads, *lists.values(), multiple=sp)
            views = {name: take(pieces, lst) for name, lst in lists.items()}
            s, p0 = self._entries(params, "s", "p0")
            views.update(p=take(pieces, params), g=take(pieces, grads),
                         s=take(pieces, s, sp), p0=take(pieces, p0, sp))
            cut.append(views)
            coupled = 0.0 if decouple else group["weight_decay"]
            s_rate = (d / d0) * (d if group["safeguard_warmup"] else dlr)
            for sl in chunks(views["p"]):
                ps = views["p"][sl]
                gs = with_decay(views["g"][sl], ps, coupled, self._scratch)
                g_cut = [_sliced(g, sp) for g in gs]
                work = self._scratch.views(1, g_cut)
                for g, p, p0, w in zip(g_cut, ps, views["p0"][sl], work, strict=True):
                    dot_parts.append(torch.dot(g, torch.sub(p0, _sliced(p, sp), out=w)))
                if beta1 > 0:
                    ms = views["exp_avg"][sl]
                    torch._foreach_mul_(ms, beta1)
                    torch._foreach_add_(ms, gs, alpha=d * (1 - beta1))
                vs = views["exp_avg_sq"][sl]
                torch._foreach_mul_(vs, beta2)
                torch._foreach_addcmul_(vs, gs, gs, value=d * d * (1 - beta2))
                ss = views["s"][sl]
                torch._foreach_mul_(ss, beta3)
                torch._foreach_add_(ss, g_cut, alpha=s_rate)
                l1_parts += abs_sums(ss, work)

        d_denom = total(l1_parts)
        if d_denom == 0:
            return loss
        numerator = numerator + total(dot_parts, scale=(d / d0) * dlr)
        d_hat = first["d_coef"] * numerator / d_denom
        d_new = max(d, d_hat) if d == d0 else d
        d_max = max(d_max, d_hat)
        d_new = min(d_max, d_new * first["growth_rate"])

        for (group, _, _), views in zip(active, cut, strict=True):
            eps = group["eps"]
            decay = group["weight_decay"]
            for sl in chunks(views["p"]):
                ps = views["p"][sl]
                vs = views["exp_avg_sq"][sl]
                den = into(torch.sqrt, self._scratch.views(1, vs), vs)
                torch._foreach_add_(den, d_new * eps)
                if decouple and decay != 0:
                    torch._foreach_add_(ps, ps, alpha=-decay * dlr)
                if beta1 > 0:
                    torch._foreach_addcdiv_(ps, views["exp_avg"][sl], den, value=-dlr)
                else:
                    gs = with_decay(views["g"][sl], ps, 0.0 if decouple else decay,
                                    self._scratch)
                    torch._foreach_addcdiv_(ps, gs, den, value=-dlr * d_new)
        self._sync({"d": d_new, "d_max": d_max, "d_numerator": numerator, "k": k + 1})
        return loss
