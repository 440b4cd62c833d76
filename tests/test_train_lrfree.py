"""LR-free methods in the batched trainer (``schedulefree_sgd``, ``schedulefree_adamw``,
``dadapt_sgd``, ``prodigy``) equal their ``lrlab.optim`` single-model loops (``SGDScheduleFree``,
``AdamWScheduleFree``, ``DAdaptSGD``, ``Prodigy``), each member with its own options.

Tolerance: float64, every member's minibatch loss at every step and its final objective (at the
evaluation point: Schedule-Free's averaged x) agree with the single-model loop to 1e-10
relative on the linear model, 60 steps (observed: at most 2e-13, at the largest lr), and 1e-9
on the MLP, 30 steps (autograd through different but equivalent batched products).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrlab.optim.dadapt import DAdaptSGD
from lrlab.optim.prodigy import Prodigy
from lrlab.optim.schedulefree import AdamWScheduleFree, SGDScheduleFree
from lrlab.schedules import Constant, Cosine, Linear
from lrlab.tasks import get_task
from lrlab.train import RunConfig, run_batched
from lrlab.train.engine import MemberOrder
from lrlab.train.methods import batched_method
from lrlab.train.methods.schedulefree import warmup_steps

RTOL = 1e-10
T = 60


# Prodigy's multipliers stay small: at 0.5-2 its estimated steps drive wine's minibatch losses
# down to 1e-8-1e-14, where a loss is known only to ~1e-16 absolute and a relative comparison
# measures the rounding of the loss itself; at these the losses stay above 1e-4.
LRS = {"schedulefree_sgd": (0.5, 2.0, 8.0), "schedulefree_adamw": (0.01, 0.05, 0.2),
       "dadapt_sgd": (0.5, 1.0, 2.0), "prodigy": (0.1, 0.25, 0.5)}
#: Members' options: the first uses the defaults, the second changes every option of the
#: method, the third some of them; a wrong or ignored option fails the comparison.
OPTIONS = {
    "schedulefree_sgd": ({}, {"beta": 0.5, "weight_decay": 1e-2, "warmup_fraction": 0.1},
                         {"beta": 0.95, "weight_decay": 1e-3, "warmup_fraction": 0.0}),
    "schedulefree_adamw": ({}, {"beta1": 0.5, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-2,
                                "warmup_fraction": 0.1},
                           {"beta1": 0.95, "weight_decay": 1e-3, "warmup_fraction": 0.0}),
    "dadapt_sgd": ({}, {"momentum": 0.0, "d0": 1e-4, "weight_decay": 1e-2},
                   {"momentum": 0.5, "weight_decay": 1e-3}),
    "prodigy": ({}, {"beta1": 0.0, "beta2": 0.99, "beta3": 0.9, "eps": 1e-6, "d0": 1e-4,
                     "d_coef": 0.5, "weight_decay": 1e-2},
                {"beta1": 0.5, "d_coef": 0.8, "weight_decay": 1e-3}),
}
METHODS = list(LRS)


def _configs(optimizer: str, steps: int = T) -> list[RunConfig]:
    scheds = [Constant(), Cosine(steps=steps), Linear(steps=steps)]
    return [
        RunConfig(
            lr=lr,
            schedule=scheds[i % 3],
            seed=2 * i + 1,
            steps=steps,
            optimizer=optimizer,
            options=OPTIONS[optimizer][i],
        )
        for i, lr in enumerate(LRS[optimizer])
    ]


def _reference(cfg: RunConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    o = batched_method(cfg.optimizer).resolve(cfg.options)
    if cfg.optimizer in ("schedulefree_sgd", "schedulefree_adamw"):
        warm = warmup_steps(o["warmup_fraction"], cfg.steps)
        if cfg.optimizer == "schedulefree_sgd":
            return SGDScheduleFree(params, lr=cfg.lr, momentum=o["beta"],
                                   weight_decay=o["weight_decay"], warmup_steps=warm)
        return AdamWScheduleFree(params, lr=cfg.lr, betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                                 weight_decay=o["weight_decay"], warmup_steps=warm)
    if cfg.optimizer == "prodigy":
        beta3 = cfg.options.get("beta3")  # None: Prodigy's own default sqrt(beta2)
        return Prodigy(params, lr=cfg.lr, betas=(o["beta1"], o["beta2"]), beta3=beta3,
                       eps=o["eps"], d0=o["d0"], d_coef=o["d_coef"],
                       weight_decay=o["weight_decay"])
    return DAdaptSGD(params, lr=cfg.lr, momentum=o["momentum"], d0=o["d0"],
                     weight_decay=o["weight_decay"])


def _single_loop(task, cfg: RunConfig, forward, init: list[torch.Tensor]):
    """The lrlab.optim optimizer on plain tensors, same data order, group lr = lr * s(t);
    per-step losses and the final loss (Schedule-Free: at x, after ``eval()``)."""
    params = [p.clone().requires_grad_(True) for p in init]
    opt = _reference(cfg, params)
    order = MemberOrder(task.n_train, cfg.seed)
    lrs = cfg.lr * cfg.schedule(np.arange(cfg.steps))
    losses = []
    for t in range(cfg.steps):
        rows = torch.from_numpy(order.take(task.default_batch_size))
        loss = F.cross_entropy(forward(params, task.X_train[rows]), task.y_train[rows])
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.param_groups[0]["lr"] = float(lrs[t])
        opt.step()
    if hasattr(opt, "eval"):
        opt.eval()
    with torch.no_grad():
        final = F.cross_entropy(forward(params, task.X_train), task.y_train).item()
    return np.array(losses), final


@pytest.mark.parametrize("optimizer", METHODS)
def test_member_equals_single_model_loop(optimizer: str) -> None:
    task = get_task("wine_logreg")
    d, c = task.X_train.shape[1], int(task.y_train.max()) + 1
    zeros = [torch.zeros(c, d, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)]
    configs = _configs(optimizer)
    batch = run_batched(task, configs, dtype=torch.float64, curve_points=T)
    for cfg, r in zip(configs, batch, strict=True):
        curve, final = _single_loop(task, cfg, lambda p, X: X @ p[0].T + p[1], zeros)
        assert not r.diverged
        np.testing.assert_allclose(r.curve_loss, curve, rtol=RTOL, atol=0)
        np.testing.assert_allclose(r.final_loss, final, rtol=RTOL, atol=0)


@pytest.mark.parametrize("optimizer", METHODS)
def test_mlp_member_equals_single_model_loop(optimizer: str) -> None:
    task = get_task("digits_mlp")
    configs = _configs(optimizer, steps=30)
    cfg = configs[1]
    init = [p[0] for p in task.model.init([cfg.seed], dtype=torch.float64, device="cpu").params]

    def forward(p, X):
        return torch.relu(X @ p[0] + p[1]) @ p[2] + p[3]

    curve, final = _single_loop(task, cfg, forward, init)
    r = run_batched(task, configs[:2], dtype=torch.float64, curve_points=30)[1]
    np.testing.assert_allclose(r.curve_loss, curve, rtol=1e-9, atol=0)
    np.testing.assert_allclose(r.final_loss, final, rtol=1e-9, atol=0)


def test_schedulefree_needs_an_interpolation_beta() -> None:
    for name, key in (("schedulefree_sgd", "beta"), ("schedulefree_adamw", "beta1")):
        with pytest.raises(ValueError, match=rf"option {key} of {name} must be in \(0, 1\)"):
            RunConfig(1.0, Constant(), steps=5, optimizer=name, options={key: 0.0})
