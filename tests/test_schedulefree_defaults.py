"""Schedule-Free's defaults against the reference package where they matter: the weighting
of the averaged point (weight_lr_power) only shows when the learning rate changes, so the
base optimizer's lr follows a warm-up here."""

from __future__ import annotations

import schedulefree as ref
import torch

from lrlab.optim.schedulefree import ScheduleFreeWrapper
from optim_harness import clone_params, compute_grads, make_params


def test_wrapper_defaults_match_the_reference_under_a_changing_lr() -> None:
    ours_p = make_params()
    ref_p = clone_params(ours_p)
    ours = ScheduleFreeWrapper(torch.optim.SGD(ours_p, lr=0.05))
    theirs = ref.ScheduleFreeWrapper(torch.optim.SGD(ref_p, lr=0.05))
    ours.train()
    theirs.train()
    for k in range(30):
        lr = 0.05 * min(1.0, (k + 1) / 15) * (1.0 if k < 20 else 0.5)
        for opt in (ours.base, theirs.base):
            for g in opt.param_groups:
                g["lr"] = lr
        for params, opt in ((ours_p, ours), (ref_p, theirs)):
            compute_grads(params, k)
            opt.step()
    ours.eval()
    theirs.eval()
    for a, b in zip(ours_p, ref_p, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
