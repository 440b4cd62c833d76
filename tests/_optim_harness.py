"""Shared test problem for the optimizer tests: a small float64 MLP regression (151 parameters),
mini-batches fixed by the step index, side-by-side runs and save/load round trips."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch

N_IN, N_HID, N_OUT, N_ROWS, BATCH = 6, 13, 2, 64, 16

_gen = torch.Generator().manual_seed(1234)
X = torch.randn(N_ROWS, N_IN, generator=_gen, dtype=torch.float64)
_teacher = torch.randn(N_IN, N_OUT, generator=_gen, dtype=torch.float64)
Y = torch.tanh(X @ _teacher) + 0.1 * torch.randn(N_ROWS, N_OUT, generator=_gen,
                                                  dtype=torch.float64)


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(N_IN, N_HID), (N_HID,), (N_HID, N_OUT), (N_OUT,)]
    return [
        (0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_(True)
        for s in shapes
    ]


def clone_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_(True) for p in params]


def loss_at(params: Sequence[torch.Tensor], t: int) -> torch.Tensor:
    rows = torch.randperm(N_ROWS, generator=torch.Generator().manual_seed(t))[:BATCH]
    w1, b1, w2, b2 = params
    out = torch.tanh(X[rows] @ w1 + b1) @ w2 + b2
    return ((out - Y[rows]) ** 2).mean()


def backward(params: Sequence[torch.Tensor], t: int) -> torch.Tensor:
    for p in params:
        p.grad = None
    loss = loss_at(params, t)
    loss.backward()
    return loss.detach()


def do_step(opt, params, t: int, needs_loss: bool) -> None:
    loss = backward(params, t)
    if needs_loss:
        opt.step(loss=loss)
    else:
        opt.step()


def max_rel_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        scale = max(float(y.detach().abs().max()), 1e-30)
        worst = max(worst, float((x.detach() - y.detach()).abs().max()) / scale)
    return worst


def assert_parity(
    ours: Callable, reference: Callable, *, steps: int = 100, needs_loss: bool = False,
    eval_mode: bool = False, tol: float = 1e-10, seed: int = 0,
) -> None:
    """Run both optimizers from the same init on the same batches; compare after every step
    (and, for Schedule-Free, also the eval-mode point).

    The default dtype is float64 during the run: some references create scalar accumulators
    with ``torch.zeros(1)`` / ``torch.tensor(0.)``, which would otherwise be float32.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _run_parity(ours, reference, steps, needs_loss, eval_mode, tol, seed)
    finally:
        torch.set_default_dtype(previous)


def _run_parity(ours, reference, steps, needs_loss, eval_mode, tol, seed) -> None:
    pa, pb = make_params(seed), make_params(seed)
    oa, ob = ours(pa), reference(pb)
    if eval_mode:
        oa.train()
        ob.train()
    for t in range(steps):
        do_step(oa, pa, t, needs_loss)
        do_step(ob, pb, t, needs_loss)
        d = max_rel_diff(pa, pb)
        assert d <= tol, f"train-point parameters differ by {d:.3g} (relative) at step {t}"
        if eval_mode:
            oa.eval()
            ob.eval()
            d = max_rel_diff(pa, pb)
            assert d <= tol, f"eval-point parameters differ by {d:.3g} (relative) at step {t}"
            oa.train()
            ob.train()
    moved = max_rel_diff(pa, make_params(seed))
    assert moved > 1e-3, "the parameters barely moved: the comparison would be vacuous"


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def assert_resumes(
    make: Callable, *, steps: int = 30, split: int = 13, needs_loss: bool = False,
    through_eval: bool = False,
) -> None:
    """N steps straight == split steps, save, load into a fresh optimizer on fresh params,
    continue; compared exactly. With ``through_eval`` both runs are switched to eval mode
    before the save and back to train mode after the load."""
    pa, pb = make_params(1), make_params(1)
    oa, ob = make(pa), make(pb)
    for t in range(steps):
        if t == split:
            if through_eval:
                oa.eval()
                ob.eval()
            state = roundtrip(ob.state_dict())
            pb = clone_params(pb)
            ob = make(pb)
            ob.load_state_dict(state)
            if through_eval:
                oa.train()
                ob.train()
        do_step(oa, pa, t, needs_loss)
        do_step(ob, pb, t, needs_loss)
    for x, y in zip(pa, pb, strict=True):
        assert torch.equal(x, y)
    assert max_rel_diff(pa, make_params(1)) > 1e-3
