"""Schedule-Free SGD and AdamW over stacked members, as ``lrlab.optim.schedulefree``.

- ``schedulefree_sgd``: Schedule-Free SGD, as ``lrlab.optim.schedulefree.SGDScheduleFree`` with
  r = 0 and weight_lr_power = 2. The parameters hold the gradient point y; z starts at y.
  With k = step number from 0, beta = the option ``beta`` (in (0, 1)), gamma = lr *
  min(1, (k + 1) / warmup_steps) (the built-in linear warm-up, warmup_steps =
  floor(warmup_fraction * steps); lr = lr_m * s_m(t) from the schedule), lr_max = max of gamma
  so far, weight w = lr_max^2, c = w / (sum of w so far) (0 while that sum is 0), and
  g = gradient at y + wd * y:
  y <- (1 - c) y + c z + gamma (beta (1 - c) - 1) g,   z <- z - gamma g.
  The point to evaluate is x = y + (1 - 1/beta) (z - y) (``eval_params``).
- ``schedulefree_adamw``: Schedule-Free AdamW, as ``lrlab.optim.schedulefree.AdamWScheduleFree``
  with betas = (beta1, beta2), eps, r = 0 and weight_lr_power = 2: as ``schedulefree_sgd``
  (same warm-up, weights and evaluation point, beta = beta1) with g replaced by the
  preconditioned u = g / (sqrt(v / (1 - beta2^(k+1))) + eps) + wd * y, where
  v <- beta2 v + (1 - beta2) g^2 from the raw gradient (weight decay decoupled, evaluated at y).

Options: ``beta`` / ``beta1`` = 0.9 in (0, 1), ``beta2`` = 0.999 in [0, 1), ``eps`` = 1e-8,
``weight_decay`` = 0, ``warmup_fraction`` = 0.05 in [0, 1].
"""

from __future__ import annotations

import math
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

WEIGHT_LR_POWER = 2.0
WARMUP_FRACTION = Option(0.05, lo=0.0, hi=1.0)


def warmup_steps(fraction: float, steps: int) -> int:
    """The built-in warm-up length: floor(fraction * steps) (the default 0.05 gives steps // 20)."""
    return math.floor(fraction * steps)


class ScheduleFreeSGD(BatchedMethod):
    """Schedule-Free SGD (see the module docstring); evaluated at the averaged point x.

    Example: ``ScheduleFreeSGD([p], {"beta": 0.95, "warmup_fraction": 0.1}, steps=500)``.
    """

    name = "schedulefree_sgd"
    OPTIONS = {"beta": beta(0.9, open_low=True), "weight_decay": WEIGHT_DECAY,
               "warmup_fraction": WARMUP_FRACTION}
    STATE = ("z", "lr_max", "w_sum")
    lr_free = True
    evaluates_average = True
    #: the option holding the interpolation beta
    BETA = "beta"

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.beta = self.opts[self.BETA]
        self.z = [p.clone() for p in params]
        self.lr_max = [torch.zeros_like(self.beta)]
        self.w_sum = [torch.zeros_like(self.beta)]
        self.use_wd = self.any_member(lambda o: o["weight_decay"] != 0)
        warm = [warmup_steps(o["warmup_fraction"], self.steps) for o in self.members]
        self.warm_until = max(warm)
        self.warm = self._like.new_tensor(warm)
        self.warm_div = self._like.new_tensor([max(w, 1) for w in warm])
        self.eval_weight = self.per_member(lambda o: 1.0 - 1.0 / o[self.BETA])

    def _gamma(self, lr: torch.Tensor) -> torch.Tensor:
        k = self.k
        if k >= self.warm_until:
            return lr
        ramp = torch.full_like(lr, k + 1.0) / self.warm_div
        return torch.where(k < self.warm, lr * ramp, lr)

    def _direction(self, i: int, g: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """The step's direction before weight decay (the raw gradient here)."""
        return g

    def step(self, params, grads, lr, active) -> None:
        gamma = self._gamma(lr)
        lr_max = torch.maximum(self.lr_max[0], gamma)
        weight = lr_max**WEIGHT_LR_POWER
        w_sum = self.w_sum[0] + weight
        c = torch.where(w_sum > 0, weight / w_sum, 0.0)
        coef = gamma * (self.beta * (1.0 - c) - 1.0)
        if active is None:
            self.lr_max[0], self.w_sum[0] = lr_max, w_sum
        else:
            self.lr_max[0] = torch.where(active, lr_max, self.lr_max[0])
            self.w_sum[0] = torch.where(active, w_sum, self.w_sum[0])
        wd = self.opts["weight_decay"]
        for i, (y, g) in enumerate(zip(params, grads, strict=True)):
            z = self.z[i]
            g = self._direction(i, g, active)
            if self.use_wd:
                g = g + bcast(wd, y) * y
            new_y = torch.lerp(y, z, bcast(c, y)).add_(bcast(coef, y) * g)
            new_z = z - bcast(gamma, z) * g
            if active is not None:
                keep = bcast(active, y)
                new_y = torch.where(keep, new_y, y)
                new_z = torch.where(keep, new_z, z)
            y.copy_(new_y)
            z.copy_(new_z)
        self.k += 1

    def eval_params(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """x = y + (1 - 1/beta) (z - y): the averaged point, where the run is evaluated."""
        return [
            torch.lerp(y, z, bcast(self.eval_weight, y))
            for y, z in zip(params, self.z, strict=True)
        ]


class ScheduleFreeAdamW(ScheduleFreeSGD):
    """Schedule-Free AdamW (see the module docstring); evaluated at the averaged point x.

    Example: ``ScheduleFreeAdamW([p], {"beta1": 0.95, "beta2": 0.99}, steps=500)``.
    """

    name = "schedulefree_adamw"
    OPTIONS = {"beta1": beta(0.9, open_low=True), "beta2": beta(0.999), "eps": positive(1e-8),
               "weight_decay": WEIGHT_DECAY, "warmup_fraction": WARMUP_FRACTION}
    STATE = ("z", "v", "lr_max", "w_sum")
    coordinatewise = True
    BETA = "beta1"

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        super().__init__(params, options, steps)
        self.v = [torch.zeros_like(p) for p in params]
        self.c2 = self.per_member(lambda o: 1.0 - o["beta2"])

    def step(self, params, grads, lr, active) -> None:
        self._inv_bc2 = 1.0 / (1.0 - self.opts["beta2"] ** (self.k + 1))
        super().step(params, grads, lr, active)

    def _direction(self, i: int, g: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        v = self.v[i]
        new_v = v * bcast(self.opts["beta2"], v) + bcast(self.c2, g) * g * g
        u = g / ((new_v * bcast(self._inv_bc2, v)).sqrt() + bcast(self.opts["eps"], v))
        if active is not None:
            new_v = torch.where(bcast(active, v), new_v, v)
        self.v[i] = new_v
        return u
