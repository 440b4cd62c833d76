"""``find_lr``: a learning-rate range test on any torch model that leaves nothing changed.

The ramp and the read-off rule are in ``lrlab.rangetest``; this module runs the ramp on a
model, an optimizer and a loss, then puts everything back.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from lrlab._checks import check_int
from lrlab.rangetest import (
    DELTA,
    STOP_FACTOR,
    RampMonitor,
    RangeTest,
    _check_stop_factor,
    check_ramp,
    ramp_lrs,
    read_range,
    smoothing_window,
)

__all__ = ["find_lr", "TrainingState"]

_AUTOCAST = (torch.float16, torch.bfloat16)


def _clone(v: Any) -> Any:
    return v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)


class TrainingState:
    """A snapshot of everything a few training steps change, restored bit for bit.

    Held: every parameter and buffer of ``model`` (the tensor objects in each submodule's
    slots and their values), every ``.grad`` (None or its tensor object and values), each
    submodule's ``training`` flag; the optimizer's ``state`` (per parameter, every value
    cloned), its ``param_groups`` (every entry but ``params``; tensor entries such as a tensor
    lr keep their object) and its plain attributes (numbers, strings, tensors, e.g. a step
    count); the RNG states of ``random``, NumPy's global generator, torch's CPU generator and,
    when CUDA is initialised, every CUDA device's generator.

    Example::

        snap = TrainingState(model, opt)
        try:
            ...  # train
        finally:
            snap.restore()
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.slots = []  # (module, kind, name, tensor object, values, grad object, grad values)
        for mod in model.modules():
            for kind in ("_parameters", "_buffers"):
                for name, t in getattr(mod, kind).items():
                    if t is None:
                        self.slots.append((mod, kind, name, None, None, None, None))
                        continue
                    g = t.grad if kind == "_parameters" else None
                    self.slots.append(
                        (mod, kind, name, t, t.detach().clone(), g,
                         None if g is None else g.detach().clone())
                    )
        self.modes = [(m, m.training) for m in model.modules()]
        self.opt_state = {p: {k: _clone(v) for k, v in s.items()}
                          for p, s in optimizer.state.items()}
        self.groups = []
        for group in optimizer.param_groups:
            entries = {}
            for k, v in group.items():
                if k == "params":
                    entries[k] = (v, list(v))
                elif isinstance(v, torch.Tensor):
                    entries[k] = (v, v.detach().clone())
                else:
                    entries[k] = (None, copy.deepcopy(v))
            self.groups.append((group, entries))
        self.n_groups = len(optimizer.param_groups)
        self.attr_names = set(vars(optimizer))
        self.attrs = {}
        for k, v in vars(optimizer).items():
            if k in ("state", "param_groups", "defaults"):
                continue
            if isinstance(v, torch.Tensor):
                self.attrs[k] = (v, v.detach().clone())
            elif v is None or isinstance(v, (bool, int, float, str)):
                self.attrs[k] = (None, v)
        self.py_rng = random.getstate()
        self.np_rng = np.random.get_state()  # noqa: NPY002  (the global generator is the point)
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = (
            torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else None
        )

    def restore(self) -> None:
        """Put every held value back (also the objects, where a step replaced one)."""
        with torch.no_grad():
            for mod, kind, name, t, vals, g, gvals in self.slots:
                slot = getattr(mod, kind)
                if t is None:
                    slot[name] = None
                    continue
                if slot.get(name) is not t:
                    slot[name] = t
                t.copy_(vals)
                if kind == "_parameters":
                    if g is None:
                        t.grad = None
                    else:
                        g.copy_(gvals)
                        if t.grad is not g:
                            t.grad = g
        for m, mode in self.modes:
            m.training = mode
        opt = self.optimizer
        opt.state.clear()
        opt.state.update(self.opt_state)
        del opt.param_groups[self.n_groups:]
        for group, entries in self.groups:
            group.clear()
            for k, (obj, val) in entries.items():
                if k == "params":
                    obj[:] = val
                    group[k] = obj
                elif obj is not None:
                    with torch.no_grad():
                        obj.copy_(val)
                    group[k] = obj
                else:
                    group[k] = copy.deepcopy(val)
        opt.param_groups[: self.n_groups] = [g for g, _ in self.groups]
        for k, v in list(vars(opt).items()):
            plain = v is None or isinstance(v, (bool, int, float, str, torch.Tensor))
            if k not in self.attr_names and plain:
                delattr(opt, k)  # e.g. a flag the first step() set
        for k, (obj, val) in self.attrs.items():
            if obj is not None:
                with torch.no_grad():
                    obj.copy_(val)
                setattr(opt, k, obj)
            else:
                setattr(opt, k, val)
        random.setstate(self.py_rng)
        np.random.set_state(self.np_rng)  # noqa: NPY002
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _default_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        "each batch must be an (inputs, targets) pair; pass batch_fn to unpack other batches"
    )


def _batches(data: Iterable[Any]) -> Iterable[Any]:
    """The batches of ``data`` over and over (an empty pass is an error)."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("data yielded no batch")


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    data: Iterable[Any],
    *,
    lr_min: float = 1e-6,
    lr_max: float = 10.0,
    steps: int = 200,
    accumulate: int = 1,
    autocast: torch.dtype | None = None,
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
    stop_factor: float = STOP_FACTOR,
    delta: float = DELTA,
    device: str | torch.device | None = None,
) -> RangeTest:
    """A learning-rate range test read for linear decay; model, optimizer and RNGs unchanged.

    Runs up to ``steps`` optimizer steps with the exponential ramp

        lr_t = lr_min * (lr_max / lr_min) ** (t / (steps - 1)),   t = 0..steps-1,

    in training mode, recording the minibatch loss of every step, and stops early once the
    smoothed loss s_t (bias-corrected EMA over w = steps/20 steps) exceeds
    max(stop_factor * min s, (s_start + min s) / 2) or a loss is not finite. The curve is
    then read by ``lrlab.rangetest.read_range``: with [a, b] the valley where s stays within
    ``delta`` of its drop, the best linear-decay peak should lie in [lo, hi] = [a, 2b], the
    suggested peak is sqrt(lo hi) and the grid factor sqrt(hi / lo).

    Afterwards everything is put back exactly (``TrainingState``), also when a step raises
    (the exception propagates): parameters and buffers, ``.grad``, training modes, the
    optimizer's state, param_groups (lr included) and plain attributes, and the RNG states
    (``random``, NumPy, torch CPU, every initialised CUDA device). Work stays on the model's
    device; nothing is written to disk. A GradScaler created here is discarded.

    Args:
        model: any ``torch.nn.Module``; called as ``model(inputs)``.
        optimizer: an optimizer over the model's parameters. With several param groups the
            ramp sets the first group's lr; the others keep their ratio to it.
        loss_fn: ``loss_fn(model(inputs), targets)`` -> a scalar tensor.
        data: an iterable of batches, iterated again from the start when it runs out
            (a DataLoader, a list of pairs...). Tensors are moved to ``device``.
        lr_min, lr_max: the ramp's ends, 0 < lr_min < lr_max.
        steps: optimizer steps of the full ramp (>= 2; a few hundred is typical).
        accumulate: micro-batches per optimizer step; their gradients are accumulated (each
            loss divided by ``accumulate``) and the step's loss is their mean.
        autocast: None, ``torch.bfloat16`` or ``torch.float16``: run the forward pass under
            ``torch.autocast`` with that dtype. float16 on CUDA adds a ``torch.amp.GradScaler``
            (a step the scaler skips keeps its lr and its loss is recorded).
        batch_fn: ``batch -> (inputs, targets)``; default: the batch is such a pair.
        stop_factor: k of the stopping rule (> 1); ``float("inf")`` stops only on a
            non-finite loss or the half-way rule.
        delta: the valley depth, a fraction of the loss drop in (0, 1).
        device: where batches go (default: the device of the model's first parameter).

    Returns:
        A ``RangeTest`` (``lrlab.rangetest``): ``lrs``, ``losses``, ``smoothed``, ``peak``,
        ``lo``, ``hi``, ``grid_factor``, ``describe()``, ``plot(path)``, ``to_dict()``.

    References: L. N. Smith, "Cyclical Learning Rates for Training Neural Networks",
    arXiv:1506.01186; A. Attia, T. Koren, "Benefits of Learning Rate Annealing for
    Tuning-Robustness in Stochastic Optimization", arXiv:2503.09411.

    Example::

        rt = lrlab.find_lr(model, opt, torch.nn.functional.cross_entropy, loader,
                           lr_min=1e-5, lr_max=10, steps=300)
        print(rt.describe()); rt.plot("range.png")
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        kind = type(optimizer).__name__
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {kind}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable")
    lr_min, lr_max, steps = check_ramp(lr_min, lr_max, steps)
    accumulate = check_int("accumulate", accumulate, lo=1)
    if autocast is not None and autocast not in _AUTOCAST:
        raise ValueError(f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast}")
    stop_factor = _check_stop_factor(stop_factor)
    unpack = _default_batch if batch_fn is None else batch_fn
    if device is None:
        first = next(iter(model.parameters()), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    lrs = ramp_lrs(lr_min, lr_max, steps)
    w = smoothing_window(steps)
    snap = TrainingState(model, optimizer)
    base = [g["lr"] for g in optimizer.param_groups]
    ratios = [float(b) / float(base[0]) if float(base[0]) > 0 else 1.0 for b in base]
    use_scaler = autocast == torch.float16 and dev.type == "cuda"
    losses: list[float] = []
    monitor = RampMonitor(w, stop_factor)
    batches = None
    try:
        scaler = torch.amp.GradScaler(dev.type) if use_scaler else None
        model.train()
        batches = _batches(data)
        for t in range(steps):
            for group, r in zip(optimizer.param_groups, ratios, strict=True):
                lr = float(lrs[t]) * r
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(accumulate):
                inputs, targets = unpack(next(batches))
                inputs, targets = _to_device(inputs, dev), _to_device(targets, dev)
                ctx = (
                    torch.autocast(dev.type, dtype=autocast)
                    if autocast is not None
                    else contextlib.nullcontext()
                )
                with ctx:
                    loss = loss_fn(model(inputs), targets)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ValueError("loss_fn must return a scalar tensor")
                part = loss / accumulate
                (scaler.scale(part) if scaler is not None else part).backward()
                total += float(loss.detach().float())
            losses.append(total / accumulate)
            if not math.isfinite(losses[-1]):
                break
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if monitor.add(losses[-1]):
                break
    finally:
        if batches is not None:
            batches.close()
        snap.restore()
    n = len(losses)
    return read_range(
        lrs[:n],
        np.asarray(losses),
        delta=delta,
        window=w,
        stop_factor=stop_factor,
        info={"lr_min": lr_min, "lr_max": lr_max, "steps": steps, "accumulate": accumulate,
              "autocast": None if autocast is None else str(autocast).replace("torch.", "")},
    )
