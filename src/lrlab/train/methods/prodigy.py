"""Prodigy over stacked members, as ``lrlab.optim.prodigy.Prodigy``.

As ``Prodigy(betas=(beta1, beta2), beta3, eps, weight_decay, d0, d_coef)`` with its other
defaults (weight decay decoupled, no growth limit, no bias correction, no safeguard warm-up,
slice_p = 1). Per member, with b3 = beta3 (default sqrt(beta2)), x0 = the starting point, d
starting at d0, and g the raw gradient:

  dlr = d * lr,  N <- b3 N + (d / d0) dlr <g, x0 - x>,  m <- beta1 m + d (1 - beta1) g,
  v <- beta2 v + d^2 (1 - beta2) g^2,  s <- b3 s + (d / d0) dlr g,
  d_max <- max(d_max, d_coef N / ||s||_1),  d <- d_max,
  x <- x - wd dlr x - dlr u / (sqrt(v) + d eps), u = m (u = d g when beta1 = 0).

A member with lr = 0 is left untouched; while ||s||_1 = 0 only m, v and s move (as the
single-model optimizer, which then skips the update). ``lr`` multiplies the estimated step.
Options: beta1 = 0.9, beta2 = 0.999, beta3 = None (sqrt(beta2)), all in [0, 1); eps = 1e-8,
d0 = 1e-6, d_coef = 1 (all > 0); weight_decay = 0 (decoupled).
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
    member_sum,
    positive,
    sqrt_of,
)


class Prodigy(BatchedMethod):
    """Prodigy (see the module docstring).

    Example: ``Prodigy([p], {"beta1": 0.0, "d_coef": 0.5, "weight_decay": 0.01})``.
    """

    name = "prodigy"
    OPTIONS = {
        "beta1": beta(0.9),
        "beta2": beta(0.999),
        "beta3": Option(None, lo=0.0, hi=1.0, hi_open=True, derive=sqrt_of("beta2")),
        "eps": positive(1e-8),
        "d0": positive(1e-6),
        "d_coef": positive(1.0),
        "weight_decay": WEIGHT_DECAY,
    }
    STATE = ("x0", "m", "v", "s", "d", "d_max", "numerator")
    lr_free = True
    coordinatewise = True

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.x0 = [p.clone() for p in params]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.s = [torch.zeros_like(p) for p in params]
        self.d = [self.opts["d0"].clone()]
        self.d_max = [self.opts["d0"].clone()]
        self.numerator = [torch.zeros_like(self.d[0])]
        self.c1 = self.per_member(lambda o: 1.0 - o["beta1"])
        self.c2 = self.per_member(lambda o: 1.0 - o["beta2"])

    def step(self, params, grads, lr, active) -> None:
        o = self.opts
        beta1, beta2, beta3 = o["beta1"], o["beta2"], o["beta3"]
        d = self.d[0]
        dlr = d * lr
        rate = d / o["d0"] * dlr
        numerator = beta3 * self.numerator[0] + rate * member_sum(
            g * (x0 - x) for g, x0, x in zip(grads, self.x0, params, strict=True)
        )
        moving = lr > 0
        if active is not None:
            moving = moving & active
        new_m, new_v, new_s = [], [], []
        for i, g in enumerate(grads):
            keep = bcast(moving, g)
            m = self.m[i] * bcast(beta1, g) + bcast(d * self.c1, g) * g
            v = self.v[i] * bcast(beta2, g) + bcast(d * d * self.c2, g) * g * g
            s = self.s[i] * bcast(beta3, g) + bcast(rate, g) * g
            new_m.append(torch.where(keep, m, self.m[i]))
            new_v.append(torch.where(keep, v, self.v[i]))
            new_s.append(torch.where(keep, s, self.s[i]))
        self.m, self.v, self.s = new_m, new_v, new_s
        l1 = member_sum(s.abs() for s in new_s)
        step = moving & (l1 > 0)
        d_hat = o["d_coef"] * numerator / torch.where(step, l1, 1.0)
        d_max = torch.where(step, torch.maximum(self.d_max[0], d_hat), self.d_max[0])
        for i, x in enumerate(params):
            new_d = bcast(d_max, x)
            u = torch.where(bcast(beta1 > 0, x), new_m[i], new_d * grads[i])
            new_x = x - bcast(o["weight_decay"] * dlr, x) * x
            new_x = new_x - bcast(dlr, x) * u / (new_v[i].sqrt() + new_d * bcast(o["eps"], x))
            x.copy_(torch.where(bcast(step, x), new_x, x))
        self.d[0] = torch.where(step, d_max, d)
        self.d_max[0] = d_max
        self.numerator[0] = torch.where(step, numerator, self.numerator[0])
        self.k += 1
