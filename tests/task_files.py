"""User task builders written to temporary files for the task-spec tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

# A builder file that imports a sibling module (``task_helper.py``) at import time.
BUILDER = textwrap.dedent(
    """
    from task_helper import L2
    from lrlab.tasks import get_task

    CALLS = []

    def build(l2=L2, lr=0.4):
        CALLS.append((l2, lr))
        base = get_task("iris_logreg", l2=l2)
        return base.replace(name="user_iris", default_steps=30, default_lr=lr)

    def broken():
        raise RuntimeError("no data here")

    def not_a_task():
        return 42

    NOT_CALLABLE = 3
    """
)
HELPER = "L2 = 0.02\n"


def write_builder(folder: Path, name: str = "user_tasks.py") -> Path:
    """Write the builder file and its sibling helper into ``folder``; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task_helper.py").write_text(HELPER)
    path = folder / name
    path.write_text(BUILDER)
    return path


def write_package(root: Path, package: str = "lrlab_user_pkg") -> str:
    """A package ``package.tasks`` with the same builders under ``root``; return its name."""
    pkg = root / package
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "task_helper.py").write_text(HELPER)
    text = BUILDER.replace("from task_helper", f"from {package}.task_helper")
    (pkg / "tasks.py").write_text(text)
    return package
