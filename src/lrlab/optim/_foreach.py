"""Batched (``torch._foreach_*``) work on lists of tensors: cutting into blocks, work buffers,
per-tensor reductions.

On the CPU an optimizer step runs block by block: :func:`split` cuts every large tensor into
flat views of at most ``BLOCK_NUMEL`` elements (the same cut in each parallel list) and
:func:`chunks` groups consecutive pieces up to that size, so that the several operations of a
step on one chunk find their operands still in the core's cache instead of streaming the whole
model from memory once per operation; work buffers (``Scratch``) are then one chunk in size.
On an accelerator tensors are not cut and chunks are ``DEVICE_CHUNK_NUMEL`` elements, which
keeps the number of kernel launches small and the temporaries bounded.

A reduction added up chunk by chunk depends on the cut only through its rounding; the cut is a
function of the shapes alone, so a run and its resumed continuation cut alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

BLOCK_NUMEL = 1 << 18
DEVICE_CHUNK_NUMEL = 1 << 24

# (tensor index, start, stop): a flat range of one tensor; start = stop = -1: the whole tensor
Piece = tuple[int, int, int]


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


def _chunk_limit(t: torch.Tensor) -> int:
    return BLOCK_NUMEL if t.device.type == "cpu" else DEVICE_CHUNK_NUMEL


def plan(*lists: Sequence[torch.Tensor], multiple: int = 1) -> list[Piece]:
    """Where :func:`split` cuts parallel lists: a CPU tensor of more than ``BLOCK_NUMEL``
    elements that is contiguous in every list is cut into flat ranges of ``BLOCK_NUMEL``
    elements rounded down to a multiple of ``multiple``; any other tensor stays whole."""
    block = max(multiple, BLOCK_NUMEL - BLOCK_NUMEL % multiple)
    pieces: list[Piece] = []
    for i, t in enumerate(lists[0]):
        n = t.numel()
        if (n > block and t.device.type == "cpu"
                and all(lst[i].is_contiguous() for lst in lists)):
            pieces += [(i, a, min(a + block, n)) for a in range(0, n, block)]
        else:
            pieces.append((i, -1, -1))
    return pieces


def take(pieces: Sequence[Piece], tensors: Sequence[torch.Tensor],
         every: int = 1) -> list[torch.Tensor]:
    """The views ``pieces`` name in ``tensors``. With ``every > 1`` the tensors hold every
    ``every``-th element of the cut ones (a range ``[a, b)`` maps to
    ``[a / every, ceil(b / every))``; the cut points must be multiples of ``every``). A 0-dim
    tensor (a scalar that broadcasts) stands for each piece of its position."""
    out = []
    for i, a, b in pieces:
        t = tensors[i]
        out.append(t if a < 0 or t.dim() == 0 else t.view(-1)[a // every:-(-b // every)])
    return out


def split(*lists: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
    """Parallel lists with every large CPU tensor replaced by its consecutive flat blocks (the
    same cut in every list, see :func:`plan`); in-place work on a block changes the tensor."""
    pieces = plan(*lists)
    return tuple(take(pieces, lst) for lst in lists)


def chunks(tensors: Sequence[torch.Tensor]) -> Iterator[slice]:
    """Consecutive index ranges whose tensors hold at most ``BLOCK_NUMEL`` elements on the CPU
    (``DEVICE_CHUNK_NUMEL`` elsewhere), or a single larger tensor."""
    return _ranges([(t.numel(), _chunk_limit(t)) for t in tensors])


def _ranges(sizes: Sequence[tuple[int, int]]) -> Iterator[slice]:
    """:func:`chunks` over (element count, chunk limit) pairs."""
    start, size = 0, 0
    for i, (n, limit) in enumerate(sizes):
        if size > 0 and size + n > limit:
            yield slice(start, i)
            start, size = i, 0
        size += n
    if start < len(sizes):
        yield slice(start, len(sizes))


def blocks(*lists: Sequence[torch.Tensor]) -> Iterator[tuple[list[torch.Tensor], ...]]:
    """The parallel lists cut as by :func:`split`, chunk by chunk as by :func:`chunks`; each
    chunk's views are made when it is reached, so only one chunk's views exist at a time."""
    pieces = plan(*lists)
    first = lists[0]
    sizes = [(first[i].numel() if a < 0 else b - a, _chunk_limit(first[i]))
             for i, a, b in pieces]
    for sl in _ranges(sizes):
        yield tuple(take(pieces[sl], lst) for lst in lists)


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
