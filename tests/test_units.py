"""Batch-size scaling rules and the epochs -> optimizer steps conversion."""

from __future__ import annotations

import math

import pytest

from lrlab.units import (
    epochs_to_steps,
    global_batch_size,
    linear_scaled_lr,
    sqrt_scaled_lr,
    steps_per_epoch,
)


def test_linear_and_sqrt_scaling() -> None:
    assert linear_scaled_lr(0.1, 1024, 256) == pytest.approx(0.4)
    assert linear_scaled_lr(0.1, 64, 256) == pytest.approx(0.025)
    assert sqrt_scaled_lr(1e-3, 1024, 256) == pytest.approx(2e-3)
    assert sqrt_scaled_lr(1e-3, 128, 256) == pytest.approx(1e-3 / math.sqrt(2))
    assert linear_scaled_lr(0.3, 7, 7) == 0.3 and sqrt_scaled_lr(0.3, 7, 7) == 0.3


def brute_force_steps(n: int, b: int, a: int, w: int, drop_last: bool) -> int:
    """Simulate ranks, micro-batches and accumulation one sample at a time."""
    per_rank = n // w if drop_last else -(-n // w)
    micro = 0
    filled = 0
    for _ in range(per_rank):
        filled += 1
        if filled == b:
            micro, filled = micro + 1, 0
    if filled and not drop_last:
        micro += 1
    steps, acc = 0, 0
    for _ in range(micro):
        acc += 1
        if acc == a:
            steps, acc = steps + 1, 0
    if acc and not drop_last:
        steps += 1
    return steps


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize(
    ("n", "b", "a", "w"),
    [
        (1000, 32, 1, 1),
        (1000, 32, 4, 1),
        (1000, 8, 3, 4),
        (50_000, 64, 2, 4),
        (999, 10, 7, 3),
        (1024, 16, 4, 16),
    ],
)
def test_steps_per_epoch_matches_simulation(n: int, b: int, a: int, w: int, drop_last: bool):
    assert steps_per_epoch(n, b, a, w, drop_last) == brute_force_steps(n, b, a, w, drop_last)


def test_epochs_to_steps() -> None:
    assert steps_per_epoch(50_000, 64, grad_accum=2, world_size=4) == 97
    assert epochs_to_steps(30, 50_000, 64, grad_accum=2, world_size=4) == 30 * 97
    assert epochs_to_steps(0.5, 1000, 10) == 50
    assert epochs_to_steps(0.001, 1000, 10) == 1
    assert epochs_to_steps(3, 1000, 32, drop_last=False) == 3 * 32
    assert global_batch_size(64, 2, 4) == 512


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: linear_scaled_lr(0.0, 2, 1), "lr"),
        (lambda: linear_scaled_lr(float("nan"), 2, 1), "lr"),
        (lambda: sqrt_scaled_lr(0.1, 0, 1), "batch_size"),
        (lambda: sqrt_scaled_lr(0.1, 4, -1), "base_batch_size"),
        (lambda: steps_per_epoch(0, 8), "dataset_size"),
        (lambda: steps_per_epoch(100, 0), "per_device_batch_size"),
        (lambda: steps_per_epoch(100, 8, grad_accum=0), "grad_accum"),
        (lambda: steps_per_epoch(100, 8, world_size=0), "world_size"),
        (lambda: steps_per_epoch(100, 8, drop_last="yes"), "drop_last"),
        (lambda: steps_per_epoch(100, 8, grad_accum=4, world_size=4), "dataset_size"),
        (lambda: epochs_to_steps(0, 100, 8), "epochs"),
        (lambda: epochs_to_steps(float("inf"), 100, 8), "epochs"),
        (lambda: global_batch_size(8, 0), "grad_accum"),
    ],
)
def test_bad_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
