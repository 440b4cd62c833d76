"""SP, TAPS and MOTAPS over stacked members, as ``lrlab.optim.polyak`` member by member.

These methods need each step's example indices and batch loss: the engine hands them over
with ``observe(rows, loss)`` before every ``step`` (``per_example = True``), and builds the
method with ``examples=n`` (the number of training rows). Per member, with gamma = lr (the
learning-rate axis and the schedule scale gamma), f_B the member's batch objective (the mean
of its examples' losses, each with its share of the ridge term), g its gradient, B the batch
size and n the number of examples:

- ``sp``:     s = min(gamma f_B / (||g||^2 + eps), s_max), p <- p - s g (s_max = 0: no cap)
- ``taps``:   c = (f_B - mean_{i in B} alpha_i) / (||g||^2 + 1), gamma' = gamma / (1 - beta),
  z <- z - gamma' c g, p <- beta p + (1 - beta) z (beta = 0: p <- p - gamma c g),
  alpha_i <- alpha_i + gamma' c for each i in B, abar <- abar + gamma' c B / n; each time the
  examples seen pass a multiple of n: alpha <- alpha + gamma' (tau - abar), abar likewise,
  with tau = the option ``target`` (e.g. the task's f*)
- ``motaps``: as taps, with tau (from ``target``, default 0) first moved to
  (1 - lambd) tau + lambd n / (n + 1) abar at each of those points.

B = 1 is the published rule; B > 1 is lrlab's generalisation (see ``lrlab.optim.polyak``).
alpha is kept in float64 ([M, n]). Options: sp: eps = 0.01 (> 0), s_max = 0 (>= 0);
taps: target = 0, beta = 0 ([0, 1)); motaps: lambd = 0.001 ([0, 1]), beta = 0, target = 0;
``weight_decay`` is 0 (the ridge term belongs to the task's loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch

from lrlab._checks import check_int
from lrlab.train.methods._base import (
    BatchedMethod,
    Option,
    OptionValue,
    bcast,
    beta,
    member_sum,
    positive,
)

#: The ridge term is part of each example's loss f_i: no separate weight decay.
NO_DECAY = Option(0.0, lo=0.0, hi=0.0)


def _masked(delta: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """``delta`` with the rows of inactive members replaced by 0."""
    return delta if active is None else torch.where(bcast(active, delta), delta, 0.0)


class _PerExample(BatchedMethod):
    per_example: ClassVar[bool] = True
    lr_free = True

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
        *,
        examples: int | None = None,
    ) -> None:
        super().__init__(params, options, steps)
        if examples is None:
            raise ValueError(f"{self.name} needs the number of examples: examples=n")
        self.n = check_int("examples", examples, lo=1)
        self._rows: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None

    def observe(self, rows: torch.Tensor, loss: torch.Tensor) -> None:
        """The step's example indices [M, B] (into ``range(n)``) and batch objectives [M]."""
        if rows.dim() != 2 or rows.shape[0] != self._like.shape[0]:
            raise ValueError(f"rows must be [M, B] with M = {self._like.shape[0]}, got "
                             f"{tuple(rows.shape)}")
        self._rows, self._loss = rows, loss

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rows is None or self._loss is None:
            raise ValueError(f"{self.name} needs the batch: call observe(rows, loss) before "
                             "every step")
        rows, loss = self._rows, self._loss
        self._rows = self._loss = None
        return rows, loss


class SP(_PerExample):
    """SP (see the module docstring). Example: ``SP([p], {"s_max": 4.0}, examples=n)``."""

    name = "sp"
    OPTIONS = {"eps": positive(0.01), "s_max": Option(0.0, lo=0.0),
               "weight_decay": NO_DECAY}

    def step(self, params, grads, lr, active) -> None:
        _, loss = self._batch()
        o = self.opts
        sq = member_sum(g.square() for g in grads)
        s = lr * loss / (sq + o["eps"])
        s = torch.where(o["s_max"] > 0, torch.minimum(s, o["s_max"]), s)
        for p, g in zip(params, grads, strict=True):
            p.sub_(_masked(bcast(s, p) * g, active))
        self.k += 1


class TAPS(_PerExample):
    """TAPS (see the module docstring). Example: ``TAPS([p], {"target": f_star},
    examples=n)``."""

    name = "taps"
    OPTIONS: ClassVar[dict[str, Option]] = {"target": Option(0.0), "beta": beta(0.0),
                                             "weight_decay": NO_DECAY}
    STATE = ("alpha", "alpha_mean", "tau", "z")

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
        *,
        examples: int | None = None,
    ) -> None:
        super().__init__(params, options, steps, examples=examples)
        like = self._like
        wide = torch.float64 if like.device.type != "mps" else like.dtype
        M = like.shape[0]
        self.alpha = [torch.zeros(M, self.n, dtype=wide, device=like.device)]
        self.alpha_mean = [torch.zeros(M, dtype=wide, device=like.device)]
        self.tau = [self.opts["target"].to(wide)]
        self.averaging = self.any_member(lambda o: o["beta"] > 0)
        self.z = [p.clone() for p in params] if self.averaging else []
        self.keep = self.per_member(lambda o: 1.0 - o["beta"])

    def _move_target(self, active: torch.Tensor | None) -> None:
        """MOTAPS moves tau here; TAPS keeps it."""

    def step(self, params, grads, lr, active) -> None:
        rows, loss = self._batch()
        alpha, wide = self.alpha[0], self.alpha[0].dtype
        B = rows.shape[1]
        sq = member_sum(g.square() for g in grads).to(wide)
        gamma_z = lr.to(wide) / self.keep.to(wide)
        c = (loss.to(wide) - alpha.gather(1, rows).mean(1)) / (sq + 1.0)
        move = gamma_z * c
        if active is not None:
            move = torch.where(active, move, 0.0)
        step = move.to(params[0].dtype)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            delta = _masked(bcast(step, p) * g, active)
            if not self.averaging:
                p.sub_(delta)
                continue
            z = self.z[i]
            z.sub_(delta)
            b = bcast(self.opts["beta"], p)
            new = p * b + z * bcast(self.keep, p)
            p.copy_(new if active is None else torch.where(bcast(active, p), new, p))
        alpha.scatter_add_(1, rows, move.unsqueeze(1).expand(-1, B))
        self.alpha_mean[0] = self.alpha_mean[0] + move * (B / self.n)
        before = self.k * B
        self.k += 1
        for _ in range(self.k * B // self.n - before // self.n):
            self._move_target(active)
            shift = gamma_z * (self.tau[0] - self.alpha_mean[0])
            if active is not None:
                shift = torch.where(active, shift, 0.0)
            alpha.add_(shift.unsqueeze(1))
            self.alpha_mean[0] = self.alpha_mean[0] + shift


class MOTAPS(TAPS):
    """MOTAPS (see the module docstring). Example: ``MOTAPS([p], {"lambd": 0.5},
    examples=n)``."""

    name = "motaps"
    OPTIONS = {"lambd": Option(0.001, lo=0.0, hi=1.0), "beta": beta(0.0),
               "target": Option(0.0), "weight_decay": NO_DECAY}

    def _move_target(self, active: torch.Tensor | None) -> None:
        lam = self.opts["lambd"].to(self.tau[0].dtype)
        moved = (1.0 - lam) * self.tau[0] + lam * (self.n / (self.n + 1)) * self.alpha_mean[0]
        self.tau[0] = moved if active is None else torch.where(active, moved, self.tau[0])
