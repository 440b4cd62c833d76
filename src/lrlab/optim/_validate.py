"""Validation of the optimizers' hyperparameters and of settings that must agree across groups.

Every check raises ``ValueError`` naming the argument and its allowed range (through
``lrlab._checks``), and returns the value (normalised where noted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrlab._checks import check_int, check_real


def check_lr(value: object) -> float:
    """``lr`` as a float, finite and >= 0 (0 freezes a group; schedules change it per step)."""
    return check_real("lr", value, 0.0)


def check_beta(name: str, value: object) -> float:
    return check_real(name, value, 0.0, 1.0, hi_open=True)


def check_betas(
    value: object, name: str = "betas", beta1_open: bool = False
) -> tuple[float, float]:
    """A pair ``(beta1, beta2)`` in ``[0, 1)`` (``beta1`` in ``(0, 1)`` if ``beta1_open``)."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2) of numbers in [0, 1), "
                         f"got {value!r}")
    b1 = check_real(f"{name}[0]", value[0], 0.0, 1.0, lo_open=beta1_open, hi_open=True)
    return b1, check_beta(f"{name}[1]", value[1])


def check_growth_rate(value: object) -> float:
    """``growth_rate`` bounds d_{k+1} / d_k; ``inf`` (the default) means unbounded."""
    if isinstance(value, (int, float)) and value == float("inf"):
        return float("inf")
    return check_real("growth_rate", value, 1.0)


def check_positive(name: str, value: object) -> float:
    return check_real(name, value, 0.0, lo_open=True)


def check_nonneg(name: str, value: object) -> float:
    return check_real(name, value, 0.0)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_slice(value: object) -> int:
    return check_int("slice_p", value, 1)


def check_shared(groups: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Raise ``ValueError`` if a hyperparameter that is optimizer-wide differs between groups."""
    first = groups[0]
    for group in groups[1:]:
        for key in keys:
            if group[key] != first[key]:
                raise ValueError(
                    f"{key} is optimizer-wide and must be the same in every param group, "
                    f"got {first[key]!r} and {group[key]!r}"
                )


def common_lr(groups: Sequence[dict[str, Any]]) -> float:
    """The one non-zero ``lr`` shared by all groups (0 if every group has lr 0).

    A global step-size estimate allows groups to differ only by being frozen (lr = 0).
    """
    nonzero = {float(g["lr"]) for g in groups if g["lr"] != 0}
    if len(nonzero) > 1:
        raise ValueError(
            "param groups must share one lr (or use lr=0 to freeze a group); got "
            f"{sorted(nonzero)}"
        )
    for g in groups:
        check_lr(g["lr"])
    return nonzero.pop() if nonzero else 0.0
