"""Batch-size rules for the learning rate and the epochs -> optimizer steps conversion.

The core counts optimizer steps; epochs are converted here, at the edge.
"""

from __future__ import annotations

import math

from lrlab._checks import check_int, check_real


def _ratio(batch_size: int, base_batch_size: int) -> float:
    b = check_int("batch_size", batch_size, lo=1)
    b0 = check_int("base_batch_size", base_batch_size, lo=1)
    return b / b0


def linear_scaled_lr(lr: float, batch_size: int, base_batch_size: int) -> float:
    """Linear scaling rule: eta' = eta * k with k = batch_size / base_batch_size.

    For SGD at a fixed number of epochs (k times fewer steps).

    Example: ``linear_scaled_lr(0.1, 1024, 256)`` -> ``0.4``.
    """
    lr = check_real("lr", lr, 0.0, lo_open=True)
    return lr * _ratio(batch_size, base_batch_size)


def sqrt_scaled_lr(lr: float, batch_size: int, base_batch_size: int) -> float:
    """Square-root scaling rule: eta' = eta * sqrt(k) with k = batch_size / base_batch_size.

    The rule commonly used for Adam-type methods.

    Example: ``sqrt_scaled_lr(1e-3, 1024, 256)`` -> ``2e-3``.
    """
    lr = check_real("lr", lr, 0.0, lo_open=True)
    return lr * math.sqrt(_ratio(batch_size, base_batch_size))


def global_batch_size(per_device_batch_size: int, grad_accum: int = 1, world_size: int = 1) -> int:
    """Samples per optimizer step: per_device_batch_size * grad_accum * world_size."""
    b = check_int("per_device_batch_size", per_device_batch_size, lo=1)
    a = check_int("grad_accum", grad_accum, lo=1)
    w = check_int("world_size", world_size, lo=1)
    return b * a * w


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def steps_per_epoch(
    dataset_size: int,
    per_device_batch_size: int,
    grad_accum: int = 1,
    world_size: int = 1,
    drop_last: bool = True,
) -> int:
    """Optimizer steps in one epoch under data parallelism and gradient accumulation.

    Each of the ``world_size`` ranks sees n_r = N // W samples (``drop_last``) or ceil(N / W)
    (padded, as ``DistributedSampler`` does), forms m = n_r // b micro-batches (``drop_last``)
    or ceil(n_r / b), and takes one optimizer step every ``grad_accum`` micro-batches:
    m // a steps with ``drop_last``, ceil(m / a) without (a partial accumulation at the end of
    the epoch still steps). Raises if the epoch has no step.

    Example: ``steps_per_epoch(50_000, 64, grad_accum=2, world_size=4)`` -> ``97``.
    """
    n = check_int("dataset_size", dataset_size, lo=1)
    b = check_int("per_device_batch_size", per_device_batch_size, lo=1)
    a = check_int("grad_accum", grad_accum, lo=1)
    w = check_int("world_size", world_size, lo=1)
    if not isinstance(drop_last, bool):
        raise ValueError(f"drop_last must be True or False, got {drop_last!r}")
    if drop_last:
        steps = (n // w // b) // a
    else:
        steps = _ceil_div(_ceil_div(_ceil_div(n, w), b), a)
    if steps < 1:
        raise ValueError(
            f"dataset_size={n} gives no optimizer step per epoch with global batch "
            f"{b * a * w} and drop_last=True; dataset_size must be >= {b * a * w}"
        )
    return steps


def epochs_to_steps(
    epochs: float,
    dataset_size: int,
    per_device_batch_size: int,
    grad_accum: int = 1,
    world_size: int = 1,
    drop_last: bool = True,
) -> int:
    """Optimizer steps in ``epochs`` epochs: round(epochs * steps_per_epoch), at least 1.

    ``epochs`` > 0 may be fractional (rounded half up to whole steps).

    Example: ``epochs_to_steps(30, 50_000, 64, grad_accum=2, world_size=4)`` -> ``2910``.
    """
    e = check_real("epochs", epochs, 0.0, lo_open=True)
    spe = steps_per_epoch(dataset_size, per_device_batch_size, grad_accum, world_size, drop_last)
    return max(1, math.floor(e * spe + 0.5))
