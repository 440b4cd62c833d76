import math

import pytest
import torch

from lrlab.optim.averaging import MDA, PrimalAveragingSGD
from optim_harness import (
    clone_params,
    compute_grads,
    make_params,
    max_rel_diff,
    run_parity,
    run_resume,
)


def lr_at(t: int, base: float) -> float:
    # a changing step size, so the recurrences are checked beyond the constant case
    return base * (1.0 + 0.5 * math.cos(0.3 * t))


def run_against_recurrence(opt_cls, recurrence, lr, momentum, weight_decay, steps=100):
    ours = make_params(0)
    opt = opt_cls(ours, lr=lr, momentum=momentum, weight_decay=weight_decay)
    mirror = make_params(0)
    memory = {}
    for t in range(steps):
        opt.param_groups[0]["lr"] = lr_at(t, lr)
        compute_grads(ours, t)
        opt.step()
        compute_grads(mirror, t)
        with torch.no_grad():
            for i, x in enumerate(mirror):
                g = x.grad + weight_decay * x
                x.copy_(recurrence(memory, i, x, g, t, lr_at(t, lr), 1.0 - momentum))
        assert max_rel_diff(ours, mirror) <= 1e-10, f"step {t}"
    assert max_rel_diff(ours, make_params(0)) > 1e-3


def mda_recurrence(memory, i, x, g, k, lr, c):
    s, x0 = memory.setdefault(i, [torch.zeros_like(x), x.clone()])
    lam = lr * math.sqrt(k + 1)
    s += lam * g
    z = x0 - s / math.sqrt(k + 1)
    return (1 - c) * x + c * z


def primal_averaging_recurrence(memory, i, x, g, k, lr, c):
    z = memory.setdefault(i, x.clone())
    z -= lr * g
    return (1 - c) * x + c * z


@pytest.mark.parametrize(("momentum", "weight_decay"),
                         [(0.9, 0.0), (0.5, 0.05), (0.0, 0.0), (0.5, 1.0)])
def test_mda_follows_its_recurrence(momentum, weight_decay):
    run_against_recurrence(MDA, mda_recurrence, 0.05, momentum, weight_decay)


@pytest.mark.parametrize(("momentum", "weight_decay"),
                         [(0.9, 0.0), (0.5, 0.05), (0.0, 0.0), (0.5, 1.0)])
def test_primal_averaging_follows_its_recurrence(momentum, weight_decay):
    run_against_recurrence(
        PrimalAveragingSGD, primal_averaging_recurrence, 0.3, momentum, weight_decay
    )


@pytest.mark.parametrize(
    ("lr", "beta", "weight_decay"), [(0.1, 0.9, 0.0), (0.2, 0.5, 0.05), (0.3, 0.0, 0.01)]
)
def test_primal_averaging_equals_heavy_ball_under_constant_lr(lr, beta, weight_decay):
    # z0 = x0, c = 1 - beta, eta = lr / (1 - beta)  <=>  SGD(lr, momentum=beta), buffer = g0
    run_parity(
        lambda p: PrimalAveragingSGD(
            p, lr=lr / (1 - beta), momentum=beta, weight_decay=weight_decay
        ),
        lambda p: torch.optim.SGD(p, lr=lr, momentum=beta, weight_decay=weight_decay),
    )


def test_primal_averaging_differs_from_heavy_ball_when_lr_changes():
    # the equivalence is for a constant lr only: a schedule acts on z here
    pa, pb = make_params(0), make_params(0)
    oa = PrimalAveragingSGD(pa, lr=1.0, momentum=0.9)
    ob = torch.optim.SGD(pb, lr=0.1, momentum=0.9)
    for t in range(20):
        scale = 1.0 if t < 10 else 0.1
        oa.param_groups[0]["lr"] = 1.0 * scale
        ob.param_groups[0]["lr"] = 0.1 * scale
        compute_grads(pa, t)
        oa.step()
        compute_grads(pb, t)
        ob.step()
    assert max_rel_diff(pa, pb) > 1e-6


@pytest.mark.parametrize(
    "make",
    [
        lambda p: MDA(p, lr=0.05, weight_decay=0.01),
        lambda p: PrimalAveragingSGD(p, lr=0.3, momentum=0.8, weight_decay=0.01),
    ],
)
def test_resume_is_exact(make):
    run_resume(make)


def test_effective_lr():
    params = make_params(0)
    mda = MDA(params, lr=0.1)
    for t in range(3):
        compute_grads(params, t)
        mda.step()
    assert mda.effective_lr() == [pytest.approx(0.1 * math.sqrt(3))]
    assert PrimalAveragingSGD(clone_params(params), lr=0.7).effective_lr() == [0.7]


def test_gradients_are_not_modified_and_params_without_grad_are_skipped():
    params = make_params(0)
    frozen = torch.ones(2, dtype=torch.float64, requires_grad=True)
    for cls in (MDA, PrimalAveragingSGD):
        opt = cls([*params, frozen], weight_decay=0.1)
        compute_grads(params, 0)
        grads = [p.grad.clone() for p in params]
        opt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, grads, strict=True))
        assert torch.equal(frozen, torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("cls", [MDA, PrimalAveragingSGD])
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": math.nan}, "momentum"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_rejects_bad_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(make_params(0), **kwargs)


def test_negative_lr_from_a_schedule_is_caught_at_step():
    params = make_params(0)
    opt = MDA(params)
    opt.param_groups[0]["lr"] = -0.1
    compute_grads(params, 0)
    with pytest.raises(ValueError, match="lr"):
        opt.step()
