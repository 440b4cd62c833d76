"""Helpers shared by the learning-rate-free optimizers: validation, gradient gathering, chunking.

The optimizers keep their global scalars (the step-size estimate ``d``, numerator accumulators,
the step counter) as entries of every parameter group, so that the standard
``Optimizer.state_dict`` carries them and a reload resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from lrlab._checks import check_int, check_real

# Elementwise work runs over chunks of at most this many elements, so that the temporaries of a
# vectorised (``torch._foreach_*``) operation stay bounded by about one chunk, not the whole model.
CHUNK_NUMEL = 1 << 20


def check_lr(value: object) -> float:
    """``lr`` multiplies the estimated step size; 0 freezes a group."""
    return check_real("lr", value, 0.0)


def check_beta(name: str, value: object) -> float:
    return check_real(name, value, 0.0, 1.0, hi_open=True)


def check_betas(value: object, n: int = 2) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        raise ValueError(f"betas must be a sequence of {n} numbers in [0, 1), got {value!r}")
    return tuple(check_beta(f"betas[{i}]", b) for i, b in enumerate(value))


def check_growth_rate(value: object) -> float:
    """``growth_rate`` bounds d_{k+1} / d_k; ``inf`` (the default) means unbounded."""
    if isinstance(value, (int, float)) and value == float("inf"):
        return float("inf")
    return check_real("growth_rate", value, 1.0)


def check_positive(name: str, value: object) -> float:
    return check_real(name, value, 0.0, lo_open=True)


def check_nonneg(name: str, value: object) -> float:
    return check_real(name, value, 0.0)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_slice(value: object) -> int:
    return check_int("slice_p", value, 1)


def common_lr(groups: Sequence[dict[str, Any]]) -> float:
    """The one non-zero ``lr`` shared by all groups (0 if every group has lr 0).

    The step-size estimate is global, so groups may only differ by being frozen (lr = 0).
    """
    nonzero = {float(g["lr"]) for g in groups if g["lr"] != 0}
    if len(nonzero) > 1:
        raise ValueError(
            "param groups must share one lr (or use lr=0 to freeze a group); got "
            f"{sorted(nonzero)}"
        )
    for g in groups:
        check_lr(g["lr"])
    return nonzero.pop() if nonzero else 0.0


def check_shared(groups: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Raise ``ValueError`` if a hyperparameter that must be global differs between groups."""
    first = groups[0]
    for g in groups[1:]:
        for key in keys:
            if g[key] != first[key]:
                raise ValueError(
                    f"{key} must be the same in every param group, got {first[key]!r} and "
                    f"{g[key]!r}"
                )


def params_with_grad(group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Parameters of ``group`` that have a gradient, and those gradients (dense only)."""
    params, grads = [], []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise ValueError("sparse gradients are not supported")
        params.append(p)
        grads.append(p.grad)
    return params, grads


def chunks(tensors: Sequence[torch.Tensor], limit: int = CHUNK_NUMEL) -> Iterator[slice]:
    """Consecutive index ranges whose tensors hold at most ``limit`` elements (or one tensor)."""
    start, size = 0, 0
    for i, t in enumerate(tensors):
        n = t.numel()
        if i > start and size + n > limit:
            yield slice(start, i)
            start, size = i, 0
        size += n
    if start < len(tensors):
        yield slice(start, len(tensors))


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


def dots(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor inner products <a_i, b_i> (0-dim tensors, no elementwise temporaries)."""
    return [torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)]


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
    how the work was chunked)."""
    acc = start
    if parts:
        for v in torch.stack(parts).tolist():
            acc += scale * v
    return acc


def sync_shared(groups: Sequence[dict[str, Any]], values: dict[str, Any]) -> None:
    """Write the global scalars into every group (so each group's state_dict entry has them)."""
    for g in groups:
        g.update(values)


class GlobalStepOptimizer(torch.optim.Optimizer):
    """Base of the optimizers with one global step-size estimate ``d`` shared by all groups.

    Subclasses list the hyperparameters that must agree across groups (``SHARED``), the global
    scalars kept in every group (``GLOBALS``), and validate one group in ``_check_group``.
    """

    SHARED: tuple[str, ...] = ()
    GLOBALS: tuple[str, ...] = ("d", "k")

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._scratch = Scratch()
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_scratch", Scratch())

    def _check_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_group(group)
        if len(self.param_groups) > 1:
            first = self.param_groups[0]
            group.update({key: first[key] for key in self.GLOBALS if key in first})
            check_shared(self.param_groups, self.SHARED)

    @property
    def d(self) -> float:
        """Current step-size estimate d (shared by every group)."""
        return float(self.param_groups[0]["d"])

    def effective_lr(self) -> list[float]:
        """Per group, the step size in use: ``d * lr``."""
        return [self.d * float(g["lr"]) for g in self.param_groups]
