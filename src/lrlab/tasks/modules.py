"""Any ``torch.nn.Module`` as a batched task: M members train as one ``torch.func`` computation.

``from_module(make_model, train, loss_fn=...)`` returns a ``Task`` whose model,
``ModuleModel``, implements ``lrlab.tasks.BatchedModel`` for the modules ``make_model(seed)``
builds. Member m starts from ``make_model(seeds[m])``; the members' parameters and buffers are
stacked (``[M, ...]``) and one training step is

    grads_m, loss_m, buffers_m = grad(loss_fn(functional_call(module, (p_m, b_m), x_m), y_m))

for every m at once through ``torch.func.vmap``. Buffers (BatchNorm's running statistics) are
cloned inside the step, updated there as the module updates them, and returned, so each member
keeps its own. Training steps run the module in training mode, evaluation in eval mode.

Randomness: member m draws from its own generator, seeded with ``member_torch_seed(seed_m)``
when it is created and consumed in call order, step after step. Dropout (``F.dropout`` and
``F.dropout1d/2d/3d``, hence ``nn.Dropout*`` and attention dropout) is drawn from it exactly as
PyTorch's CPU kernel draws it, so on the CPU a plain loop that calls
``torch.manual_seed(member_torch_seed(seed))`` after building its model reproduces the
member bit for bit. A member's numbers never depend on the other members of its batch.

A module that ``vmap`` cannot run (data-dependent control flow, ``.item()``, in-place updates
of captured tensors, random functions other than dropout, dropout calls that change from step
to step) is detected on its first training step and trained member by member through the same
interface, with one line on the ``lrlab`` logger saying why: the same numbers, slower. In that
mode member m's generator is torch's default generator of the device while m runs, so any
random function follows the member's stream.

Example::

    import torch
    from torch import nn
    from lrlab.tasks import from_module

    def make_model(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))

    task = from_module(make_model, (X, y), loss_fn=nn.functional.cross_entropy,
                       test=(X_test, y_test), metric="accuracy", batch_size=32, steps=200)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
from torch.utils._pytree import tree_leaves, tree_map

from lrlab._checks import check_int, check_real
from lrlab._memory import CreatedBytes
from lrlab.tasks.base import Task, n_rows
from lrlab.tasks.contract import Members, Params

log = logging.getLogger("lrlab")
F = nn.functional

#: Spawn key that separates a member's torch seed from its data-order seed.
_TORCH_SEED_KEY = 0x6C72


def member_torch_seed(seed: int) -> int:
    """The seed of member ``seed``'s torch generator (its dropout and other random draws).

    A 32-bit value mixed from ``seed`` (NumPy ``SeedSequence``), so it differs from the seed a
    model factory typically passes to ``torch.manual_seed`` for the initial weights.
    """
    seq = np.random.SeedSequence(int(seed), spawn_key=(_TORCH_SEED_KEY,))
    return int(seq.generate_state(1, np.uint32)[0])


# ----------------------------------------------------------------------------- dropout


def _feature_dims(func: Callable, dim: int) -> int:
    """How many leading dimensions a dropout function draws one value for (all: -1)."""
    if func in (F.dropout, torch.dropout, torch.dropout_):
        return -1
    if func is F.dropout1d:
        return 2 if dim == 3 else 1
    if func is F.dropout3d:
        return 2 if dim == 5 else 1
    return 2  # F.dropout2d (any rank, as PyTorch treats it) and torch.feature_dropout


_DROPOUTS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.dropout, torch.dropout_,
             torch.feature_dropout, torch.feature_dropout_}
_IN_PLACE = {torch.dropout_, torch.feature_dropout_}


def _dropout_args(func: Callable, args: tuple, kwargs: dict) -> tuple[torch.Tensor, float, bool,
                                                                       bool]:
    names = ("input", "p", "training", "inplace")
    defaults = {"p": 0.5, "training": True, "inplace": func in _IN_PLACE}
    got = dict(zip(names, args, strict=False)) | kwargs
    return (got["input"], float(got.get("p", defaults["p"])),
            bool(got.get("training", defaults["training"])),
            bool(got.get("inplace", defaults["inplace"])))


class _Dropout(TorchFunctionMode):
    """Runs dropout with noise from ``source(shape, p, dtype, device)``, as ATen's CPU kernel
    does: noise ~ Bernoulli(1 - p) / (1 - p) of the input's shape (one value per channel for
    feature dropout), output = input * noise. Other functions run unchanged."""

    def __init__(self, source: Callable[[tuple[int, ...], float, torch.dtype, torch.device],
                                        torch.Tensor]) -> None:
        super().__init__()
        self.source = source

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _DROPOUTS:
            return func(*args, **kwargs)
        x, p, training, inplace = _dropout_args(func, args, kwargs)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        if not training or p == 0.0 or x.numel() == 0:
            return x
        if p == 1.0:
            return x.mul_(0.0) if inplace else x * 0.0
        k = _feature_dims(func, x.dim())
        shape = tuple(x.shape) if k < 0 else tuple(x.shape[:k]) + (1,) * (x.dim() - k)
        noise = self.source(shape, p, x.dtype, x.device)
        return x.mul_(noise) if inplace else x * noise


def _draw(gen: torch.Generator | None, shape, p, dtype, device) -> torch.Tensor:
    noise = torch.empty(shape, dtype=dtype, device=device)
    return noise.bernoulli_(1.0 - p, generator=gen).div_(1.0 - p)


class _Replay:
    """Hands out pre-drawn noise in call order, checking each call matches the plan."""

    def __init__(self, plan: list[tuple], noises: Sequence[torch.Tensor]) -> None:
        self.plan, self.noises, self.k = plan, noises, 0

    def __call__(self, shape, p, dtype, device) -> torch.Tensor:
        if self.k >= len(self.plan) or self.plan[self.k] != (shape, p, dtype):
            raise _PlanChanged("its dropout calls change from step to step")
        self.k += 1
        return self.noises[self.k - 1]


class _PlanChanged(RuntimeError):
    pass


@contextlib.contextmanager
def _as_default(gen: torch.Generator, device: torch.device):
    """Make ``gen``'s state the device's default generator's while the block runs."""
    default = (torch.cuda.default_generators[device.index or 0] if device.type == "cuda"
               else torch.default_generator)
    saved = default.get_state()
    default.set_state(gen.get_state())
    try:
        yield
    finally:
        gen.set_state(default.get_state())
        default.set_state(saved)


class _Streams:
    """Per-member generators and the dropout plan (calls of one training step)."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.gens = [torch.Generator(device=device).manual_seed(member_torch_seed(s))
                     for s in seeds]
        self.plan: list[tuple] | None = None

    def states(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.gens]

    def restore(self, states: list[torch.Tensor]) -> None:
        for g, s in zip(self.gens, states, strict=True):
            g.set_state(s)

    def noises(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """One [M, *shape] tensor per planned call; member m's from its own generator."""
        if not self.plan:
            return ()
        per_member = [[_draw(g, shape, p, dtype, device) for shape, p, dtype in self.plan]
                      for g in self.gens]
        return tuple(torch.stack(col) for col in zip(*per_member, strict=True))


# ----------------------------------------------------------------------------- the model


def _call(module: nn.Module, tensors: dict[str, torch.Tensor], x: Any) -> Any:
    if isinstance(x, dict):
        return functional_call(module, tensors, (), x)
    if isinstance(x, (tuple, list)):
        return functional_call(module, tensors, tuple(x))
    return functional_call(module, tensors, (x,))


_WHAT = {"step": "training step", "evaluate": "evaluation"}


def _first_line(exc: BaseException, limit: int = 140) -> str:
    """The exception's first sentence, at most ``limit`` characters."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text.split(". ")[0]
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}".strip()


class ModuleModel:
    """``BatchedModel`` over the modules a factory builds (see the module docstring).

    ``loss_fn(outputs, targets)`` is the mean loss of a batch (a scalar tensor, as
    ``F.cross_entropy`` returns); ``metric_fn(outputs, targets)`` the mean metric (None: the
    loss). ``vmap=False`` trains member by member from the start.
    """

    def __init__(
        self,
        make_model: Callable[[int], nn.Module],
        loss_fn: Callable[[Any, Any], torch.Tensor],
        metric_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        *,
        vmap: bool = True,
    ) -> None:
        self.make_model, self.loss_fn = make_model, loss_fn
        self.metric_fn = metric_fn or loss_fn
        probe = self.build(0)
        self.param_names = [n for n, p in probe.named_parameters() if p.requires_grad]
        self.buffer_names = [n for n, p in probe.named_parameters() if not p.requires_grad]
        self.buffer_names += [n for n, _ in probe.named_buffers()]
        self.shapes = self._shapes(probe)
        if not self.param_names:
            raise ValueError("the module built by make_model has no trainable parameters")
        #: "vmap" or "members" once decided (on the first training step); why, if "members".
        self.mode: str | None = None if vmap else "members"
        self.reason = None if vmap else "vmap=False"
        self.row_cost: int | None = None
        #: Whether the training step and the evaluation run through ``torch.compile`` (set by
        #: the trainer for a run: ``run_batched(compile=True)``).
        self.compile = False
        self._uncompiled: set[str] = set()  # kinds ("step", "evaluate") that cannot compile
        self._templates: dict[tuple, nn.Module] = {}
        self._steps: dict[tuple, Callable] = {}

    def build(self, seed: int) -> nn.Module:
        """``make_model(seed)``, checked to be a module with this model's parameter shapes."""
        module = self.make_model(int(seed))
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"make_model({seed}) must return a torch.nn.Module, got {type(module).__name__}"
            )
        if hasattr(self, "shapes"):
            shapes = self._shapes(module)
            if shapes != self.shapes:
                diff = next(n for n in sorted(set(shapes) | set(self.shapes))
                            if shapes.get(n) != self.shapes.get(n))
                raise ValueError(
                    f"members must have the same parameter shapes: {diff} is "
                    f"{self.shapes.get(diff)} for seed 0 but {shapes.get(diff)} for seed {seed}"
                )
        return module

    @staticmethod
    def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
        named = list(module.named_parameters()) + list(module.named_buffers())
        return {n: tuple(t.shape) for n, t in named}

    def _template(self, device: torch.device, dtype: torch.dtype) -> nn.Module:
        key = (str(device), dtype)
        if key not in self._templates:
            self._templates[key] = self.build(0).to(device=device, dtype=dtype)
        return self._templates[key]

    # -- BatchedModel -------------------------------------------------------------------

    def init(self, seeds: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> Members:
        modules = [self.build(s).to(dtype=dtype) for s in seeds]
        tensors = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in modules]

        def stack(names: list[str]) -> list[torch.Tensor]:
            return [torch.stack([t[n].detach() for t in tensors]).to(device) for n in names]

        self._template(device, dtype)
        return Members(
            params=stack(self.param_names),
            buffers=stack(self.buffer_names),
            seeds=tuple(int(s) for s in seeds),
            rng=_Streams(seeds, device),
        )

    def penalty(self, params: Params) -> torch.Tensor:
        return params[0].new_zeros(params[0].shape[0])

    def loss_and_grad(self, members: Members, X: Any, y: Any):
        if self.mode == "members":
            return self._members_step(members, X, y)
        states = members.rng.states() if self.mode is None else None
        try:
            out = self._vmap_step(members, X, y)
        except Exception as exc:  # noqa: BLE001 - any failure of vmap means: train one by one
            if self.mode == "vmap" and not isinstance(exc, _PlanChanged):
                raise
            if states is not None:
                members.rng.restore(states)
            members.rng.plan = None
            out = self._members_step(members, X, y)
            self.mode, self.reason = "members", _first_line(exc)
            log.warning(
                "the module cannot be trained batched with torch.func.vmap (%s); "
                "training it member by member instead: same results, slower", self.reason
            )
            return out
        self.mode = "vmap"
        return out

    def loss_sum(self, members: Members, X: Any, y: Any) -> torch.Tensor:
        return self._evaluate(members, X, y, self.loss_fn)

    def metric_sum(self, members: Members, X: Any, y: Any) -> torch.Tensor:
        return self._evaluate(members, X, y, self.metric_fn)

    # -- steps --------------------------------------------------------------------------

    def _member_loss(self, params, buffers, x, y, noises, plan, module):
        tensors = dict(zip(self.param_names, params, strict=True))
        fresh = {n: b.clone() for n, b in zip(self.buffer_names, buffers, strict=True)}
        # Without planned dropout calls no mode is needed: any random call then fails vmap
        # (randomness="error"), and the first step falls back to member by member.
        with _Dropout(_Replay(plan, noises)) if plan else contextlib.nullcontext():
            out = _call(module, tensors | fresh, x)
        loss = self.loss_fn(out, y)
        return loss, (loss.detach(), tuple(fresh[n] for n in self.buffer_names))

    def _plan(self, members: Members, X: Any, module: nn.Module) -> list[tuple]:
        """The dropout calls of one training step, from member 0 run alone on its batch."""
        plan: list[tuple] = []
        scratch = torch.Generator(device=members.params[0].device).manual_seed(0)

        def record(shape, p, dtype, device):
            plan.append((shape, p, dtype))
            return _draw(scratch, shape, p, dtype, device)

        tensors = {n: t[0] for n, t in zip(self.param_names, members.params, strict=True)}
        tensors |= {n: t[0].clone() for n, t in zip(self.buffer_names, members.buffers,
                                                     strict=True)}
        with torch.no_grad(), _Dropout(record):
            _call(module, tensors, tree_map(lambda t: t[0], X))
        return plan

    def _vmap_step(self, members: Members, X: Any, y: Any):
        module = self._template(members.params[0].device, members.params[0].dtype).train()
        streams: _Streams = members.rng
        if streams.plan is None:
            streams.plan = self._plan(members, X, module)
        noises = streams.noises(members.params[0].device)
        plan = streams.plan

        def build():
            def fn(p, b, x, t, n):
                return self._member_loss(p, b, x, t, n, plan, module)

            return torch.func.vmap(grad(fn, has_aux=True), randomness="error")

        with torch.enable_grad():
            grads, (loss, buffers) = self._run(
                ("step", tuple(plan), id(module)), build,
                tuple(members.params), tuple(members.buffers), X, y, noises,
            )
        return loss, list(grads), list(buffers)

    def _run(self, key: tuple, build: Callable[[], Callable], *args: Any,
             dynamic: bool = False) -> Any:
        """``build()(*args)``, the function built once per ``key``; through ``torch.compile``
        when ``self.compile`` is set. A function that fails on its first compiled call runs
        uncompiled from then on, with every function of its kind (one log line)."""
        # Under a dispatch mode (the trainer's memory probe) compiled code would run eagerly
        # and be marked never to compile: it takes the uncompiled function.
        compiled = (self.compile and key[0] not in self._uncompiled
                    and not _get_current_dispatch_mode_stack())
        first = (*key, True) not in self._steps
        if (*key, compiled) not in self._steps:
            fn = build()
            self._steps[(*key, compiled)] = (torch.compile(fn, dynamic=dynamic) if compiled
                                             else fn)
        if not compiled:
            return self._steps[(*key, False)](*args)
        try:
            return self._steps[(*key, True)](*args)
        except Exception as exc:  # noqa: BLE001 - what cannot compile runs uncompiled
            if not first:
                raise
            self._uncompiled.add(key[0])
            log.warning("torch.compile cannot compile the %s (%s); running it uncompiled: "
                        "same results, slower", _WHAT[key[0]], _first_line(exc))
        return self._run(key, build, *args)

    def _members_step(self, members: Members, X: Any, y: Any):
        device = members.params[0].device
        module = self._template(device, members.params[0].dtype).train()
        losses, grads, buffers = [], [], []
        for m, gen in enumerate(members.rng.gens):
            leaves = [p[m].detach().requires_grad_(True) for p in members.params]
            fresh = [b[m].clone() for b in members.buffers]
            tensors = dict(zip(self.param_names, leaves, strict=True))
            tensors |= dict(zip(self.buffer_names, fresh, strict=True))
            with torch.enable_grad(), _as_default(gen, device):
                out = _call(module, tensors, tree_map(lambda t, m=m: t[m], X))
                loss = self.loss_fn(out, tree_map(lambda t, m=m: t[m], y))
                g = torch.autograd.grad(loss, leaves, allow_unused=True)
            losses.append(loss.detach())
            grads.append([torch.zeros_like(p) if d is None else d for p, d in zip(leaves, g,
                                                                                  strict=True)])
            buffers.append(fresh)
        stack = lambda cols: [torch.stack(c) for c in zip(*cols, strict=True)]  # noqa: E731
        return torch.stack(losses), stack(grads), stack(buffers) if self.buffer_names else []

    def _evaluate(self, members: Members, X: Any, y: Any, fn: Callable) -> torch.Tensor:
        """Per-member sum over the rows of (X, y) of ``fn`` (a batch mean) in eval mode."""
        module = self._template(members.params[0].device, members.params[0].dtype).eval()
        rows = n_rows(X, "X")

        def member(params, buffers, x, t):
            tensors = dict(zip(self.param_names, params, strict=True))
            tensors |= dict(zip(self.buffer_names, buffers, strict=True))
            return fn(_call(module, tensors, x), t)

        def build():
            return vmap(member, in_dims=(0, 0, None, None))

        try:
            if self.mode != "members":
                # Evaluation chunks differ in rows: compiled for any number of them.
                out = self._run(("evaluate", fn, id(module)), build,
                                tuple(members.params), tuple(members.buffers), X, y,
                                dynamic=True)
                return out.to(members.params[0].dtype) * rows
        except Exception:  # noqa: BLE001 - evaluation falls back like training does
            pass
        out = [member([p[m] for p in members.params], [b[m] for b in members.buffers], X, y)
               for m in range(members.size)]
        return torch.stack(out).to(members.params[0].dtype) * rows


# ----------------------------------------------------------------------------- the task


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest output is the target class."""
    return (outputs.argmax(-1) == targets).to(outputs.dtype).mean()


METRICS = {"accuracy": (accuracy, True)}


def _as_batch(data: Any, name: str) -> Any:
    """A map-style ``Dataset`` collated into one batch; tensors and pytrees pass through."""
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.Tensor):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f"{name} must be a map-style Dataset with __len__") from None
        if n == 0:
            raise ValueError(f"{name} is an empty Dataset")
        from torch.utils.data import default_collate

        return default_collate([data[i] for i in range(n)])
    return data


def _split(data: Any, batch_fn: Callable | None, name: str) -> tuple[Any, Any]:
    batch = _as_batch(data, name)
    if batch_fn is not None:
        batch = batch_fn(batch)
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(
            f"{name} must give (inputs, targets); pass batch_fn=lambda batch: (inputs, targets) "
            "for batches of another structure"
        )
    inputs, targets = batch
    for part, what in ((inputs, "inputs"), (targets, "targets")):
        if not all(isinstance(t, torch.Tensor) for t in tree_leaves(part)):
            raise ValueError(f"{name} {what} must be tensors (or tuples/lists/dicts of tensors)")
    n_x, n_y = n_rows(inputs, f"{name} inputs"), n_rows(targets, f"{name} targets")
    if n_x != n_y:
        raise ValueError(f"{name} has {n_x} input rows but {n_y} target rows")
    return inputs, targets


def from_module(
    make_model: Callable[[int], nn.Module],
    train: Any,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    test: Any = None,
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
    metric: str | Callable[[Any, Any], torch.Tensor] | None = None,
    higher_is_better: bool | None = None,
    batch_size: int = 32,
    steps: int = 500,
    lr: float = 0.1,
    optimizer: str = "sgd",
    name: str = "module",
    description: str | None = None,
    vmap: bool = True,
) -> Task:
    """A ``Task`` that trains the modules ``make_model(seed)`` builds, batched by ``torch.func``.

    Args:
      make_model: ``seed -> nn.Module``; every member is built by it from its own seed, so it
        should seed its initialisation (``torch.manual_seed(seed)``). All members must have
        the same parameter and buffer shapes.
      train: the training data, ``(inputs, targets)`` (tensors whose first dimension indexes
        the examples, or tuples/lists/dicts of them: a tuple or list is passed to the module
        as positional arguments, a dict as keyword arguments), or a map-style ``Dataset``
        (collated once with ``default_collate``).
      loss_fn: ``(outputs, targets) -> scalar``, the mean loss of a batch (as
        ``F.cross_entropy`` with its default ``reduction="mean"``).
      test: the held-out data, in the same form (None: the training data).
      batch_fn: maps a collated batch of any structure to ``(inputs, targets)``; it is
        applied once to the whole split, so it must act row by row (select, reshape, cast).
      metric: ``"accuracy"`` or ``(outputs, targets) -> scalar`` (a batch mean); None: the
        loss on the test data.
      higher_is_better: the metric's direction (default: True for ``"accuracy"``, False for
        the loss, True for a callable).
      batch_size, steps, lr, optimizer: the task's defaults.
      vmap: False trains member by member (for modules known not to work under ``vmap``).

    Returns:
      A ``Task`` for ``lrlab.train.run_batched`` and ``lrlab sweep``.

    Raises ``ValueError`` (one line) for a factory that does not return a module or whose
    members differ in shape, data of mismatched lengths, or a loss that is not a scalar.
    """
    batch_size = check_int("batch_size", batch_size, lo=1)
    steps = check_int("steps", steps, lo=1)
    lr = check_real("lr", lr, 0.0, lo_open=True)
    if not callable(make_model):
        raise ValueError(f"make_model must be callable (seed -> nn.Module), got {make_model!r}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable (outputs, targets) -> scalar, got {loss_fn!r}")
    X_train, y_train = _split(train, batch_fn, "train")
    X_test, y_test = (X_train, y_train) if test is None else _split(test, batch_fn, "test")
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        metric_name, (metric_fn, better) = metric, METRICS[metric]
    elif metric is None:
        metric_name, metric_fn, better = "test_loss", None, False
    elif callable(metric):
        metric_name, metric_fn, better = getattr(metric, "__name__", "metric"), metric, True
    else:
        raise ValueError(f"metric must be 'accuracy', a callable or None, got {metric!r}")
    model = ModuleModel(make_model, loss_fn, metric_fn, vmap=vmap)
    model.row_cost = _probe(model, X_train, y_train)
    module = model.build(0)
    return Task(
        name=name,
        description=description or f"{type(module).__name__} built by {_qualname(make_model)}",
        model=model,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        default_steps=steps,
        default_batch_size=batch_size,
        metric_name=metric_name,
        higher_is_better=better if higher_is_better is None else bool(higher_is_better),
        default_lr=lr,
        default_optimizer=optimizer,
        info={"parameters": sum(int(np.prod(s)) for n, s in model.shapes.items()
                                if n in model.param_names)},
    )


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _probe(model: ModuleModel, X: Any, y: Any) -> int:
    """Check the loss on a few rows (eval mode); return the elements one more row creates."""
    floats = [t.dtype for t in tree_leaves(X) if t.is_floating_point()]
    module = model.build(0).to(dtype=floats[0] if floats else torch.float32).eval()
    counts = []
    for rows in sorted({min(2, n_rows(X, "inputs")), min(4, n_rows(X, "inputs"))}):
        x, t = tree_map(lambda a, r=rows: a[:r], X), tree_map(lambda a, r=rows: a[:r], y)
        with torch.no_grad(), CreatedBytes() as counter:
            loss = model.loss_fn(_call(module, {}, x), t)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(
                f"loss_fn must return a scalar tensor (the batch mean), got {shape}; "
                "use reduction='mean'"
            )
        counts.append((rows, counter.elements))
    if len(counts) == 1:
        return max(1, counts[0][1] // counts[0][0])
    (r0, c0), (r1, c1) = counts
    return max(1, (c1 - c0) // (r1 - r0))
