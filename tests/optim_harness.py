"""Shared test problem for the optimizer tests: a tiny float64 network, mini-batches fixed by the
step index, side-by-side runs against a reference, and save/load round trips."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch

# 6 -> 16 -> 3 tanh network: 163 parameters in four tensors.
SHAPES = [(16, 6), (16,), (3, 16), (3,)]

Make = Callable[[Any], torch.optim.Optimizer]


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        (0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_()
        for s in SHAPES
    ]


def clone_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in params]


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


def compute_grads(params: Sequence[torch.Tensor], step: int,
                  skip: Sequence[int] = ()) -> torch.Tensor:
    """Fresh gradients of the step's loss (returned, detached); parameters listed in ``skip``
    get ``grad = None``."""
    for p in params:
        p.grad = None
    loss = loss_of(params, step)
    loss.backward()
    for i in skip:
        params[i].grad = None
    return loss.detach()


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


def max_rel_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """Over the tensors, the largest ``max|a - b| / max|b|``."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        scale = max(float(y.detach().abs().max()), 1e-300)
        worst = max(worst, float((x.detach() - y.detach()).abs().max()) / scale)
    return worst


def _step(opt: torch.optim.Optimizer, params: list[torch.Tensor], step: int,
          skip: Sequence[int], needs_loss: bool) -> None:
    loss = compute_grads(params, step, skip)
    if needs_loss:
        opt.step(loss=loss)
    else:
        opt.step()


def run_parity(
    make_ours: Make,
    make_ref: Make,
    spec: list[dict[str, Any]] | None = None,
    steps: int = 100,
    skip: Callable[[int], Sequence[int]] = lambda k: (),
    *,
    needs_loss: bool = False,
    eval_mode: bool = False,
    tol: float = 1e-10,
    min_move: float = 1e-3,
    control: bool = False,
) -> list[torch.Tensor]:
    """Step both optimizers on identical copies; compare parameters after every step (and, with
    ``eval_mode``, the eval-mode point of Schedule-Free too); the run must move the parameters
    by more than ``min_move`` (relative). Returns our final parameters.

    With ``control`` a second reference runs from the same start with one parameter entry moved
    by one unit in the last place, and must stay within ``tol / 100`` of the first: the
    trajectory then does not amplify rounding, so a difference under ``tol`` means the same
    arithmetic up to rounding (on a trajectory that amplifies a 1-ulp change past ``tol``, only
    bit-identical arithmetic could pass).

    Each side gets its own gradient tensors (computed from its own parameters), so a reference
    that adds weight decay into ``p.grad`` in place cannot leak into ours. The default dtype is
    float64 during the run: some references create scalar accumulators with the default dtype.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours_p, ref_p = make_params(), make_params()
        ours, ref = make_ours(groups_of(ours_p, spec)), make_ref(groups_of(ref_p, spec))
        if eval_mode:
            ours.train()
            ref.train()
        if control:
            ctl_p = make_params()
            with torch.no_grad():
                ctl_p[0].view(-1)[0] *= 1 + 2.0**-52
            ctl = make_ref(groups_of(ctl_p, spec))
        for k in range(steps):
            _step(ours, ours_p, k, skip(k), needs_loss)
            _step(ref, ref_p, k, skip(k), needs_loss)
            d = max_rel_diff(ours_p, ref_p)
            assert d <= tol, f"parameters differ by {d:.3g} (relative) at step {k}"
            if control:
                _step(ctl, ctl_p, k, skip(k), needs_loss)
                d = max_rel_diff(ctl_p, ref_p)
                assert d <= tol / 100, (f"a 1-ulp change grew to {d:.3g} at step {k}: this "
                                        f"trajectory cannot tell rounding from error")
            if eval_mode:
                ours.eval()
                ref.eval()
                d = max_rel_diff(ours_p, ref_p)
                assert d <= tol, f"eval-point parameters differ by {d:.3g} at step {k}"
                ours.train()
                ref.train()
    finally:
        torch.set_default_dtype(previous)
    moved = max_rel_diff(ours_p, make_params())
    assert moved > min_move, f"parameters moved only {moved:.3g}: the comparison tested nothing"
    return [p.detach().clone() for p in ours_p]


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def run_resume(
    make: Make,
    spec: list[dict[str, Any]] | None = None,
    steps: int = 40,
    split: int = 17,
    skip: Callable[[int], Sequence[int]] = lambda k: (),
    *,
    needs_loss: bool = False,
    through_eval: bool = False,
    min_move: float = 1e-3,
) -> None:
    """``steps`` uninterrupted steps == ``split`` steps, save, load into a fresh optimizer on
    fresh parameters, the rest; compared exactly. With ``through_eval`` both runs are switched
    to eval mode before the save and back to train mode after the load. The run must move the
    parameters by more than ``min_move`` (relative)."""
    full_p, part_p = make_params(), make_params()
    full, part = make(groups_of(full_p, spec)), make(groups_of(part_p, spec))
    for k in range(steps):
        if k == split:
            if through_eval:
                full.eval()
                part.eval()
            saved = roundtrip(part.state_dict())
            part_p = clone_params(part_p)
            part = make(groups_of(part_p, spec))
            part.load_state_dict(saved)
            if through_eval:
                full.train()
                part.train()
        _step(full, full_p, k, skip(k), needs_loss)
        _step(part, part_p, k, skip(k), needs_loss)
    for i, (a, b) in enumerate(zip(part_p, full_p, strict=True)):
        assert torch.equal(a, b), f"tensor {i} differs after resume"
    moved = max_rel_diff(full_p, make_params())
    assert moved > min_move, f"parameters moved only {moved:.3g}: the comparison tested nothing"
