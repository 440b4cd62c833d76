"""MoMo and MoMo-Adam: parity with ``momo-opt`` 0.1.0 (skipped without it)."""

import pytest
import torch

from lrlab.optim.momo import Momo, MomoAdam
from optim_harness import clone_params, compute_grads, make_params, roundtrip, run_parity

ref = pytest.importorskip("momo")

MOMO_OPTIONS = [
    {},
    {"weight_decay": 0.1},
    {"bias_correction": True},
    {"bias_correction": True, "weight_decay": 0.05, "beta": 0.6},
    {"use_fstar": True, "weight_decay": 0.01},
    {"use_fstar": True, "bias_correction": True, "lb": -0.5},
    {"beta": 0.0, "lr": 0.3},
]

MOMO_ADAM_OPTIONS = [
    {},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "divide": False},
    {"use_fstar": True, "weight_decay": 0.01},
    {"betas": (0.5, 0.9), "lr": 0.1, "eps": 1e-3},
    {"betas": (0.0, 0.0), "lr": 0.05},
]


@pytest.mark.parametrize("options", MOMO_OPTIONS)
def test_momo_matches_reference(options):
    run_parity(lambda p: Momo(p, **options), lambda p: ref.Momo(p, **options), needs_loss=True)


@pytest.mark.parametrize("options", MOMO_ADAM_OPTIONS)
def test_momo_adam_matches_reference(options):
    run_parity(
        lambda p: MomoAdam(p, **options), lambda p: ref.MomoAdam(p, **options), needs_loss=True
    )


def test_reference_loses_the_running_averages_but_ours_does_not():
    # the reference keeps f-bar and lb outside its state_dict: a reload diverges from the
    # uninterrupted run, ours continues it exactly
    def run(cls, reload_at):
        params = make_params(0)
        opt = cls(params, lr=1.0, use_fstar=True)
        for t in range(20):
            if t == reload_at:
                state = roundtrip(opt.state_dict())
                params = clone_params(params)
                opt = cls(params, lr=1.0, use_fstar=True)
                opt.load_state_dict(state)
            opt.step(loss=compute_grads(params, t))
        return params

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref_straight, ref_reloaded = run(ref.Momo, None), run(ref.Momo, 10)
    finally:
        torch.set_default_dtype(previous)
    assert not all(torch.equal(a, b) for a, b in zip(ref_straight, ref_reloaded, strict=True))
    ours_straight, ours_reloaded = run(Momo, None), run(Momo, 10)
    assert all(torch.equal(a, b) for a, b in zip(ours_straight, ours_reloaded, strict=True))


@pytest.mark.filterwarnings("ignore:More than one param group")
@pytest.mark.parametrize(
    ("ours", "reference"),
    [(Momo, ref.Momo), (MomoAdam, ref.MomoAdam)],
)
def test_two_groups_with_different_lr_and_decay_match_reference(ours, reference):
    def groups(p):
        return [{"params": p[:2], "lr": 0.3, "weight_decay": 0.05},
                {"params": p[2:], "lr": 0.05}]

    run_parity(
        lambda p: ours(groups(p), use_fstar=True),
        lambda p: reference(groups(p), use_fstar=True),
        needs_loss=True,
    )
