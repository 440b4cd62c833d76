"""Functional optimizers over stacked parameters ``[M, ...]`` with per-member hyper-parameters.

Each follows ``torch.optim`` semantics exactly, member by member (weight decay coupled: the
gradient becomes g + wd * p before anything else, except for ``schedulefree_adamw`` and
``prodigy``, which decouple it as their classes do):

- ``sgd``:      p <- p - lr * g
- ``momentum``: b <- mu * b + g (b = g at the first step), p <- p - lr * b  (heavy ball, as
  ``torch.optim.SGD(momentum=mu)`` with dampening 0, no Nesterov)
- ``adam``:     m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  p <- p - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps), k = step number from 1,
  b1 = the config's ``momentum``, b2 = 0.999, eps = 1e-8 (``torch.optim.Adam`` defaults).
- ``schedulefree_sgd``: Schedule-Free SGD, as ``lrlab.optim.schedulefree.SGDScheduleFree`` with
  r = 0 and weight_lr_power = 2. The parameters hold the gradient point y; z starts at y.
  With k = step number from 0, beta = the config's ``momentum`` (in (0, 1)), gamma = lr *
  min(1, (k + 1) / warmup_steps) (the built-in linear warm-up; lr = lr_m * s_m(t) from the
  schedule), lr_max = max of gamma so far, weight w = lr_max^2, c = w / (sum of w so far)
  (0 while that sum is 0), and g = gradient at y + wd * y:
  y <- (1 - c) y + c z + gamma (beta (1 - c) - 1) g,   z <- z - gamma g.
  The point to evaluate is x = y + (1 - 1/beta) (z - y) (``eval_params``).
- ``schedulefree_adamw``: Schedule-Free AdamW, as ``lrlab.optim.schedulefree.AdamWScheduleFree``
  with betas = (beta, 0.999), eps = 1e-8, r = 0 and weight_lr_power = 2: as
  ``schedulefree_sgd`` (same warm-up, weights and evaluation point) with g replaced by the
  preconditioned u = g / (sqrt(v / (1 - 0.999^(k+1))) + eps) + wd * y, where
  v <- 0.999 v + 0.001 g^2 from the raw gradient (weight decay decoupled, evaluated at y).
- ``dadapt_sgd``: D-Adaptation SGD in dual-averaging form, as
  ``lrlab.optim.dadapt.DAdaptSGD`` with d0 = 1e-6 and no growth limit. Per member, with
  g0 = ||first gradient|| (before weight decay; a member waits while it is 0), beta = the
  config's ``momentum`` and g = gradient + wd * x:
  gamma = d * lr / g0,  N <- N + gamma <g, s>,  s <- s + gamma g,
  x <- beta x + (1 - beta) (x0 - s),  d <- max(d, 2 N / ||s||) (when lr > 0 and s != 0).
  ``lr`` multiplies the estimated step (1 = the method as published).
- ``prodigy``: Prodigy, as ``lrlab.optim.prodigy.Prodigy(betas=(beta, 0.999))`` with its other
  defaults (weight decay decoupled, d0 = 1e-6, d_coef = 1, no growth limit, no bias correction,
  no safeguard warm-up, slice_p = 1). Per member, with beta = the config's ``momentum``,
  b2 = 0.999, b3 = sqrt(b2), eps = 1e-8, x0 = the starting point, and g the raw gradient:
  dlr = d * lr,  N <- b3 N + (d / d0) dlr <g, x0 - x>,  m <- beta m + d (1 - beta) g,
  v <- b2 v + d^2 (1 - b2) g^2,  s <- b3 s + (d / d0) dlr g,
  d_max <- max(d_max, N / ||s||_1),  d <- d_max,
  x <- x - wd dlr x - dlr u / (sqrt(v) + d eps), u = m (u = d g when beta = 0).
  A member with lr = 0 is left untouched; while ||s||_1 = 0 only m, v and s move (as the
  single-model optimizer, which then skips the update). ``lr`` multiplies the estimated step.

A member whose ``active`` flag is False is left untouched: its update is replaced by zero (or
its old value kept) with ``torch.where`` (never multiplied by zero, so non-finite values cannot
turn into NaN), and no operation mixes members, so its values never reach the others.
"""

from __future__ import annotations

import torch

from lrlab._checks import check_int
from lrlab.train.types import OPTIMIZERS, SCHEDULE_FREE

ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8
SF_WEIGHT_LR_POWER = 2.0
DADAPT_D0 = 1e-6
PRODIGY_D0 = 1e-6
_STATE = {
    "momentum": ("buf",),
    "adam": ("m", "v"),
    "schedulefree_sgd": ("z", "lr_max", "w_sum"),
    "schedulefree_adamw": ("z", "v", "lr_max", "w_sum"),
    "dadapt_sgd": ("x0", "s", "d", "numerator", "g0_norm"),
    "prodigy": ("x0", "m", "v", "s", "d", "d_max", "numerator"),
}


def _member_sum(tensors) -> torch.Tensor:
    """Per-member sum over all entries of [M, ...] tensors: a [M] vector."""
    return sum(t.flatten(1).sum(1) for t in tensors)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [M] vector shaped to broadcast against a [M, ...] parameter."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class BatchedOptimizer:
    """One optimizer for M stacked members; ``momentum`` and ``weight_decay`` are [M] tensors.

    ``warmup_steps`` (>= 0) is the linear warm-up of the Schedule-Free kinds (unused
    otherwise).
    """

    def __init__(
        self,
        kind: str,
        params: list[torch.Tensor],
        momentum: torch.Tensor,
        weight_decay: torch.Tensor,
        *,
        warmup_steps: int = 0,
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, lo=0)
        self.kind = kind
        self.mu = momentum
        self.wd = weight_decay
        self.use_wd = bool((weight_decay != 0).any())
        self.k = 0
        if kind == "momentum":
            self.buf = [torch.zeros_like(p) for p in params]
        elif kind == "adam":
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
        elif kind in SCHEDULE_FREE:
            if bool(((momentum <= 0) | (momentum >= 1)).any()):
                raise ValueError(
                    f"momentum of {kind} (its interpolation beta) must be in (0, 1)"
                )
            self.z = [p.clone() for p in params]
            if kind == "schedulefree_adamw":
                self.v = [torch.zeros_like(p) for p in params]
            self.lr_max = [torch.zeros_like(momentum)]
            self.w_sum = [torch.zeros_like(momentum)]
        elif kind == "dadapt_sgd":
            self.x0 = [p.clone() for p in params]
            self.s = [torch.zeros_like(p) for p in params]
            self.d = [torch.full_like(momentum, DADAPT_D0)]
            self.numerator = [torch.zeros_like(momentum)]
            self.g0_norm = [torch.zeros_like(momentum)]
        elif kind == "prodigy":
            self.x0 = [p.clone() for p in params]
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
            self.s = [torch.zeros_like(p) for p in params]
            self.d = [torch.full_like(momentum, PRODIGY_D0)]
            self.d_max = [torch.full_like(momentum, PRODIGY_D0)]
            self.numerator = [torch.zeros_like(momentum)]

    def state_dict(self) -> dict[str, object]:
        """Step count and per-parameter state tensors (``torch.save``-able, weights_only)."""
        state: dict[str, object] = {"kind": self.kind, "k": self.k}
        for name in _STATE.get(self.kind, ()):
            state[name] = [t.clone() for t in getattr(self, name)]
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a ``state_dict`` taken from an optimizer of the same kind and shapes."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for optimizer {state.get('kind')!r}, not {self.kind!r}")
        self.k = int(state["k"])  # type: ignore[arg-type]
        for name in _STATE.get(self.kind, ()):
            mine, theirs = getattr(self, name), state[name]
            if [t.shape for t in mine] != [t.shape for t in theirs]:  # type: ignore[union-attr]
                raise ValueError(f"state {name!r} has shapes that do not match the parameters")
            for a, b in zip(mine, theirs, strict=True):  # type: ignore[call-overload]
                a.copy_(b)

    def step(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor | None,
    ) -> None:
        """Update ``params`` in place with learning rates ``lr`` [M] for the ``active`` members.

        ``active=None`` means every member is active (the masks are skipped).
        """
        if self.kind in SCHEDULE_FREE:
            self._schedulefree_step(params, grads, lr, active)
            return
        if self.kind == "dadapt_sgd":
            self._dadapt_step(params, grads, lr, active)
            return
        if self.kind == "prodigy":
            self._prodigy_step(params, grads, lr, active)
            return
        self.k += 1
        if self.kind == "adam":
            k = self.k
            bc1 = 1.0 - self.mu**k
            bc2_sqrt = (1.0 - torch.full_like(self.mu, ADAM_BETA2) ** k).sqrt()
            step_size = lr / bc1
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if self.use_wd:
                g = g + _bcast(self.wd, p) * p
            if self.kind == "sgd":
                delta = _bcast(lr, p) * g
            elif self.kind == "momentum":
                b = self.buf[i]
                b.mul_(_bcast(self.mu, b)).add_(g)
                delta = _bcast(lr, p) * b
            else:
                m, v = self.m[i], self.v[i]
                b1 = _bcast(self.mu, m)
                m.mul_(b1).add_((1.0 - b1) * g)
                v.mul_(ADAM_BETA2).addcmul_(g, g, value=1.0 - ADAM_BETA2)
                denom = (v.sqrt() / _bcast(bc2_sqrt, v)).add_(ADAM_EPS)
                delta = _bcast(step_size, p) * m / denom
            if active is not None:
                delta = torch.where(_bcast(active, delta), delta, 0.0)
            p.sub_(delta)

    def _schedulefree_step(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor | None,
    ) -> None:
        k, warm = self.k, self.warmup_steps
        gamma = lr * ((k + 1) / warm) if k < warm else lr
        lr_max = torch.maximum(self.lr_max[0], gamma)
        weight = lr_max**SF_WEIGHT_LR_POWER
        w_sum = self.w_sum[0] + weight
        c = torch.where(w_sum > 0, weight / w_sum, 0.0)
        coef = gamma * (self.mu * (1.0 - c) - 1.0)
        if active is None:
            self.lr_max[0], self.w_sum[0] = lr_max, w_sum
        else:
            self.lr_max[0] = torch.where(active, lr_max, self.lr_max[0])
            self.w_sum[0] = torch.where(active, w_sum, self.w_sum[0])
        adamw = self.kind == "schedulefree_adamw"
        bc2 = 1.0 - ADAM_BETA2 ** (k + 1)
        for i, (y, g) in enumerate(zip(params, grads, strict=True)):
            z = self.z[i]
            if adamw:
                v = self.v[i]
                new_v = v * ADAM_BETA2 + (1.0 - ADAM_BETA2) * g * g
                g = g / ((new_v * (1.0 / bc2)).sqrt() + ADAM_EPS)
                if active is not None:
                    new_v = torch.where(_bcast(active, v), new_v, v)
                self.v[i] = new_v
            if self.use_wd:
                g = g + _bcast(self.wd, y) * y
            new_y = torch.lerp(y, z, _bcast(c, y)).add_(_bcast(coef, y) * g)
            new_z = z - _bcast(gamma, z) * g
            if active is not None:
                keep = _bcast(active, y)
                new_y = torch.where(keep, new_y, y)
                new_z = torch.where(keep, new_z, z)
            y.copy_(new_y)
            z.copy_(new_z)
        self.k += 1

    def _dadapt_step(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor | None,
    ) -> None:
        g0 = self.g0_norm[0]
        fresh = g0 == 0
        if bool(fresh.any()):
            g0 = torch.where(fresh, _member_sum(g.square() for g in grads).sqrt(), g0)
        ok = g0 > 0
        if active is not None:
            ok = ok & active
        if self.use_wd:
            grads = [g + _bcast(self.wd, p) * p for p, g in zip(params, grads, strict=True)]
        d = self.d[0]
        gamma = d * lr / torch.where(g0 > 0, g0, 1.0)
        numerator = self.numerator[0] + gamma * _member_sum(
            g * s for g, s in zip(grads, self.s, strict=True)
        )
        new_s = [s + _bcast(gamma, s) * g for s, g in zip(self.s, grads, strict=True)]
        s_sq = _member_sum(s.square() for s in new_s)
        grow = (lr > 0) & (s_sq > 0)
        d_hat = 2.0 * numerator / torch.where(grow, s_sq, 1.0).sqrt()
        new_d = torch.where(grow, torch.maximum(d, d_hat), d)
        for i, x in enumerate(params):
            b = _bcast(self.mu, x)
            new_x = b * x + (1.0 - b) * (self.x0[i] - new_s[i])
            keep = _bcast(ok, x)
            x.copy_(torch.where(keep, new_x, x))
            self.s[i] = torch.where(keep, new_s[i], self.s[i])
        self.d[0] = torch.where(ok, new_d, d)
        self.numerator[0] = torch.where(ok, numerator, self.numerator[0])
        self.g0_norm[0] = torch.where(ok, g0, self.g0_norm[0])
        self.k += 1

    def _prodigy_step(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor | None,
    ) -> None:
        beta2 = ADAM_BETA2
        beta3 = beta2**0.5
        d, d0 = self.d[0], PRODIGY_D0
        dlr = d * lr
        rate = d / d0 * dlr
        numerator = beta3 * self.numerator[0] + rate * _member_sum(
            g * (x0 - x) for g, x0, x in zip(grads, self.x0, params, strict=True)
        )
        moving = lr > 0
        if active is not None:
            moving = moving & active
        new_m, new_v, new_s = [], [], []
        for i, g in enumerate(grads):
            b1 = _bcast(self.mu, g)
            keep = _bcast(moving, g)
            new_m.append(torch.where(keep, self.m[i] * b1 + _bcast(d, g) * (1.0 - b1) * g,
                                     self.m[i]))
            new_v.append(torch.where(keep, self.v[i] * beta2
                                     + _bcast(d * d * (1.0 - beta2), g) * g * g, self.v[i]))
            new_s.append(torch.where(keep, self.s[i] * beta3 + _bcast(rate, g) * g, self.s[i]))
        self.m, self.v, self.s = new_m, new_v, new_s
        l1 = _member_sum(s.abs() for s in new_s)
        step = moving & (l1 > 0)
        d_hat = numerator / torch.where(step, l1, 1.0)
        d_max = torch.where(step, torch.maximum(self.d_max[0], d_hat), self.d_max[0])
        for i, x in enumerate(params):
            new_d = _bcast(d_max, x)
            u = torch.where(_bcast(self.mu > 0, x), new_m[i], new_d * grads[i])
            new_x = x - _bcast(self.wd * dlr, x) * x
            new_x = new_x - _bcast(dlr, x) * u / (new_v[i].sqrt() + new_d * ADAM_EPS)
            x.copy_(torch.where(_bcast(step, x), new_x, x))
        self.d[0] = torch.where(step, d_max, d)
        self.d_max[0] = d_max
        self.numerator[0] = torch.where(step, numerator, self.numerator[0])
        self.k += 1

    def eval_params(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """The point a run is evaluated at: ``params`` itself, except for the Schedule-Free kinds,
        whose parameters hold y and which are evaluated at x = y + (1 - 1/beta) (z - y)."""
        if self.kind not in SCHEDULE_FREE:
            return params
        return [
            torch.lerp(y, z, _bcast(1.0 - 1.0 / self.mu, y))
            for y, z in zip(params, self.z, strict=True)
        ]
