"""Functional optimizers over stacked parameters ``[M, ...]`` with per-member hyper-parameters.

Each follows ``torch.optim`` semantics exactly, member by member (weight decay coupled: the
gradient becomes g + wd * p before anything else):

- ``sgd``:      p <- p - lr * g
- ``momentum``: b <- mu * b + g (b = g at the first step), p <- p - lr * b  (heavy ball, as
  ``torch.optim.SGD(momentum=mu)`` with dampening 0, no Nesterov)
- ``adam``:     m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  p <- p - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps), k = step number from 1,
  b1 = the config's ``momentum``, b2 = 0.999, eps = 1e-8 (``torch.optim.Adam`` defaults).

A member whose ``active`` flag is False is left untouched (its gradient is masked to zero and
its learning rate to zero), so non-finite values in it never reach its parameters or the others.
"""

from __future__ import annotations

import torch

from lrlab.train.types import OPTIMIZERS

ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [M] vector shaped to broadcast against a [M, ...] parameter."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class BatchedOptimizer:
    """One optimizer for M stacked members; ``momentum`` and ``weight_decay`` are [M] tensors."""

    def __init__(
        self,
        kind: str,
        params: list[torch.Tensor],
        momentum: torch.Tensor,
        weight_decay: torch.Tensor,
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
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
        self.k += 1
        if active is not None:
            lr = lr * active.to(lr.dtype)
        if self.kind == "adam":
            k = self.k
            bc1 = 1.0 - self.mu**k
            bc2_sqrt = (1.0 - torch.full_like(self.mu, ADAM_BETA2) ** k).sqrt()
            step_size = lr / bc1
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if active is not None:
                g = torch.where(_bcast(active, g), g, 0.0)
            if self.use_wd:
                g = g + _bcast(self.wd, p) * p
            if self.kind == "sgd":
                p.sub_(_bcast(lr, p) * g)
            elif self.kind == "momentum":
                b = self.buf[i]
                b.mul_(_bcast(self.mu, b)).add_(g)
                p.sub_(_bcast(lr, p) * b)
            else:
                m, v = self.m[i], self.v[i]
                b1 = _bcast(self.mu, m)
                m.mul_(b1).add_((1.0 - b1) * g)
                v.mul_(ADAM_BETA2).addcmul_(g, g, value=1.0 - ADAM_BETA2)
                denom = (v.sqrt() / _bcast(bc2_sqrt, v)).add_(ADAM_EPS)
                p.sub_(_bcast(step_size, p) * m / denom)
