"""The batched methods: functional optimizers over stacked parameters ``[M, ...]``.

Each method is one unit (a ``BatchedMethod`` subclass, formulas in its module docstring) that
follows its single-model counterpart (``torch.optim`` or ``lrlab.optim``) member by member, with
its own options, each a [M] tensor (members of a batch may differ in them). ``BATCHED_METHODS``
maps a name to its unit; adding a method is one unit and one line here.

Example::

    import torch
    from lrlab.train.methods import batched_method

    Method = batched_method("adamw")
    Method.resolve({"weight_decay": 0.1})   # every option of one member, validated
    params = [torch.zeros(2, 3)]             # 2 members, 3 parameters each
    opt = Method(params, {"beta2": [0.99, 0.999]}, steps=500)   # one beta2 per member
    opt.step(params, [torch.ones(2, 3)], torch.tensor([0.1, 0.01]), None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lrlab.train.methods._base import BatchedMethod, Option, OptionValue
from lrlab.train.methods.adam import Adam, AdamW
from lrlab.train.methods.dadapt import DAdaptSGD
from lrlab.train.methods.polyak import MOTAPS, SP, TAPS
from lrlab.train.methods.prodigy import Prodigy
from lrlab.train.methods.schedulefree import ScheduleFreeAdamW, ScheduleFreeSGD
from lrlab.train.methods.sgd import SGD, Momentum

BATCHED_METHODS: dict[str, type[BatchedMethod]] = {
    m.name: m
    for m in (SGD, Momentum, Adam, AdamW, ScheduleFreeSGD, ScheduleFreeAdamW, DAdaptSGD, Prodigy,
              SP, TAPS, MOTAPS)
}


def batched_method(name: str) -> type[BatchedMethod]:
    """The unit of the method ``name``; ValueError listing the known ones otherwise."""
    try:
        return BATCHED_METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"optimizer must be one of {', '.join(BATCHED_METHODS)}, got {name!r}"
        ) from None


def check_options(name: str, options: object) -> dict[str, float]:
    """The given ``options`` of the method ``name``, validated, as a plain dict sorted by name
    (defaults are not filled in). ValueError names an unknown option (listing the allowed ones)
    or a value out of its range.

    Example: ``check_options("adam", {"eps": 1e-6, "beta1": 0.8})`` ->
    ``{"beta1": 0.8, "eps": 1e-06}``.
    """
    method = batched_method(name)
    if not isinstance(options, Mapping):
        raise ValueError(
            f"options must be a mapping of option names to numbers, got {type(options).__name__}"
        )
    method.resolve(options)
    return {k: method.OPTIONS[k].check(f"option {k} of {name}", v)
            for k, v in sorted(options.items())}


def member_options(per_member: Sequence[Mapping[str, float]]) -> dict[str, list[float | None]]:
    """Members' option mappings as one mapping of per-member lists (None: the default).

    Example: ``member_options([{"beta1": 0.8}, {}])`` -> ``{"beta1": [0.8, None]}``.
    """
    keys = sorted({k for o in per_member for k in o})
    return {k: [o.get(k) for o in per_member] for k in keys}


def describe_options(name: str, options: Mapping[str, float], *, every: bool = True) -> str:
    """``"adam (beta1 0.95, beta2 0.999, ...)"``: the method and its options (``every``: with
    the defaults filled in; else only those given)."""
    shown = batched_method(name).resolve(options) if every else dict(options)
    if not shown:
        return name
    return f"{name} ({', '.join(f'{k} {v:g}' for k, v in shown.items())})"


__all__ = [
    "BATCHED_METHODS",
    "MOTAPS",
    "SGD",
    "SP",
    "TAPS",
    "Adam",
    "AdamW",
    "BatchedMethod",
    "DAdaptSGD",
    "Momentum",
    "Option",
    "OptionValue",
    "Prodigy",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "batched_method",
    "check_options",
    "describe_options",
    "member_options",
]
