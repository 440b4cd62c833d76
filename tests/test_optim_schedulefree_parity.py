"""Schedule-Free SGD / AdamW / wrapper: parity with ``schedulefree`` 1.4 (skipped without it)."""

import pytest
import torch

from lrlab.optim.schedulefree import AdamWScheduleFree, ScheduleFreeWrapper, SGDScheduleFree
from optim_harness import compute_grads, make_params, run_parity

ref = pytest.importorskip("schedulefree")

SGD_OPTIONS = [
    {"lr": 0.5},
    {"lr": 0.5, "weight_decay": 0.1},
    {"lr": 0.5, "warmup_steps": 10},
    {"lr": 0.3, "momentum": 0.7, "r": 1.0, "weight_lr_power": 1.0},
    {"lr": 0.3, "warmup_steps": 20, "weight_lr_power": 0.0, "weight_decay": 0.01},
]

ADAMW_OPTIONS = [
    {"lr": 0.05},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 1.0},  # a decay as strong as the loss
    {"lr": 0.05, "warmup_steps": 10},
    {"lr": 0.05, "betas": (0.7, 0.9), "eps": 1e-4, "r": 1.0, "weight_lr_power": 1.0},
    {"lr": 0.02, "betas": (0.95, 0.0), "warmup_steps": 30, "weight_decay": 0.01},
]

# bases whose state survives the reference's sharing of its state dict (see docs)
WRAPPER_CASES = [
    (lambda p: torch.optim.SGD(p, lr=0.5), {}),
    (lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.5), {"momentum": 0.8, "r": 0.5}),
    (lambda p: torch.optim.Adagrad(p, lr=0.05), {"weight_decay_at_y": 0.1}),
    (lambda p: torch.optim.Adagrad(p, lr=0.05), {"weight_decay_at_y": 1.0}),
    (lambda p: torch.optim.SGD(p, lr=0.2, weight_decay=0.01), {"weight_lr_power": 0.0}),
]


@pytest.mark.parametrize("options", SGD_OPTIONS)
def test_sgd_matches_reference_at_y_and_x(options):
    run_parity(
        lambda p: SGDScheduleFree(p, **options),
        lambda p: ref.SGDScheduleFree(p, **options),
        eval_mode=True,
    )


@pytest.mark.parametrize("options", ADAMW_OPTIONS)
def test_adamw_matches_reference_at_y_and_x(options):
    run_parity(
        lambda p: AdamWScheduleFree(p, **options),
        lambda p: ref.AdamWScheduleFree(p, **options),
        eval_mode=True,
    )


@pytest.mark.parametrize(("base", "options"), WRAPPER_CASES)
def test_wrapper_matches_reference_at_y_and_x(base, options):
    run_parity(
        lambda p: ScheduleFreeWrapper(base(p), **options),
        lambda p: ref.ScheduleFreeWrapper(base(p), **options),
        eval_mode=True,
    )


def test_two_groups_with_different_options_match_reference():
    def groups(p):
        return [{"params": p[:2], "lr": 0.3, "warmup_steps": 5},
                {"params": p[2:], "lr": 0.1, "weight_decay": 0.05}]

    run_parity(
        lambda p: SGDScheduleFree(groups(p)),
        lambda p: ref.SGDScheduleFree(groups(p)),
        eval_mode=True,
    )


def test_reference_fails_a_warm_up_from_zero():
    # ours keeps the average in place (test_optim_schedulefree); the reference divides by the
    # zero weight sum
    reference = ref.ScheduleFreeWrapper(torch.optim.SGD(make_params(0), lr=0.0))
    reference.train()
    compute_grads(reference.param_groups[0]["params"], 0)
    with pytest.raises(ZeroDivisionError):
        reference.step()


def test_wrapper_under_a_rising_lr_matches_reference():
    """A warm-up driven from outside (the group's lr rising step by step) moves the running
    maximum of the lr that weighs the average; constant-lr runs cannot see it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours_p, ref_p = make_params(), make_params()
        ours = ScheduleFreeWrapper(torch.optim.SGD(ours_p, lr=0.0))
        theirs = ref.ScheduleFreeWrapper(torch.optim.SGD(ref_p, lr=0.0))
        ours.train()
        theirs.train()
        for k in range(30):
            lr = 0.3 * min(1.0, (k + 1) / 10)
            for opt, params in ((ours, ours_p), (theirs, ref_p)):
                opt.param_groups[0]["lr"] = lr
                compute_grads(params, k)
                opt.step()
        ours.eval()
        theirs.eval()
        for a, b in zip(ours_p, ref_p, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
        assert not torch.equal(ours_p[0], make_params()[0])
    finally:
        torch.set_default_dtype(previous)
