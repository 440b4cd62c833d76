"""Functional optimizers over stacked parameters ``[M, ...]`` with per-member hyper-parameters.

Each follows ``torch.optim`` semantics exactly, member by member (weight decay coupled: the
gradient becomes g + wd * p before anything else):

- ``sgd``:      p <- p - lr * g
- ``momentum``: b <- mu * b + g (b = g at the first step), p <- p - lr * b  (heavy ball, as
  ``torch.optim.SGD(momentum=mu)`` with dampening 0, no Nesterov)
- ``adam``:     m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  p <- p - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps), k = step number from 1,
  b1 = the config's ``momentum``, b2 = 0.999, eps = 1e-8 (``torch.optim.Adam`` defaults).

A member whose ``active`` flag is False is left untouched: its update is replaced by zero with
``torch.where`` (never multiplied by zero, so non-finite values cannot turn into NaN), and no
operation mixes members, so its values never reach the others.
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

    def state_dict(self) -> dict[str, object]:
        """Step count and per-parameter state tensors (``torch.save``-able, weights_only)."""
        state: dict[str, object] = {"kind": self.kind, "k": self.k}
        if self.kind == "momentum":
            state["buf"] = [b.clone() for b in self.buf]
        elif self.kind == "adam":
            state["m"] = [t.clone() for t in self.m]
            state["v"] = [t.clone() for t in self.v]
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a ``state_dict`` taken from an optimizer of the same kind and shapes."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for optimizer {state.get('kind')!r}, not {self.kind!r}")
        self.k = int(state["k"])  # type: ignore[arg-type]
        names = {"momentum": ("buf",), "adam": ("m", "v")}.get(self.kind, ())
        for name in names:
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
