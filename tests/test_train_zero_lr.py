"""Batched methods at a learning rate of zero: a schedule may start at 0 (a warm-up from zero)
or reach it, and such steps leave a member's parameters where they are, with nothing turned
into NaN; training then proceeds as usual."""

from __future__ import annotations

import pytest
import torch

from lrlab.train.methods import BATCHED_METHODS, batched_method


@pytest.mark.parametrize("kind", list(BATCHED_METHODS))
def test_steps_at_lr_zero_first_leave_the_parameters_and_then_training_proceeds(kind) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    start = x.clone()
    method = batched_method(kind)
    extra = {"examples": 4} if method.per_example else {}
    opt = method([x], {}, steps=20, **extra)

    def step(lr):
        if method.per_example:  # example indices and the batch objective, as the engine gives
            opt.observe(torch.tensor([[0], [1]]), 0.5 * ((x - 1.0) ** 2).sum(1))
        opt.step([x], [x - 1.0], lr, None)

    zero = torch.zeros(2, dtype=torch.float64)
    for _ in range(3):
        step(zero)
    # (D-Adaptation's dual-averaging form recomputes x from x0 and s: equal up to rounding)
    torch.testing.assert_close(x, start, rtol=1e-14, atol=1e-15)
    for p in opt.eval_params([x]):
        assert torch.isfinite(p).all()
    lr = torch.tensor([0.1, 1.0], dtype=torch.float64)
    for _ in range(10):
        step(lr)
    assert torch.isfinite(x).all() and not torch.equal(x, start)
    for p in opt.eval_params([x]):
        assert torch.isfinite(p).all()


def test_run_config_stores_plain_python_numbers() -> None:
    import numpy as np

    from lrlab.schedules import Constant
    from lrlab.train import RunConfig

    c = RunConfig(np.float32(0.5), Constant(), seed=np.int64(3), steps=np.int64(7))
    assert type(c.lr) is float and type(c.seed) is int and type(c.steps) is int
    assert (c.lr, c.seed, c.steps) == (0.5, 3, 7)
    with pytest.raises(ValueError, match="seed"):
        RunConfig(0.5, Constant(), seed=-1)
