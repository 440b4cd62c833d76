"""The loss floor f* that robustness gaps are measured from.

``f_star(task)``: the task's own ``f_star`` when it knows it; for an L2-regularised logistic
regression (strongly convex, one minimiser) the minimum of the full training objective
``loss_sum / n + penalty`` found by full-batch L-BFGS in float64; otherwise 0.0, the floor of
a non-negative loss.
"""

from __future__ import annotations

import numpy as np
import torch

_CACHE: dict[str, float] = {}


def reference_minimum(task, *, max_iter: int = 20000) -> float:
    """min over parameters of the task's full training objective, by L-BFGS from the init.

    Only meaningful for convex objectives (elsewhere it is a local minimum).
    Example: ``reference_minimum(get_task("digits_logreg", l2=0.01))``.
    """
    from scipy.optimize import minimize

    model = task.model
    X = task.X_train.to(torch.float64) if task.X_train.is_floating_point() else task.X_train
    y = task.y_train
    shapes = [p.shape for p in model.init([0], torch.float64)]
    sizes = [int(np.prod(s)) for s in shapes]

    def fg(w: np.ndarray) -> tuple[float, np.ndarray]:
        flat = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        params = [c.view(s) for c, s in zip(torch.split(flat, sizes), shapes, strict=True)]
        f = model.loss_sum(params, X, y)[0] / len(X) + model.penalty(params)[0]
        f.backward()
        return float(f.detach()), flat.grad.numpy().copy()

    w0 = torch.cat([p.flatten() for p in model.init([0], torch.float64)]).numpy()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small products: one thread is several times faster here
    try:
        res = minimize(
            fg,
            w0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-15},
        )
    finally:
        torch.set_num_threads(threads)
    return float(res.fun)


def f_star(task_spec: str | dict) -> float:
    """The floor gaps are measured from (see the module text); cached per task spec."""
    from lrlab.tasks import get_task

    spec = {"name": task_spec} if isinstance(task_spec, str) else dict(task_spec)
    key = repr(sorted(spec.items()))
    if key not in _CACHE:
        task = get_task(spec.pop("name"), **spec)
        if task.f_star is not None:
            value = float(task.f_star)
        elif task.name.endswith("_logreg") and getattr(task.model, "l2", 0.0) > 0:
            value = reference_minimum(task)
        else:
            value = 0.0
        _CACHE[key] = value
    return _CACHE[key]
