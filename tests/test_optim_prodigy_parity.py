"""Prodigy: parity with ``prodigyopt`` 1.1.2 for every option (skipped without it)."""

from __future__ import annotations

import pytest
import torch

from lrlab.optim import Prodigy
from optim_harness import compute_grads, make_params, run_parity

prodigyopt = pytest.importorskip("prodigyopt")


def every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 1 else ()


# (options, the option under test): each case must also differ from the run without that option
OPTIONS = [
    ({"weight_decay": 0.1}, "weight_decay"),
    ({"weight_decay": 1.0}, "weight_decay"),  # a decay as strong as the loss
    ({"weight_decay": 0.1, "decouple": False}, "decouple"),
    ({"use_bias_correction": True}, "use_bias_correction"),
    ({"safeguard_warmup": True, "lr": 0.5}, "safeguard_warmup"),
    ({"safeguard_warmup": True, "use_bias_correction": True}, "safeguard_warmup"),
    ({"slice_p": 3}, "slice_p"),
    ({"growth_rate": 1.02}, "growth_rate"),
    ({"d_coef": 0.5}, "d_coef"),
    ({"d0": 1e-3}, "d0"),
    ({"beta3": 0.95}, "beta3"),
    ({"eps": 1e-4}, "eps"),
    ({"lr": 0.3}, "lr"),
    ({"betas": (0.0, 0.99)}, "betas"),
    ({"betas": (0.0, 0.99), "weight_decay": 0.1, "decouple": False}, "decouple"),
    ({"betas": (0.8, 0.95), "safeguard_warmup": True, "use_bias_correction": True,
      "weight_decay": 0.05, "slice_p": 2, "growth_rate": 1.1}, "slice_p"),
]


def ours_only(kwargs: dict, steps: int = 100) -> list[torch.Tensor]:
    params = make_params()
    opt = Prodigy(params, **kwargs)
    for k in range(steps):
        compute_grads(params, k)
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("kwargs,key", OPTIONS, ids=[str(k) for k, _ in OPTIONS])
def test_parity_with_reference(kwargs, key):
    final = run_parity(lambda p: Prodigy(p, **kwargs),
                       lambda p: prodigyopt.Prodigy(p, **kwargs), steps=100, min_move=0.0)
    without = ours_only({k: v for k, v in kwargs.items() if k != key})
    assert any(not torch.equal(a, b) for a, b in zip(final, without, strict=True))


def test_parity_default_groups_and_missing_grads():
    run_parity(Prodigy, prodigyopt.Prodigy, steps=100, min_move=0.0)
    spec = [{"idx": [0, 1], "weight_decay": 0.1, "eps": 1e-6},
            {"idx": [2, 3], "slice_p": 2, "safeguard_warmup": True}]
    run_parity(Prodigy, prodigyopt.Prodigy, spec=spec, steps=100, skip=every_third, min_move=0.0)
