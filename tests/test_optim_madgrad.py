"""MADGRAD and Mirror-MADGRAD: resume, edge cases, cube root (parity with ``madgrad``:
test_optim_madgrad_parity)."""

import math

import pytest
import torch

from lrlab.optim._foreach import Scratch
from lrlab.optim.madgrad import MADGRAD, MirrorMADGRAD, cube_root
from optim_harness import compute_grads, make_params, run_resume


@pytest.mark.parametrize(
    "make",
    [
        lambda p: MADGRAD(p, lr=0.05, weight_decay=0.01),
        lambda p: MADGRAD(p, lr=0.05, momentum=0.0),
        lambda p: MirrorMADGRAD(p, lr=0.01, weight_decay=0.01, decouple_decay=True),
    ],
)
def test_resume_is_exact(make):
    run_resume(make)


def test_zero_denominator_without_eps_keeps_the_coordinate_finite():
    # a coordinate whose gradient is always 0 has a zero cube-root denominator when eps = 0;
    # it must stay put (the momentum-free form must not divide 0 by 0)
    params = make_params(0)
    idle = torch.full((3,), 2.0, dtype=torch.float64, requires_grad=True)
    for opt in (MADGRAD([*params, idle], lr=0.05, eps=0.0, momentum=0.0),
                MirrorMADGRAD([*params, idle], lr=0.05)):
        for t in range(5):
            compute_grads(params, t)
            idle.grad = torch.zeros_like(idle)
            opt.step()
        assert torch.equal(idle, torch.full((3,), 2.0, dtype=torch.float64))
        assert all(torch.isfinite(p).all() for p in params)


def test_effective_lr_is_the_dual_weight():
    params = make_params(0)
    opt = MADGRAD(params, lr=0.1, eps=0.0)
    assert opt.effective_lr() == [0.0]
    for t in range(4):
        compute_grads(params, t)
        opt.step()
    assert opt.effective_lr() == [pytest.approx(0.1 * math.sqrt(4))]
    mirror = MirrorMADGRAD(params, lr=0.1)
    for t in range(8):
        compute_grads(params, t)
        mirror.step()
    assert mirror.effective_lr() == [pytest.approx(0.1 * 8 ** (1 / 3))]


def test_params_without_grad_are_skipped():
    params = make_params(0)
    frozen = torch.ones(2, dtype=torch.float64, requires_grad=True)
    for cls in (MADGRAD, MirrorMADGRAD):
        opt = cls([*params, frozen], weight_decay=0.1)
        for t in range(3):
            compute_grads(params, t)
            opt.step()
        assert torch.equal(frozen, torch.ones(2, dtype=torch.float64))
        assert frozen not in opt.state


@pytest.mark.parametrize("cls", [MADGRAD, MirrorMADGRAD])
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.5}, "momentum"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"eps": math.inf}, "eps"),
        ({"decouple_decay": None}, "decouple_decay"),
    ],
)
def test_rejects_bad_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(make_params(0), **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_denominator_floor_leaves_every_nonzero_sum_alone(dtype):
    from lrlab.optim.madgrad import _cube_root_denominator

    info = torch.finfo(dtype)
    sums = torch.tensor([0.0, info.tiny * info.eps, info.tiny, 1e-30, 1.0, 1e30], dtype=dtype)
    rms = _cube_root_denominator([sums], 0.0, [torch.empty_like(sums)], Scratch())[0]
    plain = cube_root([sums], [torch.empty_like(sums)], Scratch())[0]
    assert torch.equal(rms[1:], plain[1:])
    assert 0.0 < float(rms[0]) < float(rms[1])


@pytest.mark.parametrize("dtype,bits,lo,hi", [(torch.float32, 8, -149, 100),
                                              (torch.float64, 17, -1074, 960)])
def test_cube_root_of_exact_cubes_is_within_4_ulp(dtype, bits, lo, hi):
    """x = m^3 exactly representable (m = k 2^(e - bits) with k < 2^bits, so k^3 fits the
    mantissa, and 3 (e - bits) >= the smallest subnormal's exponent), over the whole exponent
    range: the answer is m."""
    g = torch.Generator().manual_seed(0)
    k = torch.randint(1, 2**bits, (4000,), generator=g).double()
    e = torch.randint(lo // 3, hi // 3, (4000,), generator=g).double()
    m = k * torch.exp2(e - bits)
    x = (m**3).to(dtype)
    exact = 3 * (e - bits) >= lo
    assert int(exact.sum()) > 3000 and float(x[exact].min()) < 1e-36
    r = cube_root([x[exact]], [torch.empty_like(x[exact])], Scratch())[0]
    rel = ((r.double() - m[exact]) / m[exact]).abs().max()
    assert float(rel) <= 4 * torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cube_root_edges_and_fallback(dtype):
    x = torch.tensor([0.0, float("inf"), 1.0, 8.0, 1e-3], dtype=dtype)
    r = cube_root([x], [torch.empty_like(x)], Scratch())[0]
    assert r[0] == 0 and r[1] == float("inf")
    assert torch.allclose(r[2:], torch.tensor([1.0, 2.0, 0.1], dtype=dtype), rtol=4e-7, atol=0)
    half = x[2:].to(torch.bfloat16)  # no Newton constants for it: torch.pow
    assert torch.equal(cube_root([half], [torch.empty_like(half)], Scratch())[0],
                       half.pow(1.0 / 3.0))


@pytest.mark.parametrize("add", [0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_cube_root_adds_its_offset_on_both_paths(dtype, add):
    """``add`` (MADGRAD's eps) is added after the root by Newton's path (float32/64) and by the
    ``torch.pow`` fallback (other dtypes) alike."""
    x = torch.tensor([0.0, 1.0, 8.0, 1e-3, 27.0], dtype=dtype)
    root = cube_root([x], [torch.empty_like(x)], Scratch())[0].clone()
    shifted = cube_root([x], [torch.empty_like(x)], Scratch(), add=add)[0]
    assert torch.equal(shifted, root + add)
    assert float(shifted[0]) == add


@pytest.mark.parametrize("make", [lambda g: MADGRAD(g, lr=0.01),
                                  lambda g: MADGRAD(g, lr=0.01, momentum=0.0),
                                  lambda g: MirrorMADGRAD(g, lr=0.01)],
                         ids=["MADGRAD", "MADGRAD-momentum0", "MirrorMADGRAD"])
def test_a_group_at_lr_zero_stays_where_it_is(make):
    """lr = 0 freezes a group (its dual weight is 0, not eps) while the others train."""
    params = make_params(0)
    opt = make([{"params": params[:2]}, {"params": params[2:], "lr": 0.0}])
    frozen = [p.detach().clone() for p in params[2:]]
    for k in range(5):
        compute_grads(params, k)
        opt.step()
    assert all(torch.equal(p.detach(), f) for p, f in zip(params[2:], frozen, strict=True))
    assert opt.effective_lr()[1] == 0.0 and opt.effective_lr()[0] > 0
    assert not torch.equal(params[0].detach(), make_params(0)[0].detach())
