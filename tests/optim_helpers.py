"""Shared fixtures for the optimizer tests: a tiny float64 problem, paired runs, resume runs."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch

# 6 -> 16 -> 3 tanh network: 163 parameters in four tensors.
SHAPES = [(16, 6), (16,), (3, 16), (3,)]


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        (0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_()
        for s in SHAPES
    ]


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64)
    y = torch.randn(32, 3, generator=g, dtype=torch.float64)
    return x, y


def loss_of(params: Sequence[torch.Tensor], step: int) -> torch.Tensor:
    w1, b1, w2, b2 = params
    x, y = batch(step)
    out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
    return ((out - y) ** 2).mean()


def compute_grads(params: Sequence[torch.Tensor], step: int, skip: Sequence[int] = ()) -> None:
    """Fresh gradients of the step's loss; parameters listed in ``skip`` get ``grad = None``."""
    for p in params:
        p.grad = None
    loss_of(params, step).backward()
    for i in skip:
        params[i].grad = None


def groups_of(params: list[torch.Tensor], spec: list[dict[str, Any]] | None) -> Any:
    """``spec`` entries carry ``idx`` (parameter indices) plus per-group options."""
    if spec is None:
        return params
    out = []
    for entry in spec:
        group = {k: v for k, v in entry.items() if k != "idx"}
        group["params"] = [params[i] for i in entry["idx"]]
        out.append(group)
    return out


def assert_close(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], step: int,
                 rtol: float = 1e-10) -> None:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        err = (x - y).abs().max().item()
        scale = max(y.abs().max().item(), 1e-300)
        assert err <= rtol * scale, f"step {step}, tensor {i}: max abs diff {err:g}"


def run_parity(
    make_ours: Callable[[Any], torch.optim.Optimizer],
    make_ref: Callable[[Any], torch.optim.Optimizer],
    spec: list[dict[str, Any]] | None = None,
    steps: int = 100,
    skip: Callable[[int], Sequence[int]] = lambda k: (),
) -> list[torch.Tensor]:
    """Step both optimizers on identical copies; compare parameters after every step.

    Each side gets its own gradient tensors (computed from its own parameters), so a reference
    that adds weight decay into ``p.grad`` in place cannot leak into ours.
    Returns our final parameters.
    """
    ours_p, ref_p = make_params(), make_params()
    ours, ref = make_ours(groups_of(ours_p, spec)), make_ref(groups_of(ref_p, spec))
    moved = False
    for k in range(steps):
        compute_grads(ours_p, k, skip(k))
        compute_grads(ref_p, k, skip(k))
        ours.step()
        ref.step()
        assert_close(ours_p, ref_p, k)
        start = make_params()
        moved = moved or any(not torch.equal(p, q) for p, q in zip(ours_p, start, strict=True))
    assert moved, "parameters never moved: the comparison tested nothing"
    return [p.detach().clone() for p in ours_p]


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def run_resume(
    make: Callable[[Any], torch.optim.Optimizer],
    spec: list[dict[str, Any]] | None = None,
    steps: int = 40,
    split: int = 17,
    skip: Callable[[int], Sequence[int]] = lambda k: (),
) -> None:
    """``steps`` uninterrupted steps == ``split`` steps, save/load into fresh objects, the rest."""
    full_p = make_params()
    full = make(groups_of(full_p, spec))
    for k in range(steps):
        compute_grads(full_p, k, skip(k))
        full.step()

    first_p = make_params()
    first = make(groups_of(first_p, spec))
    for k in range(split):
        compute_grads(first_p, k, skip(k))
        first.step()
    saved = roundtrip(first.state_dict())
    values = [p.detach().clone() for p in first_p]
    del first, first_p

    second_p = [v.clone().requires_grad_() for v in values]
    second = make(groups_of(second_p, spec))
    second.load_state_dict(saved)
    for k in range(split, steps):
        compute_grads(second_p, k, skip(k))
        second.step()
    for i, (a, b) in enumerate(zip(second_p, full_p, strict=True)):
        assert torch.equal(a, b), f"tensor {i} differs after resume"
    assert not all(torch.equal(a, b) for a, b in zip(full_p, make_params(), strict=True))
