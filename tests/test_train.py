"""Trainer tests: batched == one-run, torch.optim semantics, divergence isolation, validation.

Equality tolerance: in float64, every recorded quantity of member m of a batch (minibatch loss
curve, gradient norms, final objective, test metric) equals ``run`` with member m's config to
1e-10 relative (observed differences are ~1e-15: only the batched matrix products' blocking
differs).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrlab.schedules import Constant, Cosine, InverseSqrt, Linear
from lrlab.tasks import get_task
from lrlab.train import RunConfig, run, run_batched, run_config
from lrlab.train.engine import MemberOrder, curve_index
from lrlab.train.methods import batched_method

RTOL = 1e-10
T = 40


#: Options of the odd members: every option of the method away from its default (the even
#: members use the defaults), so a wrong or ignored option fails the torch.optim comparison.
ODD_OPTIONS = {
    "sgd": {"weight_decay": 1e-3},
    "momentum": {"momentum": 0.8, "weight_decay": 1e-3},
    "adam": {"beta1": 0.8, "beta2": 0.99, "eps": 1e-4, "weight_decay": 1e-3},
    "adamw": {"beta1": 0.8, "beta2": 0.99, "eps": 1e-4, "weight_decay": 0.5},
}
TORCH_METHODS = list(ODD_OPTIONS)


def _configs(optimizer: str, lrs: tuple[float, ...], steps: int = T) -> list[RunConfig]:
    scheds = [Constant(), Cosine(steps=steps), InverseSqrt(), Linear(steps=steps)]
    return [
        RunConfig(
            lr=lr,
            schedule=scheds[i % len(scheds)],
            seed=3 * i + 1,
            steps=steps,
            optimizer=optimizer,
            options=ODD_OPTIONS.get(optimizer, {}) if i % 2 else {},
        )
        for i, lr in enumerate(lrs)
    ]


def _close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-13)


def _assert_same(r, s) -> None:
    assert r.diverged == s.diverged and r.diverged_at == s.diverged_at
    _close(r.curve_loss, s.curve_loss)
    np.testing.assert_array_equal(r.curve_steps, s.curve_steps)
    _close(r.final_loss, s.final_loss)
    _close(r.test_metric, s.test_metric)
    _close(r.grad_norm_l2, s.grad_norm_l2)
    _close(r.grad_norm_l1, s.grad_norm_l1)


LRS = {
    "sgd": (0.05, 0.3, 1.0),
    "momentum": (0.01, 0.05, 0.2),
    "adam": (1e-3, 1e-2, 5e-2),
    "adamw": (1e-3, 1e-2, 5e-2),
    "schedulefree_sgd": (0.1, 0.5),
    "schedulefree_adamw": (0.01, 0.05),
    "dadapt_sgd": (0.5, 1.0),
    "prodigy": (0.25, 0.5),
}


@pytest.mark.parametrize("task_name", ["digits_logreg", "digits_mlp"])
@pytest.mark.parametrize("optimizer", TORCH_METHODS)
def test_batched_equals_single_runs(task_name: str, optimizer: str) -> None:
    task = get_task(task_name)
    configs = _configs(optimizer, LRS[optimizer])
    batch = run_batched(task, configs, record_grad_norms=True, dtype=torch.float64)
    assert [r.config for r in batch] == configs
    for cfg, r in zip(configs, batch, strict=True):
        single = run_config(task, cfg, record_grad_norms=True, dtype=torch.float64)
        _assert_same(r, single)
        assert not r.diverged and math.isfinite(r.final_loss)


def test_run_keywords_equal_run_config() -> None:
    cfg = _configs("momentum", (0.1,))[0]
    a = run(
        "iris_logreg", lr=cfg.lr, schedule=cfg.schedule, seed=cfg.seed, steps=cfg.steps,
        optimizer=cfg.optimizer, options=cfg.options, dtype=torch.float64,
    )
    b = run_config("iris_logreg", cfg, dtype=torch.float64)
    np.testing.assert_array_equal(a.curve_loss, b.curve_loss)
    assert a.final_loss == b.final_loss


def _torch_oracle(task, cfg: RunConfig, forward, params: list[torch.Tensor]):
    """Plain torch.optim loop with the same data order; returns per-step losses, final loss."""
    params = [p.clone().requires_grad_(True) for p in params]
    o = batched_method(cfg.optimizer).resolve(cfg.options)
    kw = {"weight_decay": o["weight_decay"]}
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, **kw)
    elif cfg.optimizer == "momentum":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=o["momentum"], **kw)
    else:
        adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        opt = adam(params, lr=cfg.lr, betas=(o["beta1"], o["beta2"]), eps=o["eps"], **kw)
    order = MemberOrder(task.n_train, cfg.seed)
    B = task.default_batch_size
    lrs = cfg.lr * cfg.schedule(np.arange(cfg.steps))
    losses = []
    for t in range(cfg.steps):
        rows = torch.from_numpy(order.take(B))
        loss = F.cross_entropy(forward(params, task.X_train[rows]), task.y_train[rows])
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = float(lrs[t])
        opt.step()
    with torch.no_grad():
        final = F.cross_entropy(forward(params, task.X_train), task.y_train).item()
    return np.array(losses), final


@pytest.mark.parametrize("member", [0, 1])  # 0: the defaults; 1: every option changed
@pytest.mark.parametrize("optimizer", TORCH_METHODS)
def test_linear_matches_torch_optim(optimizer: str, member: int) -> None:
    task = get_task("wine_logreg")
    cfg = _configs(optimizer, LRS[optimizer])[member]
    d, c = task.X_train.shape[1], int(task.y_train.max()) + 1
    zeros = [torch.zeros(c, d, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)]
    curve, final = _torch_oracle(task, cfg, lambda p, X: X @ p[0].T + p[1], zeros)
    r = run_config(task, cfg, dtype=torch.float64, curve_points=cfg.steps)
    _close(r.curve_loss, curve)
    _close(r.final_loss, final)


@pytest.mark.parametrize("optimizer", TORCH_METHODS)
def test_mlp_matches_torch_optim(optimizer: str) -> None:
    task = get_task("digits_mlp")
    cfg = _configs(optimizer, LRS[optimizer])[1]
    init = [p[0] for p in task.model.init([cfg.seed], dtype=torch.float64, device="cpu").params]

    def forward(p, X):
        return torch.relu(X @ p[0] + p[1]) @ p[2] + p[3]

    curve, final = _torch_oracle(task, cfg, forward, init)
    r = run_config(task, cfg, dtype=torch.float64, curve_points=cfg.steps)
    np.testing.assert_allclose(r.curve_loss, curve, rtol=1e-9)
    np.testing.assert_allclose(r.final_loss, final, rtol=1e-9)


@pytest.mark.parametrize(
    ("task_name", "optimizer", "huge", "dtype"),
    [
        ("digits_mlp", "adam", 1e300, torch.float64),
        ("digits_mlp", "sgd", 1e6, torch.float64),
        ("digits_logreg", "momentum", 1e38, torch.float32),
        ("abs_regression", "sgd", 1e300, torch.float32),
        ("digits_mlp", "schedulefree_sgd", 1e300, torch.float64),
        ("digits_logreg", "dadapt_sgd", 1e300, torch.float32),
        ("digits_mlp", "prodigy", 1e300, torch.float64),
        ("digits_logreg", "schedulefree_adamw", 1e300, torch.float32),
        ("digits_mlp", "adamw", 1e300, torch.float64),
    ],
)
def test_divergent_member_is_frozen_and_isolated(task_name, optimizer, huge, dtype) -> None:
    good = _configs(optimizer, LRS[optimizer][:2])
    bad = RunConfig(huge, Constant(), seed=99, steps=T, optimizer=optimizer,
                    options={"weight_decay": 0.01})
    with_bad = run_batched(task_name, [good[0], bad, good[1]], record_grad_norms=True, dtype=dtype)
    without = run_batched(task_name, good, record_grad_norms=True, dtype=dtype)
    for r, s in zip([with_bad[0], with_bad[2]], without, strict=True):
        assert not r.diverged
        np.testing.assert_array_equal(r.curve_loss, s.curve_loss)
        np.testing.assert_array_equal(r.grad_norm_l2, s.grad_norm_l2)
        assert r.final_loss == s.final_loss and r.test_metric == s.test_metric
    b = with_bad[1]
    assert b.diverged and 0 <= b.diverged_at < T
    assert math.isnan(b.final_loss) and math.isnan(b.test_metric)
    assert np.all(np.isfinite(b.grad_norm_l2[: b.diverged_at]))
    assert np.all(np.isnan(b.grad_norm_l2[b.diverged_at + 1 :]))
    alone = run_config(task_name, bad, dtype=dtype)
    assert alone.diverged_at == b.diverged_at


def test_grad_norms_at_zero_init() -> None:
    """At W = 0 the softmax is uniform: the first gradient is computable by hand."""
    task = get_task("iris_logreg")
    cfg = RunConfig(0.1, Constant(), seed=5, steps=3)
    r = run_config(task, cfg, record_grad_norms=True, dtype=torch.float64)
    rows = torch.from_numpy(MemberOrder(task.n_train, 5).take(task.default_batch_size))
    X, y = task.X_train[rows], task.y_train[rows]
    G = torch.full((len(rows), 3), 1 / 3, dtype=torch.float64) - F.one_hot(y, 3)
    gW, gb = G.T @ X / len(rows), G.mean(0)
    l2 = math.sqrt(gW.square().sum() + gb.square().sum())
    l1 = float(gW.abs().sum() + gb.abs().sum())
    _close(r.grad_norm_l2[0], l2)
    _close(r.grad_norm_l1[0], l1)
    assert r.grad_norm_l2.shape == (3,) and np.all(r.grad_norm_l1 >= r.grad_norm_l2)
    assert math.isclose(r.curve_loss[0], math.log(3), rel_tol=1e-12)


def test_curve_is_subsampled_and_grad_norms_optional() -> None:
    r = run("iris_logreg", lr=0.1, schedule=Constant(), steps=57, curve_points=10)
    assert len(r.curve_loss) <= 10 and r.curve_steps[0] == 0 and r.curve_steps[-1] == 56
    assert np.all(np.diff(r.curve_steps) > 0)
    assert r.grad_norm_l2 is None and r.grad_norm_l1 is None
    np.testing.assert_array_equal(curve_index(5, 10), np.arange(5))


def test_mixed_groups_keep_input_order_and_report_progress() -> None:
    configs = [
        RunConfig(0.1, Constant(), seed=0, steps=20, optimizer="adam"),
        RunConfig(0.2, Cosine(steps=30), seed=1, steps=30),
        RunConfig(0.01, Constant(), seed=2, steps=20, optimizer="adam"),
        RunConfig(0.3, Cosine(steps=200), seed=3),  # steps=None -> iris default 200
    ]
    calls: list[tuple[int, int]] = []
    out = run_batched(
        "iris_logreg", configs, dtype=torch.float64, progress=lambda d, n: calls.append((d, n))
    )
    assert [r.config for r in out] == configs
    for cfg, r in zip(configs, out, strict=True):
        alone = run_config("iris_logreg", cfg, dtype=torch.float64)
        _close(r.curve_loss, alone.curve_loss)
    total = 2 * 20 + 30 + 200
    assert calls[-1] == (total, total)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    # progress counts member-steps: each group ends at its members times its steps so far
    assert (2 * 20, total) in calls and (2 * 20 + 30, total) in calls


def test_num_threads_is_restored() -> None:
    before = torch.get_num_threads()
    run("iris_logreg", lr=0.1, schedule=Constant(), steps=3, num_threads=2)
    assert torch.get_num_threads() == before
    run("iris_logreg", lr=0.1, schedule=Constant(), steps=3, num_threads=None)
    assert torch.get_num_threads() == before


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="lr"):
        RunConfig(0.0, Constant())
    with pytest.raises(ValueError, match="lr"):
        run("iris_logreg", lr=-1.0, schedule=Constant())
    with pytest.raises(ValueError, match="horizon 100 != steps 200"):
        run_batched("iris_logreg", [RunConfig(0.1, Cosine(steps=100))])
    with pytest.raises(ValueError, match=r"configs\[1\].*horizon"):
        run_batched("iris_logreg", [RunConfig(0.1, Constant()), RunConfig(0.1, Cosine(steps=5))])
    with pytest.raises(ValueError, match="optimizer"):
        run_batched("iris_logreg", [RunConfig(0.1, Constant(), optimizer="lion")])
    with pytest.raises(ValueError, match="at least one"):
        run_batched("iris_logreg", [])
    with pytest.raises(ValueError, match="unknown task"):
        run_batched("no_such_task", [RunConfig(0.1, Constant())])
    with pytest.raises(ValueError, match="dtype"):
        run("iris_logreg", lr=0.1, schedule=Constant(), dtype=torch.float16)
    with pytest.raises(ValueError, match="curve_points"):
        run("iris_logreg", lr=0.1, schedule=Constant(), curve_points=0)
    with pytest.raises(ValueError, match="sgd has no option 'momentum'; its options are weight"):
        run("iris_logreg", lr=0.1, schedule=Constant(), options={"momentum": 0.9})
    with pytest.raises(ValueError, match=r"option beta of schedulefree_sgd must be in \(0, 1\)"):
        RunConfig(1.0, Constant(), optimizer="schedulefree_sgd", options={"beta": 0.0})
    with pytest.raises(ValueError, match="options must be a mapping"):
        RunConfig(1.0, Constant(), options=[("weight_decay", 0.1)])


def test_run_config_options_are_stored_sorted_and_round_trip() -> None:
    cfg = RunConfig(0.1, Cosine(steps=10), optimizer="adam", options={"eps": 1e-6, "beta1": 0})
    assert cfg.options == {"beta1": 0.0, "eps": 1e-6} and list(cfg.options) == ["beta1", "eps"]
    assert type(cfg.options) is dict and type(cfg.options["beta1"]) is float
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and d["options"] == {"beta1": 0.0, "eps": 1e-6}
    assert RunConfig.from_dict(d) == cfg
    assert hash(RunConfig.from_dict(d)) == hash(cfg) and len({cfg, RunConfig.from_dict(d)}) == 1
    # a dict written before options existed: momentum meant the method's beta
    old = {**d, "optimizer": "schedulefree_sgd", "momentum": 0.5, "weight_decay": 0.0}
    del old["options"]
    assert RunConfig.from_dict(old).options == {"beta": 0.5}
    old["optimizer"] = "sgd"
    assert RunConfig.from_dict(old).options == {}


def test_run_batched_records_no_grad_norms_by_default() -> None:
    (r,) = run_batched("iris_logreg", [RunConfig(0.1, Constant(), steps=5)])
    assert r.grad_norm_l2 is None and r.grad_norm_l1 is None


def test_the_final_loss_includes_the_l2_penalty() -> None:
    """With a schedule at 0 the members keep their initialisation: the final loss is the mean
    cross-entropy there plus (l2 / 2) ||W||^2, computed here from the model's own init."""
    task = get_task("digits_mlp", l2=0.5)
    (r,) = run_batched(task, [RunConfig(0.1, _Zero(), seed=4, steps=3)], dtype=torch.float64)
    m = task.model.init([4], dtype=torch.float64, device=torch.device("cpu"))
    X, y = torch.as_tensor(task.X_train).double(), torch.as_tensor(task.y_train).long()
    ce = task.model.loss_sum(m, X, y).item() / len(y)
    W1, W2 = m.params[0], m.params[2]
    pen = 0.25 * (W1.square().sum() + W2.square().sum()).item()
    assert pen > 0.01 * ce
    assert math.isclose(r.final_loss, ce + pen, rel_tol=1e-10)


class _Zero(Constant):
    def __call__(self, t):
        return np.zeros(np.shape(t))


class _Negative(Constant):
    def __call__(self, t):
        return -np.ones_like(np.asarray(t, dtype=np.float64))


class _NotFinite(Constant):
    def __call__(self, t):
        return np.full(np.shape(t), np.inf)


def test_schedules_must_give_finite_non_negative_lrs() -> None:
    for bad in (_Negative(), _NotFinite()):
        with pytest.raises(ValueError, match="schedules must give finite, non-negative"):
            run_batched("iris_logreg", [RunConfig(0.1, Constant(), steps=4),
                                        RunConfig(0.1, bad, steps=4)])
    (r,) = run_batched("iris_logreg", [RunConfig(0.1, _Zero(), steps=4)])  # zero is fine
    assert not r.diverged


def test_a_config_stored_before_options_keeps_its_momentum_or_weight_decay_alone() -> None:
    d = RunConfig(0.1, Constant(), steps=5, optimizer="momentum").to_dict()
    d.pop("options", None)
    assert RunConfig.from_dict({**d, "momentum": 0.5}).options == {"momentum": 0.5}
    assert RunConfig.from_dict({**d, "weight_decay": 0.1}).options == {"weight_decay": 0.1}


def test_a_result_without_a_curve_has_empty_curves() -> None:
    from lrlab.train.types import RunResult

    r = RunResult(RunConfig(0.1, Constant(), steps=5), 1.0, None, False)
    assert r.curve_steps.size == 0 and r.curve_loss.size == 0


def test_every_entry_point_keeps_200_curve_points_and_no_grad_norms_by_default() -> None:
    cfg = RunConfig(0.1, Constant(), steps=300)
    for r in (run("iris_logreg", lr=0.1, schedule=Constant(), steps=300),
              run_config("iris_logreg", cfg), run_batched("iris_logreg", [cfg])[0]):
        assert len(r.curve_steps) == len(r.curve_loss) == 200
        assert r.grad_norm_l2 is None and r.grad_norm_l1 is None


def test_training_runs_with_the_thread_count_asked_for() -> None:
    before = torch.get_num_threads()
    seen = []
    run_batched("iris_logreg", [RunConfig(0.1, Constant(), steps=3)], num_threads=before + 1,
                progress=lambda done, total: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before


def test_run_trains_seed_0_by_default() -> None:
    a = run("iris_logreg", lr=0.1, schedule=Constant(), steps=5)
    b = run("iris_logreg", lr=0.1, schedule=Constant(), steps=5, seed=0)
    c = run("iris_logreg", lr=0.1, schedule=Constant(), steps=5, seed=1)
    assert a.config.seed == 0 and a.final_loss == b.final_loss != c.final_loss


def test_member_order_is_the_documented_stream_of_permutations():
    """Step t's minibatch is entries [tB, (t+1)B) of permutations of range(n) drawn one after
    another from ``numpy.random.default_rng(seed)``, batches straddling epochs."""
    n, seed, sizes = 10, 3, (7, 8, 30, 1)
    order = MemberOrder(n, seed)
    got = np.concatenate([order.take(k) for k in sizes])
    rng = np.random.default_rng(seed)
    stream = np.concatenate([rng.permutation(n) for _ in range(5)])
    np.testing.assert_array_equal(got, stream[:sum(sizes)])


def test_run_config_defaults():
    cfg = RunConfig(0.1, Constant())
    assert (cfg.seed, cfg.steps, cfg.optimizer, cfg.options) == (0, None, "sgd", {})


def test_compiling_switches_a_compilable_model_on_for_the_block_only():
    from types import SimpleNamespace

    from lrlab.train.engine import compiling

    model = SimpleNamespace(compile=False)
    with compiling(model, True):
        assert model.compile is True
    assert model.compile is False
    with compiling(model, False):
        assert model.compile is False
    plain = SimpleNamespace()  # a model without the attribute is left alone
    with compiling(plain, True):
        assert not hasattr(plain, "compile")
