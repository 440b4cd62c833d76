"""The training loop shared by ``run`` (M = 1) and ``run_batched`` (M members at once).

Per step t = 0, ..., T-1 and member m:

1. draw member m's minibatch from its own data order (``member_order``);
2. evaluate the minibatch objective L_m(t) and its gradient at the current iterate;
3. if L_m(t) or the gradient is non-finite, member m has diverged (``diverged_at = t``): from
   here on it steps with learning rate 0 and nothing of it is reported (its state may turn
   non-finite; no computation mixes members, so the others never see it);
4. else update with learning rate ``lr_m * s_m(t)`` (the [T, M] table precomputed from each
   member's schedule); a method that keeps state per example (``per_example``) is first handed
   the batch's example indices and objectives (``observe``).

The final objective and the test metric are evaluated at the optimizer's evaluation point
(the method's ``eval_params``: the iterate itself, or Schedule-Free's averaged x).

No reduction ever mixes members, so a run is the same computation whether it trains alone or
inside a batch (up to floating-point reassociation in batched matrix products).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_leaves, tree_map

from lrlab.tasks.base import Task
from lrlab.tasks.contract import Members
from lrlab.train.methods import batched_method, member_options
from lrlab.train.methods._base import bcast
from lrlab.train.types import RunConfig, RunResult

CHUNK_STEPS = 128
EVAL_BUDGET = 1 << 22  # elements per member-batched evaluation chunk
CPU = torch.device("cpu")


class MemberOrder:
    """Member's data order: concatenated permutations of range(n) from ``default_rng(seed)``.

    Step t's minibatch is entries [t*B, (t+1)*B) of this stream (batches may straddle epochs).
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.buf = np.zeros(0, dtype=np.int64)

    def take(self, k: int) -> np.ndarray:
        parts = [self.buf]
        have = len(self.buf)
        while have < k:
            perm = self.rng.permutation(self.n)
            parts.append(perm)
            have += len(perm)
        stream = np.concatenate(parts)
        self.buf = stream[k:]
        return stream[:k]


def lr_table(configs: Sequence[RunConfig], steps: int) -> np.ndarray:
    """[T, M] learning rates: entry (t, m) = lr_m * s_m(t)."""
    t = np.arange(steps)
    table = np.stack([c.lr * np.asarray(c.schedule(t), dtype=np.float64) for c in configs], 1)
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ValueError("schedules must give finite, non-negative learning rates")
    return table


def curve_index(steps: int, points: int) -> np.ndarray:
    """At most ``points`` distinct steps spread evenly over 0..T-1, both ends included."""
    if steps <= points:
        return np.arange(steps)
    return np.unique(np.round(np.linspace(0, steps - 1, points)).astype(np.int64))


def _to_device(data: Any, dtype: torch.dtype, device: torch.device) -> Any:
    """Data moved to ``device`` (floating tensors cast to ``dtype``); pytrees map leaf by leaf."""

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)

    return tree_map(move, data)


def _take(X: Any, rows: torch.Tensor) -> Any:
    """X[rows] for an index array ``rows`` [M, B] (index_select is the fast gather on CPU)."""
    return tree_map(
        lambda a: a.index_select(0, rows.reshape(-1)).view(*rows.shape, *a.shape[1:]), X
    )


def _rows(X: Any, a: int, b: int) -> Any:
    return tree_map(lambda t: t[a:b], X)


def evaluate(task: Task, members: Members, X: Any, y: Any, fn: str) -> torch.Tensor:
    """Per-member mean of ``model.<fn>`` over all rows of (X, y), in memory-bounded chunks."""
    M = members.size
    cost = getattr(task.model, "row_cost", None) or sum(t[0].numel() for t in tree_leaves(X))
    cost = max(1, cost)
    rows = max(1, EVAL_BUDGET // (M * cost))
    n = len(tree_leaves(X)[0])
    total = members.params[0].new_zeros(M)
    method = getattr(task.model, fn)
    for a in range(0, n, rows):
        total += method(members, _rows(X, a, a + rows), _rows(y, a, a + rows))
    return total / n


@contextlib.contextmanager
def compiling(model: Any, on: bool):
    """While the block runs, a model that can compile its training step (one with a
    ``compile`` attribute, as ``from_module``'s) does so when ``on``; others are left alone."""
    if not (on and hasattr(model, "compile")):
        yield
        return
    previous, model.compile = model.compile, True
    try:
        yield
    finally:
        model.compile = previous


def train_group(
    task: Task,
    configs: Sequence[RunConfig],
    steps: int,
    optimizer: str,
    *,
    record_grad_norms: bool,
    curve_points: int,
    dtype: torch.dtype,
    device: torch.device = CPU,
    progress: Callable[[int], None] | None = None,
) -> list[RunResult]:
    """Train ``configs`` (same optimizer, same number of steps) as one stacked computation.

    Everything lives on ``device``. The host reads nothing back during training except, every
    ``CHUNK_STEPS`` steps, whether any member is still active (the CPU also checks whether all
    are, every step, to skip the masks).
    """
    model = task.model
    M, T, B = len(configs), steps, task.default_batch_size
    Xtr, ytr = _to_device(task.X_train, dtype, device), _to_device(task.y_train, dtype, device)
    members = model.init([c.seed for c in configs], dtype=dtype, device=device)
    params = members.params
    lrs = torch.from_numpy(lr_table(configs, T)).to(device=device, dtype=dtype)
    method = batched_method(optimizer)
    per_example = {"examples": task.n_train} if method.per_example else {}
    opt = method(params, member_options([c.options for c in configs]), T, **per_example)
    on_cpu = device.type == "cpu"
    orders = [MemberOrder(task.n_train, c.seed) for c in configs]
    active = torch.ones(M, dtype=torch.bool, device=device)
    diverged_at = torch.full((M,), -1, dtype=torch.int64, device=device)
    losses = torch.full((T, M), math.nan, dtype=dtype, device=device)
    l2 = torch.full((T, M), math.nan, dtype=dtype, device=device) if record_grad_norms else None
    l1 = torch.full((T, M), math.nan, dtype=dtype, device=device) if record_grad_norms else None
    every = max(1, T // 100)
    with torch.no_grad():
        for c0 in range(0, T, CHUNK_STEPS):
            if c0 > 0 and not bool(active.any()):
                break  # every member diverged: nothing left to train
            k = min(CHUNK_STEPS, T - c0)
            idx = np.stack([o.take(k * B).reshape(k, B) for o in orders], 1)
            idx = torch.from_numpy(idx).to(device, non_blocking=True)
            for j in range(k):
                t = c0 + j
                rows = idx[j]
                loss, grads, buffers = model.loss_and_grad(
                    members, _take(Xtr, rows), _take(ytr, rows)
                )
                # A sum is non-finite when any entry is (or when finite entries overflow it).
                total = sum(g.flatten(1).sum(1) for g in grads)
                ok = active & torch.isfinite(loss) & torch.isfinite(total)
                diverged_at = torch.where(active & ~ok, t, diverged_at)
                losses[t] = torch.where(active, loss, math.nan)
                if l2 is not None:
                    sq = sum(g.square().flatten(1).sum(1) for g in grads)
                    l2[t] = torch.where(active, sq.sqrt(), math.nan)
                    a1 = sum(g.abs().flatten(1).sum(1) for g in grads)
                    l1[t] = torch.where(active, a1, math.nan)
                active = ok
                mask = None if on_cpu and bool(active.all()) else active
                if buffers:
                    members.buffers = (
                        buffers
                        if mask is None
                        else [torch.where(bcast(mask, n), n, o)
                              for n, o in zip(buffers, members.buffers, strict=True)]
                    )
                if per_example:
                    opt.observe(rows, loss)
                # A stopped member steps with learning rate 0 (masking its [M] learning rate
                # costs far less than masking every update); its state may turn non-finite,
                # which no other member sees, and none of it is reported.
                opt.step(params, grads, lrs[t] if mask is None else torch.where(mask, lrs[t], 0.0),
                         None)
                if progress is not None and ((t + 1) % every == 0 or t + 1 == T):
                    progress(t + 1)
        at = members.with_params(opt.eval_params(params))
        final = evaluate(task, at, Xtr, ytr, "loss_sum") + model.penalty(at.params)
        final = torch.where(active, final, math.nan)
        diverged_at = torch.where(active & ~torch.isfinite(final), T, diverged_at)
        Xte, yte = _to_device(task.X_test, dtype, device), _to_device(task.y_test, dtype, device)
        metric = evaluate(task, at, Xte, yte, "metric_sum")
    final, metric, diverged_at = final.cpu(), metric.cpu(), diverged_at.cpu()
    losses = losses.cpu()
    l2 = None if l2 is None else l2.cpu()
    l1 = None if l1 is None else l1.cpu()
    keep = curve_index(T, curve_points)
    loss_np = losses.double().numpy()
    div = diverged_at.numpy()
    out = []
    for m, cfg in enumerate(configs):
        dv = int(div[m]) >= 0
        out.append(
            RunResult(
                config=cfg,
                final_loss=math.nan if dv else float(final[m]),
                test_metric=(math.nan if dv else float(metric[m])) if task.metric_name else None,
                diverged=dv,
                diverged_at=int(div[m]) if dv else None,
                curve_steps=keep.copy(),
                curve_loss=loss_np[keep, m].copy(),
                grad_norm_l2=None if l2 is None else l2[:, m].double().numpy().copy(),
                grad_norm_l1=None if l1 is None else l1[:, m].double().numpy().copy(),
            )
        )
    return out
