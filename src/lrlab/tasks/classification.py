"""Classification tasks on scikit-learn's bundled datasets (nothing is downloaded).

Features are standardised with the training split's mean and standard deviation (constant
features are left centred, not scaled); the split is stratified, 25 % test, ``random_state=0``.
With an L2 penalty the logistic-regression objective has a unique minimum over W, and the task's
``f_star`` is that minimum (float64 L-BFGS, see ``lrlab.tasks.optimum``); without one, the
classes of these datasets are (nearly) separable, the infimum is not attained and ``f_star`` is
None.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from lrlab._checks import check_int, check_real
from lrlab.tasks.base import Task, register
from lrlab.tasks.models import MLP, LinearSoftmax
from lrlab.tasks.optimum import logistic_f_star

_LOADERS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
}


def split_standardise(
    X: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified train/test split (when every class has 2+ rows), then z-scoring by train stats.

    Returns float64 features and int64 labels as torch tensors.
    """
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    strat = y if counts.min() >= 2 else None
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=strat
    )
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd[sd == 0] = 1.0
    as_x = lambda a: torch.from_numpy(((a - mu) / sd).astype(np.float64))  # noqa: E731
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return as_x(Xtr), as_y(ytr), as_x(Xte), as_y(yte)


def _load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, _LOADERS[dataset])()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


@functools.lru_cache(maxsize=16)
def _split(dataset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return split_standardise(*_load(dataset))


@functools.lru_cache(maxsize=16)
def _logreg_f_star(dataset: str, l2: float) -> float:
    Xtr, ytr, _, _ = _split(dataset)
    n_classes = int(ytr.max()) + 1
    return logistic_f_star(Xtr.numpy(), ytr.numpy(), n_classes, l2, bias=True)


def logreg_task(
    name: str,
    source: str,
    split: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    n_classes: int,
    steps: int,
    batch: int,
    lr: float,
    l2: float,
    f_star: float | None = None,
    info: dict[str, Any] | None = None,
) -> Task:
    """A multinomial logistic-regression task (zero init) on a standardised train/test split.

    ``source`` names the data in the description; ``l2`` must already be validated.
    """
    Xtr, ytr, Xte, yte = split
    return Task(
        name=name,
        description=(
            f"multinomial logistic regression on {source} "
            f"({Xtr.shape[1]} standardised features, {n_classes} classes, "
            f"{len(Xtr)} train / {len(Xte)} test rows); zero init"
            + (f"; L2 penalty {l2:g}/2 ||W||^2" if l2 else "")
        ),
        model=LinearSoftmax(Xtr.shape[1], n_classes, l2=l2),
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        default_steps=steps,
        default_batch_size=batch,
        metric_name="accuracy",
        f_star=f_star,
        default_lr=lr,
        info={} if info is None else info,
    )


def _logreg(dataset: str, steps: int, batch: int, lr: float, l2: float) -> Task:
    l2 = check_real("l2", l2, 0.0)
    split = _split(dataset)
    return logreg_task(
        f"{dataset}_logreg",
        f"scikit-learn's {dataset}",
        split,
        n_classes=int(split[1].max()) + 1,
        steps=steps,
        batch=batch,
        lr=lr,
        l2=l2,
        f_star=_logreg_f_star(dataset, l2) if l2 > 0 else None,
    )


@register("digits_logreg")
def digits_logreg(l2: float = 0.0) -> Task:
    return _logreg("digits", 500, 32, 0.5, l2)


@register("wine_logreg")
def wine_logreg(l2: float = 0.0) -> Task:
    return _logreg("wine", 200, 16, 0.5, l2)


@register("iris_logreg")
def iris_logreg(l2: float = 0.0) -> Task:
    return _logreg("iris", 200, 16, 0.5, l2)


@register("breast_cancer_logreg")
def breast_cancer_logreg(l2: float = 0.0) -> Task:
    return _logreg("breast_cancer", 200, 32, 0.5, l2)


@register("digits_mlp")
def digits_mlp(hidden: int = 64, l2: float = 0.0) -> Task:
    hidden = check_int("hidden", hidden, lo=1)
    l2 = check_real("l2", l2, 0.0)
    X, y = _load("digits")
    Xtr, ytr, Xte, yte = split_standardise(X, y)
    return Task(
        name="digits_mlp",
        description=(
            f"one-hidden-layer ReLU MLP (64-{hidden}-10) on scikit-learn's digits, "
            "cross-entropy, torch.nn.Linear-style init from the run's seed (non-convex)"
            + (f"; L2 penalty {l2:g}/2 (||W1||^2 + ||W2||^2)" if l2 else "")
        ),
        model=MLP(Xtr.shape[1], hidden, 10, l2=l2),
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        default_steps=500,
        default_batch_size=32,
        metric_name="accuracy",
        default_lr=0.1,
    )
