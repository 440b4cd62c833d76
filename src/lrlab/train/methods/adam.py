"""Adam and AdamW over stacked members, as ``torch.optim.Adam`` / ``torch.optim.AdamW``.

With k = step number from 1, per member:

- ``adam`` (weight decay coupled: g <- g + wd * p first):
  m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
  p <- p - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)
- ``adamw`` (weight decay decoupled, as ``torch.optim.AdamW``): p <- p (1 - lr wd), then the
  Adam step above on the raw gradient g.

Options: beta1 = 0.9, beta2 = 0.999 (both in [0, 1)), eps = 1e-8 (> 0), weight_decay (>= 0;
0 for ``adam``, 0.01 for ``adamw``, as torch's defaults).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from lrlab.train.methods._base import (
    WEIGHT_DECAY,
    BatchedMethod,
    Option,
    OptionValue,
    bcast,
    beta,
    positive,
)


class Adam(BatchedMethod):
    """Adam with coupled weight decay, as ``torch.optim.Adam(betas=(b1, b2), eps, wd)``.

    Example: ``Adam([p], {"beta1": 0.8, "eps": 1e-6})``.
    """

    name = "adam"
    OPTIONS = {"beta1": beta(0.9), "beta2": beta(0.999), "eps": positive(1e-8),
               "weight_decay": WEIGHT_DECAY}
    STATE = ("m", "v")
    coordinatewise = True
    decoupled = False

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.use_wd = self.any_member(lambda o: o["weight_decay"] != 0)
        self.c1 = self.per_member(lambda o: 1.0 - o["beta1"])
        self.c2 = self.per_member(lambda o: 1.0 - o["beta2"])

    def step(self, params, grads, lr, active) -> None:
        self.k += 1
        k, o = self.k, self.opts
        step_size = lr / (1.0 - o["beta1"] ** k)
        bc2_sqrt = (1.0 - o["beta2"] ** k).sqrt()
        wd = o["weight_decay"]
        if self.decoupled and self.use_wd:
            shrink = 1.0 - lr * wd
            if active is not None:
                shrink = torch.where(active, shrink, 1.0)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if self.use_wd:
                if self.decoupled:
                    p.mul_(bcast(shrink, p))
                else:
                    g = g + bcast(wd, p) * p
            m, v = self.m[i], self.v[i]
            m.mul_(bcast(o["beta1"], m)).add_(bcast(self.c1, m) * g)
            v.mul_(bcast(o["beta2"], v)).addcmul_(bcast(self.c2, g) * g, g)
            denom = (v.sqrt() / bcast(bc2_sqrt, v)).add_(bcast(o["eps"], v))
            delta = bcast(step_size, p) * m / denom
            if active is not None:
                delta = torch.where(bcast(active, delta), delta, 0.0)
            p.sub_(delta)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW(betas=(b1, b2), eps, wd)``:
    p <- p (1 - lr wd), then the Adam step on the raw gradient.

    Example: ``AdamW([p], {"weight_decay": [0.0, 0.1]})`` (two members).
    """

    name = "adamw"
    OPTIONS = {**Adam.OPTIONS, "weight_decay": Option(0.01, lo=0.0)}
    decoupled = True
