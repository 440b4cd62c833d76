"""D-Adaptation SGD / Adam / AdaGrad: resume, estimate, bad input (parity with ``dadaptation``:
test_optim_dadapt_parity)."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.optim import DAdaptAdaGrad, DAdaptAdam, DAdaptSGD
from optim_harness import (
    compute_grads,
    groups_of,
    loss_of,
    make_params,
    run_resume,
)

TWO_GROUPS = [{"idx": [0, 1]}, {"idx": [2, 3]}]


def every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 1 else ()


@pytest.mark.parametrize("cls,kwargs", [
    (DAdaptSGD, {"momentum": 0.9, "weight_decay": 0.01}),
    (DAdaptAdam, {"weight_decay": 0.01, "decouple": True, "use_bias_correction": True}),
    (DAdaptAdaGrad, {"momentum": 0.5, "weight_decay": 0.01}),
])
def test_resume_is_exact(cls, kwargs):
    run_resume(lambda p: cls(p, **kwargs), min_move=0.0)
    run_resume(lambda p: cls(p, **kwargs), spec=TWO_GROUPS, skip=every_third, min_move=0.0)


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_d_never_decreases_and_effective_lr(cls):
    params = make_params()
    opt = cls(params, lr=0.5)
    last = opt.d
    assert last == 1e-6
    for k in range(30):
        compute_grads(params, k)
        opt.step()
        assert opt.d >= last
        last = opt.d
        assert opt.effective_lr() == [opt.d * 0.5]
    assert opt.d > 1e-6


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_gradients_left_untouched_and_none_grads_skipped(cls):
    params = make_params()
    opt = cls(params, weight_decay=0.1)
    compute_grads(params, 0, skip=(3,))
    grads = [p.grad.clone() for p in params[:3]]
    before = params[3].detach().clone()
    opt.step()
    for p, g in zip(params[:3], grads, strict=True):
        assert torch.equal(p.grad, g)
    assert torch.equal(params[3], before)
    assert params[3] not in opt.state


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_frozen_group_does_not_move(cls):
    params = make_params()
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.0}])
    frozen = [p.detach().clone() for p in params[2:]]
    for k in range(10):
        compute_grads(params, k)
        opt.step()
    for p, q in zip(params[2:], frozen, strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(params[0], make_params()[0])


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_schedule_scales_the_step(cls):
    params = make_params()
    opt = cls(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    for k in range(5):
        compute_grads(params, k)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 6)
    assert opt.effective_lr()[0] == pytest.approx(opt.d / 6)


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_closure_returns_loss(cls):
    params = make_params()
    opt = cls(params)

    def closure():
        opt.zero_grad()
        loss = loss_of(params, 0)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert math.isfinite(loss.item())


BAD = [
    (DAdaptSGD, {"lr": -1.0}, "lr"),
    (DAdaptSGD, {"lr": float("nan")}, "lr"),
    (DAdaptSGD, {"momentum": 1.0}, "momentum"),
    (DAdaptSGD, {"momentum": -0.1}, "momentum"),
    (DAdaptSGD, {"weight_decay": -1e-3}, "weight_decay"),
    (DAdaptSGD, {"d0": 0.0}, "d0"),
    (DAdaptSGD, {"growth_rate": 0.5}, "growth_rate"),
    (DAdaptSGD, {"growth_rate": float("nan")}, "growth_rate"),
    (DAdaptAdam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (DAdaptAdam, {"betas": (0.9, -0.1)}, r"betas\[1\]"),
    (DAdaptAdam, {"betas": (0.9,)}, "betas"),
    (DAdaptAdam, {"eps": 0.0}, "eps"),
    (DAdaptAdam, {"eps": float("inf")}, "eps"),
    (DAdaptAdam, {"decouple": 1}, "decouple"),
    (DAdaptAdam, {"use_bias_correction": 1}, "use_bias_correction"),
    (DAdaptAdam, {"layer_scale": -1.0}, "layer_scale"),
    (DAdaptAdaGrad, {"eps": -1.0}, "eps"),
    (DAdaptAdaGrad, {"momentum": 1.5}, "momentum"),
    (DAdaptAdaGrad, {"d0": -1.0}, "d0"),
]


@pytest.mark.parametrize("cls,kwargs,name", BAD, ids=[f"{c.__name__}-{n}" for c, _, n in BAD])
def test_bad_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(make_params(), **kwargs)


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_group_level_errors(cls):
    params = make_params()
    with pytest.raises(ValueError, match="weight_decay"):
        cls([{"params": params[:2], "weight_decay": -1.0}, {"params": params[2:]}])
    shared = "betas" if cls is DAdaptAdam else "growth_rate"
    other = {"betas": (0.5, 0.9)} if cls is DAdaptAdam else {"growth_rate": 2.0}
    with pytest.raises(ValueError, match=shared):
        cls([{"params": params[:2]}, {"params": params[2:], **other}])
    opt = cls(groups_of(params, [{"idx": [0, 1]}, {"idx": [2, 3], "lr": 0.5}]))
    compute_grads(params, 0)
    with pytest.raises(ValueError, match="share one lr"):
        opt.step()


def test_sparse_gradients_rejected():
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    p.grad = torch.sparse_coo_tensor([[1]], [1.0], (4,), dtype=torch.float64,
                                     check_invariants=True)
    with pytest.raises(ValueError, match="sparse"):
        DAdaptAdaGrad([p]).step()


@pytest.mark.parametrize("cls", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad])
def test_all_groups_frozen_and_zero_gradients_do_not_crash(cls):
    params = make_params()
    start = [p.detach().clone() for p in params]
    opt = cls(params, lr=0.0)
    compute_grads(params, 0)
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, start, strict=True))
    assert opt.d == 1e-6
    opt = cls(params)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()  # the SGD reference divides by the zero first-gradient norm here
    assert all(torch.equal(p, q) for p, q in zip(params, start, strict=True))
    assert opt.d == 1e-6
