"""The ``Schedule`` base class: a small immutable object for the factor s(t).

The learning rate at step t is ``eta_t = eta0 * s(t)``. Steps are 0-indexed: t = 0 is the
first optimizer step. Schedules with a horizon ``steps = T`` are clamped past it:
``s(t) = s(T)`` for t >= T (they never rebound).

Every schedule evaluates an int (returns a float) or a NumPy array of steps (returns a float64
array of the same shape) in one call, and round-trips through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar

import numpy as np

_REGISTRY: dict[str, type[Schedule]] = {}


def registry() -> dict[str, type[Schedule]]:
    """Name -> schedule class, for every registered schedule."""
    return dict(_REGISTRY)


class Schedule:
    """Base class. Subclasses are frozen dataclasses that implement ``_eval``.

    ``_eval`` receives a float64 array of non-negative steps and returns s(t) element-wise.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
                raise TypeError(f"schedule name {cls.name!r} is registered twice")
            _REGISTRY[cls.name] = cls

    # -- evaluation -------------------------------------------------------------------------
    @property
    def horizon(self) -> int | None:
        """The number of steps T the schedule is defined over, or None if it has none."""
        return getattr(self, "steps", None)

    def __call__(self, t: Any) -> Any:
        arr = np.asarray(t, dtype=np.float64)
        # A scalar is evaluated as a 1-element array so it takes the same (array) code path
        # and gives bit-identical values to the array evaluation.
        flat = arr.reshape(-1)
        if flat.size:
            lo, hi = flat.min(), flat.max()  # NaN propagates into both
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError("t must be finite")
            if lo < 0:
                raise ValueError("t must be >= 0 (steps are 0-indexed)")
        out = self._at(flat)
        return float(out[0]) if arr.ndim == 0 else out.reshape(arr.shape)

    def _at(self, t: np.ndarray) -> np.ndarray:
        """s at a 1-D float64 array of valid steps (no checks): for use inside composites."""
        out = np.asarray(self._eval(t), dtype=np.float64)
        if out.shape != t.shape:
            out = np.broadcast_to(out, t.shape).copy()
        return out

    def _eval(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def values(self, steps: int | None = None) -> np.ndarray:
        """s(0), ..., s(T-1) as an array (T defaults to the schedule's horizon)."""
        n = steps if steps is not None else self.horizon
        if n is None:
            raise ValueError(f"{self!r} has no horizon: pass steps")
        return self(np.arange(int(n)))

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description; ``Schedule.from_dict`` rebuilds an equal object."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _encode(getattr(self, f.name))
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Schedule:
        """Rebuild a schedule from ``to_dict()`` output (nested schedules included).

        Example: ``Schedule.from_dict({"name": "cosine", "steps": 100, "s_min": 0.1})``.
        """
        if not isinstance(d, dict) or "name" not in d:
            raise ValueError(f"a schedule dict needs a 'name' key, got {d!r}")
        name = d["name"]
        if name not in _REGISTRY:
            raise ValueError(f"unknown schedule {name!r}; known: {', '.join(sorted(_REGISTRY))}")
        cls = _REGISTRY[name]
        kwargs = {k: _decode(v) for k, v in d.items() if k != "name"}
        return cls(**kwargs)

    @staticmethod
    def from_spec(spec: str, steps: int | None = None, **kwargs: Any) -> Schedule:
        """The schedule a short spec names: a registered name, ``poly<p>``, or
        ``name:key=value,...`` (``lrlab.schedules.spec``), with horizon ``steps`` where the
        schedule has one. The same syntax as ``lrlab sweep --schedules``, ``lrlab bound`` and
        ``lrlab schedules plot``; ValueError (one line, listing the known names) otherwise.

        Example: ``Schedule.from_spec("cosine:s_min=0.1", steps=1000)``.
        """
        from lrlab.schedules.spec import from_spec

        return from_spec(spec, steps, **kwargs)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` as JSON to ``path`` (``Schedule.load`` reads it back).

        Example: ``Cosine(steps=100).save("cosine.json")``.
        """
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh)

    @staticmethod
    def load(path: str | os.PathLike) -> Schedule:
        """The schedule a JSON file written by ``save`` (or by ``lrlab sweep --command``'s
        ``{schedule}`` placeholder) describes; ValueError naming the file if it is not one.

        Example: ``ScheduleLR(opt, Schedule.load(args.schedule))``.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read a schedule from {os.fspath(path)!r}: {exc}") from None
        return Schedule.from_dict(d)

    def __repr__(self) -> str:
        args = ", ".join(
            f"{f.name}={_short(getattr(self, f.name))}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )
        return f"{self.name}({args})"


def _encode(v: Any) -> Any:
    if isinstance(v, Schedule):
        return v.to_dict()
    if isinstance(v, np.ndarray):
        return [_encode(x) for x in v.tolist()]
    if isinstance(v, (tuple, list)):
        return [_encode(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "name" in v:
        return Schedule.from_dict(v)
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return v


def _short(v: Any) -> str:
    if isinstance(v, (tuple, list, np.ndarray)) and len(v) > 6:
        head = ", ".join(_short(x) for x in list(v)[:3])
        return f"[{head}, ... ({len(v)} items)]"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v)
