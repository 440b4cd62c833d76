"""``from_module``: any nn.Module trained batched by torch.func, checked against plain loops."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from lrlab.schedules import Cosine, Linear
from lrlab.tasks import BatchedModel, Task, from_module, get_task, member_torch_seed
from lrlab.torchx import ScheduleLR
from lrlab.train import RunConfig, run_batched
from lrlab.train.devices import max_members, member_bytes, resolve_device
from lrlab.train.engine import MemberOrder

F = nn.functional
STEPS, BATCH = 25, 16


def _data(kind: str, n: int = 120):
    g = torch.Generator().manual_seed(7)
    if kind == "tokens":
        X = torch.randint(0, 12, (n, 6), generator=g)
    elif kind == "image":
        X = torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64)
    else:
        X = torch.randn(n, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return X, y


class TokenModel(nn.Module):
    """Embedding, LayerNorm, Dropout, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 8)
        self.norm = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.25)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.drop(self.norm(self.emb(x).mean(1))))


def make_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def make_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout2d(0.2), nn.Flatten(),
        nn.Linear(48, 3),
    )


def make_tokens(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return TokenModel()


MODELS = {
    "mlp": (make_mlp, "vector"),
    "cnn": (make_cnn, "image"),
    "tokens": (make_tokens, "tokens"),
}
TORCH_OPT = {
    "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr),
    "momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8),
}


def _task(kind: str, **kw) -> Task:
    make, data = MODELS[kind]
    X, y = _data(data)
    return from_module(make, (X[:90], y[:90]), loss_fn=F.cross_entropy, test=(X[90:], y[90:]),
                       metric="accuracy", batch_size=BATCH, steps=STEPS, **kw)


def plain_loop(make, task: Task, cfg: RunConfig) -> dict:
    """The member trained alone: torch.optim + ScheduleLR, same seed, data order and dropout."""
    model = make(cfg.seed).double()
    opt = TORCH_OPT[cfg.optimizer](model.parameters(), cfg.lr)
    sched = ScheduleLR(opt, cfg.schedule)
    order = MemberOrder(task.n_train, cfg.seed)
    torch.manual_seed(member_torch_seed(cfg.seed))
    losses = []
    model.train()
    for _ in range(STEPS):
        i = torch.from_numpy(order.take(BATCH))
        loss = F.cross_entropy(model(task.X_train[i].to(torch.float64)
                                     if task.X_train.is_floating_point() else task.X_train[i]),
                               task.y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = F.cross_entropy(model(task.X_train), task.y_train).item()
        acc = (model(task.X_test).argmax(-1) == task.y_test).double().mean().item()
    return {"losses": np.array(losses), "final": final, "acc": acc}


def _configs(optimizer: str) -> list[RunConfig]:
    lrs = {"sgd": (0.05, 0.3), "momentum": (0.02, 0.1), "adam": (0.003, 0.03)}[optimizer]
    return [RunConfig(lr, Linear(STEPS), seed=s, optimizer=optimizer)
            for lr in lrs for s in (0, 3)]


def _close(a: float, b: float, tol: float = 1e-10) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize(
    ("kind", "optimizer"), [("mlp", "sgd"), ("cnn", "momentum"), ("tokens", "adam")]
)
def test_every_member_equals_the_plain_pytorch_loop(kind: str, optimizer: str) -> None:
    task = _task(kind)
    configs = _configs(optimizer)
    results = run_batched(task, configs, dtype=torch.float64)
    assert task.model.mode == "vmap"
    for cfg, res in zip(configs, results, strict=True):
        ref = plain_loop(MODELS[kind][0], task, cfg)
        assert not res.diverged
        assert _close(res.final_loss, ref["final"]), (cfg, res.final_loss, ref["final"])
        assert res.test_metric == pytest.approx(ref["acc"], abs=1e-12)
        np.testing.assert_allclose(res.curve_loss, ref["losses"][res.curve_steps], rtol=1e-10)


def test_batchnorm_running_statistics_are_kept_per_member_and_used_in_eval() -> None:
    task = _task("cnn")
    cfg = [RunConfig(0.1, Linear(STEPS), seed=s) for s in (0, 1)]
    members = task.model.init([0, 1], dtype=torch.float64, device=torch.device("cpu"))
    before = [b.clone() for b in members.buffers]
    X, y = task.X_train[:BATCH].expand(2, *task.X_train[:BATCH].shape), task.y_train[:BATCH]
    _, _, after = task.model.loss_and_grad(members, X, y.expand(2, BATCH))
    names = task.model.buffer_names
    mean = after[names.index("1.running_mean")]
    assert not torch.equal(mean, before[names.index("1.running_mean")])
    assert not torch.equal(mean[0], mean[1])  # each member its own statistics
    assert after[names.index("1.num_batches_tracked")].tolist() == [1, 1]
    # the stored members are not changed in place: the trainer decides what to keep
    assert all(torch.equal(a, b) for a, b in zip(members.buffers, before, strict=True))
    # evaluation uses the running statistics: changing them changes the loss
    res = run_batched(task, cfg, dtype=torch.float64)
    assert res[0].final_loss != res[1].final_loss


def test_members_do_not_depend_on_their_batch_neighbours_or_chunks() -> None:
    task = _task("cnn")
    configs = _configs("momentum")
    whole = run_batched(task, configs, dtype=torch.float64)
    chunked = run_batched(task, configs, dtype=torch.float64, max_members=3)
    alone = run_batched(task, configs[2:3], dtype=torch.float64)
    for a, b in zip(whole, chunked, strict=True):
        assert _close(a.final_loss, b.final_loss)
        np.testing.assert_allclose(a.curve_loss, b.curve_loss, rtol=1e-10)
    assert _close(alone[0].final_loss, whole[2].final_loss)


def test_member_by_member_gives_the_same_numbers() -> None:
    configs = _configs("momentum")
    fast = run_batched(_task("cnn"), configs, dtype=torch.float64)
    slow_task = _task("cnn", vmap=False)
    slow = run_batched(slow_task, configs, dtype=torch.float64)
    assert slow_task.model.mode == "members"
    for a, b in zip(fast, slow, strict=True):
        assert _close(a.final_loss, b.final_loss)
        assert a.test_metric == b.test_metric
        np.testing.assert_allclose(a.curve_loss, b.curve_loss, rtol=1e-10)


class Branchy(nn.Module):
    """Data-dependent control flow: vmap cannot run it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(10, 3)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        h = self.drop(x)
        if h.sum() > 0:
            h = h * 0.5
        return self.lin(h)


def make_branchy(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return Branchy()


def test_a_module_vmap_cannot_run_is_trained_member_by_member(caplog) -> None:
    X, y = _data("vector")
    task = from_module(make_branchy, (X, y), loss_fn=F.cross_entropy, batch_size=8, steps=10)
    configs = [RunConfig(0.1, Cosine(10), seed=s) for s in (0, 1, 2)]
    with caplog.at_level(logging.WARNING, logger="lrlab"):
        results = run_batched(task, configs, dtype=torch.float64)
    assert task.model.mode == "members"
    messages = [r.getMessage() for r in caplog.records if r.name == "lrlab"]
    assert len(messages) == 1 and "\n" not in messages[0] and "member by member" in messages[0]
    assert "data-dependent control flow" in messages[0] or ".item()" in messages[0]
    # same numbers as a plain loop with the member's torch seed
    for cfg, res in zip(configs, results, strict=True):
        model = make_branchy(cfg.seed).double()
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        sched = ScheduleLR(opt, cfg.schedule)
        order = MemberOrder(len(X), cfg.seed)
        torch.manual_seed(member_torch_seed(cfg.seed))
        for _ in range(10):
            i = torch.from_numpy(order.take(8))
            loss = F.cross_entropy(model(X[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            assert _close(res.final_loss, F.cross_entropy(model(X), y).item())


def test_dataset_with_a_batch_hook_and_dict_inputs() -> None:
    X, y = _data("vector", 60)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, i):
            return {"features": X[i], "label": y[i], "id": i}

    class Keyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(10, 3)

        def forward(self, features):
            return self.lin(features)

    def make(seed):
        torch.manual_seed(seed)
        return Keyword()

    task = from_module(make, Rows(), loss_fn=F.cross_entropy,
                       batch_fn=lambda b: ({"features": b["features"]}, b["label"]),
                       metric="accuracy", batch_size=8, steps=12)
    assert task.n_train == 60 and set(task.X_train) == {"features"}
    res = run_batched(task, [RunConfig(0.2, Linear(12), seed=0)], dtype=torch.float64)[0]
    plain = from_module(lambda s: make(s), (X, y), loss_fn=F.cross_entropy, metric="accuracy",
                        batch_size=8, steps=12)
    ref = run_batched(plain, [RunConfig(0.2, Linear(12), seed=0)], dtype=torch.float64)[0]
    assert res.final_loss == pytest.approx(ref.final_loss, rel=1e-12)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_input_is_one_line() -> None:
    X, y = _data("vector")
    with pytest.raises(ValueError, match="must return a torch.nn.Module") as e:
        from_module(lambda s: "not a module", (X, y), loss_fn=F.cross_entropy)
    _one_line(e)

    def growing(seed):
        return nn.Linear(10, 3 + seed)

    task = from_module(growing, (X, y), loss_fn=F.cross_entropy, steps=5)
    with pytest.raises(ValueError, match=r"same parameter shapes: bias is \(3,\) for seed 0 "
                                         r"but \(4,\) for seed 1") as e:
        run_batched(task, [RunConfig(0.1, Linear(5), seed=s) for s in (0, 1)])
    _one_line(e)
    with pytest.raises(ValueError, match="scalar tensor") as e:
        from_module(make_mlp, (X, y), loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"))
    _one_line(e)
    with pytest.raises(ValueError, match="120 input rows but 119 target rows") as e:
        from_module(make_mlp, (X, y[:-1]), loss_fn=F.cross_entropy)
    _one_line(e)
    with pytest.raises(ValueError, match="different lengths") as e:
        from_module(make_mlp, ((X, X[:5]), y), loss_fn=F.cross_entropy)
    _one_line(e)
    with pytest.raises(ValueError, match="give \\(inputs, targets\\)") as e:
        from_module(make_mlp, X, loss_fn=F.cross_entropy)
    _one_line(e)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu:0"])
def test_unknown_device_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N, mps or auto") as e:
        run_batched("iris_logreg", [RunConfig(0.1, Linear(200))], device=name)
    _one_line(e)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_absent_cuda_is_refused_and_auto_means_cpu() -> None:
    with pytest.raises(ValueError, match="sees no CUDA device") as e:
        run_batched("iris_logreg", [RunConfig(0.1, Linear(200))], device="cuda:0")
    _one_line(e)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:  # pragma: no cover - CI has no GPU
    task = _task("cnn")
    configs = _configs("momentum")
    cpu = run_batched(task, configs, dtype=torch.float64)
    gpu = run_batched(task, configs, dtype=torch.float64, device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        assert a.final_loss == pytest.approx(b.final_loss, rel=0.05)


def test_builtin_models_follow_the_contract_and_the_footprint_sizes_chunks(monkeypatch) -> None:
    for name in ("digits_logreg", "digits_mlp", "abs_regression"):
        assert isinstance(get_task(name).model, BatchedModel)
    with pytest.raises(ValueError, match="must implement lrlab.tasks.BatchedModel"):
        get_task("iris_logreg").replace(model=object())
    task = _task("cnn")
    cpu = torch.device("cpu")
    per = member_bytes(task, BATCH, torch.float64, cpu)
    small = member_bytes(_task("mlp"), BATCH, torch.float64, cpu)
    assert per > 0 and small > 0
    # the step's temporaries are measured, not only the state: they grow with the batch
    assert member_bytes(task, 2 * BATCH, torch.float64, cpu) > per
    # a member needs at least its own state, its gradients and an optimizer's moments: checked
    # on a model whose state outweighs a small batch's temporaries
    wide = get_task("digits_logreg")
    m = wide.model.init([0], dtype=torch.float64, device=cpu)
    state = sum(t.numel() * t.element_size() for t in (*m.params, *m.buffers))
    assert member_bytes(wide, 8, torch.float64, cpu) > 4 * state
    from lrlab.train import devices

    monkeypatch.setattr(devices, "free_memory", lambda device: 5 * per)
    assert max_members(task, BATCH, torch.float64, cpu) == 2  # half of 5 members' worth
    monkeypatch.setattr(devices, "free_memory", lambda device: 0)
    assert max_members(task, BATCH, torch.float64, cpu) == 1


def test_compiled_steps_give_the_plain_loops_numbers(caplog) -> None:
    """compile=True (torch.compile of the step and the evaluation) on BatchNorm + Dropout2d
    + Conv2d equals the plain loop; a member diverges (learning rate 1e307) and is reported."""
    task = _task("cnn")
    configs = _configs("momentum") + [RunConfig(1e307, Linear(STEPS), seed=1,
                                                optimizer="momentum")]
    with caplog.at_level(logging.WARNING, logger="lrlab"):
        results = run_batched(task, configs, dtype=torch.float64, compile=True)
    assert "torch.compile" not in caplog.text  # it compiled: no fallback line
    assert task.model.compile is False  # the setting lasts one run
    assert any(k[-1] for k in task.model._steps)  # compiled functions were built and kept
    for cfg, res in zip(configs[:-1], results[:-1], strict=True):
        ref = plain_loop(MODELS["cnn"][0], task, cfg)
        assert _close(res.final_loss, ref["final"]), (cfg, res.final_loss, ref["final"])
        assert res.test_metric == pytest.approx(ref["acc"], abs=1e-12)
        np.testing.assert_allclose(res.curve_loss, ref["losses"][res.curve_steps], rtol=1e-10)
    assert results[-1].diverged and results[-1].diverged_at is not None


def test_a_step_that_cannot_compile_runs_uncompiled(caplog, monkeypatch) -> None:
    def broken(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler. Details follow")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    task = _task("mlp")
    configs = _configs("sgd")
    with caplog.at_level(logging.WARNING, logger="lrlab"):
        got = run_batched(task, configs, dtype=torch.float64, compile=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("RuntimeError: no C++ compiler" in x for x in lines), lines
    assert "training step" in lines[0] and "evaluation" in lines[1]
    want = run_batched(_task("mlp"), configs, dtype=torch.float64)
    assert [r.final_loss for r in got] == [r.final_loss for r in want]
