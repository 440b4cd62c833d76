"""The range test: exact restoration by find_lr, the read-off rule, the range against a real
linear-decay sweep, and ``lrlab find``."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import lrlab
from lrlab.cli import main
from lrlab.rangetest import (
    RangeTest,
    ramp_lrs,
    ramp_schedule,
    read_range,
    smooth_losses,
    stop_index,
)
from lrlab.schedules import Linear
from lrlab.tasks import get_task
from lrlab.torchx import find_lr
from lrlab.torchx.find_lr import TrainingState
from lrlab.train import RunConfig, run_batched


# -- the ramp and the read-off ------------------------------------------------------------------
def test_ramp_ends_and_ratio():
    lrs = ramp_lrs(1e-5, 10.0, 7)
    assert lrs[0] == 1e-5 and lrs[-1] == 10.0
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10.0, rtol=1e-12)
    peak, sched = ramp_schedule(1e-5, 10.0, 7)
    assert sched.horizon == 7
    np.testing.assert_allclose(peak * sched(np.arange(7)), lrs, rtol=1e-14)
    for bad in ((0.0, 1.0, 10), (1.0, 1.0, 10), (1e-3, 1.0, 1), (math.nan, 1.0, 10)):
        with pytest.raises(ValueError):
            ramp_lrs(*bad)


def test_smoothing_is_a_debiased_ema():
    np.testing.assert_allclose(smooth_losses([3.0] * 5, 4), 3.0)
    x = np.array([1.0, 2.0, 4.0])
    b = 0.5  # window 2
    m1 = (1 - b) * 1.0
    m2 = b * m1 + (1 - b) * 2.0
    m3 = b * m2 + (1 - b) * 4.0
    want = [m1 / (1 - b), m2 / (1 - b**2), m3 / (1 - b**3)]
    np.testing.assert_allclose(smooth_losses(x, 2), want, rtol=1e-15)
    out = smooth_losses([1.0, math.inf, 1.0], 2)
    assert math.isfinite(out[0]) and np.isnan(out[1:]).all()


def test_stop_rule():
    # falls from 10 to 1, then climbs: stops once above max(4 * min, (start + min) / 2)
    losses = np.concatenate([np.linspace(10, 1, 50), np.linspace(1, 12, 50)])
    t = stop_index(losses, window=1, stop_factor=4.0)
    assert losses[t] > 5.5 and losses[t - 1] <= 5.5  # the half-way level wins here
    assert stop_index(np.linspace(10, 1, 60), 3) is None
    assert stop_index([1.0, 0.5, math.nan, 0.4], 1) == 2


def test_read_range_of_a_known_bowl():
    # loss = 1 + (log10 lr + 1)^2 on lr in [1e-4, 1e2]: start level 10, min 1 at lr 0.1;
    # the valley (delta = 0.1) is where (log10 lr + 1)^2 <= 0.9, i.e. 10^(-1 +- sqrt(0.9)).
    lrs = ramp_lrs(1e-4, 1e2, 2001)
    losses = 1.0 + (np.log10(lrs) + 1.0) ** 2
    rt = read_range(lrs, losses, window=1, stop_factor=math.inf)
    a, b = 10 ** (-1 - math.sqrt(0.9)), 10 ** (-1 + math.sqrt(0.9))
    assert rt.lr_best == pytest.approx(0.1, rel=0.01)
    assert rt.valley[0] == pytest.approx(a, rel=0.01) and rt.valley[1] == pytest.approx(b, rel=0.01)
    assert (rt.lo, rt.hi) == (rt.valley[0], 2 * rt.valley[1])
    assert rt.peak == pytest.approx(math.sqrt(rt.lo * rt.hi), rel=1e-12)
    assert rt.grid_factor == pytest.approx(math.sqrt(rt.hi / rt.lo), rel=1e-12)
    lo_g, mid, hi_g = rt.grid
    assert lo_g == pytest.approx(rt.lo) and hi_g == pytest.approx(rt.hi) and mid == rt.peak
    assert rt.stop is not None and losses[rt.stop] > 5.5  # the half-way rule cut the climb
    assert rt.notes == ()
    text = rt.describe()
    assert f"{rt.peak:.3g}" in text and f"{rt.lo:.3g}" in text and f"{rt.hi:.3g}" in text


def test_read_range_notes_edges():
    lrs = ramp_lrs(1e-3, 1e-1, 100)
    falling = np.linspace(5.0, 1.0, 100)
    rt = read_range(lrs, falling)
    assert rt.stop is None and any("lr_max" in n for n in rt.notes)
    with pytest.raises(ValueError, match="same length"):
        read_range(lrs, falling[:-1])
    with pytest.raises(ValueError, match="first step"):
        read_range(lrs, np.full(100, np.nan))


# -- find_lr restores everything ----------------------------------------------------------------
def _net() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(16, 3),
    ).double()


def _data(n: int = 256, batch: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    X = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    return [(X[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def _setup():
    """A model with BatchNorm statistics moved, Adam with state, live .grads, mixed modes."""
    model = _net()
    data = _data()
    opt = torch.optim.Adam(
        [
            {"params": list(model[0].parameters()) + list(model[1].parameters())},
            {"params": list(model[4].parameters()), "lr": 3e-3, "weight_decay": 1e-4},
        ],
        lr=1e-3,
    )
    loss_fn = torch.nn.functional.cross_entropy
    model.train()
    for xb, yb in data[:3]:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    loss_fn(model(data[3][0]), data[3][1]).backward()  # .grads the range test must keep
    model[0].bias.grad = None  # and one parameter without a .grad
    model.eval()
    model[3].train()  # a mixture of modes
    return model, opt, loss_fn, data


def _snapshot(model, opt):
    tensors = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    state = {
        i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
        for i, (_, s) in enumerate(sorted(opt.state.items(), key=lambda kv: id(kv[0])))
    }
    state_ids = sorted(id(p) for p in opt.state)
    groups = [
        {k: (list(v) if k == "params" else v) for k, v in g.items()} for g in opt.param_groups
    ]
    return tensors, grads, modes, state, state_ids, groups


def _assert_same(model, opt, snap):
    tensors, grads, modes, state, state_ids, groups = snap
    now = model.state_dict()
    assert now.keys() == tensors.keys()
    for k, v in tensors.items():
        assert now[k].dtype == v.dtype and torch.equal(now[k], v), k
    for n, p in model.named_parameters():
        if grads[n] is None:
            assert p.grad is None, n
        else:
            assert p.grad is not None and torch.equal(p.grad, grads[n]), n
    assert [m.training for m in model.modules()] == modes
    assert sorted(id(p) for p in opt.state) == state_ids
    now_state = [s for _, s in sorted(opt.state.items(), key=lambda kv: id(kv[0]))]
    assert len(now_state) == len(state)
    for i, s in enumerate(now_state):
        assert s.keys() == state[i].keys()
        for k, v in s.items():
            if torch.is_tensor(v):
                assert v.dtype == state[i][k].dtype and torch.equal(v, state[i][k]), (i, k)
            else:
                assert v == state[i][k]
    assert len(opt.param_groups) == len(groups)
    for g, want in zip(opt.param_groups, groups, strict=True):
        assert g.keys() == want.keys()
        for k, v in want.items():
            if k == "params":
                assert all(a is b for a, b in zip(g[k], v, strict=True))
            else:
                assert g[k] == v, k


def _rng_states():
    return (
        random.getstate(),
        np.random.get_state(),  # noqa: NPY002
        torch.get_rng_state(),
    )


def _draws():
    return (
        random.random(),
        np.random.random_sample(),  # noqa: NPY002
        torch.rand(4, dtype=torch.float64),
    )


def _assert_rng_untouched(before):
    after = _draws()
    random.setstate(before[0])
    np.random.set_state(before[1])  # noqa: NPY002
    torch.set_rng_state(before[2])
    without = _draws()
    assert after[0] == without[0] and after[1] == without[1]
    assert torch.equal(after[2], without[2])


def test_find_lr_restores_bit_for_bit():
    model, opt, loss_fn, data = _setup()
    snap = _snapshot(model, opt)
    rng = _rng_states()
    rt = find_lr(model, opt, loss_fn, data, lr_min=1e-5, lr_max=10.0, steps=120)
    assert isinstance(rt, RangeTest)
    _assert_rng_untouched(rng)
    _assert_same(model, opt, snap)
    # the ramp ran, moved the weights and was read
    n = len(rt.losses)
    assert 20 <= n <= 120 and np.all(np.isfinite(rt.losses[:-1]))
    np.testing.assert_allclose(rt.lrs, ramp_lrs(1e-5, 10.0, 120)[:n])
    assert rt.lo < rt.peak < rt.hi and rt.losses.std() > 0
    # the restored optimizer continues as if nothing happened: one more step, twice
    twin_model, twin_opt, _, _ = _setup()
    for o in (opt, twin_opt):
        o.step()
    for a, b in zip(model.parameters(), twin_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_find_lr_restores_python_and_numpy_rngs_drawn_during_the_run():
    # a batch_fn that augments with the global Python and NumPy generators
    model, opt, loss_fn, data = _setup()
    rng = _rng_states()

    def noisy(batch):
        x, y = batch
        return x + 1e-3 * random.random() + 1e-3 * np.random.random_sample(), y  # noqa: NPY002

    find_lr(model, opt, loss_fn, data, lr_min=1e-5, lr_max=10.0, steps=30, batch_fn=noisy)
    _assert_rng_untouched(rng)


def test_find_lr_runs_in_training_mode_and_restores_eval_mode():
    model, opt, loss_fn, data = _setup()
    model.eval()
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    try:
        find_lr(model, opt, loss_fn, data, lr_min=1e-5, lr_max=10.0, steps=20)
    finally:
        handle.remove()
    assert seen and all(seen)
    assert not any(m.training for m in model.modules())


def test_find_lr_default_ramp():
    # lr_min = 1e-6, lr_max = 10, steps = 200 (the curve may stop early)
    model, opt, loss_fn, data = _setup()
    rt = find_lr(model, opt, loss_fn, data)
    n = len(rt.lrs)
    assert n >= 2
    np.testing.assert_allclose(rt.lrs, ramp_lrs(1e-6, 10.0, 200)[:n], rtol=1e-12)


@pytest.mark.parametrize("shape", ["triple", "dict"])
def test_find_lr_default_batches_must_be_pairs(shape):
    model, opt, loss_fn, data = _setup()
    x, y = data[0]
    batch = (x, y, y) if shape == "triple" else {"x": x, "y": y}
    with pytest.raises(ValueError, match=r"each batch must be an \(inputs, targets\) pair"):
        find_lr(model, opt, loss_fn, [batch], steps=10)


def test_training_state_puts_back_replaced_groups_and_drops_added_keys():
    model, opt, _, _ = _setup()
    snap = _snapshot(model, opt)
    first = opt.param_groups[0]
    state = TrainingState(model, opt)
    opt.param_groups[0] = dict(first, lr=1.0)  # a step that replaced a group object
    opt.param_groups[1]["extra"] = 3  # and one that added a key to another
    state.restore()
    assert opt.param_groups[0] is first
    assert "extra" not in opt.param_groups[1]
    _assert_same(model, opt, snap)


def test_find_lr_restores_after_an_exception():
    model, opt, loss_fn, data = _setup()
    snap = _snapshot(model, opt)
    rng = _rng_states()
    calls = []

    def exploding(out, target):
        calls.append(1)
        if len(calls) == 37:
            raise RuntimeError("boom")
        return loss_fn(out, target)

    with pytest.raises(RuntimeError, match="boom"):
        find_lr(model, opt, exploding, data, lr_min=1e-5, lr_max=10.0, steps=100)
    assert len(calls) == 37
    _assert_rng_untouched(rng)
    _assert_same(model, opt, snap)


def test_find_lr_accumulation_and_bf16_autocast():
    model, opt, loss_fn, data = _setup()
    snap = _snapshot(model, opt)
    rng = _rng_states()
    model.float()  # autocast on CPU computes in bf16 from float32 weights
    opt.state.clear()  # the float64 state would not match the float32 parameters
    snap32 = _snapshot(model, opt)
    calls = []

    def counted(out, target):
        calls.append(out.dtype)
        return loss_fn(out, target)

    rt = find_lr(model, opt, counted, [(x.float(), y) for x, y in data], lr_min=1e-5,
                 lr_max=10.0, steps=60, accumulate=2, autocast=torch.bfloat16)
    n = len(rt.losses)
    assert len(calls) == 2 * n and set(calls) == {torch.bfloat16}
    assert np.all(np.isfinite(rt.losses[: n - 1]))
    _assert_same(model, opt, snap32)
    _assert_rng_untouched(rng)
    assert snap[0].keys() == snap32[0].keys()


def test_find_lr_rejects_bad_arguments():
    model, opt, loss_fn, data = _setup()
    with pytest.raises(ValueError, match="lr_max"):
        find_lr(model, opt, loss_fn, data, lr_min=1.0, lr_max=0.1)
    with pytest.raises(ValueError, match="accumulate"):
        find_lr(model, opt, loss_fn, data, accumulate=0)
    with pytest.raises(ValueError, match="autocast"):
        find_lr(model, opt, loss_fn, data, autocast=torch.float64)
    with pytest.raises(ValueError, match="no batch"):
        find_lr(model, opt, loss_fn, [], steps=10)


def test_find_lr_is_lazy_at_the_top_level():
    code = (
        "import sys, lrlab, lrlab.schedules, lrlab.rangetest\n"
        "assert 'torch' not in sys.modules\n"
        "from lrlab.torchx.find_lr import find_lr\n"
        "assert lrlab.find_lr is find_lr and 'find_lr' in dir(lrlab)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        lrlab.no_such_name  # noqa: B018


# -- the range against a linear-decay sweep ----------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options"), [("breast_cancer_logreg", {"l2": 0.01}), ("digits_mlp", {})]
)
def test_range_contains_the_best_linear_decay_peak(name, options):
    task = get_task(name, **options)
    steps, seeds = 300, (0, 1, 2)
    peak, ramp = ramp_schedule(1e-4, 100.0, steps)
    res = run_batched(task, [RunConfig(peak, ramp, seed=s, steps=steps) for s in seeds],
                      curve_points=steps)
    curves = np.stack([r.curve_loss for r in res])
    mean = np.where(np.isfinite(curves).all(0), curves.mean(0), np.nan)
    rt = read_range(peak * ramp(np.arange(steps)), mean)
    # the sweep: a factor-sqrt(2) grid reaching 8x beyond the range on each side
    grid = rt.peak * 2.0 ** np.arange(-6.0, 6.01, 0.5)
    assert grid[0] < rt.lo / 4 and grid[-1] > rt.hi * 4
    runs = run_batched(task, [RunConfig(g, Linear(steps), seed=s, steps=steps)
                              for g in grid for s in seeds])
    final = np.array([np.inf if r.diverged else r.final_loss for r in runs])
    mean_final = final.reshape(len(grid), len(seeds)).mean(1)
    best = float(grid[int(np.argmin(mean_final))])
    assert rt.contains(best), (best, rt.lo, rt.hi)
    assert grid[0] < best < grid[-1]  # an interior optimum, not a grid edge


# -- lrlab find ---------------------------------------------------------------------------------
def test_cli_find_prints_the_range_and_writes_plot_and_json(tmp_path, capsys):
    png, js = tmp_path / "range.png", tmp_path / "sub" / "range.json"
    code = main(["find", "--task", "iris_logreg", "--task-option", "l2=0.01", "--steps", "200",
                 "--seeds", "2", "--plot", str(png), "--out", str(js)])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(js.read_text())
    r = data["range"]
    assert f"suggested peak lr {r['peak']:.3g}" in out
    assert f"best peak in [{r['lo']:.3g}, {r['hi']:.3g}]" in out
    assert f"factor {r['grid_factor']:.2g}" in out
    assert r["lo"] < r["peak"] < r["hi"]
    assert len(data["curve"]["lr"]) == len(data["curve"]["loss"]) == 200
    assert data["info"]["seeds"] == [0, 1] and data["info"]["task_options"] == {"l2": 0.01}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr-min", "-1"], "--lr-min"),
        (["--lr-min", "1", "--lr-max", "0.5"], "--lr-max must be > --lr-min"),
        (["--steps", "1"], "--steps"),
        (["--seeds", "0"], "--seeds"),
        (["--task-option", "l2"], "--task-option"),
        (["--plot", "range.txt"], "--plot"),
        (["--optimizer", "nope"], "nope"),
        (["--optimizer-option", "beta9=1"], "beta9"),
        (["--task", "no_such_task"], "no_such_task"),
    ],
)
def test_cli_find_bad_option_is_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["find", "--steps", "50", *argv] if "--steps" not in argv else ["find", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lrlab: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
