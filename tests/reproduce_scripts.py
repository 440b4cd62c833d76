"""Helpers for the tests of the bench/reproduce scripts: import one, check its figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "bench" / "reproduce"


def load(name: str):
    """Import bench/reproduce/<name>.py as a module (its folder goes on sys.path, as the script
    itself does, so ``grid_cost`` finds ``schedules`` and every script finds ``_common``; the
    module is registered, as dataclasses need while its classes are built)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def assert_figures(page: str, folder: Path, stem: str, suffixes: tuple[str, ...]) -> None:
    """Every figure ``<stem>_<suffix>.png`` is a real PNG in ``folder`` and linked from the
    page."""
    for suffix in suffixes:
        png = folder / f"{stem}_{suffix}.png"
        assert png.is_file() and png.stat().st_size > 1000, png
        assert f"]({png.name})" in page, png.name
