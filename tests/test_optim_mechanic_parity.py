"""Mechanic: parity with ``mechanic-pytorch`` 0.0.1 over several bases (skipped without it)."""

from __future__ import annotations

import pytest
import torch

from lrlab.optim import Mechanic
from optim_harness import compute_grads, make_params, roundtrip, run_parity

mechanic_pytorch = pytest.importorskip("mechanic_pytorch")
mechanize = mechanic_pytorch.mechanize


@pytest.fixture
def float64_default():
    """The reference keeps its tuner in the default dtype; float64 makes it comparable."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 1 else ()


SGD, ADAM, ADAMW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
CASES = [
    (SGD, {"lr": 0.01}, {}, None, None),
    (SGD, {"lr": 0.01}, {"store_delta": True}, None, None),
    (SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3}, {"s_decay": 0.0}, None, None),
    (ADAM, {"lr": 1e-3}, {"betas": (0.9, 0.999), "s_init": 1e-6}, None, None),
    (ADAMW, {"lr": 1e-3, "weight_decay": 0.1}, {"eps": 1e-6, "s_decay": 0.1}, None, None),
    (SGD, {"lr": 0.01, "momentum": 0.9}, {"s_decay": 1.0}, None, None),  # a strong decay term
    (SGD, {"lr": 0.01}, {"store_delta": True},
     [{"idx": [0, 1]}, {"idx": [2, 3], "lr": 0.003}], every_third),
]


@pytest.mark.parametrize("base,base_kw,kw,spec,skip", CASES,
                         ids=[f"{b.__name__}-{k}-{s is not None}" for b, _, k, s, _ in CASES])
def test_parity_with_reference(float64_default, base, base_kw, kw, spec, skip):
    run_parity(lambda p: Mechanic(base(p, **base_kw), **kw),
               lambda p: mechanize(base, **kw)(p, **base_kw),
               spec=spec, steps=100, skip=skip or (lambda k: ()), min_move=0.0)


def test_reference_cannot_resume_but_ours_does(float64_default):
    """The reference's saved state maps parameters by tensor identity, so a reload fails."""
    cls = mechanize(SGD)
    params = make_params()
    ref = cls(params, lr=0.01)
    for k in range(3):
        compute_grads(params, k)
        ref.step()
    fresh = [p.detach().clone().requires_grad_() for p in params]
    reloaded = cls(fresh, lr=0.01)
    reloaded.load_state_dict(roundtrip(ref.state_dict()))
    compute_grads(fresh, 3)
    with torch.enable_grad(), pytest.raises(KeyError):  # the reference leaves grad mode off
        reloaded.step()
