"""The batched SP, TAPS and MOTAPS units (``lrlab.train.methods.polyak``): every member of a
batched run equals the single-model optimizer trained alone on the same examples, frozen
members keep their state, state resumes exactly, and ``lrlab sweep --optimizer motaps`` runs."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from lrlab.cli import main
from lrlab.optim import MOTAPS, SP, TAPS
from lrlab.schedules import Constant, Linear
from lrlab.tasks import get_task
from lrlab.train import RunConfig
from lrlab.train.engine import MemberOrder, train_group
from lrlab.train.methods import batched_method, member_options
from lrlab.tune import Study

SINGLE = {"sp": SP, "taps": TAPS, "motaps": MOTAPS}
STEPS = 60


def members(kind: str, f_star: float) -> list[RunConfig]:
    """Three members: different seeds, lrs, schedules (the schedule scales gamma) and
    options."""
    opts = {
        "sp": [{}, {"eps": 0.1, "s_max": 2.0}, {"eps": 0.01}],
        "taps": [{"target": f_star}, {"target": f_star, "beta": 0.5}, {}],
        "motaps": [{"lambd": 0.5}, {"lambd": 0.1, "beta": 0.3, "target": 0.2}, {}],
    }[kind]
    return [
        RunConfig(1.0, Constant(), seed=0, steps=STEPS, optimizer=kind, options=opts[0]),
        RunConfig(0.5, Linear(steps=STEPS), seed=1, steps=STEPS, optimizer=kind,
                  options=opts[1]),
        RunConfig(0.8, Constant(), seed=2, steps=STEPS, optimizer=kind, options=opts[2]),
    ]


def alone(task, cfg: RunConfig, kind: str) -> tuple[list[float], float]:
    """The single-model optimizer on member ``cfg``'s own examples: losses per step, final
    objective."""
    X, y, l2 = task.X_train.double(), task.y_train, task.model.l2
    n, B = task.n_train, task.default_batch_size
    W = torch.zeros(2, X.shape[1], dtype=torch.float64, requires_grad=True)
    options = dict(batched_method(kind).resolve(cfg.options))
    options.pop("weight_decay")
    if kind == "sp":
        options["s_max"] = options["s_max"] or None
        opt = SP([W], lr=cfg.lr, **options)
    else:
        opt = SINGLE[kind]([W], n=n, lr=cfg.lr, **options)
    order = MemberOrder(n, cfg.seed)
    rates = cfg.lr * np.asarray(cfg.schedule(np.arange(STEPS)), dtype=np.float64)
    curve = []
    for t in range(STEPS):
        idx = torch.from_numpy(order.take(B))
        opt.param_groups[0]["lr"] = float(rates[t])
        opt.zero_grad()
        losses = (torch.nn.functional.cross_entropy(X[idx] @ W.T, y[idx], reduction="none")
                  + 0.5 * l2 * W.square().sum())
        losses.mean().backward()
        opt.step(losses=losses.detach(), indices=idx)
        curve.append(float(losses.detach().mean()))
    with torch.no_grad():
        final = torch.nn.functional.cross_entropy(X @ W.T, y) + 0.5 * l2 * W.square().sum()
    return curve, float(final)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("kind", ["sp", "taps", "motaps"])
def test_each_member_equals_the_optimizer_alone(kind, batch):
    # n = 36 with batches of 4 or 1: several passes over the data, batches that straddle them
    task = get_task("logistic_synthetic", n_train=36, d=5, default_batch_size=batch)
    configs = members(kind, task.f_star)
    results = train_group(task, configs, STEPS, kind, record_grad_norms=False,
                          curve_points=STEPS, dtype=torch.float64)
    finals = []
    for cfg, res in zip(configs, results, strict=True):
        assert not res.diverged
        curve, final = alone(task, cfg, kind)
        np.testing.assert_allclose(res.curve_loss, curve, rtol=1e-10, atol=0)
        assert res.final_loss == pytest.approx(final, rel=1e-10, abs=0)
        finals.append(final)
    assert len(set(finals)) == 3  # the members really differ


def test_frozen_member_keeps_its_state():
    p = torch.tensor([[1.0, 2.0], [math.inf, 3.0]], dtype=torch.float64)
    g = torch.tensor([[0.5, -0.5], [math.nan, 1.0]], dtype=torch.float64)
    for kind in ("sp", "taps", "motaps"):
        q = p.clone()
        opt = batched_method(kind)([q], {"beta": 0.5} if kind != "sp" else {}, examples=2)
        opt.observe(torch.tensor([[0], [1]]), torch.tensor([0.7, math.nan], dtype=torch.float64))
        opt.step([q], [g], torch.tensor([0.5, 0.5], dtype=torch.float64),
                 torch.tensor([True, False]))
        assert torch.equal(q[1], p[1]) and not torch.equal(q[0], p[0])
        assert opt.state_dict()["k"] == 1  # the step is counted in the saved state
        if kind != "sp":
            assert opt.alpha[0][1].tolist() == [0.0, 0.0] and opt.alpha[0][0, 0] != 0
            assert opt.alpha_mean[0][1] == 0 and torch.isfinite(opt.alpha_mean[0]).all()


def test_state_resumes_exactly_and_needs_the_batch():
    n, M = 5, 2
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(M, 3, generator=gen, dtype=torch.float64) for _ in range(9)]
    rows = [torch.randint(n, (M, 2), generator=gen) for _ in range(9)]
    lr = torch.tensor([0.5, 0.9], dtype=torch.float64)
    options = member_options([{"lambd": 0.5, "beta": 0.2}, {}])

    def run(opt, p, part):
        for g, r in part:
            opt.observe(r, (p * g).sum(1).abs() + 1.0)
            opt.step([p], [g], lr, None)

    p = torch.zeros(M, 3, dtype=torch.float64)
    opt = batched_method("motaps")([p], options, examples=n)
    run(opt, p, list(zip(grads, rows, strict=True)))
    q = torch.zeros(M, 3, dtype=torch.float64)
    first = batched_method("motaps")([q], options, examples=n)
    run(first, q, list(zip(grads[:4], rows[:4], strict=True)))
    state = first.state_dict()
    assert state["tau"][0].abs().sum() > 0 and state["alpha"][0].dtype == torch.float64
    second = batched_method("motaps")([q], options, examples=n)
    second.load_state_dict(state)
    run(second, q, list(zip(grads[4:], rows[4:], strict=True)))
    assert torch.equal(p, q) and torch.equal(opt.alpha[0], second.alpha[0])
    with pytest.raises(ValueError, match="needs the batch: call observe"):
        second.step([q], grads[:1], lr, None)
    with pytest.raises(ValueError, match="needs the number of examples"):
        batched_method("taps")([q], {})
    with pytest.raises(ValueError, match=r"option lambd of motaps must be in \[0, 1\]"):
        batched_method("motaps").resolve({"lambd": 2.0})
    with pytest.raises(ValueError, match=r"option weight_decay of taps must be in \[0, 0\]"):
        batched_method("taps").resolve({"weight_decay": 0.1})


def test_sweep_runs_motaps(tmp_path, capsys):
    db, out = str(tmp_path / "a.db"), str(tmp_path / "rep")
    args = ["--task", "logistic_synthetic", "--schedules", "constant", "--grid", "0.25,1",
            "--seeds", "2", "--steps", "200", "--optimizer", "motaps", "--optimizer-option",
            "lambd=0.5", "--storage", db, "--study", "t", "--out", out, "--edge-rounds", "0"]
    assert main(["sweep", *args]) == 0
    capsys.readouterr()
    df = Study.open("t", None, db).results()
    assert len(df) == 4 and not df["diverged"].any() and df["final_loss"].notna().all()
    by_lr = df.groupby("lr")["final_loss"].mean()
    assert by_lr.loc[0.25] != by_lr.loc[1.0]  # the grid scales gamma
    assert os.path.exists(os.path.join(out, "report.html"))
