"""Devices and memory: which device a run trains on and how many members fit at once.

``resolve_device`` turns ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA when
available, else the CPU) into a ``torch.device`` and refuses one this machine does not have.

``member_bytes`` measures what one member of a task costs during a training step: it trains a
single member for one step while counting the bytes of every tensor the operations create
(``torch.utils._python_dispatch.TorchDispatchMode``), which bounds its activations and
temporaries from above, and adds its parameters, gradients and up to four parameter-sized
optimizer tensors. ``max_members`` divides the memory free on the device (half of it) by that.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import torch
from torch.utils._pytree import tree_map

from lrlab._memory import CreatedBytes

#: Fraction of the memory free on the device that a batch of members may take.
MEMORY_FRACTION = 0.5
_FOOTPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` a device name means here; ValueError if it is unknown or absent.

    Example: ``resolve_device("auto")`` -> ``device(type='cuda', index=0)`` on a GPU machine,
    ``device(type='cpu')`` elsewhere.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip() == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be cpu, cuda, cuda:N, mps or auto, got {device!r}"
        ) from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} is not available: this torch ({torch.__version__}) "
                "sees no CUDA device"
            )
        n = torch.cuda.device_count()
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= n:
            raise ValueError(f"device {str(device)!r} does not exist: {n} CUDA device(s) here")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} is not available on this machine")
        return dev
    raise ValueError(f"device must be cpu, cuda, cuda:N, mps or auto, got {device!r}")


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` now (the CPU: ``MemAvailable`` of /proc/meminfo)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def member_bytes(task: Any, batch_size: int, dtype: torch.dtype, device: torch.device) -> int:
    """Bytes one member of ``task`` needs in a training step, measured once and cached."""
    key = (batch_size, dtype, str(device))
    cache = _FOOTPRINTS.setdefault(task.model, {})
    if key not in cache:
        model = task.model
        members = model.init([0], dtype=dtype, device=device)
        rows = torch.arange(min(batch_size, task.n_train), device=device).view(1, -1)

        def batch(data):
            def move(t):
                t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
                return t.index_select(0, rows.reshape(-1)).view(*rows.shape, *t.shape[1:])

            return tree_map(move, data)

        X, y = batch(task.X_train), batch(task.y_train)
        counter = CreatedBytes()
        with torch.no_grad(), counter:
            model.loss_and_grad(members, X, y)
        state = sum(p.numel() * p.element_size() for p in members.params)
        state += sum(b.numel() * b.element_size() for b in members.buffers)
        cache[key] = counter.bytes + 6 * state
    return cache[key]


def max_members(task: Any, batch_size: int, dtype: torch.dtype, device: torch.device) -> int:
    """How many members of ``task`` fit in ``MEMORY_FRACTION`` of the memory free now (>= 1)."""
    per = max(1, member_bytes(task, batch_size, dtype, device))
    return max(1, int(MEMORY_FRACTION * free_memory(device)) // per)
