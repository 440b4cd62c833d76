r"""SP, TAPS and MOTAPS: stochastic Polyak steps, with a known target (TAPS) or a moving one
(MOTAPS), for finite sums :math:`f(w) = \frac1n \sum_{i=1}^n f_i(w)`.

Each :math:`f_i` is one example's loss, including its share of any ridge term. TAPS and MOTAPS
keep one scalar :math:`\alpha_i` per example (a running estimate of :math:`f_i` at the
solution), their mean :math:`\bar\alpha` and a target :math:`\tau` for that mean; every step is
a relaxed projection onto the linearised equations :math:`f_i(w) = \alpha_i`, and every
:math:`n` examples one onto :math:`\text{mean}\,\alpha = \tau`.

**How a step is called.** After ``loss.backward()`` on the mean of the batch's per-example
losses, call ``opt.step(losses=per_example, indices=idx)``: ``losses`` holds the per-example
losses :math:`f_i(w)` of the batch (a 1-d tensor of B values, or a number when B = 1) and
``indices`` their example indices in ``range(n)`` (B integers), so that ``p.grad`` holds the
gradient of :math:`f_B = \text{mean}_{i \in B} f_i`. ``step(closure)`` works too, with a
closure that recomputes the gradient and returns the per-example losses.

**What is the published method, what is lrlab's.** With one example per step (B = 1) the updates
are those of the first author's reference code, step for step. Batches of B > 1 examples are
lrlab's own generalisation (no minibatch rule of the authors' is implemented): the step uses
:math:`f_B = \text{mean}_{i\in B} f_i` and :math:`\alpha_B = \text{mean}_{i\in B}\alpha_i`,
every :math:`\alpha_i` of the batch moves by the same amount (an index that occurs twice moves
twice), and the target step happens each time the number of examples seen passes a multiple
of :math:`n` (every :math:`n` steps when B = 1).

State: ``alpha`` (float64, n values) in the state of the first parameter of the first group;
the optimizer-wide scalars ``k`` (steps), ``seen`` (examples), ``alpha_mean`` (ᾱ) and ``tau``
(τ) in every param group, and each group's last step size ``step_size``; the averaging variant
keeps ``z`` per parameter. ``state_dict()`` therefore carries all of it, ``alpha`` stays
float64 through ``load_state_dict`` whatever the parameters' dtype, and a reload continues
exactly where the run stopped.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch

from lrlab._checks import check_int, check_real
from lrlab.optim._base import ValidatedOptimizer, evaluate
from lrlab.optim._foreach import with_grad
from lrlab.optim._validate import check_lr, check_positive, common_lr

__all__ = ["MOTAPS", "SP", "TAPS"]


def _batch(
    name: str, closure: Callable[[], Any] | None, losses: Any, indices: Any, n: int | None
) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """The closure's value (or ``losses``), the per-example losses as float64 [B] and the
    indices as int64 [B] (None when ``n`` is None and no indices were given)."""
    if closure is not None and losses is not None:
        raise ValueError(f"{name}.step takes either losses= or a closure, not both")
    if closure is None and losses is None:
        raise ValueError(
            f"{name}.step needs the batch's per-example losses: call step(losses=..., "
            "indices=...) after loss.backward(), or step(closure, indices=...) with a closure "
            "that returns them"
        )
    out = evaluate(closure) if closure is not None else losses
    if isinstance(out, torch.Tensor):
        values = out.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    elif isinstance(out, numbers.Real) and not isinstance(out, bool):
        values = torch.tensor([float(out)], dtype=torch.float64)
    else:
        raise ValueError(f"{name}.step: losses must be a tensor of per-example losses or a "
                         f"number, got {type(out).__name__}")
    if values.numel() == 0:
        raise ValueError(f"{name}.step got an empty batch of losses")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name}.step got a non-finite loss value")
    if indices is None:
        if n is None:
            return out, values, None
        raise ValueError(f"{name}.step needs the example indices of the batch: "
                         "step(losses=..., indices=...)")
    idx = torch.as_tensor(indices)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"{name}.step: indices must be integers, got dtype {idx.dtype}")
    idx = idx.to(device="cpu", dtype=torch.int64).reshape(-1)
    if idx.numel() != values.numel():
        raise ValueError(f"{name}.step got {values.numel()} losses but {idx.numel()} indices")
    if n is not None and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise ValueError(f"{name}.step: example index {bad} is out of range(n) with n={n}")
    return out, values, idx


def _sq_norm(groups: list[dict[str, Any]]) -> tuple[list[list[torch.Tensor]], float]:
    """Per group its parameters with a gradient, and ‖∇‖² over all of them (float64)."""
    active = [with_grad(g) for g in groups]
    parts = [p.grad.detach().double().square().sum() for ps in active for p in ps]
    return active, float(torch.stack(parts).sum()) if parts else 0.0


class SP(ValidatedOptimizer):
    r"""SP: SGD with the stochastic Polyak step size (lower bound 0), capped.

    With :math:`f_B` the batch loss and :math:`g = \nabla f_B(w)`:

    .. math::
        s = \min\Big(\gamma\,\frac{f_B(w)}{\|g\|^2 + \epsilon},\ s_{\max}\Big),\qquad
        w \leftarrow w - s\, g

    (one example per step: :math:`f_B = f_i`, the rule of the reference code; see the module
    docstring for how ``step`` is called). The reference runs it with γ = 1, ε = 0.01 and
    :math:`s_{\max} = 4 / L_{\max}` (for logistic loss :math:`L_{\max} = \frac14 \max_i
    \|a_i\|^2 + \text{reg}`), which depends on the data: pass it as ``s_max``.
    ``effective_lr()`` reports each group's last s (0 before any step).

    Args:
        params: parameters or param groups (``lr`` may differ per group).
        lr: γ, the multiplier of the Polyak step, > 0 (default 1.0; a group's or a
            schedule's lr of 0 freezes the group).
        eps: ε added to ‖g‖², > 0 (default 0.01); optimizer-wide.
        s_max: cap on the step, > 0, or None for no cap (default None).

    Returns:
        ``step`` returns the losses it was given (or the closure's value).

    References:
        Gower, Defazio & Rabbat, "Stochastic Polyak Stepsize with a Moving Target",
        arXiv:2106.11851 (SP is their baseline).

    Example:
        >>> import torch
        >>> from lrlab.optim import SP
        >>> w = torch.zeros(3, requires_grad=True)
        >>> X, y = torch.randn(8, 3), torch.randn(8)
        >>> opt = SP([w], lr=0.5)
        >>> for i in range(8):
        ...     opt.zero_grad()
        ...     loss = (X[i] @ w - y[i]).square()
        ...     loss.backward()
        ...     _ = opt.step(losses=loss.detach())
        >>> opt.effective_lr()[0] >= 0
        True
    """

    SHARED = ("eps", "s_max")
    GLOBALS = ("k",)
    GROUP_STATE = ("step_size",)

    def __init__(self, params: Any, lr: float = 1.0, eps: float = 0.01,
                 s_max: float | None = None) -> None:
        check_positive("lr", lr)
        super().__init__(params, dict(lr=lr, eps=eps, s_max=s_max, k=0, step_size=0.0))

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        check_positive("eps", group["eps"])
        if group["s_max"] is not None:
            check_positive("s_max", group["s_max"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, losses: Any = None,
             indices: Any = None) -> Any:
        """One SP step; ``indices`` is accepted for a uniform call and not used."""
        out, values, _ = _batch("SP", closure, losses, None, None)
        f = float(values.mean())
        active, sq = _sq_norm(self.param_groups)
        cap = self.param_groups[0]["s_max"]
        for group, params in zip(self.param_groups, active, strict=True):
            s = check_lr(group["lr"]) * f / (sq + group["eps"])
            s = s if cap is None else min(s, cap)
            group["step_size"] = s
            for p in params:
                p.add_(p.grad, alpha=-s)
        self._sync({"k": self.param_groups[0]["k"] + 1})
        return out

    def effective_lr(self) -> list[float]:
        """Per group, the step s of the last step (0 before any)."""
        return [float(g["step_size"]) for g in self.param_groups]


class _Target(ValidatedOptimizer):
    """TAPS and MOTAPS: the per-example ``alpha``, its mean, the target and the step."""

    SHARED = ("n", "beta")
    GLOBALS = ("k", "seen", "alpha_mean", "tau")
    GROUP_STATE = ("step_size",)

    def __init__(self, params: Any, defaults: dict[str, Any], tau: float) -> None:
        super().__init__(params, {**defaults, "k": 0, "seen": 0, "alpha_mean": 0.0,
                                  "tau": tau, "step_size": 0.0})
        anchor = self._anchor()
        kind = torch.float64 if anchor.device.type != "mps" else torch.float32
        self.state[anchor]["alpha"] = torch.zeros(self.n, dtype=kind, device=anchor.device)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        group["n"] = check_int("n", group["n"], lo=1)
        check_real("beta", group["beta"], 0.0, 1.0, hi_open=True)

    def _anchor(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    @property
    def n(self) -> int:
        """The number of examples of the finite sum."""
        return int(self.param_groups[0]["n"])

    @property
    def alpha(self) -> torch.Tensor:
        """The per-example estimates α (n values)."""
        return self.state[self._anchor()]["alpha"]

    @property
    def alpha_mean(self) -> float:
        """ᾱ, the running mean of α."""
        return float(self.param_groups[0]["alpha_mean"])

    @property
    def target(self) -> float:
        """τ, the target of mean α (fixed in TAPS, moving in MOTAPS)."""
        return float(self.param_groups[0]["tau"])

    def effective_lr(self) -> list[float]:
        """Per group, the multiplier γ′c of the gradient in the last step (0 before any, and
        for a frozen group); with β = 0 this is the step γc taken by w."""
        return [float(g["step_size"]) for g in self.param_groups]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``torch.optim.Optimizer.load_state_dict``, keeping ``alpha`` in float64."""
        sd = self._upgrade(state_dict)
        saved_n = {g.get("n") for g in sd["param_groups"]}
        if saved_n != {self.n}:
            raise ValueError(f"state_dict is for n={sorted(saved_n, key=str)}, but this "
                             f"{type(self).__name__} has n={self.n}")
        states = dict(sd.get("state", {}))
        key = sd["param_groups"][0]["params"][0] if sd["param_groups"] else None
        entry = dict(states.get(key, {}))
        alpha = entry.pop("alpha", None)
        if not isinstance(alpha, torch.Tensor) or alpha.shape != (self.n,):
            raise ValueError(f"state_dict lacks alpha with n={self.n} values, the state that "
                             f"{type(self).__name__} keeps with its first parameter")
        states[key] = entry
        mine = self.alpha
        super().load_state_dict({**sd, "state": states})
        self.state[self._anchor()]["alpha"] = alpha.to(device=mine.device,
                                                       dtype=mine.dtype).clone()

    def _move_target(self, sc: dict[str, Any]) -> None:
        """The target step of MOTAPS (TAPS keeps τ)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, losses: Any = None,
             indices: Any = None) -> Any:
        """One step on the batch (see the module docstring for ``losses`` and ``indices``)."""
        name = type(self).__name__
        out, values, idx = _batch(name, closure, losses, indices, self.n)
        first = self.param_groups[0]
        n, beta = self.n, float(first["beta"])
        gamma = common_lr(self.param_groups)
        gamma_z = gamma / (1.0 - beta)
        alpha = self.alpha
        sc = {key: first[key] for key in self.GLOBALS}
        f = float(values.mean())
        a = float(alpha.index_select(0, idx.to(alpha.device)).double().mean())
        active, sq = _sq_norm(self.param_groups)
        c = (f - a) / (sq + 1.0)
        move = gamma_z * c
        for group, params in zip(self.param_groups, active, strict=True):
            moving = group["lr"] != 0
            group["step_size"] = move if moving else 0.0
            if not moving:
                continue
            for p in params:
                if beta == 0.0:
                    p.add_(p.grad, alpha=-move)
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["z"] = p.detach().clone()
                z = state["z"]
                z.add_(p.grad, alpha=-move)
                p.mul_(beta).add_(z, alpha=1.0 - beta)
        alpha.index_add_(0, idx.to(alpha.device),
                         torch.full((idx.numel(),), move, dtype=alpha.dtype,
                                    device=alpha.device))
        sc["alpha_mean"] = sc["alpha_mean"] + move * idx.numel() / n
        before = sc["seen"]
        sc["seen"] = before + idx.numel()
        sc["k"] = sc["k"] + 1
        for _ in range(sc["seen"] // n - before // n):
            self._move_target(sc)
            shift = gamma_z * (sc["tau"] - sc["alpha_mean"])
            alpha.add_(shift)
            sc["alpha_mean"] = sc["alpha_mean"] + shift
        self._sync(sc)
        return out


class TAPS(_Target):
    r"""TAPS: stochastic Polyak steps towards a known target τ (e.g. the optimal value f*).

    With :math:`i` the example of the step, :math:`g = \nabla f_i(w)`, α (n values, start 0)
    and :math:`\bar\alpha = \text{mean}\,\alpha`:

    .. math::
        c = \frac{f_i(w) - \alpha_i}{\|g\|^2 + 1},\quad
        w \leftarrow w - \gamma c\, g,\quad
        \alpha_i \leftarrow \alpha_i + \gamma c,\quad
        \bar\alpha \leftarrow \bar\alpha + \gamma c / n,

    and after every :math:`n` examples
    :math:`\alpha \leftarrow \alpha + \gamma(\tau - \bar\alpha)\mathbb 1,\
    \bar\alpha \leftarrow \bar\alpha + \gamma(\tau - \bar\alpha)`.
    Averaging variant (β > 0): z starts at w; the loss and gradient are taken at w = x,
    :math:`z \leftarrow z - \gamma' c\, g`, :math:`x \leftarrow \beta x + (1-\beta) z`, with
    :math:`\gamma' = \gamma / (1-\beta)` in place of γ in every update of α and ᾱ (per step
    and every n examples). Batches (B > 1) are lrlab's own generalisation (module docstring).

    Args:
        params: parameters or param groups; groups share one ``lr`` (0 freezes a group).
        n: the number of examples of the finite sum, >= 1 (α has n entries); optimizer-wide.
        lr: γ, the relaxation of the projections, > 0 (default 1.0, the reference's); a
            schedule scales it.
        target: τ, the target of mean α, e.g. the optimal value f* (default 0.0).
        beta: β in [0, 1), the averaging of the iterate (default 0.0, the plain method);
            optimizer-wide.

    Returns:
        ``step`` returns the losses it was given (or the closure's value).

    References:
        Gower, Defazio & Rabbat, "Stochastic Polyak Stepsize with a Moving Target",
        arXiv:2106.11851.

    Example:
        >>> import torch
        >>> from lrlab.optim import TAPS
        >>> X, y = torch.randn(16, 3), torch.randn(16)
        >>> w = torch.zeros(3, requires_grad=True)
        >>> opt = TAPS([w], n=16, target=0.0)
        >>> for i in torch.randint(16, (48,)).tolist():
        ...     opt.zero_grad()
        ...     loss = (X[i] @ w - y[i]).square()
        ...     loss.backward()
        ...     _ = opt.step(losses=loss.detach(), indices=[i])
        >>> opt.param_groups[0]["k"], opt.alpha.dtype
        (48, torch.float64)
    """

    def __init__(self, params: Any, n: int, lr: float = 1.0, target: float = 0.0,
                 beta: float = 0.0) -> None:
        check_positive("lr", lr)
        check_real("target", target)
        super().__init__(params, dict(n=n, lr=lr, beta=beta), float(target))


class MOTAPS(_Target):
    r"""MOTAPS: TAPS whose target τ moves towards the scaled mean of α (no f* needed).

    As :class:`TAPS` with τ starting at ``target`` (0 by default), except that after every
    :math:`n` examples, *before* the α shift,

    .. math::
        \tau \leftarrow (1-\lambda)\,\tau + \lambda\,\frac{n}{n+1}\,\bar\alpha,\qquad
        \alpha \leftarrow \alpha + \gamma(\tau - \bar\alpha)\mathbb 1,\qquad
        \bar\alpha \leftarrow \bar\alpha + \gamma(\tau - \bar\alpha).

    The reference runs it with :math:`\gamma = 1/(1 + \frac14\,\text{reg}\,e^{\text{reg}})`
    for a ridge weight reg and :math:`\lambda = 0.9 - 0.899\gamma` (≈ 0.001 at γ = 1, the
    default here); λ = 0.5 makes τ track f* much faster. The averaging variant (β) and batches
    are as in :class:`TAPS`.

    Args:
        params: parameters or param groups; groups share one ``lr`` (0 freezes a group).
        n: the number of examples of the finite sum, >= 1 (α has n entries); optimizer-wide.
        lr: γ, the relaxation of the projections, > 0 (default 1.0); a schedule scales it.
        lambd: λ in [0, 1], how fast τ moves (default 0.001); optimizer-wide.
        beta: β in [0, 1), the averaging of the iterate (default 0.0, the plain method);
            optimizer-wide.
        target: τ₀, the target's starting value (default 0.0, the reference's).

    Returns:
        ``step`` returns the losses it was given (or the closure's value).

    References:
        Gower, Defazio & Rabbat, "Stochastic Polyak Stepsize with a Moving Target",
        arXiv:2106.11851.

    Example:
        >>> import torch
        >>> from lrlab.optim import MOTAPS
        >>> X, y = torch.randn(16, 3), torch.randn(16)
        >>> w = torch.zeros(3, requires_grad=True)
        >>> opt = MOTAPS([w], n=16, lambd=0.5)
        >>> for i in torch.randint(16, (64,)).tolist():
        ...     opt.zero_grad()
        ...     loss = (X[i] @ w - y[i]).square()
        ...     loss.backward()
        ...     _ = opt.step(losses=loss.detach(), indices=[i])
        >>> opt.target > 0
        True
    """

    SHARED = ("n", "beta", "lambd")

    def __init__(self, params: Any, n: int, lr: float = 1.0, lambd: float = 0.001,
                 beta: float = 0.0, target: float = 0.0) -> None:
        check_positive("lr", lr)
        check_real("target", target)
        super().__init__(params, dict(n=n, lr=lr, lambd=lambd, beta=beta), float(target))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_real("lambd", group["lambd"], 0.0, 1.0)

    def _move_target(self, sc: dict[str, Any]) -> None:
        lam, n = float(self.param_groups[0]["lambd"]), self.n
        sc["tau"] = (1.0 - lam) * sc["tau"] + lam * (n / (n + 1)) * sc["alpha_mean"]

