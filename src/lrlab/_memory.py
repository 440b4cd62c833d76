"""Counting the memory that operations create (shared by ``lrlab.tasks`` and ``lrlab.train``)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class CreatedBytes(TorchDispatchMode):
    """Counts the bytes (and elements) of every tensor the operations run under it return.

    Views are not counted (they share their base's memory). The total bounds from above what
    the operations hold alive at once.

    Example::

        with CreatedBytes() as c:
            torch.ones(10) * 2
        c.bytes    # 80: two float32 tensors of 10 elements
    """

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                self.elements += t.numel()
                self.bytes += t.numel() * t.element_size()
        return out
