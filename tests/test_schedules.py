"""Schedules against their formulas (written out here), PyTorch's schedulers (run for real),
and the transformers / optax formulas (written out here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrlab.schedules import (
    Constant,
    Cosine,
    CosinePhases,
    Exponential,
    FromArray,
    InverseSqrt,
    Join,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Scale,
    Schedule,
    Step,
    Warmup,
    WarmupStableDecay,
    join,
    last_completed_phase_end,
    multiply,
    scale,
    sgdr,
    warmup,
)


def cos_anneal(lo: float, hi: float, u: float) -> float:
    return lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * u))


def ref_phases(t: int, lengths, s_max, s_min) -> float:
    start = 0
    for i, length in enumerate(lengths):
        if t < start + length or i == len(lengths) - 1:
            u = min(t - start, length) / length
            return cos_anneal(s_min[i], s_max[i], u)
        start += length
    raise AssertionError


def ref_wsd(t: int, T: int, W: int, D: int, tail: str, s_min: float, a: float) -> float:
    if t < W:
        return a + (1 - a) * t / W
    if t < T - D:
        return 1.0
    u = min((t - (T - D)) / D, 1.0)
    f = {"linear": 1 - u, "cosine": 0.5 * (1 + math.cos(math.pi * u)), "sqrt": 1 - math.sqrt(u)}
    return s_min + (1 - s_min) * f[tail]


# (schedule, formula, T used for the checkpoints)
CASES = [
    (Constant(), lambda t: 1.0, 10),
    (Step(3, gamma=0.5), lambda t: 0.5 ** (t // 3), 10),
    (MultiStep((3, 7), gamma=0.1), lambda t: 0.1 ** ((t >= 3) + (t >= 7)), 10),
    (Exponential(0.9), lambda t: 0.9**t, 10),
    (InverseSqrt(4.0), lambda t: 1 / math.sqrt(1 + t / 4), 10),
    (Linear(10), lambda t: 1 - min(t, 10) / 10, 10),
    (Polynomial(10, 2.0, s_min=0.1), lambda t: 0.1 + 0.9 * (1 - min(t, 10) / 10) ** 2, 10),
    (Cosine(10, 0.1), lambda t: cos_anneal(0.1, 1.0, min(t, 10) / 10), 10),
    (
        CosinePhases((4, 6), s_max=(1.0, 0.5), s_min=(0.2, 0.0)),
        lambda t: ref_phases(t, (4, 6), (1.0, 0.5), (0.2, 0.0)),
        10,
    ),
    (
        Warmup(Cosine(8), 2),
        lambda t: t / 2 if t < 2 else cos_anneal(0.0, 1.0, min(t - 2, 8) / 8),
        10,
    ),
    (
        Warmup(Cosine(8), 2, start="nanogpt"),
        lambda t: (t + 1) / 3 if t < 2 else cos_anneal(0.0, 1.0, min(t - 2, 8) / 8),
        10,
    ),
    (
        WarmupStableDecay(10, warmup=2, decay=4),
        lambda t: ref_wsd(t, 10, 2, 4, "linear", 0.0, 0.0),
        10,
    ),
    (
        WarmupStableDecay(10, warmup=2, decay=4, tail="cosine", s_min=0.1, start=0.25),
        lambda t: ref_wsd(t, 10, 2, 4, "cosine", 0.1, 0.25),
        10,
    ),
    (
        WarmupStableDecay(10, warmup=0, decay=5, tail="sqrt"),
        lambda t: ref_wsd(t, 10, 0, 5, "sqrt", 0.0, 0.0),
        10,
    ),
    (
        join([Constant(), Linear(4)], [6]),
        lambda t: 1.0 if t < 6 else 1 - min(t - 6, 4) / 4,
        10,
    ),
    (multiply(Linear(10), Exponential(1.0)), lambda t: 1 - min(t, 10) / 10, 10),
    (scale(Cosine(10), 0.5), lambda t: 0.5 * cos_anneal(0.0, 1.0, min(t, 10) / 10), 10),
    (
        FromArray([1.0, 0.5, 0.0], steps=10),
        lambda t: float(np.interp(min(t, 10), [0, 5, 10], [1.0, 0.5, 0.0])),
        10,
    ),
]
IDS = [repr(c[0]) for c in CASES]


@pytest.mark.parametrize(("sched", "ref", "T"), CASES, ids=IDS)
def test_values_at_checkpoints_match_formula(sched: Schedule, ref, T: int) -> None:
    for t in (0, 1, T - 1, T, T + 1, 3 * T, 10**6):
        assert sched(t) == pytest.approx(ref(t), rel=1e-12, abs=1e-15), t
    ts = np.arange(3 * T)
    np.testing.assert_allclose(sched(ts), [ref(int(t)) for t in ts], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("sched", "ref", "T"), CASES, ids=IDS)
def test_clamped_past_horizon(sched: Schedule, ref, T: int) -> None:  # noqa: ARG001
    h = sched.horizon
    if h is None:
        return
    tail = sched(np.arange(h, h + 50))
    assert np.all(tail == tail[0])
    assert sched(10**9) == tail[0]


def test_readable_repr_and_nested_round_trip() -> None:
    s = warmup(join([Cosine(100, 0.1), Constant()], [100]), 10, start="nanogpt")
    assert repr(s) == (
        "warmup(schedule=join(schedules=[cosine(steps=100, s_min=0.1), constant()], "
        "boundaries=[100]), warmup=10, start=0.0909091)"
    )
    d = s.to_dict()
    assert d["schedule"]["schedules"][0] == {"name": "cosine", "steps": 100, "s_min": 0.1}
    back = Schedule.from_dict(d)
    assert back == s
    np.testing.assert_array_equal(back(np.arange(300)), s(np.arange(300)))


def test_horizons() -> None:
    assert Warmup(Cosine(8), 2).horizon == 10
    assert Warmup(Constant(), 2).horizon is None
    assert join([Constant(), Linear(4)], [6]).horizon == 10
    assert join([Linear(4), Constant()], [6]).horizon is None
    assert multiply(Linear(4), Cosine(9)).horizon == 9
    assert multiply(Linear(4), Exponential(0.5)).horizon is None
    assert scale(Linear(4), 2.0).horizon == 4
    assert sgdr(10, 3, t_mult=2).horizon == 70
    assert OneCycle(50).horizon == 50


# -- PyTorch schedulers, run for real ----------------------------------------------------------
def torch_lrs(make, n: int, lr: float = 0.5) -> np.ndarray:
    """The lr each optimizer step 0..n-1 uses in the usual `opt.step(); sched.step()` loop."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


LR = torch.optim.lr_scheduler
TORCH_CASES = [
    (Step(7, gamma=0.3), lambda o: LR.StepLR(o, step_size=7, gamma=0.3), 40),
    (MultiStep((5, 12, 13), 0.5), lambda o: LR.MultiStepLR(o, [5, 12, 13], gamma=0.5), 30),
    (Exponential(0.95), lambda o: LR.ExponentialLR(o, gamma=0.95), 40),
    (Cosine(30, 0.2), lambda o: LR.CosineAnnealingLR(o, T_max=30, eta_min=0.1), 31),
    (Linear(20), lambda o: LR.LinearLR(o, 1.0, 0.0, total_iters=20), 30),
    (
        Warmup(Constant(), 8, start=0.25),
        lambda o: LR.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=8),
        20,
    ),
    (Polynomial(25, 2.0), lambda o: LR.PolynomialLR(o, total_iters=25, power=2.0), 35),
    (
        OneCycle(60),
        lambda o: LR.OneCycleLR(o, max_lr=0.5, total_steps=60, cycle_momentum=False),
        60,
    ),
    (
        OneCycle(60, pct_start=0.25, anneal="linear", div_factor=10, final_div_factor=100),
        lambda o: LR.OneCycleLR(
            o,
            0.5,
            total_steps=60,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10,
            final_div_factor=100,
            cycle_momentum=False,
        ),
        60,
    ),
    (
        OneCycle(60, pct_start=0.2, three_phase=True),
        lambda o: LR.OneCycleLR(
            o, 0.5, total_steps=60, pct_start=0.2, three_phase=True, cycle_momentum=False
        ),
        60,
    ),
    (
        sgdr(5, cycles=3, t_mult=2, s_min=0.1),
        lambda o: LR.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.05),
        35,
    ),
    (
        sgdr(6, cycles=4),
        lambda o: LR.CosineAnnealingWarmRestarts(o, T_0=6),
        24,
    ),
]


@pytest.mark.parametrize(("sched", "make", "n"), TORCH_CASES, ids=[repr(c[0]) for c in TORCH_CASES])
def test_equals_pytorch_scheduler(sched: Schedule, make, n: int) -> None:
    np.testing.assert_allclose(0.5 * sched(np.arange(n)), torch_lrs(make, n), rtol=1e-9, atol=1e-14)


def test_cosine_clamps_where_pytorch_rebounds() -> None:
    ours = Cosine(10)(np.arange(10, 20))
    theirs = torch_lrs(lambda o: LR.CosineAnnealingLR(o, T_max=10), 20, lr=1.0)[10:]
    assert np.all(ours == 0.0)
    assert theirs[-1] > 0.5  # CosineAnnealingLR is periodic; ours stays at s_min


# -- transformers formulas (written out) -------------------------------------------------------
def hf_linear(t: int, W: int, T: int) -> float:
    if t < W:
        return t / max(1, W)
    return max(0.0, (T - t) / max(1, T - W))


def hf_cosine(t: int, W: int, T: int, cycles: float = 0.5) -> float:
    if t < W:
        return t / max(1, W)
    progress = (t - W) / max(1, T - W)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * cycles * progress)))


def hf_polynomial(t: int, W: int, T: int, lr_init: float, lr_end: float, power: float) -> float:
    if t < W:
        return t / max(1, W)
    if t > T:
        return lr_end / lr_init
    remaining = 1 - (t - W) / (T - W)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


@pytest.mark.parametrize(("W", "T"), [(1, 10), (5, 50), (10, 11)])
def test_transformers_linear_cosine_polynomial_with_warmup(W: int, T: int) -> None:
    ts = np.arange(T + 5)
    lin = warmup(Linear(T - W), W)
    np.testing.assert_allclose(lin(ts), [hf_linear(int(t), W, T) for t in ts], atol=1e-15)
    cos = warmup(Cosine(T - W), W)
    np.testing.assert_allclose(
        cos(ts[: T + 1]), [hf_cosine(int(t), W, T) for t in ts[: T + 1]], atol=1e-15
    )
    poly = warmup(Polynomial(T - W, power=2.0, s_min=0.01), W)
    ref = [hf_polynomial(int(t), W, T, 1e-3, 1e-5, 2.0) for t in ts]
    np.testing.assert_allclose(poly(ts), ref, rtol=1e-12, atol=1e-15)


# -- optax formulas (written out) -------------------------------------------------------------
def optax_warmup_cosine_decay(t, init, peak, warmup_steps, decay_steps, end):
    if t < warmup_steps:  # linear_schedule(init, peak, warmup_steps)
        return init + (peak - init) * t / warmup_steps
    count = min(t - warmup_steps, decay_steps - warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * count / (decay_steps - warmup_steps)))
    alpha = end / peak
    return peak * ((1 - alpha) * cosine + alpha)


def optax_join(schedules, boundaries, t):
    out = schedules[0](t)
    for b, s in zip(boundaries, schedules[1:], strict=True):
        out = out if t < b else s(t - b)
    return out


def test_optax_warmup_cosine_decay() -> None:
    init, peak, W, D, end = 0.1, 2.0, 7, 40, 0.02
    s = scale(Warmup(Cosine(D - W, s_min=end / peak), W, start=init / peak), peak)
    ts = range(60)
    ref = [optax_warmup_cosine_decay(t, init, peak, W, D, end) for t in ts]
    np.testing.assert_allclose(s(np.arange(60)), ref, rtol=1e-12)


def test_optax_join_schedules_semantics() -> None:
    parts = [Linear(5), Constant(), Cosine(8), Exponential(0.9)]
    bounds = [5, 9, 17]
    s = Join(tuple(parts), tuple(bounds))
    ts = np.arange(40)
    np.testing.assert_allclose(s(ts), [optax_join(parts, bounds, int(t)) for t in ts], rtol=1e-15)


# -- specifics ---------------------------------------------------------------------------------
def test_warmup_first_step_conventions() -> None:
    hf = Warmup(Linear(10), 4)
    nano = Warmup(Linear(10), 4, start="nanogpt")
    assert hf(0) == 0.0 and hf(4) == 1.0
    assert nano(0) == pytest.approx(1 / 5) and nano(3) == pytest.approx(4 / 5)
    assert Warmup(Linear(10), 4, start=0.5)(0) == 0.5
    assert Warmup(Scale(Linear(10), 2.0), 4)(2) == pytest.approx(1.0)  # ramps to s_after(0)


def test_last_completed_phase_end() -> None:
    s = sgdr(10, cycles=3, t_mult=2)
    assert s.lengths == (10, 20, 40)
    assert [last_completed_phase_end(s, t) for t in (0, 9, 10, 29, 30, 69, 70, 500)] == [
        0,
        0,
        10,
        10,
        30,
        30,
        70,
        70,
    ]
    np.testing.assert_array_equal(last_completed_phase_end(s, np.array([10, 31])), [10, 30])
    j = join([Linear(4), Cosine(6)], [4])
    assert last_completed_phase_end(j, 9) == 4 and last_completed_phase_end(j, 10) == 10
    with pytest.raises(ValueError, match="phases"):
        last_completed_phase_end(Linear(4), 3)
    with pytest.raises(ValueError, match="t must be"):
        last_completed_phase_end(s, -1)


def test_phase_restarts_and_sgdr_values() -> None:
    s = CosinePhases((4, 6), s_max=(1.0, 0.5), s_min=(0.2, 0.0), steps=10)
    assert s(0) == 1.0 and s(4) == 0.5 and s(10) == 0.0
    assert s(3) == pytest.approx(cos_anneal(0.2, 1.0, 0.75))


# -- bad input ---------------------------------------------------------------------------------
BAD = [
    (lambda: Linear(0), "steps"),
    (lambda: Cosine(-5), "steps"),
    (lambda: Polynomial(10, power=0.0), "power"),
    (lambda: Polynomial(10, power=-1.0), "power"),
    (lambda: Polynomial(10, power=float("nan")), "power"),
    (lambda: Step(3, gamma=0.0), "gamma"),
    (lambda: Exponential(1.5), "gamma"),
    (lambda: MultiStep((3, 7), gamma=-0.1), "gamma"),
    (lambda: MultiStep((7, 3)), "milestones"),
    (lambda: MultiStep((0, 3)), "milestones"),
    (lambda: MultiStep((3, float("nan"))), "milestones"),
    (lambda: Cosine(10, s_min=float("nan")), "s_min"),
    (lambda: Cosine(10, s_min=1.5), "s_min"),
    (lambda: InverseSqrt(0.0), "tau"),
    (lambda: CosinePhases((4, 6), (1.0, 1.0), (0.0, 0.0), steps=12), "steps"),
    (lambda: CosinePhases((4, 6), (1.0,), (0.0, 0.0)), "lengths, s_max and s_min"),
    (lambda: CosinePhases((4, 0), (1.0, 1.0), (0.0, 0.0)), "lengths"),
    (lambda: CosinePhases((4, 6), (1.0, 0.1), (0.0, 0.5)), "s_min"),
    (lambda: CosinePhases((4, 6), (1.0, float("nan")), (0.0, 0.0)), "s_max"),
    (lambda: sgdr(0, 3), "t_0"),
    (lambda: sgdr(5, 3, t_mult=0), "t_mult"),
    (lambda: Warmup(Linear(10), 0), "warmup"),
    (lambda: Warmup(Linear(10), 3, start=1.0), "start"),
    (lambda: Warmup(Linear(10), 3, start="bert"), "start"),
    (lambda: Warmup(Linear(10), 3, start=float("nan")), "start"),
    (lambda: Warmup("cosine", 3), "schedule"),
    (lambda: WarmupStableDecay(10, warmup=10, decay=1), "warmup"),
    (lambda: WarmupStableDecay(10, warmup=12, decay=1), "warmup"),
    (lambda: WarmupStableDecay(10, warmup=5, decay=6), "decay"),
    (lambda: WarmupStableDecay(10, warmup=2, decay=0), "decay"),
    (lambda: WarmupStableDecay(10, warmup=2, decay=2, tail="exp"), "tail"),
    (lambda: WarmupStableDecay(0, warmup=0, decay=1), "steps"),
    (lambda: OneCycle(1), "steps"),
    (lambda: OneCycle(10, pct_start=0.05), "pct_start"),
    (lambda: OneCycle(10, pct_start=1.0), "pct_start"),
    (lambda: OneCycle(10, pct_start=0.6, three_phase=True), "pct_start"),
    (lambda: OneCycle(10, anneal="step"), "anneal"),
    (lambda: OneCycle(10, div_factor=float("nan")), "div_factor"),
    (lambda: join([Linear(4)], []), "schedules"),
    (lambda: join([Linear(4), Constant()], [4, 8]), "boundaries"),
    (lambda: join([Linear(4), Constant(), Constant()], [4, 4]), "boundaries"),
    (lambda: join([Linear(4), Constant()], [0]), "boundaries"),
    (lambda: join([Linear(4), 3.0], [4]), "schedules"),
    (lambda: scale(Linear(4), 0.0), "factor"),
    (lambda: scale(Linear(4), float("inf")), "factor"),
    (lambda: multiply(), "schedules"),
    (lambda: FromArray([1.0, float("nan")]), "points"),
    (lambda: Linear(10)(float("nan")), "t must be finite"),
    (lambda: Linear(10)(np.array([1.0, -1.0])), "t must be >= 0"),
    (lambda: Schedule.from_dict({"name": "nope"}), "unknown schedule"),
]


@pytest.mark.parametrize(("make", "match"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_raises_value_error_naming_argument(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_message_states_range() -> None:
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        Exponential(0.0)
    with pytest.raises(ValueError, match=r"warmup must be an integer in \[0, 9\]"):
        WarmupStableDecay(10, warmup=10, decay=1)
    with pytest.raises(ValueError, match=r"power must be in \(0, inf\)"):
        Polynomial(10, power=0.0)


def test_schedules_and_units_never_import_torch() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    import lrlab

    src = str(Path(lrlab.__file__).parents[1])
    code = (
        "import sys, lrlab.schedules, lrlab.units; "
        "sys.exit(2 if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 0)"
    )
    env = {**os.environ, "PYTHONPATH": src}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_from_array_keeps_the_values_method():
    s = FromArray([1.0, 0.5, 0.0], steps=4)
    np.testing.assert_array_equal(s.values(5), [1.0, 0.75, 0.5, 0.25, 0.0])
    assert FromArray.from_dict(s.to_dict()) == s
