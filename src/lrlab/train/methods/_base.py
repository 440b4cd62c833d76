"""What every batched method shares: its declared options, per-member option tensors, state.

A method trains M stacked members: every parameter is a tensor [M, ...], the learning rate of
a step is a [M] tensor, and every numeric option is a [M] tensor too (members of one batch may
differ, e.g. in weight decay or momentum). All of them live on the parameters' device and dtype.

A member whose ``active`` flag is False is left untouched: its update is replaced by zero (or
its old value kept) with ``torch.where`` (never multiplied by zero, so non-finite values cannot
turn into NaN), and no operation mixes members, so its values never reach the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lrlab._checks import check_int, check_real

#: What a method accepts for an option: one value for every member, or one per member (None
#: in a per-member list, or a missing option, means the option's default for that member).
OptionValue = float | Sequence[float | None] | torch.Tensor | None


@dataclass(frozen=True)
class Option:
    """A numeric option: its default and its allowed interval.

    ``default=None`` with ``derive`` set: the default is computed from the member's other
    options (declared before this one), e.g. Prodigy's beta3 = sqrt(beta2).
    """

    default: float | None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    derive: Callable[[Mapping[str, float]], float] | None = None

    def check(self, name: str, value: object) -> float:
        return check_real(name, value, self.lo, self.hi, lo_open=self.lo_open,
                          hi_open=self.hi_open)


WEIGHT_DECAY = Option(0.0, lo=0.0)


def beta(default: float, *, open_low: bool = False) -> Option:
    """A momentum-type coefficient in [0, 1) (in (0, 1) with ``open_low``)."""
    return Option(default, lo=0.0, hi=1.0, lo_open=open_low, hi_open=True)


def positive(default: float) -> Option:
    return Option(default, lo=0.0, lo_open=True)


def member_sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Per-member sum over all entries of [M, ...] tensors: a [M] vector."""
    return sum(t.flatten(1).sum(1) for t in tensors)  # type: ignore[return-value]


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [M] vector shaped to broadcast against a [M, ...] parameter."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class BatchedMethod:
    """Base of the batched methods; a subclass declares ``name``, ``OPTIONS`` and its state.

    ``Method(params, options, steps)``: ``params`` the stacked [M, ...] parameters, ``options``
    a mapping from option name to one value (every member) or M values (see ``OptionValue``),
    ``steps`` the length of the run (used by methods with a warm-up). After construction,
    ``self.opts[name]`` is the option as a [M] tensor on the parameters' device and dtype, and
    ``self.members[m]`` member m's options as Python floats (for coefficients that are best
    computed in double precision once, e.g. 1 - beta).

    Class attributes: ``lr_free`` (``lr`` multiplies a step the method estimates itself, or is
    Schedule-Free's step size), ``evaluates_average`` (the parameters hold a gradient point and
    a run is evaluated at ``eval_params``), ``coordinatewise`` (Adam-like preconditioning: a
    pilot run refines its schedule from l1 gradient norms), ``per_example`` (the method keeps
    state per training example: it is built with ``examples=n`` and the engine calls
    ``observe(rows, loss)`` with the step's example indices [M, B] and batch objectives [M]
    before every ``step``), ``STATE`` (the names of the per-member state lists that
    ``state_dict`` saves).
    """

    name: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Option]] = {}
    STATE: ClassVar[tuple[str, ...]] = ()
    lr_free: ClassVar[bool] = False
    evaluates_average: ClassVar[bool] = False
    coordinatewise: ClassVar[bool] = False
    per_example: ClassVar[bool] = False

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        options: Mapping[str, OptionValue] | None = None,
        steps: int = 1,
    ) -> None:
        if not params:
            raise ValueError("params must hold at least one [M, ...] tensor")
        self.steps = check_int("steps", steps, lo=1)
        like = self._like = params[0]
        M = like.shape[0]
        columns = {k: _column(self.name, k, v, M) for k, v in (options or {}).items()}
        self.members = [self.resolve({k: c[m] for k, c in columns.items()}) for m in range(M)]
        self.opts = {k: self.per_member(lambda o, k=k: o[k]) for k in self.OPTIONS}
        self.k = 0

    # -- options --------------------------------------------------------------------------
    @classmethod
    def resolve(cls, options: Mapping[str, object]) -> dict[str, float]:
        """One member's options, validated, with every default filled in.

        ValueError names an unknown option (listing the allowed ones) or a value out of range.
        Example: ``Adam.resolve({"beta1": 0.8})["beta2"]`` -> 0.999.
        """
        unknown = [k for k in options if k not in cls.OPTIONS]
        if unknown:
            raise ValueError(
                f"{cls.name} has no option {unknown[0]!r}; its options are "
                f"{', '.join(cls.OPTIONS)}"
            )
        out: dict[str, float] = {}
        for key, spec in cls.OPTIONS.items():
            value = options.get(key)
            if value is None:
                value = spec.default if spec.derive is None else spec.derive(out)
            out[key] = spec.check(f"option {key} of {cls.name}", value)
        return out

    def per_member(self, fn: Callable[[dict[str, float]], float]) -> torch.Tensor:
        """``fn`` of each member's options (in double precision) as a [M] tensor like the
        parameters."""
        return self._like.new_tensor([fn(o) for o in self.members])

    def any_member(self, fn: Callable[[dict[str, float]], bool]) -> bool:
        """Whether ``fn`` holds for some member's options (decided on the host)."""
        return any(fn(o) for o in self.members)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Step count and per-parameter state tensors (``torch.save``-able, weights_only)."""
        state: dict[str, Any] = {"kind": self.name, "k": self.k}
        for name in self.STATE:
            state[name] = [t.clone() for t in getattr(self, name)]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict`` taken from the same method on parameters of the same
        shapes (the options are not part of the state: build the method with the same ones)."""
        if state.get("kind") != self.name:
            raise ValueError(f"state is for optimizer {state.get('kind')!r}, not {self.name!r}")
        self.k = int(state["k"])
        for name in self.STATE:
            mine, theirs = getattr(self, name), state[name]
            if [t.shape for t in mine] != [t.shape for t in theirs]:
                raise ValueError(f"state {name!r} has shapes that do not match the parameters")
            for a, b in zip(mine, theirs, strict=True):
                a.copy_(b)

    # -- the step -------------------------------------------------------------------------
    def step(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: torch.Tensor,
        active: torch.Tensor | None,
    ) -> None:
        """Update ``params`` in place with learning rates ``lr`` [M] for the ``active`` members
        (a [M] bool tensor; None means every member is active and the masks are skipped)."""
        raise NotImplementedError

    def eval_params(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """The point a run is evaluated at: ``params`` itself unless ``evaluates_average``."""
        return params


def _column(method: str, key: str, value: OptionValue, M: int) -> list[float | None]:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.dim() == 0 else value.tolist()
    if value is None or isinstance(value, (int, float)):
        return [value] * M  # type: ignore[list-item]
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(
            f"option {key} of {method} must be a number or {M} numbers, got {value!r}"
        )
    if len(value) != M:
        raise ValueError(f"option {key} of {method} has {len(value)} values for {M} members")
    return list(value)


def sqrt_of(key: str) -> Callable[[Mapping[str, float]], float]:
    """A derived default: the square root of another option."""
    return lambda o: math.sqrt(o[key])
