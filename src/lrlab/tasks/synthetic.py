"""Synthetic stochastic convex problems with an exactly known optimum value f*.

Both draw a finite training sample (features x ~ N(0, I_d), a planted w* ~ N(0, I_d)) from a
NumPy generator seeded with ``data_seed``; stochasticity comes from minibatch sampling, so
f(x_T) - f* is an exact suboptimality (the setting of the last-iterate analyses of SGD).

- ``abs_regression`` (non-smooth, Lipschitz): y = x . w* + Laplace noise, f(w) = mean |x.w - y|.
  f* is the optimum of the equivalent linear program min sum(u + v) / n s.t. Xw + u - v = y,
  u, v >= 0, solved exactly by HiGHS (``scipy.optimize.linprog``). ``info`` holds the constants
  of SGD's last-iterate bound: D = ||0 - w_min|| (the start is 0; w_min the program's
  minimiser) and G = max_i ||x_i|| (a bound on every minibatch subgradient's norm).
- ``logistic_synthetic`` (smooth, strongly convex): labels y ~ Bernoulli(sigmoid(x . w*)),
  2-class softmax without bias, f(W) = mean CE + (l2 / 2) ||W||^2. f* by L-BFGS in float64 to
  gradient norm 1e-12.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from lrlab._checks import check_int, check_real
from lrlab.tasks.base import Task, register
from lrlab.tasks.models import LinearAbs, LinearSoftmax
from lrlab.tasks.optimum import abs_f_star, logistic_f_star


def _draw(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(d)
    X = rng.standard_normal((n, d))
    return X, w_star, rng


@functools.lru_cache(maxsize=16)
def _abs_data(n_train: int, n_test: int, d: int, noise: float, seed: int):
    X, w, rng = _draw(n_train + n_test, d, seed)
    y = X @ w + rng.laplace(scale=noise, size=n_train + n_test)
    f_star, w_min = abs_f_star(X[:n_train], y[:n_train])
    return X, y, f_star, float(np.linalg.norm(w_min))


@functools.lru_cache(maxsize=16)
def _logistic_data(n_train: int, n_test: int, d: int, l2: float, seed: int):
    X, w, rng = _draw(n_train + n_test, d, seed)
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    y = (rng.random(n_train + n_test) < p).astype(np.int64)
    return X, y, logistic_f_star(X[:n_train], y[:n_train], 2, l2)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@register("abs_regression")
def abs_regression(
    n_train: int = 512, n_test: int = 512, d: int = 10, noise: float = 0.5, data_seed: int = 0
) -> Task:
    n_train = check_int("n_train", n_train, lo=1)
    n_test = check_int("n_test", n_test, lo=1)
    d = check_int("d", d, lo=1)
    noise = check_real("noise", noise, 0.0)
    data_seed = check_int("data_seed", data_seed, lo=0)
    X, y, f_star, D = _abs_data(n_train, n_test, d, noise, data_seed)
    return Task(
        name="abs_regression",
        description=(
            f"least absolute deviations, planted w* in R^{d}, Laplace noise (scale {noise:g}), "
            f"{n_train} training rows; non-smooth, Lipschitz; f* exact by linear programming"
        ),
        model=LinearAbs(d),
        X_train=_t(X[:n_train]),
        y_train=_t(y[:n_train]),
        X_test=_t(X[n_train:]),
        y_test=_t(y[n_train:]),
        default_steps=1000,
        default_batch_size=16,
        metric_name="mean_abs_error",
        higher_is_better=False,
        f_star=f_star,
        default_lr=0.05,
        # the constants of the last-iterate bound (lrlab.theory): the start w = 0 lies at
        # distance D from a minimiser, and every minibatch subgradient mean_i sign_i x_i has
        # norm at most G = max_i ||x_i||
        info={"D": D, "G": float(np.linalg.norm(X[:n_train], axis=1).max())},
    )


@register("logistic_synthetic")
def logistic_synthetic(
    n_train: int = 512, n_test: int = 512, d: int = 10, l2: float = 0.01, data_seed: int = 0
) -> Task:
    n_train = check_int("n_train", n_train, lo=1)
    n_test = check_int("n_test", n_test, lo=1)
    d = check_int("d", d, lo=1)
    l2 = check_real("l2", l2, 0.0, lo_open=True)
    data_seed = check_int("data_seed", data_seed, lo=0)
    X, y, f_star = _logistic_data(n_train, n_test, d, l2, data_seed)
    return Task(
        name="logistic_synthetic",
        description=(
            f"logistic regression (2-class softmax, no bias, L2 {l2:g}) on {n_train} rows of "
            f"planted-model data in R^{d}; smooth, strongly convex; f* by float64 L-BFGS"
        ),
        model=LinearSoftmax(d, 2, bias=False, l2=l2),
        X_train=_t(X[:n_train]),
        y_train=_t(y[:n_train]),
        X_test=_t(X[n_train:]),
        y_test=_t(y[n_train:]),
        default_steps=1000,
        default_batch_size=16,
        metric_name="accuracy",
        f_star=f_star,
        default_lr=0.5,
    )
