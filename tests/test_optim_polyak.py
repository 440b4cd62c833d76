"""SP, TAPS and MOTAPS (``lrlab.optim.polyak``): the rules re-derived by hand in float64,
convergence on a logistic problem with an exact f*, exact resume, and one-line errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lrlab.optim import MOTAPS, SP, TAPS
from lrlab.tasks import get_task

N, D, REG = 24, 4, 1.0 / 24


def logistic_data(n: int = N, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    b = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return A, b


def f_i(w: np.ndarray, A: np.ndarray, b: np.ndarray, i: int) -> tuple[float, np.ndarray]:
    """One example's loss log(1 + exp(-b_i a_i.w)) + reg/2 |w|^2 and its gradient."""
    m = b[i] * (A[i] @ w)
    loss = np.logaddexp(0.0, -m) + 0.5 * REG * (w @ w)
    grad = -b[i] * A[i] / (1.0 + np.exp(m)) + REG * w
    return float(loss), grad


def reference(order, A, b, *, gamma, lam=None, beta=0.0, tau=0.0):
    """TAPS (lam None) or MOTAPS, one example per step, written out as the rule reads."""
    n = len(b)
    w = np.zeros(A.shape[1])
    z = w.copy()
    alpha = np.zeros(n)
    alpha_bar = 0.0
    g_prime = gamma / (1.0 - beta)
    for k, i in enumerate(order, start=1):
        loss, grad = f_i(w, A, b, i)
        c = (loss - alpha[i]) / (grad @ grad + 1.0)
        z = z - g_prime * c * grad
        w = beta * w + (1.0 - beta) * z
        alpha[i] = alpha[i] + g_prime * c
        alpha_bar = alpha_bar + g_prime * c / n
        if k % n == 0:
            if lam is not None:
                tau = (1.0 - lam) * tau + lam * (n / (n + 1.0)) * alpha_bar
            alpha = alpha + g_prime * (tau - alpha_bar)
            alpha_bar = alpha_bar + g_prime * (tau - alpha_bar)
    return w, alpha, alpha_bar, tau


def run_torch(opt_cls, order, A, b, **kw):
    w = torch.zeros(A.shape[1], dtype=torch.float64, requires_grad=True)
    opt = opt_cls([w], **kw)
    At, bt = torch.from_numpy(A), torch.from_numpy(b)
    for i in order:
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-bt[i] * (At[i] @ w)) + 0.5 * REG * w.square().sum()
        loss.backward()
        opt.step(losses=loss.detach(), indices=[int(i)])
    return w.detach().numpy(), opt


SETTINGS = [  # (gamma, lam, beta, tau): lam None is TAPS
    (1.0, None, 0.0, 0.3),
    (0.5, None, 0.5, 0.2),
    (1.0, 0.001, 0.0, 0.0),
    (0.7, 0.5, 0.0, 0.0),
    (0.4, 0.5, 0.3, 0.1),
]


@pytest.mark.parametrize(("gamma", "lam", "beta", "tau"), SETTINGS)
def test_matches_the_rule_written_out_step_by_step(gamma, lam, beta, tau):
    A, b = logistic_data()
    order = np.random.default_rng(1).integers(N, size=4 * N)  # 4 epochs, with replacement
    w_ref, alpha_ref, bar_ref, tau_ref = reference(order, A, b, gamma=gamma, lam=lam,
                                                   beta=beta, tau=tau)
    if lam is None:
        w, opt = run_torch(TAPS, order, A, b, n=N, lr=gamma, target=tau, beta=beta)
    else:
        w, opt = run_torch(MOTAPS, order, A, b, n=N, lr=gamma, lambd=lam, beta=beta,
                           target=tau)
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(opt.alpha.numpy(), alpha_ref, rtol=0, atol=1e-12)
    assert opt.alpha_mean == pytest.approx(bar_ref, abs=1e-12)
    assert opt.target == pytest.approx(tau_ref, abs=1e-12)
    assert opt.alpha_mean == pytest.approx(float(opt.alpha.mean()), abs=1e-12)
    assert opt.param_groups[0]["k"] == 4 * N and opt.param_groups[0]["seen"] == 4 * N
    assert np.abs(alpha_ref).max() > 0.05  # the state has moved
    if lam is not None:
        assert tau_ref != tau


def test_sp_matches_its_rule():
    A, b = logistic_data()
    order = np.random.default_rng(2).integers(N, size=3 * N)
    for s_max in (None, 0.5):
        w_ref = np.zeros(D)
        for i in order:
            loss, grad = f_i(w_ref, A, b, i)
            step = 0.8 * loss / (grad @ grad + 0.01)
            w_ref = w_ref - (step if s_max is None else min(step, s_max)) * grad
        w, opt = run_torch(SP, order, A, b, lr=0.8, s_max=s_max)
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-12)
        assert 0 < opt.effective_lr()[0] <= (np.inf if s_max is None else s_max)
        assert opt.param_groups[0]["k"] == len(order)  # the step counter
    assert SP([torch.zeros(2, requires_grad=True)]).effective_lr() == [0.0]  # before any step


def test_effective_lr_is_the_step_in_use():
    A, b = logistic_data()
    w = torch.zeros(D, dtype=torch.float64, requires_grad=True)
    opt = TAPS([w], n=N, lr=0.5)
    assert opt.effective_lr() == [0.0]
    loss = torch.nn.functional.softplus(-b[3] * (torch.from_numpy(A[3]) @ w))
    loss.backward()
    g = w.grad.clone()
    opt.step(losses=loss.detach(), indices=[3])
    c = float(loss.detach()) / (float(g @ g) + 1.0)
    assert opt.effective_lr()[0] == pytest.approx(0.5 * c, rel=1e-15)
    assert torch.allclose(w.detach(), -0.5 * c * g, rtol=1e-15, atol=0)


# -- convergence on a task with an exact f* ------------------------------------------------


def train_task(opt_cls, epochs: int, n: int, every: int, **kw):
    """Single examples drawn with replacement; the full objective f - f* every ``every``
    epochs."""
    task = get_task("logistic_synthetic", n_train=n, d=5)
    X, y, l2 = task.X_train.double(), task.y_train, task.model.l2
    onehot = torch.nn.functional.one_hot(y, 2).double()
    W = torch.zeros(2, 5, dtype=torch.float64)
    opt = opt_cls([W], n=n, **kw)
    gaps = []
    for k, i in enumerate(np.random.default_rng(0).integers(n, size=epochs * n), start=1):
        z = X[i] @ W.T
        logp = z - torch.logsumexp(z, 0)
        W.grad = torch.outer(logp.exp() - onehot[i], X[i]) + l2 * W
        opt.step(losses=-logp[y[i]] + 0.5 * l2 * W.square().sum(), indices=[int(i)])
        if k % (every * n) == 0:
            full = torch.nn.functional.cross_entropy(X @ W.T, y) + 0.5 * l2 * W.square().sum()
            gaps.append(float(full) - task.f_star)
    return gaps, opt, task.f_star


def test_taps_with_the_optimal_value_converges():
    gaps, _, _ = train_task(TAPS, 100, 64, 10, target=get_task(
        "logistic_synthetic", n_train=64, d=5).f_star)
    assert all(g > -1e-12 for g in gaps)
    assert np.mean(gaps[-3:]) < 0.5 * np.mean(gaps[:3])
    assert gaps[-1] < 0.03


def test_motaps_drives_its_target_to_the_optimal_value():
    _, opt, f_star = train_task(MOTAPS, 40, 128, 40, lambd=0.5)
    assert abs(opt.target - f_star) < 0.05 * f_star


# -- state ---------------------------------------------------------------------------------


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_resume_is_exact(dtype, beta):
    A, b = logistic_data()
    At, bt = torch.from_numpy(A).to(dtype), torch.from_numpy(b).to(dtype)
    order = np.random.default_rng(3).integers(N, size=5 * N)
    batches = [order[j:j + 3] for j in range(0, len(order), 3)]  # batches of 3 (lrlab's rule)

    def fresh():
        w = torch.zeros(D, dtype=dtype, requires_grad=True)
        v = torch.zeros(2, dtype=dtype, requires_grad=True)
        return [w, v], MOTAPS([{"params": [w]}, {"params": [v]}], n=N, lr=0.5, lambd=0.5,
                              beta=beta)

    def train(params, opt, part):
        w, v = params
        for idx in part:
            opt.zero_grad()
            losses = (torch.nn.functional.softplus(-bt[idx] * (At[idx] @ w))
                      + 0.5 * REG * w.square().sum() + (v - 0.1).square().sum())
            losses.mean().backward()
            opt.step(losses=losses.detach(), indices=torch.from_numpy(idx))

    params, opt = fresh()
    train(params, opt, batches)
    # ᾱ is kept as a running scalar; with batches of 3 it must still be the mean of α
    assert opt.alpha_mean == pytest.approx(float(opt.alpha.mean()), rel=1e-9)
    split = len(batches) // 2 + 1  # mid-epoch
    for plain in (False, True):
        p1, first = fresh()
        train(p1, first, batches[:split])
        saved = first.state_dict()
        assert saved["state"][0]["alpha"].dtype == torch.float64
        assert saved["param_groups"][0]["tau"] != 0.0 and saved["param_groups"][0]["k"] == split
        if plain:
            saved = {"state": saved["state"], "param_groups": saved["param_groups"]}
        saved = roundtrip(saved)
        p2, second = fresh()
        with torch.no_grad():
            for a, c in zip(p2, p1, strict=True):
                a.copy_(c)
        second.load_state_dict(saved)
        assert second.alpha.dtype == torch.float64
        assert torch.equal(second.alpha, first.alpha)
        train(p2, second, batches[split:])
        assert all(torch.equal(a, c) for a, c in zip(p2, params, strict=True))
        assert torch.equal(second.alpha, opt.alpha)
        assert (second.target, second.alpha_mean) == (opt.target, opt.alpha_mean)


def test_state_without_target_or_alpha_is_refused():
    w = torch.zeros(D, dtype=torch.float64, requires_grad=True)
    opt = TAPS([w], n=N)
    saved = opt.state_dict()
    no_tau = {"state": saved["state"],
              "param_groups": [{k: v for k, v in g.items() if k != "tau"}
                               for g in saved["param_groups"]]}
    with pytest.raises(ValueError, match=r"lack \['tau'\]"):
        TAPS([w], n=N).load_state_dict(no_tau)
    with pytest.raises(ValueError, match="lacks alpha"):
        TAPS([w], n=N).load_state_dict({"state": {}, "param_groups": saved["param_groups"]})
    with pytest.raises(ValueError, match=rf"state_dict is for n=\[{N}\], but this TAPS has n=5"):
        TAPS([w], n=5).load_state_dict(saved)


# -- bad input -----------------------------------------------------------------------------


def one_step(opt, w, **kw):
    w.grad = torch.ones_like(w)
    opt.step(**kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"indices": [0]}, "needs the batch's per-example losses"),
        ({"losses": 1.0}, "needs the example indices"),
        ({"losses": 1.0, "indices": [N]}, f"example index {N} is out of range"),
        ({"losses": 1.0, "indices": [-1]}, "example index -1 is out of range"),
        ({"losses": torch.ones(2), "indices": [0, N]}, f"example index {N} is out of range"),
        ({"losses": torch.ones(2), "indices": [0]}, "got 2 losses but 1 indices"),
        ({"losses": float("nan"), "indices": [0]}, "non-finite loss"),
        ({"losses": 1.0, "indices": [0.5]}, "indices must be integers"),
        ({"losses": "x", "indices": [0]}, "losses must be a tensor"),
    ],
)
def test_bad_step_input_is_one_line(kw, message):
    w = torch.zeros(D, dtype=torch.float64)
    for cls in (TAPS, MOTAPS):
        with pytest.raises(ValueError, match=message) as err:
            one_step(cls([w], n=N), w, **kw)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("cls", "kw", "message"),
    [
        (TAPS, {"lr": 0.0}, r"lr must be in \(0, inf\)"),
        (TAPS, {"lr": -1.0}, "lr must be"),
        (MOTAPS, {"lr": 0.0}, "lr must be"),
        (SP, {"lr": 0.0}, "lr must be"),
        (MOTAPS, {"lambd": -0.1}, r"lambd must be in \[0, 1\]"),
        (MOTAPS, {"lambd": 1.5}, r"lambd must be in \[0, 1\]"),
        (TAPS, {"beta": 1.0}, r"beta must be in \[0, 1\)"),
        (MOTAPS, {"beta": -0.5}, r"beta must be in \[0, 1\)"),
        (TAPS, {"n": 0}, "n must be"),
        (TAPS, {"target": float("nan")}, "target must be finite"),
        (MOTAPS, {"target": float("inf")}, "target must be finite"),
        (SP, {"eps": 0.0}, "eps must be"),
        (SP, {"s_max": -1.0}, "s_max must be"),
    ],
)
def test_bad_hyperparameters_are_one_line(cls, kw, message):
    w = torch.zeros(D, dtype=torch.float64)
    if cls is not SP:
        kw = {"n": N, **kw}
    with pytest.raises(ValueError, match=message) as err:
        cls([w], **kw)
    assert "\n" not in str(err.value)


def test_sp_needs_losses_but_no_indices():
    w = torch.zeros(D, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the batch's per-example losses"):
        one_step(SP([w]), w)
    one_step(SP([w]), w, losses=torch.tensor([1.0, 2.0]))
    assert torch.allclose(w, torch.full((D,), -1.5 / (D + 0.01), dtype=torch.float64))


@pytest.mark.parametrize("make", [lambda w: TAPS([w], n=N, lr=0.5, target=0.2),
                                  lambda w: MOTAPS([w], n=N, lr=0.5, lambd=0.5, beta=0.3)],
                         ids=["TAPS", "MOTAPS"])
def test_a_step_at_lr_zero_changes_nothing(make):
    """A schedule that ends at 0 (linear decay) takes its last steps at lr 0: the parameters,
    the α of the examples seen and their mean stay where they are."""
    A, b = logistic_data()
    order = np.random.default_rng(1).integers(N, size=2 * N)
    w_start = torch.zeros(D, dtype=torch.float64, requires_grad=True)
    opt = make(w_start)
    At, bt = torch.from_numpy(A), torch.from_numpy(b)

    def step(i):
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-bt[i] * (At[i] @ w_start))
        loss.backward()
        opt.step(losses=loss.detach(), indices=[int(i)])

    for i in order[:N]:
        step(i)
    assert float(opt.alpha.abs().sum()) > 0
    for g in opt.param_groups:
        g["lr"] = 0.0
    w, alpha, mean = w_start.detach().clone(), opt.alpha.clone(), opt.alpha_mean
    for i in order[N:]:
        step(i)
    assert torch.equal(w_start.detach(), w) and torch.equal(opt.alpha, alpha)
    assert opt.alpha_mean == mean


@pytest.mark.parametrize("make", [lambda g: SP(g), lambda g: TAPS(g, n=N),
                                  lambda g: MOTAPS(g, n=N)], ids=["SP", "TAPS", "MOTAPS"])
def test_a_group_with_a_bad_lr_is_refused(make):
    """An lr given per param group (or in a group added later) is checked like the argument."""
    w, v = (torch.zeros(2, requires_grad=True) for _ in range(2))
    with pytest.raises(ValueError, match="lr"):
        make([{"params": [w], "lr": -1.0}])
    opt = make([w])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [v], "lr": float("nan")})


@pytest.mark.parametrize("cls", [SP, TAPS, MOTAPS])
def test_a_parameter_without_gradient_counts_as_a_zero_gradient(cls):
    """In ‖∇f_B‖² a parameter without a gradient (None) counts as 0: the step, α and ᾱ are
    those of the same step with an all-zero gradient, also when no parameter has one."""
    results = []
    for grad in (None, torch.zeros(2, dtype=torch.float64)):
        w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        opt = cls([w], n=N) if cls is not SP else cls([w])
        w.grad = grad
        opt.step(losses=torch.tensor([0.7, 0.2], dtype=torch.float64), indices=[3, 5])
        alpha = opt.alpha.clone() if cls is not SP else None
        results.append((opt.effective_lr(), alpha, getattr(opt, "alpha_mean", None)))
    (lr_none, a_none, m_none), (lr_zero, a_zero, m_zero) = results
    assert lr_none == lr_zero and m_none == m_zero
    assert cls is SP or (torch.equal(a_none, a_zero) and float(a_none.abs().sum()) > 0)


@pytest.mark.parametrize("cls", [SP, TAPS, MOTAPS])
def test_a_closure_gives_the_step_of_its_losses(cls):
    """``step(closure, indices=...)`` with a closure that recomputes the gradient and returns
    the per-example losses is the step of ``step(losses=..., indices=...)``; giving both is
    an error."""
    A, b = logistic_data()
    At, bt = torch.from_numpy(A), torch.from_numpy(b)
    idx = [2, 7, 11]
    ends = []
    for use_closure in (False, True):
        w = torch.zeros(D, dtype=torch.float64, requires_grad=True)
        opt = cls([w], n=N) if cls is not SP else cls([w])

        def closure(opt=opt, w=w):
            opt.zero_grad()
            losses = torch.nn.functional.softplus(-bt[idx] * (At[idx] @ w))
            losses.mean().backward()
            return losses.detach()

        for _ in range(3):
            if use_closure:
                opt.step(closure, indices=idx)
            else:
                opt.step(losses=closure(), indices=idx)
        ends.append(w.detach().clone())
        with pytest.raises(ValueError, match="either losses= or a closure, not both"):
            opt.step(closure, losses=closure(), indices=idx)
    assert torch.equal(ends[0], ends[1]) and float(ends[0].abs().sum()) > 0


def test_without_averaging_no_z_buffer_is_kept():
    """beta = 0 steps w directly: no per-parameter buffer z is spent (memory, state dict)."""
    A, b = logistic_data()
    order = np.random.default_rng(4).integers(N, size=N)
    for beta, has_z in ((0.0, False), (0.5, True)):
        w, opt = run_torch(TAPS, order, A, b, n=N, lr=0.5, beta=beta)
        anchor = opt.param_groups[0]["params"][0]
        assert ("z" in opt.state[anchor]) == has_z
