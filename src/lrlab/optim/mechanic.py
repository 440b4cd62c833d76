r"""Mechanic: a learned global scale on the updates of any base optimizer.

Mechanic (Cutkosky, Defazio & Mehta) runs the base optimizer unchanged and rescales its total
displacement from the starting point x_ref by a scalar S = Σᵢ sᵢ, learned online by a few
parallel "coin-betting" tuners with different horizons βᵢ. ``lr`` stays the base optimizer's own
``lr`` (its param groups are shared with the wrapper, so an ``LRScheduler`` or
``lrlab.torchx.ScheduleLR`` attached to the wrapper drives the base); the effective step is
``S · lr``.

State: per parameter the reference point ``ref`` (and ``delta`` if ``store_delta``); in every
param group (shared with the base) the tuner: the vectors ``mechanic_s``, ``mechanic_v``,
``mechanic_r``, ``mechanic_m`` (lists of floats, one entry per beta), the step count
``mechanic_k`` and ``mechanic_betas``. ``state_dict()`` is the base optimizer's, with the wrapper's
per-parameter entries added under ``mechanic_ref`` / ``mechanic_delta``; ``load_state_dict()``
restores both, so a run resumes exactly, also from a state dict rebuilt from its ``"state"`` and
``"param_groups"`` entries alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lrlab.optim._foreach import Scratch, chunks, dots, into, params_with_grad, split, total
from lrlab.optim._validate import check_beta, check_bool, check_nonneg, check_positive

_TUNER_KEYS = ("s", "v", "r", "m")
# the wrapper's entries in the param groups and in each parameter's state (shared with the base)
_PREFIX = "mechanic_"
_GROUP_KEYS = tuple(_PREFIX + k for k in (*_TUNER_KEYS, "k", "betas"))


class Mechanic(torch.optim.Optimizer):
    r"""Wrap ``base`` so that its updates are scaled by a learned S = Σᵢ sᵢ.

    Per step, with x the parameters before and x⁺ after the base step, g the gradient,
    Δ the scale-free displacement (stored if ``store_delta``, else (x − x_ref)/(S + ε)):

    .. math::
        h &= ⟨Δ, g + λ\, x^+ S ‖g‖ / (‖x^+‖ + ε)⟩, \qquad Δ \leftarrow Δ + (x^+ − x) \\
        m_i &\leftarrow \max(β_i m_i, |h|), \quad v_i \leftarrow β_i^2 v_i + h^2,
        \quad r_i \leftarrow \max(0, β_i r_i − s_i h) \\
        s_i &= (m_i s_{\text{init}} / n + r_i) / (\sqrt{v_i} + ε), \qquad
        x \leftarrow x_{\text{ref}} + Δ \max(S, 0)

    with λ = ``s_decay``, n = ``len(betas)``, norms over all parameters that have a gradient,
    and m_i starting at 10⁻⁶.

    Args:
        base: the optimizer whose updates are scaled (any ``torch.optim.Optimizer`` but a
            Mechanic); its param groups are shared with the wrapper.
        s_decay: λ, the weight of the decay term in h, >= 0 (default 0.01).
        betas: the tuners' horizons β_i, each in [0, 1) (default (0.9, 0.99, 0.999, 0.9999,
            0.99999, 0.999999)).
        s_init: the initial wealth s_init, > 0 (default 1e-8).
        eps: ε, > 0 (default 1e-8).
        store_delta: keep Δ per parameter instead of recovering it from x − x_ref (one more
            buffer, no division by S + ε; default False).

    State: per parameter ``ref`` (and ``delta``), saved as ``mechanic_ref``
    (``mechanic_delta``) next to the base's own entries; in every param group the tuner
    (``mechanic_s``, ``mechanic_v``, ``mechanic_r``, ``mechanic_m``, ``mechanic_k``,
    ``mechanic_betas``). :attr:`scale` is S.

    References:
        Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023,
        arXiv:2306.00144.

    Example:
        >>> import torch
        >>> from lrlab.optim import Mechanic
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = Mechanic(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     loss.backward()
        ...     _ = opt.step()
        >>> opt.scale > 0
        True
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        s_decay: float = 0.01,
        betas: Sequence[float] = (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999),
        s_init: float = 1e-8,
        eps: float = 1e-8,
        store_delta: bool = False,
    ) -> None:
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        if isinstance(base, Mechanic):
            raise ValueError("base must not itself be a Mechanic optimizer")
        if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) == 0:
            raise ValueError(f"betas must be a non-empty sequence of numbers in [0, 1), "
                             f"got {betas!r}")
        self.betas = tuple(check_beta(f"betas[{i}]", b) for i, b in enumerate(betas))
        self.s_decay = check_nonneg("s_decay", s_decay)
        self.s_init = check_positive("s_init", s_init)
        self.eps = check_positive("eps", eps)
        self.store_delta = check_bool("store_delta", store_delta)
        params = [p for g in base.param_groups for p in g["params"]]
        super().__init__(params, {})
        self.base = base
        self.param_groups = base.param_groups
        self.defaults = base.defaults
        n = len(self.betas)
        start = {"s": [0.0] * n, "v": [0.0] * n, "r": [0.0] * n, "m": [1e-6] * n, "k": 0,
                 "betas": list(self.betas)}
        for group in self.param_groups:
            group.update({_PREFIX + k: v for k, v in start.items()})
        self._scratch = Scratch()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_scratch", Scratch())

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "base", None) is None:  # during construction
            super().add_param_group(param_group)
        else:
            self.base.add_param_group(param_group)
            first = self.param_groups[0]
            self.param_groups[-1].update({k: first[k] for k in _GROUP_KEYS})

    def _dtype(self) -> torch.dtype:
        """The tuner's arithmetic: float64 for float64 parameters, else float32."""
        like = self.param_groups[0]["params"][0]
        return torch.float64 if like.dtype == torch.float64 else torch.float32

    @property
    def tuner(self) -> dict[str, Any]:
        """The tuner's vectors ``s``, ``v``, ``r``, ``m`` (CPU tensors) and step count ``k``,
        read from the param groups."""
        first = self.param_groups[0]
        out: dict[str, Any] = {k: torch.tensor(first[_PREFIX + k], dtype=self._dtype())
                               for k in _TUNER_KEYS}
        out["k"] = int(first[_PREFIX + "k"])
        return out

    def _store_tuner(self, tuner: dict[str, Any]) -> None:
        values = {_PREFIX + k: tuner[k].tolist() for k in _TUNER_KEYS}
        values[_PREFIX + "k"] = tuner["k"]
        for group in self.param_groups:
            group.update(values)

    @property
    def scale(self) -> float:
        """The learned scale S = Σᵢ sᵢ (0 before the first step)."""
        return float(self.tuner["s"].sum())

    def effective_lr(self) -> list[float]:
        """Per group, ``S · lr``: the base optimizer's step size times the learned scale."""
        return [self.scale * float(g["lr"]) for g in self.param_groups]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        base_closure = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            fresh = [True]

            def base_closure() -> Any:
                # the first evaluation the base asks for is the one already made above
                if fresh[0]:
                    fresh[0] = False
                    return loss
                with torch.enable_grad():
                    return closure()

        with torch.no_grad():
            params, grads = [], []
            for group in self.param_groups:
                ps, gs = params_with_grad(group)
                params += ps
                grads += gs
            for p in params:
                st = self.state[p]
                if "ref" not in st:
                    st["ref"] = p.detach().clone()
                    if self.store_delta:
                        st["delta"] = torch.zeros_like(p)
            if params:
                cut, divisor, hg_parts, g_parts = self._before_base(params, grads)

        result = self.base.step(base_closure)
        if not params:
            return result if result is not None else loss

        with torch.no_grad():
            self._rescale(cut, divisor, hg_parts, g_parts)
        return result if result is not None else loss

    def _before_base(
        self, params: list[torch.Tensor], grads: list[torch.Tensor]
    ) -> tuple[tuple[list[torch.Tensor], ...], float, list[torch.Tensor], list[torch.Tensor]]:
        """Before the base step, in one pass over the blocks: keep x − x_ref in a work buffer
        and add up the terms of h that need the gradient, <Δ, g> and ‖g‖², so that the gradient
        need not be kept (the base may change ``p.grad``)."""
        refs = [self.state[p]["ref"] for p in params]
        stored = [self.state[p]["delta"] for p in params] if self.store_delta else refs
        before = self._scratch.views(0, params)
        divisor = 1.0 if self.store_delta else self.scale + self.eps
        cut = split(params, grads, before, refs, stored)
        hg_parts: list[torch.Tensor] = []
        g_parts: list[torch.Tensor] = []
        for sl in chunks(cut[0]):
            ps, gs, bs, rs, ds = (lst[sl] for lst in cut)
            into(torch.sub, bs, ps, rs)
            hg_parts += dots(ds if self.store_delta else bs, gs)
            if self.s_decay != 0:
                g_parts += dots(gs, gs)
        return cut, divisor, hg_parts, g_parts

    def _rescale(
        self,
        cut: tuple[list[torch.Tensor], ...],
        divisor: float,
        hg_parts: list[torch.Tensor],
        g_parts: list[torch.Tensor],
    ) -> None:
        """After the base step: finish h (its weight-decay term needs x⁺), update the tuners,
        and set x = x_ref + S·Δ⁺ with Δ⁺ = Δ + x⁺ − x. Δ⁺ goes where x − x_ref was kept (or
        into the stored Δ); with ``s_decay = 0`` h is already complete and this takes a single
        pass."""
        h = total(hg_parts) / divisor
        if self.s_decay == 0:
            self._update_tuner(h)
            self._move(cut, divisor, formed=False)
            return
        x_parts: list[torch.Tensor] = []
        hx_parts: list[torch.Tensor] = []
        for sl in chunks(cut[0]):
            ps, _, bs, rs, ds = (lst[sl] for lst in cut)
            x_parts += dots(ps, ps)
            hx_parts += dots(ds if self.store_delta else bs, ps)
            self._add_move(ps, rs, bs, ds, divisor)
        x_norm, g_norm = math.sqrt(total(x_parts)), math.sqrt(total(g_parts))
        s_sum = self.scale
        h += self.s_decay * s_sum * g_norm / (x_norm + self.eps) * total(hx_parts) / divisor
        self._update_tuner(h)
        self._move(cut, divisor, formed=True)

    def _update_tuner(self, h: float) -> None:
        tuner = self.tuner
        betas = torch.tensor(self.betas, dtype=tuner["s"].dtype)
        s, v, r, m = (tuner[k] for k in _TUNER_KEYS)
        tuner["k"] += 1
        m.copy_(torch.maximum(betas * m, torch.full_like(m, abs(h))))
        v.mul_(betas**2).add_(h * h)
        r.mul_(betas).sub_(s * h).clamp_(min=0.0)
        wealth = m * self.s_init / len(self.betas) + r
        s.copy_(wealth / (torch.sqrt(v) + self.eps))
        self._store_tuner(tuner)

    def _move(self, cut: tuple[list[torch.Tensor], ...], divisor: float, formed: bool) -> None:
        """x = x_ref + max(S, 0) · Δ⁺, Δ⁺ formed here unless ``formed``."""
        scale = max(self.scale, 0.0)
        for sl in chunks(cut[0]):
            ps, _, bs, rs, ds = (lst[sl] for lst in cut)
            if not formed:
                self._add_move(ps, rs, bs, ds, divisor)
            into(torch.add, ps, rs, ds if self.store_delta else bs, alpha=scale)

    def _add_move(self, params: list[torch.Tensor], refs: list[torch.Tensor],
                  kept: list[torch.Tensor], stored: list[torch.Tensor], divisor: float) -> None:
        """Δ⁺ = Δ + (x⁺ − x), the base optimizer's update x⁺ − x = (x⁺ − x_ref) − (x − x_ref)
        added: into the stored Δ, or over the kept x − x_ref = Δ · divisor."""
        move = into(torch.sub, self._scratch.views(3, params), params, refs)
        torch._foreach_sub_(move, kept)
        if self.store_delta:
            torch._foreach_add_(stored, move)
        else:
            into(torch.add, kept, move, kept, alpha=1.0 / divisor)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its param groups, shared with the wrapper, hold the
        tuner) with each parameter's ``ref`` (and ``delta``) added to its state as
        ``mechanic_ref`` (``mechanic_delta``)."""
        out = self.base.state_dict()
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        merged = dict(out["state"])
        for p, st in self.state.items():
            if st:
                i = index[id(p)]
                merged[i] = {**merged.get(i, {}), **{_PREFIX + k: v for k, v in st.items()}}
        out["state"] = merged
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "tuner" in state_dict and "param_groups" not in state_dict:
            state_dict = self._upgrade(state_dict)
        missing = {"state", "param_groups"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}")
        groups = state_dict["param_groups"]
        absent = sorted({k for g in groups for k in _GROUP_KEYS if k not in g})
        if absent:
            raise ValueError(f"state_dict param groups lack {absent}, the tuner state that "
                             "Mechanic keeps in every param group")
        if any(tuple(g[_PREFIX + "betas"]) != self.betas for g in groups):
            raise ValueError("state_dict was saved with different betas")
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

    def _upgrade(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """The layout of older lrlab versions (``{"base", "state", "tuner"}``) in today's."""
        out = dict(state_dict["base"])
        tuner = dict(state_dict["tuner"])
        n = len(self.betas)
        if tuner:
            values = {_PREFIX + k: [float(x) for x in tuner[k].tolist()] for k in _TUNER_KEYS}
            values[_PREFIX + "k"] = int(tuner["step"])
            values[_PREFIX + "betas"] = [float(b) for b in tuner["betas"]]
        else:
            values = {_PREFIX + "s": [0.0] * n, _PREFIX + "v": [0.0] * n,
                      _PREFIX + "r": [0.0] * n, _PREFIX + "m": [1e-6] * n,
                      _PREFIX + "k": 0, _PREFIX + "betas": list(self.betas)}
        out["param_groups"] = [{**g, **values} for g in out["param_groups"]]
        out["state"] = {
            i: {**out["state"].get(i, {}),
                **{_PREFIX + k: v for k, v in state_dict["state"].get(i, {}).items()}}
            for i in {*out["state"], *state_dict["state"]}
        }
        return out
