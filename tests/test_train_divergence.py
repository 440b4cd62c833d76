"""Divergence in the batched trainer, one cause at a time: a non-finite minibatch loss with a
finite gradient, a finite loss with a non-finite gradient, and a final objective that is
non-finite although training never saw a non-finite value.

The task is a real one (``iris_logreg``) whose model is wrapped so a chosen member's value goes
non-finite at a chosen step; the other members must be untouched (same results as a batch
without the faulty member), and the faulty one frozen and reported from that step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrlab.schedules import Constant
from lrlab.tasks import get_task
from lrlab.train import RunConfig, run_batched

T, BAD_STEP = 12, 5


class Faulty:
    """A batched model that turns member ``member``'s loss or gradient into ``value`` at step
    ``at`` (``what`` = "loss" or "grad"), or its final objective (``what`` = "final")."""

    def __init__(self, inner, what: str, member: int, at: int = BAD_STEP,
                 value: float = math.inf) -> None:
        self.inner, self.what, self.member, self.at, self.value = inner, what, member, at, value
        self.step = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss_and_grad(self, members, X, y):
        loss, grads, buffers = self.inner.loss_and_grad(members, X, y)
        if members.size != 3:  # the trainer's one-member memory probe, not a training step
            return loss, grads, buffers
        if self.step == self.at and self.what == "loss":
            loss = loss.clone()
            loss[self.member] = self.value
        if self.step == self.at and self.what == "grad":
            grads = [g.clone() for g in grads]
            grads[0][self.member].view(-1)[0] = self.value
        self.step += 1
        return loss, grads, buffers

    def loss_sum(self, members, X, y):
        out = self.inner.loss_sum(members, X, y)
        if self.what == "final":
            out = out.clone()
            out[self.member] = self.value
        return out


def _configs(optimizer: str) -> list[RunConfig]:
    return [RunConfig(lr, Constant(), seed=s, steps=T, optimizer=optimizer)
            for s, lr in enumerate((0.1, 0.05, 0.2))]


def _run(optimizer: str, model=None, configs=None):
    task = get_task("iris_logreg")
    if model is not None:
        task = task.replace(model=model(task.model))
    return run_batched(task, configs or _configs(optimizer), record_grad_norms=True,
                       dtype=torch.float64)


def _same(r, s) -> None:
    assert not r.diverged and r.diverged_at is None
    np.testing.assert_array_equal(r.curve_loss, s.curve_loss)
    np.testing.assert_array_equal(r.grad_norm_l2, s.grad_norm_l2)
    assert r.final_loss == s.final_loss and r.test_metric == s.test_metric


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "prodigy", "schedulefree_sgd"])
@pytest.mark.parametrize(
    "what, value", [("loss", math.inf), ("loss", math.nan), ("grad", math.inf),
                    ("grad", math.nan)]
)
def test_one_non_finite_value_freezes_its_member_only(optimizer, what, value) -> None:
    clean = _run(optimizer)
    out = _run(optimizer, lambda m: Faulty(m, what, member=1, value=value))
    _same(out[0], clean[0])
    _same(out[2], clean[2])
    bad = out[1]
    assert bad.diverged and bad.diverged_at == BAD_STEP
    assert math.isnan(bad.final_loss) and math.isnan(bad.test_metric)
    np.testing.assert_array_equal(bad.grad_norm_l2[:BAD_STEP], clean[1].grad_norm_l2[:BAD_STEP])
    assert np.isnan(bad.grad_norm_l2[BAD_STEP + 1:]).all()
    assert np.isnan(bad.grad_norm_l1[BAD_STEP + 1:]).all()
    # the step where it happened is recorded as it was seen, NaN only after it
    if what == "grad":
        assert bad.curve_loss[BAD_STEP] == pytest.approx(clean[1].curve_loss[BAD_STEP])
        assert not np.isfinite(bad.grad_norm_l2[BAD_STEP])
    assert np.isnan(bad.curve_loss[BAD_STEP + 1:]).all()


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_final_objective_is_divergence_at_the_last_step(value) -> None:
    clean = _run("sgd")
    out = _run("sgd", lambda m: Faulty(m, "final", member=2, value=value))
    _same(out[0], clean[0])
    _same(out[1], clean[1])
    bad = out[2]
    assert bad.diverged and bad.diverged_at == T
    assert math.isnan(bad.final_loss) and math.isnan(bad.test_metric)
    # training itself went as in the clean run: every step was finite
    np.testing.assert_array_equal(bad.curve_loss, clean[2].curve_loss)
    np.testing.assert_array_equal(bad.grad_norm_l2, clean[2].grad_norm_l2)


def test_an_earlier_divergence_is_not_moved_to_the_final_evaluation() -> None:
    # a member frozen during training keeps the step where it diverged, even though its final
    # objective (never computed for it) is reported as NaN
    out = _run("sgd", lambda m: Faulty(m, "loss", member=0, at=0))
    assert out[0].diverged and out[0].diverged_at == 0
    assert np.isnan(out[0].curve_loss[1:]).all()
    assert not out[1].diverged and not out[2].diverged


def test_every_member_diverged_stops_early_and_reports_each() -> None:
    class AllBad(Faulty):
        def loss_and_grad(self, members, X, y):
            loss, grads, buffers = self.inner.loss_and_grad(members, X, y)
            if members.size != 3:
                return loss, grads, buffers
            self.step += 1
            if self.step > 2:
                loss = torch.full_like(loss, math.inf)
            return loss, grads, buffers

    out = _run("sgd", lambda m: AllBad(m, "loss", member=0))
    assert [r.diverged_at for r in out] == [2, 2, 2]
    assert all(math.isnan(r.final_loss) for r in out)


def test_a_frozen_member_with_buffers_leaves_the_others_as_without_it() -> None:
    # a module with BatchNorm running statistics: buffers are updated per member, and only
    # for members still training
    from torch import nn

    from lrlab.tasks import from_module

    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    base = get_task("iris_logreg")
    task = from_module(make, (base.X_train.double(), base.y_train),
                       test=(base.X_test.double(), base.y_test),
                       loss_fn=torch.nn.functional.cross_entropy, batch_size=16, steps=T)
    configs = _configs("sgd")
    clean = run_batched(task, configs, record_grad_norms=True, dtype=torch.float64)
    faulty = task.replace(model=Faulty(task.model, "loss", member=1))
    out = run_batched(faulty, configs, record_grad_norms=True, dtype=torch.float64)
    _same(out[0], clean[0])
    _same(out[2], clean[2])
    assert out[1].diverged and out[1].diverged_at == BAD_STEP
