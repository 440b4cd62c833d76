"""Writing output files whole, and saying in one line why a file or a database failed.

``atomic_write`` writes to a temporary file in the destination's folder and renames it over the
destination, so a crash or a full disk never leaves a truncated file: the destination is the
old file or the new one. ``describe_error`` turns an ``OSError`` or a database error (SQLite
through SQLAlchemy and Optuna) into a one-line reason such as ``disk full`` or ``read-only``.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Callable
from typing import IO

__all__ = [
    "atomic_write",
    "check_folder",
    "check_output_file",
    "describe_error",
    "is_database_error",
]

# errno -> the plain words said for it
_ERRNO_WORDS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a parent is not a folder",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "name too long",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], object]
) -> str:
    """Write ``data`` (bytes, text as UTF-8, or a function writing to a binary file object) to
    ``path`` through a temporary file in the same folder, renamed over ``path`` once complete.

    The file gets the permissions of a newly created file (0666 less the umask). An error
    removes the temporary file and is raised again as an ``OSError`` naming ``path``.
    Returns ``path`` as a string.

    Example: ``atomic_write("out/report.html", page)``.
    """
    dest = os.fspath(path)
    folder = os.path.dirname(dest) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror or str(exc), dest) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def check_folder(path: str | os.PathLike, flag: str) -> str:
    """Check that ``path`` is a folder that can be written, or can be created (its nearest
    existing parent is a writable folder); ValueError naming ``flag`` otherwise. Creates
    nothing."""
    p = os.path.abspath(os.fspath(path))
    if os.path.exists(p) and not os.path.isdir(p):
        raise ValueError(f"{flag} {os.fspath(path)!r} is a file, not a folder")
    probe = p
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"{flag} {os.fspath(path)!r}: {probe!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {os.fspath(path)!r}: cannot write in {probe!r} (permission denied)"
        )
    return os.fspath(path)


def check_output_file(path: str | os.PathLike, flag: str) -> str:
    """Check that ``path`` can be written as a file: it is not a folder, and its folder exists
    and is writable; ValueError naming ``flag`` otherwise. Creates nothing."""
    p = os.fspath(path)
    if not p or p.endswith(os.sep):
        raise ValueError(f"{flag} must name a file, got {p!r}")
    if os.path.isdir(p):
        raise ValueError(f"{flag} {p!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.exists(folder):
        raise ValueError(f"{flag} {p!r}: no such folder {os.path.dirname(p)!r}")
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {p!r}: {os.path.dirname(p)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {p!r}: cannot write in {folder!r} (permission denied)")
    return p


def _database_reason(text: str) -> str:
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        return f"read-only ({text})"
    if "disk is full" in low or "disk full" in low:
        return f"disk full ({text})"
    if "locked" in low:
        return f"locked by another process ({text})"
    return f"database error ({text})"


def _os_reason(exc: OSError) -> str:
    words = _ERRNO_WORDS.get(exc.errno or 0)
    system = exc.strerror or str(exc)
    text = words or system
    if words is not None and system and system.lower() != words:
        text = f"{words} ({system})"
    return text if exc.filename is None else f"{os.fspath(exc.filename)!r}: {text}"


def _is_database_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    wrapped = {"SQLAlchemyError", "StorageInternalError"}
    return isinstance(exc, sqlite3.Error) or bool(names & wrapped)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the driver errors SQLAlchemy wraps (``orig``)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        orig = getattr(cur, "orig", None)
        if isinstance(orig, BaseException) and orig not in chain:
            chain.append(orig)
        cur = cur.__cause__ or cur.__context__
    return chain


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database (SQLite, SQLAlchemy or Optuna's storage)."""
    return any(_is_database_error(e) for e in _chain(exc))


def describe_error(exc: BaseException) -> str | None:
    """A one-line reason for an expected failure, or None for an unexpected one.

    An ``OSError``: ``'<path>': <plain words> (<system message>)``, e.g. ``disk full``. A
    database error (SQLite's, also when SQLAlchemy or Optuna wrap it): ``read-only (...)``,
    ``disk full (...)``, ``locked by another process (...)`` or ``database error (...)`` with the
    driver's message.
    """
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, sqlite3.Error):
            return _database_reason(str(e).splitlines()[0] if str(e) else type(e).__name__)
    for e in chain:
        if isinstance(e, OSError):
            return _os_reason(e)
    if any(_is_database_error(e) for e in chain):
        deepest = chain[-1]
        text = str(deepest).splitlines()[0] if str(deepest) else type(deepest).__name__
        return _database_reason(text)
    return None
