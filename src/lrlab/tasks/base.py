"""``Task``: one benchmark problem (data, batched model, loss, metric, defaults) + registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_leaves

from lrlab._checks import check_int, check_real
from lrlab.tasks.contract import BatchedModel


def n_rows(data: Any, name: str) -> int:
    """The number of rows of a tensor, or of a tuple/list/dict of tensors sharing it."""
    leaves = tree_leaves(data)
    if not leaves or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in leaves):
        raise ValueError(f"{name} must be a tensor or a tuple/list/dict of tensors with rows")
    lengths = {len(t) for t in leaves}
    if len(lengths) > 1:
        raise ValueError(f"{name} holds tensors of different lengths {sorted(lengths)}")
    return lengths.pop()


@dataclass(frozen=True, eq=False)
class Task:
    """A training problem, self-described.

    ``model`` implements ``lrlab.tasks.BatchedModel``. Inputs and targets are tensors whose first
    dimension indexes the examples, or tuples/lists/dicts of such tensors (all of one length).
    The training objective is ``f(params) = mean_i loss(x_i, y_i) + penalty(params)`` over the
    whole training split; ``f_star`` is its known minimum value (None when unknown). The
    ``test_metric`` of a run is ``model.metric_sum`` over the test split divided by its size
    (``metric_name`` says what it is, e.g. "accuracy"; ``higher_is_better`` its direction).

    ``default_lr`` and ``default_optimizer`` are a setting known to train the task sensibly in
    ``default_steps`` steps of batch ``default_batch_size``.
    """

    name: str
    description: str
    model: BatchedModel
    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    default_steps: int
    default_batch_size: int
    metric_name: str | None
    f_star: float | None = None
    higher_is_better: bool = True
    default_lr: float = 0.1
    default_optimizer: str = "sgd"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("default_steps", self.default_steps, lo=1)
        check_int("default_batch_size", self.default_batch_size, lo=1)
        check_real("default_lr", self.default_lr, 0.0, lo_open=True)
        if not isinstance(self.model, BatchedModel):
            raise ValueError(
                f"model must implement lrlab.tasks.BatchedModel (init, loss_and_grad, loss_sum, "
                f"metric_sum, penalty), got {type(self.model).__name__}"
            )
        for split in ("train", "test"):
            n_x = n_rows(getattr(self, f"X_{split}"), f"X_{split}")
            n_y = n_rows(getattr(self, f"y_{split}"), f"y_{split}")
            if n_x != n_y:
                raise ValueError(
                    f"X_{split} has {n_x} rows but y_{split} has {n_y}: a split's inputs and "
                    "targets must have the same number of rows"
                )
            if n_x == 0:
                raise ValueError("train and test splits must be non-empty")

    @property
    def n_train(self) -> int:
        return n_rows(self.X_train, "X_train")

    @property
    def n_test(self) -> int:
        return n_rows(self.X_test, "X_test")

    def describe(self) -> dict[str, Any]:
        """JSON-compatible summary (no data), e.g. for storing next to a study's results."""
        return {
            "name": self.name,
            "description": self.description,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "default_steps": self.default_steps,
            "default_batch_size": self.default_batch_size,
            "default_lr": self.default_lr,
            "default_optimizer": self.default_optimizer,
            "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "f_star": self.f_star,
        }

    def replace(self, **changes: Any) -> Task:
        """A copy with some fields changed (validated again)."""
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__}
        kw.update(changes)
        return Task(**kw)

    def __repr__(self) -> str:
        return (
            f"Task({self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"steps={self.default_steps}, batch={self.default_batch_size}, "
            f"metric={self.metric_name!r}, f_star={self.f_star})"
        )


_BUILDERS: dict[str, Callable[..., Task]] = {}
_GENERIC = ("default_steps", "default_batch_size", "default_lr", "default_optimizer")
_CACHE: dict[tuple, Task] = {}


def register(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Decorator: register a builder ``fn(**options) -> Task`` under ``name`` (an identifier)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"a task name must be a Python identifier, got {name!r}")

    def deco(fn: Callable[..., Task]) -> Callable[..., Task]:
        if name in _BUILDERS:
            raise TypeError(f"task {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return deco


def task_names() -> list[str]:
    """The names ``get_task`` accepts, sorted."""
    return sorted(_BUILDERS)


def build_options(
    label: str, builder: Callable[..., Any], options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``options`` into the builder's own and the generic ``default_*`` fields.

    ValueError naming ``label`` for an option that is neither (a builder with ``**kwargs``
    takes every non-generic option).
    """
    params = inspect.signature(builder).parameters
    own = set(params)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    bad = sorted(set(options) - own - set(_GENERIC))
    if bad and not takes_any:
        allowed = ", ".join(sorted(own | set(_GENERIC)))
        raise ValueError(f"unknown option(s) {', '.join(bad)} for {label}; allowed: {allowed}")
    build_kw = {k: v for k, v in options.items() if k not in _GENERIC}
    generic = {k: v for k, v in options.items() if k in _GENERIC}
    return build_kw, generic


def get_task(name: str, **overrides: Any) -> Task:
    """Build (or fetch from the in-process cache) the task called ``name``.

    ``name`` is a registered task name or an import spec (``pkg.mod:builder`` or
    ``path/to/file.py:builder``, see ``lrlab.tasks.load_task``).
    ``overrides`` are the builder's own options (e.g. ``n_train`` for synthetic tasks) and the
    generic ``default_steps``, ``default_batch_size``, ``default_lr``, ``default_optimizer``.

    Example: ``get_task("digits_logreg").metric_name`` -> ``"accuracy"``.
    """
    from lrlab.tasks.spec import is_task_spec, load_task

    if is_task_spec(name):
        return load_task(name, **overrides)
    if name not in _BUILDERS:
        raise ValueError(
            f"unknown task {name!r}; known tasks: {', '.join(task_names())} "
            "(or a builder of your own: pkg.mod:builder or path/to/file.py:builder)"
        )
    builder = _BUILDERS[name]
    build_kw, generic = build_options(f"task {name!r}", builder, overrides)
    key = (name, tuple(sorted((k, repr(v)) for k, v in build_kw.items())))
    if key not in _CACHE:
        _CACHE[key] = builder(**build_kw)
    task = _CACHE[key]
    return task.replace(**generic) if generic else task
