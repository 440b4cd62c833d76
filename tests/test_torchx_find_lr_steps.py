"""What ``find_lr`` does at each step, against plain SGD written out by hand: the recorded loss
of step t is the loss before that step's update, the update uses the ramp's lr (a float or a
tensor lr, a first group at lr 0), the data iterator is closed when the test ends (also on an
error), and ``TrainingState`` puts back objects a step replaced, slots that were None,
attributes it added, and the params lists edited in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrlab.rangetest import RampMonitor, ramp_lrs
from lrlab.torchx import find_lr
from lrlab.torchx.find_lr import TrainingState

LOSS = torch.nn.functional.mse_loss


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1).double()


def _data(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(4)
    X = torch.randn(n * 8, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.1
    return [(X[i : i + 8], y[i : i + 8]) for i in range(0, n * 8, 8)]


def _by_hand(model: torch.nn.Module, data, lrs) -> list[float]:
    """Plain SGD: the loss at the current weights, then w -= lr * grad."""
    w = [p.detach().clone() for p in model.parameters()]
    losses = []
    for t, lr in enumerate(lrs):
        x, y = data[t % len(data)]
        params = [p.clone().requires_grad_(True) for p in w]
        loss = LOSS(torch.nn.functional.linear(x, params[0], params[1]), y)
        losses.append(float(loss.detach()))
        grads = torch.autograd.grad(loss, params)
        w = [p - lr * g for p, g in zip(w, grads, strict=True)]
    return losses


def test_each_step_is_sgd_at_the_ramps_lr() -> None:
    model, data = _model(), _data(1)  # one batch, repeated: the loss falls all along
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = find_lr(model, opt, LOSS, data, lr_min=1e-3, lr_max=0.05, steps=15)
    n = len(rt.losses)
    assert n == 15
    assert rt.info == {"lr_min": 1e-3, "lr_max": 0.05, "steps": 15, "accumulate": 1,
                       "autocast": None}
    want = _by_hand(model, data, ramp_lrs(1e-3, 0.05, 15)[:n])
    torch.testing.assert_close(torch.tensor(rt.losses), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-6, atol=0)  # losses are recorded in float32


def test_a_tensor_lr_is_set_in_place() -> None:
    model, data = _model(), _data(1)
    lr = torch.tensor(0.1, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    rt = find_lr(model, opt, LOSS, data, lr_min=1e-3, lr_max=0.05, steps=15)
    n = len(rt.losses)
    want = _by_hand(model, data, ramp_lrs(1e-3, 0.05, 15)[:n])
    torch.testing.assert_close(torch.tensor(rt.losses), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-6, atol=0)  # losses are recorded in float32
    assert opt.param_groups[0]["lr"] is lr and lr.item() == 0.1


def test_a_first_group_at_lr_zero_gives_every_group_the_ramp() -> None:
    # no ratio to a zero lr: every group follows the ramp itself
    model = _model()
    opt = torch.optim.SGD([{"params": [model.weight], "lr": 0.0},
                           {"params": [model.bias], "lr": 0.5}], lr=0.1)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append([g["lr"] for g in o.param_groups]))
    rt = find_lr(model, opt, LOSS, _data(), lr_min=1e-3, lr_max=0.3, steps=10)
    assert seen and all(a == b == lr for (a, b), lr in zip(seen, rt.lrs, strict=False))


def test_the_data_iterator_is_closed_also_after_an_error() -> None:
    # a DataLoader-like iterable: each pass is a fresh iterator with clean-up to run
    model, data = _model(), _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    closed = []

    class Stream:
        def __iter__(self):
            try:
                yield from data
            finally:
                closed.append(True)

    calls: list[int] = []

    def failing(out, target):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return LOSS(out, target)

    find_lr(model, opt, LOSS, Stream(), steps=10)
    assert closed == [True]
    try:
        find_lr(model, opt, failing, Stream(), steps=10)
    except RuntimeError:
        assert closed == [True, True]  # while the traceback still holds find_lr's frame
    else:
        raise AssertionError("the error did not propagate")


def test_training_state_puts_back_replaced_objects_and_none_slots() -> None:
    model = _model()
    model.register_buffer("extra", None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.counter, opt.note = torch.zeros(()), None
    model.weight.grad = torch.ones_like(model.weight)
    weight, params, grad = model.weight, opt.param_groups[0]["params"], model.weight.grad
    state = TrainingState(model, opt)
    before = weight.detach().clone()
    grad.add_(1.0)  # a gradient accumulated in place
    # a run that replaced a parameter, filled a None buffer, edited the params list in place,
    # replaced a tensor attribute and added plain and other attributes to the optimizer
    model.weight = torch.nn.Parameter(torch.zeros_like(weight))
    model.extra = torch.ones(2)
    params.append(torch.nn.Parameter(torch.ones(1)))
    opt.counter = torch.ones(())
    opt.flag, opt.hooks, opt.note = True, [], 3
    state.restore()
    assert model.weight is weight and torch.equal(weight, before)
    assert weight.grad is grad and torch.equal(grad, torch.ones_like(grad))
    assert model.extra is None
    assert opt.param_groups[0]["params"] is params and len(params) == 2
    assert opt.counter.item() == 0.0 and isinstance(opt.counter, torch.Tensor)
    assert not hasattr(opt, "flag")  # a plain attribute the run set is removed
    assert opt.hooks == []  # other objects are left alone
    assert opt.note is None



def test_the_ramp_stops_where_the_stopping_rule_fires() -> None:
    # a ramp far past the stable lrs: it stops at the first step the rule (replayed on the
    # recorded losses) fires, before any loss is non-finite
    model, data = _model(), _data(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rt = find_lr(model, opt, LOSS, data, lr_min=1e-3, lr_max=1e3, steps=100)
    n = len(rt.losses)
    assert n < 100 and np.all(np.isfinite(rt.losses))
    monitor = RampMonitor(rt.window)
    fired = [monitor.add(float(v)) for v in rt.losses]
    assert fired[-1] and not any(fired[:-1])


def test_loss_fn_must_return_a_scalar_tensor() -> None:
    model, data = _model(), _data(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for bad in (lambda out, y: (out - y) ** 2, lambda out, y: 1.0):
        with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
            find_lr(model, opt, bad, data, steps=5)
