"""Resuming a batched method from its ``state_dict`` after its adaptive state has moved.

Each run trains three least-squares members under a warm-up learning-rate table, so
D-Adaptation's and Prodigy's d grow, Schedule-Free's running lr maximum and weight sum keep
changing after the save point, and the moments are far from zero. A run saved mid-way,
reloaded through ``torch.save``/``torch.load(weights_only=True)`` into a fresh method and
continued must match the uninterrupted run bit for bit, in the iterate, the evaluation point and
every state tensor.
"""

from __future__ import annotations

import io

import pytest
import torch

from lrlab.train.methods import BATCHED_METHODS, batched_method, member_options

T, SAVE = 40, 15
#: per method, three members' options (defaults first); every option that shapes the state
MEMBERS = {
    "schedulefree_sgd": [{}, {"beta": 0.5, "warmup_fraction": 0.6}, {"weight_decay": 0.05}],
    "schedulefree_adamw": [{}, {"beta1": 0.5, "beta2": 0.9, "warmup_fraction": 0.6},
                           {"weight_decay": 0.05, "eps": 1e-3}],
    "dadapt_sgd": [{}, {"momentum": 0.0, "d0": 1e-3}, {"momentum": 0.5, "weight_decay": 0.05}],
    "prodigy": [{}, {"beta1": 0.0, "beta2": 0.9, "d0": 1e-3}, {"d_coef": 2.0, "beta3": 0.5}],
}
#: state tensors that must have moved away from their initial value by the save point
ADAPTIVE = {
    "schedulefree_sgd": ("lr_max", "w_sum", "z"),
    "schedulefree_adamw": ("lr_max", "w_sum", "z", "v"),
    "dadapt_sgd": ("d", "numerator", "s", "g0_norm"),
    "prodigy": ("d", "d_max", "numerator", "m", "v", "s"),
}


def _problem():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 20, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 20, generator=gen, dtype=torch.float64) + 2.0
    return A, b


def _grad(A: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of mean((A x - b)^2) / 2 for every member: a real, consistent direction."""
    r = torch.einsum("mnd,md->mn", A, x) - b
    return torch.einsum("mnd,mn->md", A, r) / A.shape[1]


def _lrs(kind: str) -> torch.Tensor:
    """[T, 3] learning rates: a linear warm-up over the first 10 steps, then a linear decay
    (the running maximum is reached before the save point, and the rates keep changing)."""
    peak = torch.tensor([1.0, 0.5, 2.0] if kind in ("dadapt_sgd", "prodigy") else [0.05, 0.1, 0.02],
                        dtype=torch.float64)
    t = torch.arange(T, dtype=torch.float64)
    shape = torch.minimum((t + 1) / 10, 1.0 - (t - 10).clamp(min=0) / (T - 10))
    return shape[:, None] * peak


def _fresh(kind: str, start: torch.Tensor | None = None):
    """A method built on the parameters it trains: the start point, or a restored iterate."""
    x = torch.full((3, 6), 0.5, dtype=torch.float64) if start is None else start.clone()
    return x, batched_method(kind)([x], member_options(MEMBERS[kind]), steps=T)


def _train(kind, x, opt, steps):
    A, b = _problem()
    lrs = _lrs(kind)
    for t in steps:
        opt.step([x], [_grad(A, b, x)], lrs[t], None)


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _snapshot(opt) -> dict[str, list[torch.Tensor]]:
    return {name: [t.clone() for t in getattr(opt, name)] for name in opt.STATE}


def test_every_lr_free_method_is_covered() -> None:
    # the per-example Polyak methods (sp, taps, motaps) need example indices at every step;
    # their moved-state resume is tested in tests/test_train_polyak.py
    want = {k for k, m in BATCHED_METHODS.items() if m.lr_free and not m.per_example}
    assert set(MEMBERS) == want


@pytest.mark.parametrize("kind", list(MEMBERS))
def test_resume_after_the_state_has_moved_is_bit_identical(kind: str) -> None:
    x, whole = _fresh(kind)
    initial = _snapshot(whole)
    _train(kind, x, whole, range(SAVE))
    at_save = _snapshot(whole)
    _train(kind, x, whole, range(SAVE, T))
    at_end = _snapshot(whole)

    for name in ADAPTIVE[kind]:  # the state moved before the save point and after it
        for a, b, c in zip(initial[name], at_save[name], at_end[name], strict=True):
            assert not torch.equal(a, b), f"{name} did not move before the save point"
            if name != "g0_norm":  # the first gradient's norm, fixed once taken
                assert not torch.equal(b, c), f"{name} did not move after the save point"
    if kind in ("dadapt_sgd", "prodigy"):
        assert (at_save["d"][0] > whole.opts["d0"]).all()

    y, first = _fresh(kind)
    _train(kind, y, first, range(SAVE))
    saved = _roundtrip({"opt": first.state_dict(), "x": y})
    z, second = _fresh(kind, saved["x"])
    second.load_state_dict(saved["opt"])
    assert second.k == SAVE
    _train(kind, z, second, range(SAVE, T))

    assert torch.equal(x, z)
    for a, b in zip(whole.eval_params([x]), second.eval_params([z]), strict=True):
        assert torch.equal(a, b)
    for name, tensors in _snapshot(second).items():
        for a, b in zip(at_end[name], tensors, strict=True):
            assert torch.equal(a, b), f"state {name!r} differs after resume"


@pytest.mark.parametrize("kind", list(MEMBERS))
def test_a_saved_state_field_left_at_its_initial_value_changes_the_run(kind: str) -> None:
    """Every field ``state_dict`` saves is needed: a resume that loses any one of them (keeps
    the fresh method's value) ends somewhere else than the uninterrupted run."""
    x, whole = _fresh(kind)
    _train(kind, x, whole, range(T))
    y, first = _fresh(kind)
    _train(kind, y, first, range(SAVE))
    saved = _roundtrip(first.state_dict())
    for name in whole.STATE:
        z, second = _fresh(kind, y)
        partial = dict(saved, **{name: _snapshot(second)[name]})
        second.load_state_dict(partial)
        _train(kind, z, second, range(SAVE, T))
        assert not torch.equal(x, z), f"losing state {name!r} went unnoticed"
