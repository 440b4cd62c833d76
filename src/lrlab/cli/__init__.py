"""The ``lrlab`` command. Each command group lives in a module named for it, with a
``register`` hook.

Every expected error ends the command with one line on stderr, ``lrlab: error: ...``, and exit
status 2: a bad option or value (``ValueError``, also argparse's own errors), a file that cannot
be read or written (``OSError``: the path and the reason, e.g. ``disk full``), a database that
cannot be written (``read-only``, ``disk full``, ...). Only an unexpected error shows a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under lrlab.cli that add subcommands: each defines register(subparsers).
COMMAND_MODULES = (
    "schedules_cmd",
    "bound_cmd",
    "refine_cmd",
    "sweep_cmd",
    "find_cmd",
    "trials_cmd",
    "advise_cmd",
)
ERROR_EXIT = 2


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``lrlab: error: <prog>: <message>``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(ERROR_EXIT, f"lrlab: error: {self.prog}: {text} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lrlab", description="The learning rate, measured.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for mod in COMMAND_MODULES:
        importlib.import_module(f"lrlab.cli.{mod}").register(sub)
    return parser


def _log_to_stderr() -> None:
    """Messages of the ``lrlab`` logger (e.g. a module trained member by member) as one line."""
    import logging

    log = logging.getLogger("lrlab")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lrlab: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def error_message(exc: BaseException, args: argparse.Namespace | None = None) -> str | None:
    """The one-line message of an expected error, or None for an unexpected one."""
    from lrlab._io import describe_error, is_database_error

    if isinstance(exc, ValueError):
        text = str(exc)
    else:
        reason = describe_error(exc)
        if reason is None:
            return None
        text = reason
        if is_database_error(exc):
            storage = getattr(args, "storage", None)
            if storage:
                from lrlab.tune.study import storage_url

                text = f"storage {storage_url(storage)!r}: {text}"
    return " ".join(text.split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    _log_to_stderr()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or an argparse error already printed in one line
        return exc.code if isinstance(exc.code, int) else ERROR_EXIT
    if not getattr(args, "func", None):
        parser.print_help()
        return ERROR_EXIT
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # expected errors become one line; others keep their traceback
        text = error_message(exc, args)
        if text is None:
            raise
        print(f"lrlab: error: {text}", file=sys.stderr)
        return ERROR_EXIT
    finally:
        lease = sys.modules.get("lrlab.tune.lease")
        if lease is not None:  # a command that drove a study lets the next driver in now
            lease.release_all()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
