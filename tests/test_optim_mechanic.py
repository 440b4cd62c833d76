"""Mechanic: scale, resume, bad input (parity with ``mechanic-pytorch``:
test_optim_mechanic_parity)."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.optim import Mechanic, Prodigy
from optim_harness import (
    compute_grads,
    loss_of,
    make_params,
    run_resume,
)


def every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 1 else ()


SGD, ADAMW = torch.optim.SGD, torch.optim.AdamW


def test_scale_is_learned_and_changes_the_iterates():
    params, plain = make_params(), make_params()
    opt = Mechanic(SGD(params, lr=0.01))
    ref = SGD(plain, lr=0.01)
    assert opt.scale == 0.0
    for k in range(30):
        compute_grads(params, k)
        compute_grads(plain, k)
        opt.step()
        ref.step()
    assert opt.scale > 0 and math.isfinite(opt.scale)
    assert opt.effective_lr() == [opt.scale * 0.01]
    assert not torch.equal(params[0], plain[0])


@pytest.mark.parametrize("make", [
    lambda p: Mechanic(SGD(p, lr=0.01, momentum=0.9)),
    lambda p: Mechanic(ADAMW(p, lr=1e-3, weight_decay=0.1), store_delta=True),
    lambda p: Mechanic(Prodigy(p, weight_decay=0.01)),
], ids=["sgd", "adamw-store-delta", "prodigy"])
def test_resume_is_exact(make):
    run_resume(make, min_move=0.0)
    run_resume(make, spec=[{"idx": [0, 1]}, {"idx": [2, 3]}], skip=every_third, min_move=0.0)


def test_scheduler_drives_the_base_lr():
    params = make_params()
    base = SGD(params, lr=0.1)
    opt = Mechanic(base)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for k in range(4):
        compute_grads(params, k)
        opt.step()
        sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.025)
    assert opt.param_groups is base.param_groups


def test_add_param_group_and_none_grads():
    params = make_params()
    base = SGD(params[:2], lr=0.01)
    opt = Mechanic(base)
    opt.add_param_group({"params": params[2:3]})
    assert len(base.param_groups) == 2
    before = params[3].detach().clone()
    compute_grads(params, 0, skip=(2,))
    opt.step()
    assert torch.equal(params[3], before)
    assert params[2] not in opt.state


def test_resume_right_after_the_first_steps():
    run_resume(lambda p: Mechanic(SGD(p, lr=0.01)), steps=30, split=3, min_move=0.0)


def test_closure_is_evaluated_once_for_the_first_base_call():
    params = make_params()
    calls = []

    def closure():
        calls.append(1)
        for p in params:
            p.grad = None
        loss = loss_of(params, 0)
        loss.backward()
        return loss

    loss = Mechanic(SGD(params, lr=0.01)).step(closure)
    assert len(calls) == 1 and math.isfinite(loss.item())


BAD = [
    ({"s_decay": -0.1}, "s_decay"),
    ({"s_decay": float("nan")}, "s_decay"),
    ({"betas": ()}, "betas"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
    ({"s_init": 0.0}, "s_init"),
    ({"eps": -1.0}, "eps"),
    ({"store_delta": 1}, "store_delta"),
]


@pytest.mark.parametrize("kwargs,name", BAD, ids=[n for _, n in BAD])
def test_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Mechanic(SGD(make_params(), lr=0.1), **kwargs)


def test_bad_base_and_mismatched_state():
    with pytest.raises(ValueError, match="base"):
        Mechanic(make_params())
    params = make_params()
    opt = Mechanic(SGD(params, lr=0.1))
    with pytest.raises(ValueError, match="base"):
        Mechanic(opt)
    compute_grads(params, 0)
    opt.step()
    other = Mechanic(SGD(make_params(), lr=0.1), betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="betas"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"state": {}})


def test_deepcopy_keeps_base_and_tuner():
    import copy

    params = make_params()
    opt = Mechanic(SGD(params, lr=0.01))
    compute_grads(params, 0)
    opt.step()
    twin = copy.deepcopy(opt)
    assert twin.scale == opt.scale > 0
    assert isinstance(twin.base, SGD)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_parameter_tensor_and_the_tuner_dtype(dtype):
    """A model with a single parameter tensor (a bias-free linear layer) trains: the learned
    scale grows and the loss falls; the tuner computes in float64 for float64 parameters and in
    float32 otherwise."""
    g = torch.Generator().manual_seed(0)
    w = torch.zeros(3, dtype=dtype, requires_grad=True)
    x = torch.randn(64, 3, generator=g, dtype=dtype)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    opt = Mechanic(torch.optim.SGD([w], lr=0.05))
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert opt.tuner["s"].dtype == dtype
    assert opt.scale > 1e-3 and losses[-1] < 0.5 * losses[0]


def test_defaults_are_the_base_optimizers():
    """Tools that read ``optimizer.defaults`` (to fill a new param group, or to log the
    hyperparameters) see the base optimizer's."""
    base = torch.optim.SGD(make_params(), lr=0.03, momentum=0.9)
    opt = Mechanic(base)
    assert opt.defaults is base.defaults and opt.defaults["lr"] == 0.03
