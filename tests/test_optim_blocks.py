"""Block-by-block stepping: the cut of large tensors into flat blocks covers every element once,
follows the ``multiple`` and contiguity rules, and changes an optimizer's trajectory only by
rounding (every optimizer run with tiny blocks against the same run with the tensors whole)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lrlab.optim import (
    MADGRAD,
    MDA,
    AdamWScheduleFree,
    DAdaptAdaGrad,
    DAdaptAdam,
    DAdaptSGD,
    Mechanic,
    MirrorMADGRAD,
    Momo,
    MomoAdam,
    PrimalAveragingSGD,
    Prodigy,
    ScheduleFreeWrapper,
    SGDScheduleFree,
    _foreach,
)
from lrlab.optim._foreach import blocks, chunks, plan, split, take
from optim_harness import compute_grads, make_params, max_rel_diff


@pytest.fixture
def block7(monkeypatch):
    monkeypatch.setattr(_foreach, "BLOCK_NUMEL", 7)


def test_blocks_cover_each_element_once_and_write_through(block7):
    a = torch.zeros(16, 6)
    b = torch.zeros(3)
    pieces = plan([a, b])
    assert [(i, lo, hi) for i, lo, hi in pieces if i == 0] == \
        [(0, lo, min(lo + 7, 96)) for lo in range(0, 96, 7)]
    assert (1, -1, -1) in pieces  # 3 elements: not cut
    views = take(pieces, [a, b])
    for n, v in enumerate(views):
        v.add_(n + 1)
    assert torch.equal(a.view(-1), torch.repeat_interleave(
        torch.arange(1.0, 15.0), torch.tensor([7] * 13 + [5])))
    assert torch.equal(b, torch.full((3,), 15.0))


def test_cut_points_are_multiples_and_sliced_lists_follow(block7):
    p = torch.arange(100.0)
    sliced = p[::3].clone()
    pieces = plan([p], multiple=3)
    assert all(lo % 3 == 0 for _, lo, _ in pieces)
    assert max(hi - lo for _, lo, hi in pieces) == 6
    for whole, part in zip(take(pieces, [p]), take(pieces, [sliced], every=3), strict=True):
        assert torch.equal(whole[::3], part)
    assert torch.equal(torch.cat(take(pieces, [sliced], every=3)), sliced)


def test_non_contiguous_and_scalar_tensors_stay_whole(block7):
    a = torch.zeros(20, 20)
    t = torch.zeros(20, 20).t()  # same shape, not contiguous
    assert plan([a], [t]) == [(0, -1, -1)]
    scalar = torch.tensor(2.0)
    pieces = plan([torch.zeros(30)])
    assert all(v is scalar for v in take(pieces, [scalar]))


def test_chunks_group_small_tensors_up_to_the_block(block7):
    ts = [torch.zeros(n) for n in (3, 3, 3, 10, 1, 6)]
    assert [(s.start, s.stop) for s in chunks(ts)] == [(0, 2), (2, 3), (3, 4), (4, 6)]
    # a one-element tensor (a bias, a gain) does not take a larger neighbour into its chunk
    ones = [torch.zeros(n) for n in (1, 10, 1, 1, 7)]
    assert [(s.start, s.stop) for s in chunks(ones)] == [(0, 1), (1, 2), (2, 4), (4, 5)]
    cut = split(ts, ts)
    assert sum(v.numel() for v in cut[0]) == 26
    assert all(sum(v.numel() for v in part[0]) <= 7 for part in blocks(ts, ts)
               if len(part[0]) > 1)


def _sf(make: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def build(params: Any) -> Any:
        opt = make(params)
        opt.train()
        return opt
    return build


# (name, factory, needs the loss)
CASES: list[tuple[str, Callable[[Any], Any], bool]] = [
    ("DAdaptSGD", lambda p: DAdaptSGD(p, momentum=0.9, weight_decay=0.01), False),
    ("DAdaptAdam", lambda p: DAdaptAdam(p, weight_decay=0.01, decouple=True), False),
    ("DAdaptAdaGrad", lambda p: DAdaptAdaGrad(p, momentum=0.5, weight_decay=0.01, d0=1e-2), False),
    ("Prodigy", lambda p: Prodigy(p, weight_decay=0.01), False),
    ("Prodigy-slice3", lambda p: Prodigy(p, slice_p=3, betas=(0.0, 0.99)), False),
    ("Mechanic", lambda p: Mechanic(torch.optim.SGD(p, lr=0.01, momentum=0.9)), False),
    ("Mechanic-delta", lambda p: Mechanic(torch.optim.AdamW(p, lr=1e-2), s_init=1e-2,
                                               store_delta=True),
     False),
    ("Momo", lambda p: Momo(p, lr=0.5, weight_decay=0.01), True),
    ("MomoAdam", lambda p: MomoAdam(p, lr=0.05, weight_decay=0.01, divide=False), True),
    ("SGDScheduleFree", _sf(lambda p: SGDScheduleFree(p, lr=0.5, weight_decay=0.01)), False),
    ("AdamWScheduleFree", _sf(lambda p: AdamWScheduleFree(p, lr=0.01, weight_decay=0.01)),
     False),
    ("ScheduleFreeWrapper", _sf(lambda p: ScheduleFreeWrapper(
        torch.optim.SGD(p, lr=0.1), weight_decay_at_y=0.01)), False),
    ("MADGRAD", lambda p: MADGRAD(p, lr=0.01, weight_decay=0.01), False),
    ("MADGRAD-momentum0", lambda p: MADGRAD(p, lr=0.01, momentum=0.0), False),
    ("MirrorMADGRAD", lambda p: MirrorMADGRAD(p, lr=0.01, weight_decay=0.01,
                                              decouple_decay=True), False),
    ("MDA", lambda p: MDA(p, lr=0.05, weight_decay=0.01), False),
    ("PrimalAveragingSGD", lambda p: PrimalAveragingSGD(p, lr=0.5, weight_decay=0.01), False),
]


def _trajectory(make: Callable[[Any], Any], needs_loss: bool, steps: int = 30,
                skip: Callable[[int], tuple[int, ...]] = lambda k: ()) -> list[list[torch.Tensor]]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = make_params()
        opt = make(params)
        out = []
        for k in range(steps):
            loss = compute_grads(params, k, skip(k))
            opt.step(loss=loss) if needs_loss else opt.step()
            out.append([p.detach().clone() for p in params])
        return out
    finally:
        torch.set_default_dtype(previous)


def _every_third(k: int) -> tuple[int, ...]:
    return (1,) if k % 3 == 2 else ()  # a parameter without gradient now and then


@pytest.mark.parametrize("name,make,needs_loss", CASES, ids=[c[0] for c in CASES])
def test_tiny_blocks_change_only_rounding(monkeypatch, name, make, needs_loss):
    skip = _every_third
    whole = _trajectory(make, needs_loss, skip=skip)
    monkeypatch.setattr(_foreach, "BLOCK_NUMEL", 7)
    cut = _trajectory(make, needs_loss, skip=skip)
    for k, (a, b) in enumerate(zip(cut, whole, strict=True)):
        d = max_rel_diff(a, b)
        assert d <= 1e-12, f"{name}: blocks change step {k} by {d:.3g} (relative)"
    moved = max_rel_diff(whole[-1], make_params())
    assert moved > 1e-3, f"{name}: parameters moved only {moved:.3g}"


def test_a_grown_work_buffer_leaves_no_view_into_the_old_one():
    """When a slot needs a larger buffer, its cached views into the old buffer are dropped (they
    would keep it alive); the other slots' views stay cached."""
    from lrlab.optim._foreach import Scratch

    scratch = Scratch()
    small, other = scratch.views(0, [torch.zeros(3)]), scratch.views(1, [torch.zeros(4)])
    old = small[0].untyped_storage().data_ptr()
    scratch.views(0, [torch.zeros(10)])  # slot 0 grows
    slot0 = [v for key, views in scratch._views.items() if key[0] == 0 for v in views]
    assert slot0 and all(v.untyped_storage().data_ptr() != old for v in slot0)
    assert scratch.views(1, [torch.zeros(4)]) is other
