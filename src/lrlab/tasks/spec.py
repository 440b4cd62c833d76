"""Tasks built by user code, named by an import spec.

A task spec is ``pkg.mod:builder`` (an importable module) or ``path/to/file.py:builder`` (a
Python file); ``builder(**options)`` must return a ``lrlab.tasks.Task``. A registered task name
(``digits_logreg``) is a plain identifier, so ``is_task_spec`` tells the two apart: a spec has a
``:``, a ``.`` or a path separator.

A file spec is resolved to its absolute path (``resolve_task_spec``), which is what a study
stores, so a resumed study and every worker (process pool, Ray) load the same file. The file is
loaded with ``importlib.util.spec_from_file_location`` under a module name unique to its path;
while it is imported and while its builder runs, the file's folder is first on ``sys.path`` (so
it can import a sibling module) and is removed afterwards.

Every failure is a one-line ``ValueError`` naming the spec. Built tasks are cached per process
by (resolved spec, options), as ``get_task`` caches.

Example::

    from lrlab.tasks import load_task
    task = load_task("my_tasks.py:build", l2=0.01)   # def build(l2=0.0) -> Task
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from lrlab.tasks.base import Task, build_options

_CACHE: dict[tuple, Task] = {}
_FILES: dict[str, ModuleType] = {}
_SEPARATORS = tuple({"/", os.sep, os.altsep or "/"})


def is_task_spec(name: str) -> bool:
    """True if ``name`` is an import spec rather than a registered task name.

    Example: ``is_task_spec("tasks.py:build")`` -> True; ``is_task_spec("digits_logreg")`` ->
    False.
    """
    return isinstance(name, str) and any(c in name for c in (":", ".", *_SEPARATORS))


def _split(spec: str) -> tuple[str, str, bool]:
    """``(module or path, builder, is_file)``; ValueError if the spec is malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"task spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    target, colon, builder = spec.rpartition(":")
    path_like = builder.endswith(".py") or any(s in builder for s in _SEPARATORS)
    if not colon or not target or not builder or path_like:
        raise ValueError(
            f"task spec {spec!r} names no builder: write pkg.mod:builder or path/to/file.py:builder"
        )
    if not all(part.isidentifier() for part in builder.split(".")):
        raise ValueError(f"task spec {spec!r}: {builder!r} is not a Python name")
    is_file = target.endswith(".py") or any(s in target for s in _SEPARATORS)
    if not is_file and not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(
            f"task spec {spec!r}: {target!r} is neither a module name (pkg.mod) nor a .py file"
        )
    return target, builder, is_file


def resolve_task_spec(spec: str) -> str:
    """The spec with a file's path made absolute (what a study stores); checks the syntax only.

    Example: ``resolve_task_spec("tasks.py:build")`` -> ``"/current/dir/tasks.py:build"``.
    """
    target, builder, is_file = _split(spec)
    if is_file:
        target = os.path.abspath(os.path.expanduser(target))
    return f"{target}:{builder}"


def _message(exc: BaseException) -> str:
    """``Kind: message`` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _module_name(path: str) -> str:
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]
    stem = "".join(c if c.isalnum() else "_" for c in os.path.basename(path)[:-3] or "file")
    return f"lrlab_user_task_{stem}_{digest}"


class _on_path:
    """Put ``folder`` first on ``sys.path`` for the ``with`` block (when it is not there yet)."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.added = False

    def __enter__(self) -> None:
        if self.folder is not None and self.folder not in sys.path:
            sys.path.insert(0, self.folder)
            self.added = True

    def __exit__(self, *exc: object) -> None:
        if self.added:
            try:
                sys.path.remove(self.folder)
            except ValueError:  # the user's code removed it itself
                pass


def _load_file(spec: str, path: str) -> ModuleType:
    if path in _FILES:
        return _FILES[path]
    if not os.path.isfile(path):
        raise ValueError(f"task spec {spec!r}: no such file {path!r}")
    name = _module_name(path)
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise ValueError(f"task spec {spec!r}: cannot load {path!r} as a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module  # classes defined in the file can then be pickled and reflected
    try:
        with _on_path(os.path.dirname(path)):
            mod_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise
        raise ValueError(f"task spec {spec!r}: importing {path} raised {_message(exc)}") from None
    _FILES[path] = module
    return module


def _load_module(spec: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if name == missing or name.startswith(missing + "."):
            raise ValueError(
                f"task spec {spec!r}: no module named {missing!r} (install it or put its folder "
                "on PYTHONPATH; for a file write path/to/file.py:builder)"
            ) from None
        raise ValueError(f"task spec {spec!r}: importing {name} raised {_message(exc)}") from None
    except Exception as exc:
        raise ValueError(f"task spec {spec!r}: importing {name} raised {_message(exc)}") from None


def _builder(spec: str) -> tuple[Callable[..., Any], str | None]:
    """The builder a resolved spec names, and the folder to keep on sys.path while it runs."""
    target, attr, is_file = _split(spec)
    if is_file:
        module, folder = _load_file(spec, target), os.path.dirname(target)
    else:
        module, folder = _load_module(spec, target), None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = target if obj is module else f"{target}:{attr}"
            raise ValueError(f"task spec {spec!r}: {where} has no attribute {part!r}") from None
    if not callable(obj):
        raise ValueError(
            f"task spec {spec!r}: {attr} is a {type(obj).__name__}, not a callable builder"
        )
    return obj, folder


def load_task(spec: str, **options: Any) -> Task:
    """The task ``builder(**options)`` returns for the import spec ``spec`` (cached per process).

    ``options`` are the builder's keyword arguments and the generic ``default_steps``,
    ``default_batch_size``, ``default_lr`` and ``default_optimizer`` (applied to the built
    task, as ``get_task`` does). ValueError, naming the spec, if the module or file does not
    exist, does not import, has no such builder, or the builder raises or returns something
    other than a ``Task``.

    Example: ``load_task("my_tasks.py:build", l2=0.01, default_steps=100)``.
    """
    spec = resolve_task_spec(spec)
    builder, folder = _builder(spec)
    build_kw, generic = build_options(f"task builder {spec}", builder, options)
    key = (spec, tuple(sorted((k, repr(v)) for k, v in build_kw.items())))
    if key not in _CACHE:
        try:
            with _on_path(folder):
                task = builder(**build_kw)
        except Exception as exc:
            raise ValueError(f"task builder {spec} raised {_message(exc)}") from None
        if not isinstance(task, Task):
            raise ValueError(
                f"task builder {spec} returned {type(task).__name__}, not a lrlab.tasks.Task"
            )
        _CACHE[key] = task
    task = _CACHE[key]
    try:
        return task.replace(**generic) if generic else task
    except ValueError as exc:
        raise ValueError(f"task builder {spec}: {exc}") from None


def load_callable(spec: str, what: str = "trial function") -> tuple[Callable[..., Any], str | None]:
    """The callable an import spec names (``pkg.mod:fn`` or ``path/to/file.py:fn``) and the
    folder to keep on ``sys.path`` while it runs; one-line ValueError naming ``what``.

    Example: ``fn, folder = load_callable("/abs/train.py:train")``.
    """
    try:
        return _builder(resolve_task_spec(spec))
    except ValueError as exc:
        raise ValueError(str(exc).replace("task spec", what, 1)) from None


def callable_spec(fn: Callable[..., Any]) -> str:
    """The import spec of a module-level function: ``pkg.mod:fn``, or ``/abs/file.py:fn`` for a
    function of the running script (``__main__``); ValueError for lambdas, nested functions
    and functions of an interactive session, which another process cannot import.

    Example: ``callable_spec(train)`` -> ``"/home/me/sweep.py:train"`` inside ``sweep.py``.
    """
    name = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if not callable(fn) or not name or not module:
        raise ValueError(f"expected a module-level function, got {fn!r}")
    if "<" in name:
        raise ValueError(
            f"{name} cannot be imported by a worker process: define it at module level "
            "(not a lambda or a nested function)"
        )
    if module == "__main__":
        path = getattr(sys.modules["__main__"], "__file__", None)
        if not path:
            raise ValueError(
                f"{name} is defined in an interactive session; put it in a .py file so worker "
                "processes can import it"
            )
        return f"{os.path.abspath(path)}:{name}"
    return f"{module}:{name}"
