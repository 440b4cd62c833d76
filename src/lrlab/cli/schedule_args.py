"""Build a registered schedule from command-line strings (shared by every command that takes one).

Parameters are the schedule's own dataclass fields: numbers, comma-separated lists for tuple
fields, true/false for booleans, JSON for nested schedules.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from lrlab.schedules import Schedule, registry


def convert(field: dataclasses.Field, raw: str) -> Any:
    kind = str(field.type)
    if "Schedule" in kind:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--{field.name} must be JSON (a schedule dict): {exc}") from None
        if isinstance(value, list):
            return tuple(Schedule.from_dict(v) for v in value)
        return Schedule.from_dict(value)
    if kind.startswith("tuple"):
        try:
            return tuple(float(x) for x in raw.split(",") if x.strip())
        except ValueError:
            msg = f"--{field.name} must be comma-separated numbers, got {raw!r}"
            raise ValueError(msg) from None
    if kind == "bool":
        low = raw.lower()
        if low not in ("true", "false", "1", "0"):
            raise ValueError(f"--{field.name} must be true or false, got {raw!r}")
        return low in ("true", "1")
    if kind == "str":
        return raw
    try:
        return float(raw)
    except ValueError:
        if "str" in kind:
            return raw
        raise ValueError(f"--{field.name} must be a number, got {raw!r}") from None


def build(name: str, params: dict[str, str], steps: int) -> Schedule:
    """The schedule ``name`` from string parameters; ``steps`` fills a required ``steps``."""
    known = registry()
    if name not in known:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(sorted(known))}")
    cls = known[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: convert(fields[k], v) for k, v in params.items() if k in fields}
    if "steps" in fields and fields["steps"].default is dataclasses.MISSING:
        kwargs["steps"] = steps
    required = [
        f.name for f in fields.values() if f.default is dataclasses.MISSING and f.name not in kwargs
    ]
    if required:
        flags = ", ".join(f"--{r.replace('_', '-')}" for r in required)
        raise ValueError(f"schedule {name!r} needs {flags} (see `lrlab schedules list`)")
    return cls(**kwargs)
