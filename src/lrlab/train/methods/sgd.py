"""SGD and heavy-ball momentum over stacked members, as ``torch.optim.SGD`` member by member.

Weight decay is coupled: g <- g + wd * p before anything else.

- ``sgd``:      p <- p - lr * g
- ``momentum``: b <- mu * b + g (b = g at the first step), p <- p - lr * b  (heavy ball, as
  ``torch.optim.SGD(momentum=mu)`` with dampening 0, no Nesterov)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from lrlab.train.methods._base import WEIGHT_DECAY, BatchedMethod, OptionValue, bcast, beta


class _CoupledDecay(BatchedMethod):
    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.use_wd = self.any_member(lambda o: o["weight_decay"] != 0)

    def _decayed(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g + bcast(self.opts["weight_decay"], p) * p if self.use_wd else g


class SGD(_CoupledDecay):
    """Plain SGD: p <- p - lr * (g + wd * p).

    Example: ``SGD([p], {"weight_decay": 1e-4}).step([p], [g], lr, None)``.
    """

    name = "sgd"
    OPTIONS = {"weight_decay": WEIGHT_DECAY}

    def step(self, params, grads, lr, active) -> None:
        self.k += 1
        for p, g in zip(params, grads, strict=True):
            delta = bcast(lr, p) * self._decayed(p, g)
            if active is not None:
                delta = torch.where(bcast(active, delta), delta, 0.0)
            p.sub_(delta)


class Momentum(_CoupledDecay):
    """Heavy ball, as ``torch.optim.SGD(momentum=mu, dampening=0)``:
    b <- mu b + (g + wd p), p <- p - lr b.

    Example: ``Momentum([p], {"momentum": [0.9, 0.5]})`` (two members, each its own mu).
    """

    name = "momentum"
    OPTIONS = {"momentum": beta(0.9), "weight_decay": WEIGHT_DECAY}
    STATE = ("buf",)

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.buf = [torch.zeros_like(p) for p in params]

    def step(self, params, grads, lr, active) -> None:
        self.k += 1
        mu = self.opts["momentum"]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            b = self.buf[i]
            b.mul_(bcast(mu, b)).add_(self._decayed(p, g))
            delta = bcast(lr, p) * b
            if active is not None:
                delta = torch.where(bcast(active, delta), delta, 0.0)
            p.sub_(delta)
