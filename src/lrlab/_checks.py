"""Argument validation shared by every public constructor.

Each check raises ``ValueError`` that names the argument and the allowed range, so a bad
configuration fails at construction time instead of producing NaNs downstream.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def check_real(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the given interval, else raise ``ValueError``."""
    rng = _range_text(lo, hi, lo_open or lo is None, hi_open or hi is None)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in {rng}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite and in {rng}, got {v}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be in {rng}, got {v:g}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} must be in {rng}, got {v:g}")
    return v


def check_int(name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int inside ``[lo, hi]``, else raise ``ValueError``."""
    rng = _range_text(lo, hi, lo is None, hi is None)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        real = isinstance(value, numbers.Real) and math.isfinite(float(value))
        if real and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer in {rng}, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer in {rng}, got {v}")
    return v


def check_array(name: str, values: object, *, min_len: int = 1, nonneg: bool = False) -> np.ndarray:
    """Return a finite 1-D float64 array (copy), else raise ``ValueError``."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of real numbers: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name} must have at least {min_len} entries, got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite; entry {int(np.argmax(bad))} is {arr[bad][0]}")
    if nonneg and (arr < 0).any():
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be >= 0; entry {i} is {arr[i]:g}")
    return arr
