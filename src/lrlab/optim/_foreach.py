"""Batched (``torch._foreach_*``) work on lists of tensors: gathering, batching, work buffers,
per-tensor reductions.

Elementwise work runs over batches of tensors so that the temporaries of one vectorised
operation stay bounded by about one batch, not the whole model. Two batch sizes are in use:
``chunks`` cuts at ``CHUNK_NUMEL`` elements (used with ``Scratch`` buffers by the estimators
whose reductions are added per tensor, so the cut does not change their results), ``batches``
cuts at a fraction of the total (``CHUNK_MIN_NUMEL``, ``CHUNK_FRACTION``; its cut is part of
the summation order of the optimizers that use it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

CHUNK_NUMEL = 1 << 20
CHUNK_MIN_NUMEL = 1 << 18
CHUNK_FRACTION = 32


def with_grad(group: dict[str, Any]) -> list[torch.Tensor]:
    """The group's parameters that have a gradient (the others are skipped); dense only."""
    params = [p for p in group["params"] if p.grad is not None]
    for p in params:
        if p.grad.is_sparse:
            raise ValueError(f"sparse gradients are not supported (parameter of shape "
                             f"{tuple(p.shape)})")
    return params


def params_with_grad(group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``with_grad(group)`` and their gradients."""
    params = with_grad(group)
    return params, [p.grad for p in params]


def _cuts(tensors: Sequence[torch.Tensor], limit: int) -> Iterator[slice]:
    start, size = 0, 0
    for i, t in enumerate(tensors):
        n = t.numel()
        if size > 0 and size + n > limit:
            yield slice(start, i)
            start, size = i, 0
        size += n
    if start < len(tensors):
        yield slice(start, len(tensors))


def chunks(tensors: Sequence[torch.Tensor], limit: int = CHUNK_NUMEL) -> Iterator[slice]:
    """Consecutive index ranges whose tensors hold at most ``limit`` elements (or one tensor)."""
    return _cuts(tensors, limit)


def batches(*lists: Sequence[torch.Tensor]) -> Iterator[tuple[list, ...]]:
    """Parallel tensor lists cut into consecutive batches of at most
    ``max(CHUNK_MIN_NUMEL, total / CHUNK_FRACTION)`` elements of the first list (a larger single
    tensor forms its own batch)."""
    limit = max(CHUNK_MIN_NUMEL, sum(t.numel() for t in lists[0]) // CHUNK_FRACTION)
    for sl in _cuts(lists[0], limit):
        yield tuple(list(lst[sl]) for lst in lists)


class Scratch:
    """Work buffers kept between steps and handed out as views shaped like given tensors.

    Allocating fresh temporaries every step makes the C allocator return the memory to the
    operating system and fault it back in on the next step, which on CPU costs more than the
    arithmetic; reusing one buffer per slot avoids that. Buffers are not part of the state.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}
        self._views: dict[tuple[Any, ...], list[torch.Tensor]] = {}

    def views(self, slot: int, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        key = (slot, *((t.shape, t.dtype, t.device) for t in like))
        cached = self._views.get(key)
        if cached is None:
            cached = self._views[key] = self._make_views(slot, like)
        return cached

    def _make_views(self, slot: int, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        need: dict[tuple[int, torch.dtype, torch.device], int] = {}
        for t in like:
            key = (slot, t.dtype, t.device)
            need[key] = need.get(key, 0) + t.numel()
        for key, n in need.items():
            buf = self._buffers.get(key)
            if buf is None or buf.numel() < n:
                self._buffers[key] = torch.empty(n, dtype=key[1], device=key[2])
                # views into the replaced buffer would keep it alive: drop them
                self._views = {k: v for k, v in self._views.items() if k[0] != slot}
        offset = dict.fromkeys(need, 0)
        out = []
        for t in like:
            key = (slot, t.dtype, t.device)
            start = offset[key]
            out.append(self._buffers[key][start:start + t.numel()].view(t.shape))
            offset[key] = start + t.numel()
        return out


def into(fn: Callable[..., torch.Tensor], out: list[torch.Tensor], *args: Any,
         **kwargs: Any) -> list[torch.Tensor]:
    """``out[i] = fn(args[0][i], args[1][i], …, **kwargs)`` written in place; returns ``out``.

    An argument that is not a list or tuple (a scalar) is passed unchanged to every call."""
    for i, o in enumerate(out):
        fn(*(a[i] if isinstance(a, (list, tuple)) else a for a in args), out=o, **kwargs)
    return out


def with_decay(grads: list[torch.Tensor], params: list[torch.Tensor], decay: float,
               scratch: Scratch) -> list[torch.Tensor]:
    """g + decay · p in work buffers (slot 0); the caller's gradients are left untouched."""
    if decay == 0:
        return grads
    return into(torch.add, scratch.views(0, grads), grads, params, alpha=decay)


def dots(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor inner products <a_i, b_i> (0-dim tensors, no elementwise temporaries)."""
    return [torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)]


def dot_sum(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i <a_i, b_i>`` as a 0-d tensor (one tensor sum over the per-tensor products)."""
    return torch.stack(dots(a, b)).sum()


def sq_norm_sum(a: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i ||a_i||^2`` as a 0-d tensor."""
    return dot_sum(a, a)


def sums(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor sums (0-dim tensors)."""
    return [t.sum() for t in tensors]


def abs_sums(tensors: Sequence[torch.Tensor], work: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor L1 norms, reduced exactly as ``t.abs().sum()`` (``work``: same shapes)."""
    return sums(into(torch.abs, work, tensors))


def square_sums(tensors: Sequence[torch.Tensor], work: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor sums of squares, reduced exactly as ``(t * t).sum()``."""
    return sums(into(torch.mul, work, tensors, tensors))


def total(parts: list[torch.Tensor], start: float = 0.0, scale: float = 1.0) -> float:
    """``start + scale·v₁ + scale·v₂ + …`` over 0-dim tensors, added left to right in Python
    floats (one host synchronisation; the order fixes the rounding, so results do not depend on
    how the work was cut into chunks)."""
    acc = start
    if parts:
        for v in torch.stack(parts).tolist():
            acc += scale * v
    return acc
