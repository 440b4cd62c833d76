r"""Schedule-Free SGD, Schedule-Free AdamW and a Schedule-Free wrapper over any base optimizer.

Schedule-Free keeps three sequences: the base iterate :math:`z`, the running average :math:`x`
(the point to evaluate and ship) and the gradient point :math:`y` between them:

.. math::
    y_k = (1-\beta)\,z_k + \beta\,x_k,\qquad
    z_{k+1} = z_k - \gamma_k\, \hat g(y_k),\qquad
    x_{k+1} = (1-c_{k+1})\,x_k + c_{k+1}\,z_{k+1},

with the averaging weight

.. math::
    c_{k+1} = \frac{w_k}{\sum_{i\le k} w_i},\qquad
    w_k = (k+1)^r\,\big(\max_{i\le k}\gamma_i\big)^{p}\quad(p = \text{weight\_lr\_power}).

In train mode the parameters hold :math:`y`; :meth:`eval` moves them to :math:`x` and
:meth:`train` back (only the interpolation changes: :math:`z` is kept in the state). Call
``opt.train()`` before training steps and ``opt.eval()`` before evaluating or saving the model;
``step`` in eval mode raises ``RuntimeError``. A new optimizer starts in train mode (before the
first step, x = y = z). The mode (``train_mode``), the step counter ``k``, the weight sum and
``max lr`` are entries of the param groups, so the standard ``state_dict()`` carries them.

``lr`` is the step itself (:math:`\gamma_k` = ``lr`` times the built-in linear warm-up factor
:math:`\min(1, (k+1)/\text{warmup\_steps})`). No decaying schedule is needed, but an lrlab schedule
applies through :class:`lrlab.torchx.ScheduleLR` or any ``LRScheduler`` (it then multiplies the
warm-up factor; for a warm-up, use either one, not both). :meth:`effective_lr` reports
:math:`\gamma_k` of the last step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from lrlab._checks import check_int, check_real
from lrlab.optim._base import ValidatedOptimizer, check_saved_groups, evaluate
from lrlab.optim._foreach import blocks, into, with_grad
from lrlab.optim._validate import check_betas, check_lr

__all__ = ["AdamWScheduleFree", "SGDScheduleFree", "ScheduleFreeWrapper"]

_COUNTERS = dict(k=0, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)
_WRAPPER_COUNTERS = dict(sf_k=0, sf_weight_sum=0.0, sf_lr_max=0.0, scheduled_lr=0.0)
# the wrapper's per-parameter entries in the state dict (which it shares with the base's)
_PREFIX = "sf_"


def _averaging_weight(
    group: dict[str, Any], lr: float, r: float, power: float, prefix: str = ""
) -> float:
    """Advance the group's weight sum with step size ``lr`` and return c_{k+1} (the counters
    are the group's ``k``, ``lr_max``, ``weight_sum``, each name preceded by ``prefix``)."""
    k = group[prefix + "k"]
    lr_max = group[prefix + "lr_max"] = max(lr, group[prefix + "lr_max"])
    weight = (k + 1) ** r * lr_max**power
    total = group[prefix + "weight_sum"] = group[prefix + "weight_sum"] + weight
    return weight / total if total > 0 else 0.0


class _ScheduleFree(ValidatedOptimizer):
    """train()/eval() switching and the mode check shared by the Schedule-Free optimizers. The
    mode is the ``train_mode`` entry of every param group."""

    GLOBALS = ("train_mode",)

    def _from_scalars(self, scalars: dict[str, Any], index: int) -> dict[str, Any]:
        return {"train_mode": bool(scalars["train_mode"])}

    def _interpolation(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    @property
    def train_mode(self) -> bool:
        """True when the parameters hold the gradient point y, False when they hold x."""
        return bool(self.param_groups[0]["train_mode"])

    def _move(self, to_train: bool) -> None:
        for group in self.param_groups:
            beta = self._interpolation(group)
            params = [p for p in group["params"] if "z" in self.state.get(p, {})]
            if not params:
                continue
            zs = [self.state[p]["z"] for p in params]
            torch._foreach_lerp_(params, zs, 1.0 - beta if to_train else 1.0 - 1.0 / beta)

    @torch.no_grad()
    def train(self) -> None:
        """Switch the parameters to the gradient point y (no-op in train mode)."""
        if not self.train_mode:
            self._move(to_train=True)
            self._sync({"train_mode": True})

    @torch.no_grad()
    def eval(self) -> None:
        """Switch the parameters to the averaged point x (no-op in eval mode)."""
        if self.train_mode:
            self._move(to_train=False)
            self._sync({"train_mode": False})

    def _require_train_mode(self) -> None:
        if not self.train_mode:
            raise RuntimeError(
                f"{type(self).__name__}.step called in eval mode: the parameters hold the "
                "averaged point x; call optimizer.train() before training steps and "
                "optimizer.eval() before evaluation"
            )

    def effective_lr(self) -> list[float]:
        """Per group, the step size gamma_k (``lr`` times warm-up) of the last step."""
        return [float(g["scheduled_lr"]) for g in self.param_groups]


class _BuiltInScheduleFree(_ScheduleFree):
    GROUP_STATE = tuple(_COUNTERS)

    def _check_common(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        check_real("weight_decay", group["weight_decay"], 0.0)
        check_int("warmup_steps", group["warmup_steps"], 0)
        check_real("r", group["r"], 0.0)
        check_real("weight_lr_power", group["weight_lr_power"], 0.0)

    def _schedule(self, group: dict[str, Any]) -> tuple[float, float]:
        """Step size gamma_k (with warm-up) and averaging weight c_{k+1} for this step."""
        k, warmup = group["k"], group["warmup_steps"]
        lr = check_lr(group["lr"]) * ((k + 1) / warmup if k < warmup else 1.0)
        group["scheduled_lr"] = lr
        return lr, _averaging_weight(group, lr, group["r"], group["weight_lr_power"])

    def _step_group(self, group: dict[str, Any], lr: float, c: float) -> None:
        """Update the group's parameters with step size ``lr`` and averaging weight ``c``."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step (train mode only)."""
        self._require_train_mode()
        loss = evaluate(closure)
        for group in self.param_groups:
            self._step_group(group, *self._schedule(group))
            group["k"] += 1
        return loss


class SGDScheduleFree(_BuiltInScheduleFree):
    r"""Schedule-Free SGD.

    With momentum (interpolation) :math:`\beta`, weight decay :math:`\lambda` taken at y, and
    :math:`g_k = \nabla f(y_k) + \lambda y_k`, one step updates (in place, on y):

    .. math::
        y \leftarrow (1-c)\,y + c\,z + \gamma\,(\beta(1-c) - 1)\,g,\qquad
        z \leftarrow z - \gamma\, g

    (equal to the x/y/z recurrence of the module docstring). With ``weight_decay`` the gradient
    buffers are overwritten by :math:`g_k`.

    Args:
        params: parameters or param groups (every option may differ per group).
        lr: step size gamma, >= 0 (default 1.0; multiplied by the warm-up factor).
        momentum: interpolation beta, in (0, 1) (default 0.9).
        weight_decay: L2 decay lambda evaluated at y, >= 0 (default 0.0).
        warmup_steps: linear warm-up length, integer >= 0 (default 0).
        r: polynomial power of the averaging weights, >= 0 (default 0.0).
        weight_lr_power: power of max lr in the averaging weights, >= 0 (default 2.0).

    State: per parameter ``z``; per param group ``k``, ``weight_sum``, ``lr_max``,
    ``scheduled_lr`` and the mode ``train_mode``.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024, arXiv:2405.15682.

    Example:
        >>> import torch
        >>> from lrlab.optim import SGDScheduleFree
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = SGDScheduleFree(model.parameters(), lr=1.0, warmup_steps=100)
        >>> opt.train()
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.eval()  # the parameters now hold x: evaluate or save here
        >>> opt.train_mode
        False
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
            r=r, weight_lr_power=weight_lr_power, train_mode=True, **_COUNTERS,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        self._check_common(group)
        check_real("momentum", group["momentum"], 0.0, 1.0, lo_open=True, hi_open=True)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def _step_group(self, group: dict[str, Any], lr: float, c: float) -> None:
        params = with_grad(group)
        if params:
            grads = [p.grad for p in params]
            zs = [st["z"] for st in self._states(params, copies=("z",))]
            decay = group["weight_decay"]
            for y_c, g_c, z_c in blocks(params, grads, zs):
                if decay != 0:
                    torch._foreach_add_(g_c, y_c, alpha=decay)
                torch._foreach_lerp_(y_c, z_c, c)
                torch._foreach_add_(y_c, g_c, alpha=lr * (group["momentum"] * (1 - c) - 1))
                torch._foreach_add_(z_c, g_c, alpha=-lr)


class AdamWScheduleFree(_BuiltInScheduleFree):
    r"""Schedule-Free AdamW.

    With betas :math:`(\beta_1, \beta_2)` (:math:`\beta_1` is the interpolation), step
    :math:`k = 0, 1, \dots`:

    .. math::
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\qquad
        u = \frac{g}{\sqrt{v/(1-\beta_2^{k+1})} + \epsilon} + \lambda\, y,

        y \leftarrow (1-c)\,y + c\,z + \gamma\,(\beta_1(1-c) - 1)\,u,\qquad
        z \leftarrow z - \gamma\, u.

    The gradient buffers are overwritten by the preconditioned :math:`u` (saves memory).

    Args:
        params: parameters or param groups (every option may differ per group).
        lr: step size gamma, >= 0 (default 0.0025; multiplied by the warm-up factor).
        betas: (beta1, beta2); beta1 in (0, 1), beta2 in [0, 1) (default (0.9, 0.999)).
        eps: denominator offset, >= 0 (default 1e-8).
        weight_decay: decoupled decay lambda evaluated at y, >= 0 (default 0.0).
        warmup_steps: linear warm-up length, integer >= 0 (default 0).
        r: polynomial power of the averaging weights, >= 0 (default 0.0).
        weight_lr_power: power of max lr in the averaging weights, >= 0 (default 2.0).

    State: per parameter ``z`` and ``exp_avg_sq`` (v); per param group ``k``, ``weight_sum``,
    ``lr_max``, ``scheduled_lr`` and the mode ``train_mode``.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024, arXiv:2405.15682.

    Example:
        >>> import torch
        >>> from lrlab.optim import AdamWScheduleFree
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = AdamWScheduleFree(model.parameters(), lr=2.5e-3, warmup_steps=100)
        >>> opt.train()
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.eval()  # the parameters now hold x: evaluate or save here
        >>> opt.train_mode
        False
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps,
            r=r, weight_lr_power=weight_lr_power, train_mode=True, **_COUNTERS,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        self._check_common(group)
        group["betas"] = check_betas(group["betas"], beta1_open=True)
        check_real("eps", group["eps"], 0.0)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _step_group(self, group: dict[str, Any], lr: float, c: float) -> None:
        beta1, beta2 = group["betas"]
        bc2 = 1.0 - beta2 ** (group["k"] + 1)
        params = with_grad(group)
        if params:
            grads = [p.grad for p in params]
            states = self._states(params, zeros=("exp_avg_sq",), copies=("z",))
            zs = [st["z"] for st in states]
            sqs = [st["exp_avg_sq"] for st in states]
            eps, decay = group["eps"], group["weight_decay"]
            for y_c, g_c, v_c, z_c in blocks(params, grads, sqs, zs):
                torch._foreach_mul_(v_c, beta2)
                torch._foreach_addcmul_(v_c, g_c, g_c, value=1 - beta2)
                denom = into(torch.mul, self._scratch.views(1, v_c), v_c, 1.0 / bc2)
                torch._foreach_sqrt_(denom)
                torch._foreach_add_(denom, eps)
                torch._foreach_div_(g_c, denom)
                if decay != 0:
                    torch._foreach_add_(g_c, y_c, alpha=decay)
                torch._foreach_lerp_(y_c, z_c, c)
                torch._foreach_add_(y_c, g_c, alpha=lr * (beta1 * (1 - c) - 1))
                torch._foreach_add_(z_c, g_c, alpha=-lr)


class ScheduleFreeWrapper(_ScheduleFree):
    r"""Schedule-Free averaging around any base optimizer, which steps the z sequence.

    Each step: weight decay at y (:math:`z \leftarrow z - \gamma\lambda y`,
    :math:`y \leftarrow (1 - \gamma\lambda(1-\beta))\,y`), then x is recovered from y, the base
    optimizer steps z with the gradient taken at y, and

    .. math::
        x \leftarrow (1-c)\,x + c\,z,\qquad y \leftarrow (1-\beta)\,z + \beta\,x,

    with :math:`c` from the module docstring, :math:`\gamma` = the group's ``lr`` times its ``d``
    (a learning-rate-free base's estimate, 1 otherwise), no built-in warm-up. The wrapper shares
    the base's ``param_groups``, so a schedule attached to either one drives the base's ``lr``.
    Its own counters live in the groups under ``sf_k``, ``sf_weight_sum``, ``sf_lr_max`` (the
    base may use ``k`` itself). ``state_dict()`` holds the base's state as well.

    Args:
        base: the optimizer that updates z (its own momentum is usually turned off).
        momentum: interpolation beta, in (0, 1) (default 0.9).
        weight_decay_at_y: decay lambda evaluated at y, >= 0 (default 0.0; a base's own decay
            acts at z).
        r: polynomial power of the averaging weights, >= 0 (default 0.0).
        weight_lr_power: power of max lr in the averaging weights, >= 0 (default 2.0).

    State: per parameter ``z``, saved as ``sf_z`` next to the base's own entries; per param
    group ``sf_k``, ``sf_weight_sum``, ``sf_lr_max``, ``scheduled_lr`` and ``train_mode``.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024, arXiv:2405.15682.

    Example:
        >>> import torch
        >>> from lrlab.optim import ScheduleFreeWrapper
        >>> model = torch.nn.Linear(4, 1)
        >>> base = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.0, 0.999))
        >>> opt = ScheduleFreeWrapper(base, momentum=0.9)
        >>> opt.train()
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.eval()  # the parameters now hold x: evaluate or save here
        >>> opt.train_mode
        False
    """

    GROUP_STATE = tuple(_WRAPPER_COUNTERS)

    def __init__(
        self,
        base: torch.optim.Optimizer,
        momentum: float = 0.9,
        weight_decay_at_y: float = 0.0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        self.momentum = check_real("momentum", momentum, 0.0, 1.0, lo_open=True, hi_open=True)
        self.weight_decay_at_y = check_real("weight_decay_at_y", weight_decay_at_y, 0.0)
        self.r = check_real("r", r, 0.0)
        self.weight_lr_power = check_real("weight_lr_power", weight_lr_power, 0.0)
        self.base = base
        super().__init__(base.param_groups, {})
        self.param_groups = base.param_groups

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        for key, value in {"train_mode": True, **_WRAPPER_COUNTERS}.items():
            group.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if any(param_group is g for g in self.base.param_groups):
            super().add_param_group(param_group)
            return
        self.base.add_param_group(param_group)
        self._check_group(self.base.param_groups[-1])
        self._copy_globals(self.base.param_groups[-1])

    def _interpolation(self, group: dict[str, Any]) -> float:
        return self.momentum

    def state_dict(self) -> dict[str, Any]:
        """The base's state dict (whose param groups are the wrapper's) with the wrapper's
        per-parameter entries added to each parameter's state under ``sf_z``."""
        out = self.base.state_dict()
        merged = dict(out["state"])
        for i, st in super().state_dict()["state"].items():
            merged[i] = {**merged.get(i, {}), **{_PREFIX + k: v for k, v in st.items()}}
        out["state"] = merged
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "base" in state_dict:  # the layout of older lrlab versions
            own = self._upgrade(state_dict)
            state_dict = dict(state_dict["base"])
            state_dict["param_groups"] = own["param_groups"]
            state_dict["state"] = {
                i: {**state_dict["state"].get(i, {}),
                    **{_PREFIX + k: v for k, v in own["state"].get(i, {}).items()}}
                for i in {*state_dict["state"], *own["state"]}
            }
        check_saved_groups(type(self).__name__, state_dict["param_groups"],
                           (*self.GLOBALS, *self.GROUP_STATE))
        base_state: dict[Any, dict[str, Any]] = {}
        own_state: dict[Any, dict[str, Any]] = {}
        for i, st in state_dict["state"].items():
            for key, value in st.items():
                if key.startswith(_PREFIX):
                    own_state.setdefault(i, {})[key[len(_PREFIX):]] = value
                else:
                    base_state.setdefault(i, {})[key] = value
        self.base.load_state_dict({**state_dict, "state": base_state})
        self.param_groups = self.base.param_groups
        params = [p for g in self.param_groups for p in g["params"]]
        self.state = defaultdict(dict)
        for i, st in own_state.items():
            p = params[int(i)]
            self.state[p] = {k: v.to(dtype=p.dtype, device=p.device) for k, v in st.items()}

    @staticmethod
    def _swap_z(params: list[torch.Tensor], zs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Exchange the storages of the parameters and their z buffers (no copy)."""
        for p, z in zip(params, zs, strict=True):
            p.data, z.data = z.data, p.data
        return zs

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Weight decay at y, base step on z, then the x and y updates (train mode only)."""
        self._require_train_mode()
        loss = evaluate(closure)
        beta, decay = self.momentum, self.weight_decay_at_y
        active = []
        for group in self.param_groups:
            params = with_grad(group)
            zs = [st["z"] for st in self._states(params, copies=("z",))]
            active.append((params, zs))
            if not params:
                continue
            lr = check_lr(group["lr"])
            for y_c, z_c in blocks(params, zs):
                if decay != 0:
                    torch._foreach_add_(z_c, y_c, alpha=-lr * decay)
                    torch._foreach_mul_(y_c, 1.0 - lr * decay * (1 - beta))
                torch._foreach_lerp_(y_c, z_c, 1.0 - 1.0 / beta)
            self._swap_z(params, zs)
        try:
            self.base.step()
        finally:
            for params, zs in active:
                self._swap_z(params, zs)
        for group, (params, zs) in zip(self.param_groups, active, strict=True):
            lr = group["lr"] * group.get("d", 1.0)
            group["scheduled_lr"] = lr
            c = _averaging_weight(group, lr, self.r, self.weight_lr_power, prefix="sf_")
            for x_c, z_c in blocks(params, zs):
                torch._foreach_lerp_(x_c, z_c, c)
                torch._foreach_lerp_(x_c, z_c, 1.0 - beta)
            group["sf_k"] += 1
        return loss
