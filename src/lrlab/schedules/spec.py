"""Schedule specs: the one short text syntax that names a schedule everywhere.

A spec is

- a registered schedule name: ``constant``, ``cosine``, ``linear``, ``inverse_sqrt``, ...;
- ``poly<p>``: ``Polynomial(power=p)``, e.g. ``poly2``;
- either of these followed by ``:key=value,...`` for the schedule's other fields:
  ``cosine:s_min=0.1``, ``step:step_size=30,gamma=0.5``, ``poly2:s_min=0.01``.

Values are read by the field's type: numbers; ``true``/``false`` for flags; lists in brackets
(``multistep:milestones=[30,60,90]``); words for text fields (``one_cycle:anneal=linear``);
JSON for nested schedules (``warmup:schedule={"name":"cosine","steps":900},warmup=100``).
A schedule with a horizon (a ``steps`` field) gets ``steps`` as its horizon; a spec may give
``steps=`` itself only when no ``steps`` is passed, or when it is the same.

Examples: ``Schedule.from_spec("poly2", steps=500)`` -> ``Polynomial(steps=500, power=2)``;
``Schedule.from_spec("inverse_sqrt:tau=10")`` -> ``InverseSqrt(tau=10)``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from lrlab.schedules.base import Schedule, registry

__all__ = ["from_spec", "known_specs", "split_spec"]

_POLY = re.compile(r"^poly(\d+(?:\.\d+)?)$")


def known_specs() -> list[str]:
    """The names a spec may start with: every registered schedule, and ``poly<p>``."""
    return [*sorted(registry()), "poly<p>"]


def _split_items(text: str, spec: str) -> list[str]:
    """Split ``key=value,...`` at the commas outside brackets, braces and quotes."""
    items, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quote = not quote
        elif quote:
            continue
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
            if depth < 0:
                raise ValueError(f"schedule spec {spec!r}: unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise ValueError(f"schedule spec {spec!r}: unbalanced brackets or quotes")
    items.append(text[start:])
    return [x.strip() for x in items if x.strip()]


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``(schedule name, {key: raw value text})`` of a spec, without building it."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a schedule spec must be a non-empty string, got {spec!r}")
    text = spec.strip()
    head, _, rest = text.partition(":")
    head = head.strip()
    raw: dict[str, str] = {}
    m = _POLY.match(head)
    if m:
        head, raw["power"] = "polynomial", m.group(1)
    for item in _split_items(rest, text):
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"schedule spec {text!r}: expected key=value, got {item!r}")
        if key in raw:
            raise ValueError(f"schedule spec {text!r}: {key} is given twice")
        raw[key] = val.strip()
    return head, raw


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _convert(name: str, field: dataclasses.Field, raw: Any) -> Any:
    """A field's value from its text (values that are not text are taken as they are)."""
    if not isinstance(raw, str):
        return raw
    kind = str(field.type)
    where = f"schedule {name!r}: {field.name}"
    if "Schedule" in kind:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(
                f"{where} must be a schedule as JSON, e.g. {{\"name\": \"cosine\", "
                f"\"steps\": 100}}, got {raw!r}"
            ) from None
        if isinstance(value, list):
            return tuple(Schedule.from_dict(v) for v in value)
        return Schedule.from_dict(value)
    if kind.startswith("tuple"):
        body = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
        try:
            return tuple(_number(x.strip()) for x in body.split(",") if x.strip())
        except ValueError:
            msg = f"{where} must be a list of numbers like [1,2,3], got {raw!r}"
            raise ValueError(msg) from None
    if kind == "bool":
        low = raw.lower()
        if low not in ("true", "false", "1", "0"):
            raise ValueError(f"{where} must be true or false, got {raw!r}")
        return low in ("true", "1")
    if kind == "str":
        return raw
    try:
        return _number(raw)
    except ValueError:
        if "str" in kind:
            return raw
        raise ValueError(f"{where}={raw!r} is not a number") from None


def from_spec(
    spec: str, steps: int | None = None, *, params: Mapping[str, Any] | None = None
) -> Schedule:
    """The schedule ``spec`` names (syntax: the module docstring), with horizon ``steps``.

    ``params`` adds fields given apart from the spec (text as in a spec, or values), e.g. the
    ``--power 2`` of a command line; a field given in both is an error. Every error is a
    ``ValueError`` of one line; an unknown name lists the known ones.
    """
    name, raw = split_spec(spec)
    for key, value in (params or {}).items():
        if key in raw:
            raise ValueError(f"schedule {spec.strip()!r}: {key} is given twice")
        raw[key] = value
    known = registry()
    if name not in known:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(known_specs())}")
    cls = known[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        allowed = ", ".join(fields) or "none"
        raise ValueError(
            f"schedule {name!r} has no argument(s) {', '.join(unknown)}; its arguments: "
            f"{allowed}"
        )
    kwargs = {k: _convert(name, fields[k], v) for k, v in raw.items()}
    if "steps" in fields and steps is not None:
        if "steps" in kwargs and kwargs["steps"] != steps:
            raise ValueError(
                f"schedule {spec.strip()!r} gives steps={kwargs['steps']}, but its horizon is "
                f"{steps}: drop steps= from the spec"
            )
        kwargs["steps"] = steps
    missing = [
        f for f in fields if fields[f].default is dataclasses.MISSING and f not in kwargs
    ]
    if missing:
        if missing == ["steps"]:
            raise ValueError(f"schedule {name!r} has a horizon: give steps")
        need = ", ".join(f"{f}=..." for f in missing if f != "steps")
        raise ValueError(
            f"schedule {name!r} needs {need} (e.g. {name}:{missing[-1]}=...; see "
            "`lrlab schedules list`)"
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"schedule {spec.strip()!r}: {exc}") from None
