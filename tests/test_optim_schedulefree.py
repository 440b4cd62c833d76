"""Schedule-Free SGD / AdamW / wrapper: modes, resume, errors (parity with ``schedulefree``:
test_optim_schedulefree_parity)."""

import math

import pytest
import torch

from lrlab.optim import Prodigy
from lrlab.optim.schedulefree import AdamWScheduleFree, ScheduleFreeWrapper, SGDScheduleFree
from optim_harness import (
    clone_params,
    compute_grads,
    make_params,
    max_rel_diff,
    roundtrip,
    run_parity,
    run_resume,
)


def test_wrapper_over_sgd_equals_schedule_free_sgd():
    # SGD base without momentum on z == the built-in Schedule-Free SGD (no warm-up)
    run_parity(
        lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.4), momentum=0.85),
        lambda p: SGDScheduleFree(p, lr=0.4, momentum=0.85),
        eval_mode=True,
        tol=1e-12,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGDScheduleFree(p, lr=0.5, weight_decay=0.01, warmup_steps=20),
        lambda p: AdamWScheduleFree(p, lr=0.05, warmup_steps=20, r=1.0),
        lambda p: ScheduleFreeWrapper(torch.optim.Adam(p, lr=0.05, betas=(0.0, 0.99))),
    ],
)
@pytest.mark.parametrize("through_eval", [False, True])
def test_resume_is_exact(make, through_eval):
    run_resume(make, through_eval=through_eval)


def test_mode_and_averaging_weights_are_saved():
    params = make_params(0)
    opt = SGDScheduleFree(params, lr=0.5, warmup_steps=5)
    for t in range(8):
        compute_grads(params, t)
        opt.step()
    opt.eval()
    state = roundtrip(opt.state_dict())
    fresh = SGDScheduleFree(clone_params(params), lr=0.5, warmup_steps=5)
    fresh.load_state_dict(state)
    assert not fresh.train_mode
    group = fresh.param_groups[0]
    assert group["k"] == 8 and group["weight_sum"] == opt.param_groups[0]["weight_sum"] > 0
    with pytest.raises(RuntimeError, match="eval mode"):
        fresh.step()


def test_eval_then_train_restores_y_and_eval_before_any_step_is_identity():
    params = make_params(0)
    start = clone_params(params)
    opt = AdamWScheduleFree(params, lr=0.05)
    opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(params, start, strict=True))
    opt.train()
    for t in range(5):
        compute_grads(params, t)
        opt.step()
    y = clone_params(params)
    opt.eval()
    assert not all(torch.equal(a, b) for a, b in zip(params, y, strict=True))
    opt.train()
    assert all(torch.allclose(a, b, rtol=1e-14) for a, b in zip(params, y, strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGDScheduleFree(p),
        lambda p: AdamWScheduleFree(p),
        lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)),
    ],
)
def test_step_in_eval_mode_is_a_clear_error(make):
    params = make_params(0)
    opt = make(params)
    compute_grads(params, 0)
    opt.eval()
    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer.train\(\)"):
        opt.step()


def test_wrapper_shares_groups_with_base_so_schedules_drive_it():
    params = make_params(0)
    base = torch.optim.SGD(params, lr=0.5)
    opt = ScheduleFreeWrapper(base)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (t + 1))
    for t in range(3):
        compute_grads(params, t)
        opt.step()
        sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.5 / 4)
    assert opt.effective_lr() == [pytest.approx(0.5 / 3)]


def test_params_without_grad_are_skipped():
    params = make_params(0)
    frozen = torch.ones(4, dtype=torch.float64, requires_grad=True)
    for make in (SGDScheduleFree, AdamWScheduleFree,
                 lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1))):
        opt = make([*params, frozen])
        for t in range(3):
            compute_grads(params, t)
            opt.step()
        opt.eval()
        opt.train()
        assert torch.equal(frozen, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"momentum": 0.0}, "momentum"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_steps": 2.5}, "warmup_steps"),
        ({"r": -1.0}, "r"),
        ({"weight_lr_power": math.inf}, "weight_lr_power"),
    ],
)
def test_sgd_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SGDScheduleFree(make_params(0), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"betas": (0.0, 0.999)}, r"betas\[0\]"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
        ({"eps": -1.0}, "eps"),
        ({"lr": math.inf}, "lr"),
    ],
)
def test_adamw_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AdamWScheduleFree(make_params(0), **kwargs)


def test_wrapper_rejects_bad_arguments():
    base = torch.optim.SGD(make_params(0), lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        ScheduleFreeWrapper(base, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay_at_y"):
        ScheduleFreeWrapper(base, weight_decay_at_y=-1.0)
    with pytest.raises(ValueError, match="base"):
        ScheduleFreeWrapper(make_params(0))
    with pytest.raises(ValueError, match="lr"):
        SGDScheduleFree([{"params": make_params(0), "lr": -1.0}])


def test_wrapper_survives_a_warm_up_from_zero():
    # an lr of 0 at the first step gives a zero weight sum: the average must stay put, not fail
    params = make_params(0)
    start = clone_params(params)
    opt = ScheduleFreeWrapper(torch.optim.SGD(params, lr=0.0))
    compute_grads(params, 0)
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params, start, strict=True))
    opt.param_groups[0]["lr"] = 0.1
    for t in range(1, 4):
        compute_grads(params, t)
        opt.step()
    assert max_rel_diff(params, start) > 0


@pytest.mark.parametrize("cls", [SGDScheduleFree, AdamWScheduleFree])
def test_effective_lr_is_the_warmed_up_step(cls):
    """``effective_lr()`` reports the step of the last update: lr times the linear warm-up
    factor (k + 1) / warmup_steps, then lr."""
    params = make_params(0)
    opt = cls(params, lr=0.5, warmup_steps=4)
    opt.train()
    assert opt.effective_lr() == [0.0]
    for k in range(6):
        compute_grads(params, k)
        opt.step()
        assert opt.effective_lr() == [pytest.approx(0.5 * min(1.0, (k + 1) / 4), rel=1e-15)]


def test_wrapper_over_a_learning_rate_free_base_uses_its_d():
    """Over a base with a step-size estimate d (Prodigy, D-Adaptation), the step in use, which
    also weighs the average, is the base's lr times its d."""
    params = make_params(0)
    base = Prodigy(params, lr=0.5)
    opt = ScheduleFreeWrapper(base)
    opt.train()
    assert opt.effective_lr() == [0.0]  # no step taken yet
    for k in range(8):
        compute_grads(params, k)
        opt.step()
    assert base.d > 1e-5  # moved well away from d0 = 1e-6
    assert opt.effective_lr() == [pytest.approx(0.5 * base.d, rel=1e-15)]
