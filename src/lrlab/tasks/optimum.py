"""Exact optimum values f* of the convex tasks, computed once in float64 on the training split.

- ``abs_f_star``: min_w mean |X w - y| as the linear program min sum(u + v)/n subject to
  X w + u - v = y, u, v >= 0 (HiGHS, exact up to its tolerance), and the minimiser it found.
- ``logistic_f_star``: min over (W, b) of ``logistic_objective`` by L-BFGS from zero to
  gradient norm 1e-12; strongly convex in W when l2 > 0.
"""

from __future__ import annotations

import numpy as np


def abs_f_star(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """min_w mean |X w - y| by the linear program above, and a minimiser w."""
    from scipy.optimize import linprog

    n, d = X.shape
    c = np.concatenate([np.zeros(d), np.full(2 * n, 1.0 / n)])
    A_eq = np.hstack([X, np.eye(n), -np.eye(n)])
    bounds = [(None, None)] * d + [(0, None)] * (2 * n)
    res = linprog(
        c, A_eq=A_eq, b_eq=y, bounds=bounds, method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if not res.success:  # pragma: no cover - HiGHS solves these small LPs
        raise RuntimeError(f"linear program for f* failed: {res.message}")
    w = res.x[:d]
    return float(np.mean(np.abs(X @ w - y))), w


def logistic_objective(
    W: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float, bias: np.ndarray | None = None
):
    """f(W, b) = mean_i CE(softmax(x_i W + b), y_i) + (l2/2)||W||^2 and its gradients (float64).

    Returns ``(f, dW)`` without a bias and ``(f, dW, db)`` with one (the bias is not penalised).
    """
    Z = X @ W if bias is None else X @ W + bias
    Z = Z - Z.max(1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
    n = len(y)
    f = -logp[np.arange(n), y].mean() + 0.5 * l2 * np.sum(W * W)
    P = np.exp(logp)
    P[np.arange(n), y] -= 1.0
    dW = X.T @ P / n + l2 * W
    return (f, dW) if bias is None else (f, dW, P.mean(0))


def logistic_f_star(
    X: np.ndarray, y: np.ndarray, n_classes: int, l2: float, *, bias: bool = False
) -> float:
    """min of ``logistic_objective`` (with an unpenalised bias if ``bias``) by L-BFGS from zero."""
    from scipy.optimize import minimize

    d = X.shape[1]
    nw = d * n_classes

    def fg(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w[:nw].reshape(d, n_classes)
        if not bias:
            f, dW = logistic_objective(W, X, y, l2)
            return f, dW.ravel()
        f, dW, db = logistic_objective(W, X, y, l2, w[nw:])
        return f, np.concatenate([dW.ravel(), db])

    size = nw + (n_classes if bias else 0)
    res = minimize(
        fg, np.zeros(size), jac=True, method="L-BFGS-B",
        options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-16},
    )
    return float(res.fun)
