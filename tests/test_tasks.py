"""Task registry tests: names, f* of the synthetic problems, default budgets, corpus, svmlight."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lrlab.schedules import Cosine
from lrlab.tasks import Task, get_task, svmlight_task, task_names
from lrlab.tasks.charlm import VOCAB, encode, stdlib_corpus
from lrlab.tasks.optimum import logistic_f_star, logistic_objective
from lrlab.train import RunConfig, run_config

ACCURACY_FLOOR = {
    "digits_logreg": 0.9,
    "wine_logreg": 0.9,
    "iris_logreg": 0.85,
    "breast_cancer_logreg": 0.9,
    "digits_mlp": 0.9,
    "logistic_synthetic": 0.7,
}


def test_registry_names_and_attributes() -> None:
    names = task_names()
    assert names == sorted(names)
    for expected in ("digits_logreg", "digits_mlp", "abs_regression", "stdlib_charlm"):
        assert expected in names
    for name in names:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and task.description
        assert task.default_steps >= 1 and task.default_batch_size >= 1
        assert task.metric_name is not None
        info = task.describe()
        assert json.loads(json.dumps(info)) == info and info["n_train"] == task.n_train


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(ValueError) as err:
        get_task("digits_logregg")
    for name in task_names():
        assert name in str(err.value)


def test_overrides() -> None:
    t = get_task("abs_regression", n_train=64, default_steps=7)
    assert t.n_train == 64 and t.default_steps == 7
    assert get_task("abs_regression") is get_task("abs_regression")
    with pytest.raises(ValueError, match="unknown option.*n_train"):
        get_task("digits_logreg", n_train=5)
    with pytest.raises(ValueError, match="n_train"):
        get_task("abs_regression", n_train=0)


def _lad_irls(X: np.ndarray, y: np.ndarray, iters: int = 2000) -> np.ndarray:
    """Least absolute deviations by iteratively reweighted least squares (deterministic)."""
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    for _ in range(iters):
        r = np.maximum(np.abs(X @ w - y), 1e-12)
        Xw = X / r[:, None]
        w = np.linalg.solve(X.T @ Xw, Xw.T @ y)
    return w


def test_abs_regression_f_star() -> None:
    task = get_task("abs_regression")
    X, y = task.X_train.numpy(), task.y_train.numpy()
    f = lambda w: float(np.mean(np.abs(X @ w - y)))  # noqa: E731
    f_irls = f(_lad_irls(X, y))
    assert task.f_star <= f_irls + 1e-12
    assert f_irls - task.f_star < 1e-6
    # LP duality: max_u y.u s.t. X^T u = 0, |u_i| <= 1/n has the same optimal value.
    from scipy.optimize import linprog

    n = len(y)
    dual = linprog(-y, A_eq=X.T, b_eq=np.zeros(X.shape[1]), bounds=[(-1 / n, 1 / n)] * n)
    assert dual.success
    assert abs(-dual.fun - task.f_star) < 1e-8


def test_logistic_synthetic_f_star() -> None:
    task = get_task("logistic_synthetic")
    X, y = task.X_train.numpy(), task.y_train.numpy()
    l2 = task.model.l2
    d = X.shape[1]
    w = np.zeros(d * 2)
    for _ in range(30):  # Newton's method on the strongly convex objective
        W = w.reshape(d, 2)
        _, g = logistic_objective(W, X, y, l2)
        Z = X @ W
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        H = np.zeros((2 * d, 2 * d))
        for i in range(len(y)):
            S = np.diag(P[i]) - np.outer(P[i], P[i])
            H += np.kron(np.outer(X[i], X[i]), S)
        H = H / len(y) + l2 * np.eye(2 * d)
        w = w - np.linalg.solve(H, g.ravel())
    f_newton, g = logistic_objective(w.reshape(d, 2), X, y, l2)
    assert np.linalg.norm(g) < 1e-12
    assert abs(f_newton - task.f_star) < 1e-12


def _trains(name: str, steps: int | None = None) -> None:
    task = get_task(name)
    steps = steps or task.default_steps
    cfg = RunConfig(
        task.default_lr, Cosine(steps=steps), seed=0, steps=steps, optimizer=task.default_optimizer
    )
    r = run_config(task, cfg)
    assert not r.diverged
    if task.f_star is None:
        assert r.final_loss < 0.6 * r.curve_loss[0]
    else:
        assert r.final_loss >= task.f_star - 1e-5
        assert r.final_loss - task.f_star < 0.01 * (r.curve_loss[0] - task.f_star)
    if name in ACCURACY_FLOOR:
        assert r.test_metric >= ACCURACY_FLOOR[name]


@pytest.mark.parametrize("name", sorted(set(task_names()) - {"stdlib_charlm"}))
def test_task_trains_in_default_budget(name: str) -> None:
    _trains(name)


def test_charlm_learns_quickly() -> None:
    task = get_task("stdlib_charlm", max_bytes=20_000)
    cfg = RunConfig(3e-3, Cosine(steps=60), steps=60, optimizer="adam")
    r = run_config(task, cfg)
    assert r.final_loss < 0.8 * math.log(VOCAB) and r.test_metric < 0.8 * math.log(VOCAB)


@pytest.mark.slow
def test_charlm_trains_in_default_budget() -> None:
    _trains("stdlib_charlm")
    cfg = RunConfig(3e-3, Cosine(300), optimizer="adam")
    assert run_config("stdlib_charlm", cfg).final_loss < 2.7


def test_stdlib_corpus_is_deterministic() -> None:
    a, b = stdlib_corpus(5000), stdlib_corpus(5000)
    assert a == b and len(a) == 5000
    sym = encode(b"a\n\x01~ ")
    assert sym.tolist() == [ord("a") - 31, 0, VOCAB - 1, 95, 1]
    t = get_task("stdlib_charlm", max_bytes=5000, context=16)
    assert t.X_train.shape[1] == 16 and torch.equal(t.X_train[0, 1:], t.y_train[0, :-1])


GOOD = "1 1:0.5 3:1.0\n-1 2:1.5 # note\n\n# comment\n1 qid:3 1:-0.2 2:0.1 3:2\n-1 1:1 3:-1\n"


def test_svmlight_task_loads_and_trains(tmp_path) -> None:
    path = tmp_path / "toy.svm"
    rows = [GOOD]
    rng = np.random.default_rng(0)
    for _ in range(60):
        x = rng.standard_normal(3)
        rows.append(f"{1 if x[0] + x[1] > 0 else -1} 1:{x[0]:.4f} 2:{x[1]:.4f} 3:{x[2]:.4f}\n")
    path.write_text("".join(rows))
    task = svmlight_task(path)
    assert task.n_train + len(task.X_test) == 64 and task.X_train.shape[1] == 3
    assert task.info["classes"] == [-1.0, 1.0]
    r = run_config(task, RunConfig(0.5, Cosine(steps=200), steps=200))
    assert r.test_metric > 0.75


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("abc 1:2", "label"),
        ("1 1:2 3", "expected <index>:<value>"),
        ("1 x:2", "feature index"),
        ("1 1:nan", "feature 1 is not a finite number"),
        ("1 1:2:3", "feature 1 is not a finite number"),
        ("1 3:1 2:1", "must increase"),
        ("1 qid:a 1:1", "qid"),
    ],
)
def test_malformed_svmlight_names_the_line(tmp_path, line: str, what: str) -> None:
    path = tmp_path / "bad.svm"
    lines = GOOD.splitlines()
    lines.insert(4, line)  # the 5th line of the file
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"line 5: .*{what}"):
        svmlight_task(path)


def test_svmlight_missing_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="existing file"):
        svmlight_task(tmp_path / "nope.svm")


def test_l2_logreg_tasks_know_their_optimum() -> None:
    task = get_task("wine_logreg", l2=0.05)
    X, y = task.X_train.numpy(), task.y_train.numpy()
    c = int(y.max()) + 1
    # Gradient descent from a different start reaches the same value: f* is the minimum.
    W, b = np.full((X.shape[1], c), 0.3), np.zeros(c)
    for _ in range(20000):
        f, dW, db = logistic_objective(W, X, y, 0.05, b)
        W, b = W - 0.5 * dW, b - 0.5 * db
    assert abs(f - task.f_star) < 1e-9
    assert task.f_star == logistic_f_star(X, y, c, 0.05, bias=True)
    assert get_task("wine_logreg").f_star is None


def test_digits_mlp_l2_adds_the_weight_penalty_to_loss_and_gradient():
    """digits_mlp(l2=lam): f = CE + (lam / 2)(||W1||^2 + ||W2||^2), biases not penalised."""
    lam = 0.3
    plain, reg = get_task("digits_mlp").model, get_task("digits_mlp", l2=lam).model
    t = get_task("digits_mlp")
    X, y = torch.as_tensor(t.X_train[:40]).double(), torch.as_tensor(t.y_train[:40]).long()
    m = plain.init([0, 1], dtype=torch.float64, device=torch.device("cpu"))
    W1, b1, W2, b2 = m.params
    l0, g0, _ = plain.loss_and_grad(m, X, y)
    l1, g1, _ = reg.loss_and_grad(m, X, y)
    pen = 0.5 * lam * (W1.square().sum((1, 2)) + W2.square().sum((1, 2)))
    torch.testing.assert_close(l1 - l0, pen, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1[0] - g0[0], lam * W1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g1[2] - g0[2], lam * W2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g1[1], g0[1], rtol=0, atol=0)
    torch.testing.assert_close(g1[3], g0[3], rtol=0, atol=0)
    torch.testing.assert_close(reg.penalty(m.params), pen)
    assert "L2 penalty 0.3/2" in get_task("digits_mlp", l2=lam).description
    with pytest.raises(ValueError, match="l2"):
        get_task("digits_mlp", l2=-1.0)
