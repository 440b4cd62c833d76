"""D-Adaptation SGD over stacked members, as ``lrlab.optim.dadapt.DAdaptSGD``.

Dual-averaging form with no growth limit. Per member, with g0 = ||first gradient|| (before
weight decay; a member waits while it is 0), beta = the option ``momentum``, d starting at the
option ``d0``, and g = gradient + wd * x:

  gamma = d * lr / g0,  N <- N + gamma <g, s>,  s <- s + gamma g,
  x <- beta x + (1 - beta) (x0 - s),  d <- max(d, 2 N / ||s||) (when lr > 0 and s != 0).

``lr`` multiplies the estimated step (1 = the method as published).
Options: momentum = 0.9 in [0, 1), d0 = 1e-6 (> 0), weight_decay = 0 (coupled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from lrlab.train.methods._base import (
    WEIGHT_DECAY,
    BatchedMethod,
    OptionValue,
    bcast,
    beta,
    member_sum,
    positive,
)


class DAdaptSGD(BatchedMethod):
    """D-Adaptation SGD (see the module docstring).

    Example: ``DAdaptSGD([p], {"momentum": 0.0, "d0": 1e-4})``.
    """

    name = "dadapt_sgd"
    OPTIONS = {"momentum": beta(0.9), "d0": positive(1e-6), "weight_decay": WEIGHT_DECAY}
    STATE = ("x0", "s", "d", "numerator", "g0_norm")
    lr_free = True

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.x0 = [p.clone() for p in params]
        self.s = [torch.zeros_like(p) for p in params]
        self.d = [self.opts["d0"].clone()]
        self.numerator = [torch.zeros_like(self.d[0])]
        self.g0_norm = [torch.zeros_like(self.d[0])]
        self.use_wd = self.any_member(lambda o: o["weight_decay"] != 0)
        self.c = self.per_member(lambda o: 1.0 - o["momentum"])
        # Whether a member may still be waiting for its first non-zero gradient is only asked
        # where the answer is cheap (on the CPU); elsewhere the norm is computed every step.
        self._ask = params[0].device.type == "cpu"

    def step(self, params, grads, lr, active) -> None:
        g0 = self.g0_norm[0]
        fresh = g0 == 0
        if not self._ask or bool(fresh.any()):
            g0 = torch.where(fresh, member_sum(g.square() for g in grads).sqrt(), g0)
        ok = g0 > 0
        if active is not None:
            ok = ok & active
        if self.use_wd:
            wd = self.opts["weight_decay"]
            grads = [g + bcast(wd, p) * p for p, g in zip(params, grads, strict=True)]
        d = self.d[0]
        gamma = d * lr / torch.where(g0 > 0, g0, 1.0)
        numerator = self.numerator[0] + gamma * member_sum(
            g * s for g, s in zip(grads, self.s, strict=True)
        )
        new_s = [s + bcast(gamma, s) * g for s, g in zip(self.s, grads, strict=True)]
        s_sq = member_sum(s.square() for s in new_s)
        grow = (lr > 0) & (s_sq > 0)
        d_hat = 2.0 * numerator / torch.where(grow, s_sq, 1.0).sqrt()
        new_d = torch.where(grow, torch.maximum(d, d_hat), d)
        b = self.opts["momentum"]
        for i, x in enumerate(params):
            new_x = bcast(b, x) * x + bcast(self.c, x) * (self.x0[i] - new_s[i])
            keep = bcast(ok, x)
            x.copy_(torch.where(keep, new_x, x))
            self.s[i] = torch.where(keep, new_s[i], self.s[i])
        self.d[0] = torch.where(ok, new_d, d)
        self.numerator[0] = torch.where(ok, numerator, self.numerator[0])
        self.g0_norm[0] = torch.where(ok, g0, self.g0_norm[0])
        self.k += 1
