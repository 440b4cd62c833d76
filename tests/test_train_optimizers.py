"""Batched functional optimizers: masking of frozen members."""

from __future__ import annotations

import pytest
import torch

from lrlab.train.optimizers import BatchedOptimizer


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "schedulefree_sgd",
                                  "schedulefree_adamw", "dadapt_sgd", "prodigy"])
def test_frozen_member_keeps_its_values(kind: str) -> None:
    p = torch.tensor([[1.0, 2.0], [float("inf"), 3.0]], dtype=torch.float64)
    g = torch.tensor([[0.5, -0.5], [float("nan"), 1.0]], dtype=torch.float64)
    mu = torch.tensor([0.9, 0.9], dtype=torch.float64)
    wd = torch.tensor([0.1, 0.1], dtype=torch.float64)
    opt = BatchedOptimizer(kind, [p], mu, wd)
    frozen = p[1].clone()
    opt.step([p], [g], torch.tensor([0.1, 0.1], dtype=torch.float64), torch.tensor([True, False]))
    assert torch.equal(p[1], frozen)  # inf stays inf, 3 stays 3: no NaN, no update
    assert torch.isfinite(p[0]).all() and not torch.equal(p[0], torch.tensor([1.0, 2.0]).double())


def test_unknown_optimizer_is_refused() -> None:
    p = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        BatchedOptimizer("lion", [p], torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "schedulefree_sgd",
                                  "schedulefree_adamw", "dadapt_sgd", "prodigy"])
def test_state_dict_resumes_exactly(kind: str, tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(10)]
    hyper = (torch.tensor([0.9, 0.8, 0.5]).double(), torch.tensor([0.0, 0.1, 0.01]).double())
    lr = torch.tensor([0.1, 0.01, 1.0], dtype=torch.float64)

    def fresh():
        p = torch.ones(3, 4, dtype=torch.float64)
        return p, BatchedOptimizer(kind, [p], *hyper)

    p, opt = fresh()
    for g in grads:
        opt.step([p], [g], lr, None)
    q, first = fresh()
    for g in grads[:4]:
        first.step([q], [g], lr, None)
    torch.save({"opt": first.state_dict(), "p": q}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", weights_only=True)
    q2, second = fresh()
    q2.copy_(saved["p"])
    second.load_state_dict(saved["opt"])
    for g in grads[4:]:
        second.step([q2], [g], lr, None)
    assert torch.equal(p, q2)
    other = "sgd" if kind != "sgd" else "adam"
    with pytest.raises(ValueError, match="state is for optimizer"):
        BatchedOptimizer(other, [q2], *hyper).load_state_dict(saved["opt"])


def test_schedulefree_momentum_must_be_an_interpolation() -> None:
    p = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"momentum of schedulefree_sgd .* in \(0, 1\)"):
        BatchedOptimizer("schedulefree_sgd", [p], torch.tensor([0.9, 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="warmup_steps"):
        BatchedOptimizer("schedulefree_sgd", [p], torch.full((2,), 0.9), torch.zeros(2),
                         warmup_steps=-1)
