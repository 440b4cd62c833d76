"""The training loop shared by ``run`` (M = 1) and ``run_batched`` (M members at once).

Per step t = 0, ..., T-1 and member m:

1. draw member m's minibatch from its own data order (``member_order``);
2. evaluate the minibatch objective L_m(t) and its gradient at the current iterate;
3. if L_m(t) or the gradient is non-finite, member m is frozen from here on
   (``diverged_at = t``, no further update);
4. else update with learning rate ``lr_m * s_m(t)`` (the [T, M] table precomputed from each
   member's schedule).

The final objective and the test metric are evaluated at the optimizer's evaluation point
(the method's ``eval_params``: the iterate itself, or Schedule-Free's averaged x).

No reduction ever mixes members, so a run is the same computation whether it trains alone or
inside a batch (up to floating-point reassociation in batched matrix products).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lrlab.tasks.base import Task
from lrlab.train.methods import batched_method, member_options
from lrlab.train.types import RunConfig, RunResult

CHUNK_STEPS = 128
EVAL_BUDGET = 1 << 22  # elements per member-batched evaluation chunk


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


def _as_input(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def _take(X: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """X[rows] for an index array ``rows`` [M, B] (index_select is the fast gather on CPU)."""
    return X.index_select(0, rows.reshape(-1)).view(*rows.shape, *X.shape[1:])


def evaluate(
    task: Task, params: list[torch.Tensor], X: torch.Tensor, y: torch.Tensor, fn: str
) -> torch.Tensor:
    """Per-member mean of ``model.<fn>`` over all rows of (X, y), in memory-bounded chunks."""
    M = params[0].shape[0]
    cost = getattr(task.model, "row_cost", None) or max(1, X[0].numel())
    rows = max(1, EVAL_BUDGET // (M * cost))
    total = torch.zeros(M, dtype=params[0].dtype)
    method = getattr(task.model, fn)
    for a in range(0, len(X), rows):
        total += method(params, X[a : a + rows], y[a : a + rows])
    return total / len(X)


def train_group(
    task: Task,
    configs: Sequence[RunConfig],
    steps: int,
    optimizer: str,
    *,
    record_grad_norms: bool,
    curve_points: int,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None = None,
) -> list[RunResult]:
    """Train ``configs`` (same optimizer, same number of steps) as one stacked computation."""
    M, T, B = len(configs), steps, task.default_batch_size
    model = task.model
    Xtr, ytr = _as_input(task.X_train, dtype), _as_input(task.y_train, dtype)
    params = model.init([c.seed for c in configs], dtype)
    lrs = torch.from_numpy(lr_table(configs, T)).to(dtype)
    opt = batched_method(optimizer)(params, member_options([c.options for c in configs]), T)
    orders = [MemberOrder(task.n_train, c.seed) for c in configs]
    active = torch.ones(M, dtype=torch.bool)
    diverged_at = torch.full((M,), -1, dtype=torch.int64)
    losses = torch.empty(T, M, dtype=dtype)
    l2 = torch.empty(T, M, dtype=dtype) if record_grad_norms else None
    l1 = torch.empty(T, M, dtype=dtype) if record_grad_norms else None
    every = max(1, T // 100)
    with torch.no_grad():
        for c0 in range(0, T, CHUNK_STEPS):
            k = min(CHUNK_STEPS, T - c0)
            idx = torch.from_numpy(np.stack([o.take(k * B).reshape(k, B) for o in orders], 1))
            for j in range(k):
                t = c0 + j
                rows = idx[j]
                loss, grads = model.loss_and_grad(params, _take(Xtr, rows), _take(ytr, rows))
                sq = sum(g.square().flatten(1).sum(1) for g in grads)
                ok = active & torch.isfinite(loss) & torch.isfinite(sq)
                diverged_at = torch.where(active & ~ok, t, diverged_at)
                losses[t] = torch.where(active, loss, math.nan)
                if l2 is not None:
                    l2[t] = torch.where(active, sq.sqrt(), math.nan)
                    a1 = sum(g.abs().flatten(1).sum(1) for g in grads)
                    l1[t] = torch.where(active, a1, math.nan)
                active = ok
                opt.step(params, grads, lrs[t], None if bool(active.all()) else active)
                if progress is not None and ((t + 1) % every == 0 or t + 1 == T):
                    progress(t + 1)
        at = opt.eval_params(params)
        final = evaluate(task, at, Xtr, ytr, "loss_sum") + model.penalty(at)
        final = torch.where(active, final, math.nan)
        diverged_at = torch.where(active & ~torch.isfinite(final), T, diverged_at)
        Xte, yte = _as_input(task.X_test, dtype), _as_input(task.y_test, dtype)
        metric = evaluate(task, at, Xte, yte, "metric_sum")
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
