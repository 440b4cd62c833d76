"""Base class and tensor-list helpers shared by the MoMo, Schedule-Free, MADGRAD and averaging
optimizers.

``CheckedOptimizer`` validates every param group (also groups added later), keeps
optimizer-wide scalars (step counters, running averages) in ``self.scalars`` and saves them in
``state_dict()`` next to the per-parameter state, so a reload resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lrlab._checks import check_real

#: Foreach ops that need temporaries run on batches of at most ``max(CHUNK_MIN_NUMEL, total /
#: CHUNK_FRACTION)`` elements (a larger single tensor forms its own batch), so a step's extra
#: memory stays a small fraction of the parameters' while each kernel remains large.
CHUNK_MIN_NUMEL = 1 << 18
CHUNK_FRACTION = 32


class CheckedOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose groups are validated and whose scalars are saved."""

    scalars: dict[str, Any]

    def _check_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["scalars"] = dict(self.scalars)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        if "scalars" not in state_dict:
            raise ValueError(
                f"state_dict lacks the 'scalars' entry that {type(self).__name__} saves"
            )
        scalars = dict(state_dict.pop("scalars"))
        super().load_state_dict(state_dict)
        self.scalars = scalars


def check_lr(group: dict[str, Any]) -> float:
    """The group's current ``lr`` as a float, checked finite and >= 0 (schedules change it)."""
    return check_real("lr", group["lr"], 0.0)


def check_betas(name: str, betas: object, *, beta1_open: bool = False) -> tuple[float, float]:
    """Validate a pair ``(beta1, beta2)`` in ``[0, 1)`` (``beta1`` in ``(0, 1)`` if asked)."""
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    b1 = check_real(f"{name}[0]", betas[0], 0.0, 1.0, lo_open=beta1_open, hi_open=True)
    b2 = check_real(f"{name}[1]", betas[1], 0.0, 1.0, hi_open=True)
    return b1, b2


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def require_same(groups: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Raise if a later group sets one of ``keys`` to a value different from the first group's."""
    first = groups[0]
    for group in groups[1:]:
        for key in keys:
            if group[key] != first[key]:
                raise ValueError(
                    f"{key} is optimizer-wide and must be equal in every param group, "
                    f"got {first[key]!r} and {group[key]!r}"
                )


def with_grad(group: dict[str, Any]) -> list[torch.Tensor]:
    """The group's parameters that have a gradient (the others are skipped)."""
    params = [p for p in group["params"] if p.grad is not None]
    for p in params:
        if p.grad.is_sparse:
            raise RuntimeError(f"sparse gradients are not supported (parameter of shape "
                               f"{tuple(p.shape)})")
    return params


def chunks(*lists: Sequence[torch.Tensor]) -> Iterator[tuple[list, ...]]:
    """Split parallel tensor lists into consecutive batches (sized by the first list's
    tensors, see ``CHUNK_MIN_NUMEL``)."""
    n = len(lists[0])
    total = sum(t.numel() for t in lists[0])
    limit = max(CHUNK_MIN_NUMEL, total // CHUNK_FRACTION)
    start, size = 0, 0
    for i in range(n):
        numel = lists[0][i].numel()
        if size > 0 and size + numel > limit:
            yield tuple(list(lst[start:i]) for lst in lists)
            start, size = i, 0
        size += numel
    if start < n:
        yield tuple(list(lst[start:n]) for lst in lists)


def dot_sum(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i <a_i, b_i>`` as a 0-d tensor, without elementwise temporaries."""
    pairs = zip(a, b, strict=True)
    return torch.stack([torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in pairs]).sum()


def sq_norm_sum(a: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i ||a_i||^2`` as a 0-d tensor."""
    return dot_sum(a, a)
