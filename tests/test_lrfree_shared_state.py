"""Learning-rate-free optimizers keep one estimate (d, step count) for all their parameter
groups: a group added later joins it; a step with lr = 0 moves nothing, the estimate included; a
group at lr = 0 is as if absent; and the Schedule-Free wrapper's interpolation must be a real
average (momentum in (0, 1))."""

from __future__ import annotations

import pytest
import torch

from lrlab.optim import DAdaptAdaGrad, DAdaptAdam, DAdaptSGD, Prodigy
from lrlab.optim.schedulefree import ScheduleFreeWrapper


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)]


def _step(opt, params) -> None:
    opt.zero_grad()
    loss = sum(((p - 3.0) ** 2).sum() for p in params)
    loss.backward()
    opt.step()


@pytest.mark.parametrize("make", [DAdaptSGD, DAdaptAdam, Prodigy])
def test_a_group_added_after_steps_joins_the_shared_estimate(make) -> None:
    params = _params()
    opt = make(params[:1], lr=1.0)
    for _ in range(5):
        _step(opt, params[:1])
    first = opt.param_groups[0]
    assert first["d"] > 1e-6 and first["k"] == 5  # the estimate has moved
    opt.add_param_group({"params": params[1:]})
    added = opt.param_groups[1]
    assert added["d"] == first["d"] and added["k"] == first["k"]
    _step(opt, params)
    assert opt.param_groups[1]["d"] == opt.param_groups[0]["d"]
    assert opt.param_groups[1]["k"] == opt.param_groups[0]["k"] == 6


@pytest.mark.parametrize("growth_rate", [float("inf"), 1.02])
@pytest.mark.parametrize("make", [DAdaptSGD, DAdaptAdam, Prodigy])
def test_a_step_at_lr_zero_moves_nothing(make, growth_rate) -> None:
    # with a growth limit, d lags behind its estimate: still, a step at lr = 0 must not grow it
    params = _params()
    opt = make(params, lr=1.0, growth_rate=growth_rate)
    for _ in range(4):
        _step(opt, params)
    d = opt.param_groups[0]["d"]
    before = [p.detach().clone() for p in params]
    for group in opt.param_groups:
        group["lr"] = 0.0
    for _ in range(3):
        _step(opt, params)
    assert opt.param_groups[0]["d"] == d
    for a, b in zip(before, params, strict=True):
        assert torch.equal(a, b.detach())


@pytest.mark.parametrize("make", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad, Prodigy])
def test_a_frozen_group_is_as_if_absent(make) -> None:
    """A group at lr = 0 (a frozen layer) neither moves nor enters the shared estimate: its
    gradients change nothing, from the first step on (where d's scale is first measured)."""
    params, alone = _params(), _params()[:1]
    frozen_start = params[1].detach().clone()
    opt = make([{"params": params[:1]}, {"params": params[1:], "lr": 0.0}], lr=1.0)
    ref = make(alone, lr=1.0)
    for _ in range(6):
        _step(opt, params)
        _step(ref, alone)
    assert opt.param_groups[0]["d"] == ref.param_groups[0]["d"] > 1e-6
    assert torch.equal(params[0], alone[0]) and torch.equal(params[1].detach(), frozen_start)


@pytest.mark.parametrize("momentum", [0.0, 1.0, -0.1])
def test_schedulefree_wrapper_needs_a_momentum_inside_zero_one(momentum) -> None:
    base = torch.optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        ScheduleFreeWrapper(base, momentum=momentum)
    assert ScheduleFreeWrapper(base, momentum=0.5).momentum == 0.5


@pytest.mark.parametrize("make", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad, Prodigy])
@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_an_lr_set_after_construction_is_checked_at_the_step(make, bad) -> None:
    """A scheduler (or a hand edit) that sets a bad lr is caught at the next step, before any
    parameter moves."""
    params = _params()
    opt = make(params, lr=1.0)
    _step(opt, params)
    before = [p.detach().clone() for p in params]
    opt.param_groups[0]["lr"] = bad
    with pytest.raises(ValueError, match="lr"):
        _step(opt, params)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, params, strict=True))


@pytest.mark.parametrize("make", [DAdaptSGD, DAdaptAdam, DAdaptAdaGrad, Prodigy])
def test_zero_gradients_at_a_stationary_point_take_no_step(make) -> None:
    """All gradients 0: d cannot be estimated (every sum is 0), so nothing moves and nothing
    turns into NaN; the next non-zero gradient steps as usual."""
    params = _params()
    opt = make(params, lr=1.0)
    start = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    assert opt.param_groups[0]["d"] == 1e-6
    assert all(torch.equal(a, b.detach()) for a, b in zip(start, params, strict=True))
    _step(opt, params)
    assert all(torch.isfinite(p).all() for p in params)
    assert not torch.equal(start[0], params[0].detach())
