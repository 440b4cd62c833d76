"""MoMo and MoMo-Adam: resume, state, errors (parity with ``momo-opt``: test_optim_momo_parity)."""

import math

import pytest
import torch

from lrlab.optim.momo import Momo, MomoAdam
from optim_harness import (
    clone_params,
    compute_grads,
    make_params,
    roundtrip,
    run_resume,
)


def test_step_size_is_both_capped_and_adaptive_on_the_test_problem():
    # the parity cases must exercise both branches of tau = min(lr / rho, ratio)
    params = make_params(0)
    opt = Momo(params, lr=1.0)
    taus = []
    for t in range(100):
        opt.step(loss=compute_grads(params, t))
        taus.append(opt.effective_lr()[0])
    assert min(taus) < 1.0 and max(taus) == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Momo(p, lr=0.5, weight_decay=0.01, use_fstar=True),
        lambda p: Momo(p, bias_correction=True),
        lambda p: MomoAdam(p, weight_decay=0.01, use_fstar=True),
    ],
)
def test_resume_is_exact(make):
    run_resume(make, needs_loss=True)


def test_state_dict_keeps_loss_average_and_lower_bound():
    params = make_params(0)
    opt = Momo(params, use_fstar=True, lb=-1.0)
    for t in range(5):
        opt.step(loss=compute_grads(params, t))
    fresh = Momo(clone_params(params), use_fstar=True, lb=-1.0)
    fresh.load_state_dict(roundtrip(opt.state_dict()))
    assert fresh.loss_average == opt.loss_average != 0.0
    assert fresh.lower_bound == opt.lower_bound != -1.0
    assert fresh.effective_lr() == opt.effective_lr()


def test_missing_loss_is_a_clear_error():
    params = make_params(0)
    opt = Momo(params)
    compute_grads(params, 0)
    with pytest.raises(ValueError, match="needs the current loss"):
        opt.step()
    with pytest.raises(ValueError, match="not both"):
        opt.step(lambda: 1.0, loss=1.0)
    with pytest.raises(ValueError, match="non-finite loss"):
        MomoAdam(params).step(loss=torch.tensor(math.nan))


def test_closure_gives_the_same_step_as_loss():
    pa, pb = make_params(0), make_params(0)
    oa, ob = Momo(pa), Momo(pb)
    oa.step(loss=compute_grads(pa, 0))
    ob.step(lambda: compute_grads(pb, 0))
    assert all(torch.equal(a, b) for a, b in zip(pa, pb, strict=True))


def test_params_without_grad_are_skipped():
    params = make_params(0)
    frozen = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for cls in (Momo, MomoAdam):
        opt = cls([*params, frozen])
        for t in range(3):
            opt.step(loss=compute_grads(params, t))
        assert torch.equal(frozen, torch.zeros(3, dtype=torch.float64))
        assert frozen not in opt.state


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"weight_decay": math.nan}, "weight_decay"),
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"lb": math.nan}, "lb"),
        ({"bias_correction": 1}, "bias_correction"),
        ({"use_fstar": 1}, "use_fstar"),
    ],
)
def test_momo_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Momo(make_params(0), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"betas": (1.0, 0.9)}, r"betas\[0\]"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\]"),
        ({"betas": (0.9,)}, "betas"),
        ({"eps": -1e-8}, "eps"),
        ({"lr": math.nan}, "lr"),
        ({"divide": "yes"}, "divide"),
    ],
)
def test_momo_adam_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MomoAdam(make_params(0), **kwargs)


def test_groups_may_differ_in_lr_but_not_in_shared_options():
    a, b, c, d = make_params(0)
    opt = Momo([{"params": [a, b], "lr": 0.5}, {"params": [c, d], "lr": 0.1}])
    opt.step(loss=compute_grads([a, b, c, d], 0))
    assert len(opt.effective_lr()) == 2
    with pytest.raises(ValueError, match="beta is optimizer-wide"):
        Momo([{"params": [a, b]}, {"params": [c, d], "beta": 0.5}])
    with pytest.raises(ValueError, match="weight_decay"):
        Momo([{"params": [a, b]}, {"params": [c, d], "weight_decay": -1.0}])


@pytest.mark.parametrize(("make", "corrected"), [
    (lambda p: Momo(p, bias_correction=True), True),
    (lambda p: Momo(p, bias_correction=False), False),
    (MomoAdam, True),  # always bias-corrected, with beta1
], ids=["Momo-corrected", "Momo", "MomoAdam"])
def test_a_step_without_gradients_still_counts_its_loss(make, corrected):
    """A step in which no parameter has a gradient (a frozen phase) moves nothing but averages
    its loss and counts: with a constant loss c the bias-corrected average stays c, so the
    counter and the average cannot drift apart."""
    params = make_params(0)
    opt = make(params)
    group = opt.param_groups[0]
    c, beta = 0.75, group["beta"] if "beta" in group else group["betas"][0]
    for t in range(5):
        compute_grads(params, t, skip=(0, 1, 2, 3) if t in (1, 2) else ())
        before = [p.detach().clone() for p in params]
        opt.step(loss=c)
        moved = any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))
        assert moved == (t not in (1, 2))
        group = opt.param_groups[0]
        assert group["k"] == t + 1
        rho = 1 - beta ** (t + 1) if corrected else 1.0
        assert group["loss_avg"] / rho == pytest.approx(c, rel=1e-12)


@pytest.mark.parametrize("make", [Momo, lambda p: Momo(p, bias_correction=True), MomoAdam],
                         ids=["Momo", "Momo-corrected", "MomoAdam"])
def test_zero_gradients_at_a_stationary_point_take_no_step(make):
    """All gradients 0 (the direction d has norm 0): the Polyak step is undefined, no step is
    taken, and nothing turns into NaN; the next non-zero gradient steps as usual."""
    params = make_params(0)
    opt = make(params)
    start = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step(loss=0.5)
    assert all(torch.equal(p.detach(), s) for p, s in zip(params, start, strict=True))
    opt.step(loss=compute_grads(params, 1))
    assert all(torch.isfinite(p).all() for p in params)
    assert not torch.equal(params[0].detach(), start[0])
