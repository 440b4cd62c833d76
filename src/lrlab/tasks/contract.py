"""The model contract: what ``Task.model`` provides and the batched trainer relies on.

A batched model trains M members at once. Member m has its own parameters, buffers and random
stream, all stacked on a leading member dimension, and no computation ever mixes members, so a
member's numbers do not depend on which other members share its batch. ``lrlab.train`` sees a
model through ``BatchedModel`` alone; the hand-written built-in models (``lrlab.tasks.models``)
and the ``torch.func`` adapter for any ``nn.Module`` (``lrlab.tasks.from_module``) implement it.

Inputs ``X`` and targets ``y`` of a minibatch carry the member dimension first: ``[M, B, ...]``
(a tensor, or a tuple/list/dict of tensors for a module that takes several inputs).

Example::

    from lrlab.tasks import BatchedModel, get_task
    model = get_task("digits_logreg").model
    isinstance(model, BatchedModel)        # True
    members = model.init([0, 1, 2], dtype=torch.float32, device="cpu")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

Params = list[torch.Tensor]


@dataclasses.dataclass
class Members:
    """The state of M members of one model, every tensor stacked on a leading dimension M.

    - ``params``: what the optimizer updates (``[M, ...]`` each);
    - ``buffers``: state that training steps update but the optimizer does not, such as
      BatchNorm's running statistics (``[M, ...]`` each; empty for most models);
    - ``seeds``: the members' seeds, in order;
    - ``rng``: the model's per-member random state (None when the model draws nothing).
    """

    params: Params
    buffers: list[torch.Tensor] = dataclasses.field(default_factory=list)
    seeds: tuple[int, ...] = ()
    rng: Any = None

    @property
    def size(self) -> int:
        """M, the number of members."""
        return self.params[0].shape[0]

    def with_params(self, params: Params) -> Members:
        """The same members evaluated at other parameters (e.g. Schedule-Free's average)."""
        return dataclasses.replace(self, params=params)


@runtime_checkable
class BatchedModel(Protocol):
    """What a task's model provides to the batched trainer.

    - ``init(seeds, dtype=, device=)``: the ``Members`` of ``len(seeds)`` members; member m's
      initial values depend on ``seeds[m]`` alone (not on the other members).
    - ``loss_and_grad(members, X, y)``: in training mode, the minibatch objective
      ``loss_sum / B + penalty`` per member ``[M]``, its gradient for every parameter, and the
      buffers after the step (a new list; ``members`` is not changed except for its random
      state). The trainer keeps the old buffers of members that diverged at that step.
    - ``loss_sum(members, X, y)``: in evaluation mode, the per-member sum of the loss over the
      ``B`` examples, ``[M]``.
    - ``metric_sum(members, X, y)``: in evaluation mode, the per-member sum of the held-out
      metric over the examples, ``[M]``.
    - ``penalty(params)``: per-member regulariser added once to the mean loss ``[M]``.

    An optional ``row_cost`` attribute (elements touched per example and member) sizes the
    chunks of the full-data evaluation.
    """

    def init(
        self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device
    ) -> Members: ...

    def loss_and_grad(
        self, members: Members, X: Any, y: Any
    ) -> tuple[torch.Tensor, Params, list[torch.Tensor]]: ...

    def loss_sum(self, members: Members, X: Any, y: Any) -> torch.Tensor: ...

    def metric_sum(self, members: Members, X: Any, y: Any) -> torch.Tensor: ...

    def penalty(self, params: Params) -> torch.Tensor: ...
