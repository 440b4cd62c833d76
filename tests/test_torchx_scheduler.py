"""ScheduleLR: closed-form lrs per param group, tensor lrs, exact resume, refused mismatches."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from lrlab.schedules import Constant, Cosine, Linear, Warmup, WarmupStableDecay
from lrlab.torchx import ScheduleLR


def make_opt(lrs=(0.1,), tensor_lr: bool = False) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    groups = [
        {
            "params": [torch.nn.Parameter(torch.randn(3))],
            "lr": torch.tensor(lr) if tensor_lr else lr,
        }
        for lr in lrs
    ]
    return torch.optim.SGD(groups, lr=0.0)


def run(opt, sched, n: int) -> list[list[float]]:
    """lrs used by optimizer steps 0..n-1 in the usual per-batch loop."""
    out = []
    for _ in range(n):
        out.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def test_lr_at_step_t_is_peak_times_s_t() -> None:
    s = Warmup(Cosine(20, 0.1), 5)
    opt = make_opt((0.1, 0.02))
    sched = ScheduleLR(opt, s)
    lrs = np.array(run(opt, sched, 40))
    expect = s(np.arange(40))
    np.testing.assert_allclose(lrs[:, 0], 0.1 * expect, rtol=1e-15)
    np.testing.assert_allclose(lrs[:, 1], 0.02 * expect, rtol=1e-15)
    assert lrs[0, 0] == 0.0  # construction set s(0)
    assert sched.get_last_lr() == [0.1 * s(40), 0.02 * s(40)]


def test_explicit_peaks_and_no_step_order_warning() -> None:
    opt = make_opt((1.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = ScheduleLR(opt, Linear(4), peak_lrs=[0.4, 0.8])
        sched.step()  # before any optimizer.step(): no warning trap
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.4])
    assert ScheduleLR(make_opt((1.0, 2.0)), Constant(), peak_lrs=0.3).base_lrs == [0.3, 0.3]


def test_tensor_lr_written_in_place() -> None:
    opt = make_opt((0.1,), tensor_lr=True)
    lr_tensor = opt.param_groups[0]["lr"]
    sched = ScheduleLR(opt, Linear(10))
    for t in range(1, 5):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] is lr_tensor
        assert lr_tensor.item() == pytest.approx(0.1 * (1 - t / 10))


def test_state_dict_round_trip_reproduces_sequence() -> None:
    s = WarmupStableDecay(3000, warmup=100, decay=500, tail="sqrt")
    opt = make_opt((0.1, 0.05))
    sched = ScheduleLR(opt, s, chunk=64)
    full = run(opt, sched, 1500)

    opt1 = make_opt((0.1, 0.05))
    sched1 = ScheduleLR(opt1, s, chunk=64)
    first = run(opt1, sched1, 700)
    buf = io.BytesIO()
    torch.save({"opt": opt1.state_dict(), "sched": sched1.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    opt2 = make_opt((7.0, 7.0))  # fresh process: different initial lrs, restored from state
    sched2 = ScheduleLR(opt2, s, chunk=64)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    assert first + run(opt2, sched2, 800) == full


def test_mismatched_schedule_refused() -> None:
    opt = make_opt()
    state = ScheduleLR(opt, Cosine(100)).state_dict()
    other = ScheduleLR(make_opt(), Cosine(200))
    with pytest.raises(ValueError, match="different schedule"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="param groups"):
        ScheduleLR(make_opt((0.1, 0.2)), Cosine(100)).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"last_epoch": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"peak_lrs": [0.1, 0.2]}, "peak_lrs"),
        ({"peak_lrs": -0.1}, "peak_lrs"),
        ({"peak_lrs": float("nan")}, "peak_lrs"),
        ({"chunk": 0}, "chunk"),
    ],
)
def test_bad_input(kwargs, match: str) -> None:
    args = {"schedule": Linear(10)} | kwargs
    with pytest.raises(ValueError, match=match):
        ScheduleLR(make_opt(), **args)
    with pytest.raises(ValueError, match="optimizer"):
        ScheduleLR("sgd", Linear(10))


def test_is_an_lr_scheduler_with_closed_form() -> None:
    opt = make_opt()
    sched = ScheduleLR(opt, Linear(10))
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    for _ in range(3):
        sched.step()
    assert sched.get_lr() == pytest.approx([0.1 * 0.7])
    assert sched.last_epoch == 3


def compiled_graphs(lr: float | torch.Tensor) -> tuple[int, torch.Tensor]:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    p = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([p], lr=lr)
    sched = ScheduleLR(opt, Linear(10))
    step = torch.compile(opt.step, backend="eager")
    for _ in range(5):
        p.grad = torch.ones(4)
        step()
        sched.step()
    return counters["stats"]["unique_graphs"], p.detach()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's own imports
def test_tensor_lr_does_not_recompile_under_torch_compile() -> None:
    graphs, p = compiled_graphs(torch.tensor(0.1))
    assert graphs == 1
    # the compiled step saw every new lr: 1 - 0.1 * (1 + .9 + .8 + .7 + .6)
    torch.testing.assert_close(p, torch.full((4,), 0.6))
    float_graphs, _ = compiled_graphs(0.1)
    assert float_graphs > 1  # a float lr is baked into the graph and recompiles


def test_param_group_added_after_construction_is_a_clear_error():
    w1 = torch.nn.Parameter(torch.zeros(2))
    w2 = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w1], lr=0.1)
    sched = ScheduleLR(opt, Linear(10))
    opt.add_param_group({"params": [w2], "lr": 0.2})
    with pytest.raises(ValueError, match="add_param_group"):
        sched.step()


def test_runs_lr_scheduler_init_initial_lr_and_base_lrs() -> None:
    opt = make_opt((0.1, 0.02))
    sched = ScheduleLR(opt, Warmup(Linear(10), 2))
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    assert sched.base_lrs == [0.1, 0.02]
    assert hasattr(opt.step, "_wrapped_by_lr_sched")  # LRScheduler.__init__ ran
    opt2 = make_opt((1.0, 1.0))
    sched2 = ScheduleLR(opt2, Linear(10), peak_lrs=[0.4, 0.8])
    assert [g["initial_lr"] for g in opt2.param_groups] == [0.4, 0.8]
    assert sched2.base_lrs == [0.4, 0.8]
    # a later scheduler takes its default peak from initial_lr, not from the lr just set
    assert ScheduleLR(opt, Constant()).base_lrs == [0.1, 0.02]


def test_step_with_epoch_jumps_in_closed_form() -> None:
    s = Cosine(50, 0.1)
    opt = make_opt((0.3,))
    sched = ScheduleLR(opt, s, chunk=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in (17, 3, 40, 0):
            sched.step(t)
            assert sched.last_epoch == t
            assert opt.param_groups[0]["lr"] == 0.3 * float(s(t))
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.3 * float(s(1))
    with pytest.raises(ValueError, match="epoch"):
        sched.step(-2)


def test_sequential_lr_of_two_schedule_lrs() -> None:
    s1, s2, m = Warmup(Constant(), 4), Cosine(20, 0.05), 6
    opt = make_opt((0.1, 0.02))
    first = ScheduleLR(opt, s1)
    second = ScheduleLR(opt, s2, peak_lrs=[0.05, 0.01])
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [first, second], milestones=[m])
    lrs = np.array(run(opt, seq, 24))
    # step t uses peak1 * s1(t) before the milestone, peak2 * s2(t - m) from it on
    t = np.arange(24)
    f1, f2 = s1(t), s2(np.maximum(t - m, 0))
    for j, (p1, p2) in enumerate([(0.1, 0.05), (0.02, 0.01)]):
        expect = np.where(t < m, p1 * f1, p2 * f2)
        np.testing.assert_allclose(lrs[:, j], expect, rtol=1e-15, atol=0)
    assert lrs[0, 0] == 0.0 and lrs[m, 0] == 0.05  # warm-up starts at 0; s2(0) = 1


def test_sequential_lr_state_dict_resumes_on_both_sides_of_the_milestone() -> None:
    s1, s2, m = Linear(8), Cosine(30), 8

    def build():
        opt = make_opt((0.2,))
        seq = torch.optim.lr_scheduler.SequentialLR(
            opt, [ScheduleLR(opt, s1), ScheduleLR(opt, s2)], milestones=[m]
        )
        return opt, seq

    opt, seq = build()
    full = run(opt, seq, 20)
    for cut in (5, 13):
        opt1, seq1 = build()
        head = run(opt1, seq1, cut)
        buf = io.BytesIO()
        torch.save(seq1.state_dict(), buf)
        buf.seek(0)
        opt2, seq2 = build()
        seq2.load_state_dict(torch.load(buf, weights_only=True))
        assert head + run(opt2, seq2, 20 - cut) == full


def test_chained_scheduler_with_schedule_lr() -> None:
    from torch.optim.lr_scheduler import ChainedScheduler, ExponentialLR, MultiplicativeLR

    s = Warmup(Cosine(30, 0.1), 3)

    def factor(e: int) -> float:
        return 0.5 + 0.25 * (e % 3)

    opt = make_opt((0.1,))
    chain = ChainedScheduler([ScheduleLR(opt, s), MultiplicativeLR(opt, factor)])
    lrs = np.array(run(opt, chain, 30))[:, 0]
    # ScheduleLR sets peak * s(t) afresh; MultiplicativeLR scales it by factor(t) for t >= 1
    t = np.arange(30)
    mult = np.array([1.0] + [factor(e) for e in range(1, 30)])
    np.testing.assert_allclose(lrs, 0.1 * s(t) * mult, rtol=1e-15, atol=0)

    opt = make_opt((0.1,))  # a ScheduleLR listed last overwrites what came before it
    chain = ChainedScheduler([ExponentialLR(opt, 0.5), ScheduleLR(opt, s)])
    lrs = np.array(run(opt, chain, 30))[:, 0]
    np.testing.assert_allclose(lrs, 0.1 * s(t), rtol=1e-15, atol=0)


def test_loading_a_state_at_step_zero_sets_its_peak_at_once() -> None:
    # a checkpoint taken right after construction: the saved peak rules, not the new one's
    state = ScheduleLR(make_opt((0.1,)), Linear(10)).state_dict()
    opt = make_opt((0.5,))
    sched = ScheduleLR(opt, Linear(10))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    sched.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sched.get_last_lr() == pytest.approx([0.1])
