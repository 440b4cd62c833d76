"""Prodigy: resume, state, bad input (parity with ``prodigyopt``: test_optim_prodigy_parity)."""

from __future__ import annotations

import pytest
import torch

from lrlab.optim import Prodigy
from optim_harness import compute_grads, groups_of, make_params, run_resume


def every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 1 else ()


def test_all_zero_parameter_keeps_scalar_start():
    params = make_params()
    with torch.no_grad():
        params[3].zero_()
    opt = Prodigy(params)
    compute_grads(params, 0)
    opt.step()
    assert opt.state[params[3]]["p0"].dim() == 0
    assert opt.state[params[0]]["p0"].shape == (96,)


@pytest.mark.parametrize("kwargs", [
    {"weight_decay": 0.01, "use_bias_correction": True, "safeguard_warmup": True},
    {"betas": (0.0, 0.99), "slice_p": 2, "growth_rate": 1.05},
])
def test_resume_is_exact(kwargs):
    run_resume(lambda p: Prodigy(p, **kwargs), min_move=0.0)
    run_resume(lambda p: Prodigy(p, **kwargs), spec=[{"idx": [0, 1]}, {"idx": [2, 3]}],
               skip=every_third, min_move=0.0)


def test_state_dict_carries_the_global_scalars():
    params = make_params()
    opt = Prodigy(params)
    for k in range(5):
        compute_grads(params, k)
        opt.step()
    groups = opt.state_dict()["param_groups"]
    assert groups[0]["k"] == 5
    assert groups[0]["d"] == opt.d > 1e-6
    assert groups[0]["d_max"] >= groups[0]["d"]
    assert opt.effective_lr() == [opt.d]


def test_frozen_group_and_gradients_untouched():
    params = make_params()
    opt = Prodigy([{"params": params[:2], "weight_decay": 0.1, "decouple": False},
                   {"params": params[2:], "lr": 0.0}], decouple=False)
    frozen = [p.detach().clone() for p in params[2:]]
    for k in range(5):
        compute_grads(params, k)
        grads = [p.grad.clone() for p in params]
        opt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, grads, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(params[2:], frozen, strict=True))


BAD = [
    ({"lr": -0.1}, "lr"),
    ({"lr": float("inf")}, "lr"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
    ({"betas": (-0.1, 0.9)}, r"betas\[0\]"),
    ({"beta3": 1.0}, "beta3"),
    ({"eps": 0.0}, "eps"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"d0": 0.0}, "d0"),
    ({"d_coef": -1.0}, "d_coef"),
    ({"growth_rate": 0.9}, "growth_rate"),
    ({"slice_p": 0}, "slice_p"),
    ({"slice_p": 1.5}, "slice_p"),
    ({"safeguard_warmup": "yes"}, "safeguard_warmup"),
    ({"use_bias_correction": None}, "use_bias_correction"),
    ({"decouple": 1}, "decouple"),
]


@pytest.mark.parametrize("kwargs,name", BAD, ids=[n for _, n in BAD])
def test_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Prodigy(make_params(), **kwargs)


def test_group_level_errors():
    params = make_params()
    with pytest.raises(ValueError, match="d_coef"):
        Prodigy([{"params": params[:2]}, {"params": params[2:], "d_coef": 2.0}])
    opt = Prodigy(groups_of(params, [{"idx": [0, 1]}, {"idx": [2, 3], "lr": 0.5}]))
    compute_grads(params, 0)
    with pytest.raises(ValueError, match="share one lr"):
        opt.step()


def test_deepcopy_steps_like_the_original():
    import copy

    params = make_params()
    opt = Prodigy(params)
    compute_grads(params, 0)
    opt.step()
    twin_params = [p.detach().clone().requires_grad_() for p in params]
    twin = copy.deepcopy(opt)
    twin.param_groups[0]["params"] = twin_params
    twin.state = {q: copy.deepcopy(opt.state[p]) for p, q in zip(params, twin_params, strict=True)}
    compute_grads(params, 1)
    compute_grads(twin_params, 1)
    opt.step()
    twin.step()
    assert all(torch.equal(a, b) for a, b in zip(params, twin_params, strict=True))


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_first_moment_buffer_only_with_beta1(beta1):
    """The documented per-parameter state: ``s``, ``p0``, ``exp_avg_sq``, and ``exp_avg`` only
    when beta1 > 0 (without momentum no buffer is spent on it)."""
    params = make_params(0)
    opt = Prodigy(params, betas=(beta1, 0.999))
    for k in range(3):
        compute_grads(params, k)
        opt.step()
    expected = {"s", "p0", "exp_avg_sq"} | ({"exp_avg"} if beta1 > 0 else set())
    assert all(set(opt.state[p]) == expected for p in params)
