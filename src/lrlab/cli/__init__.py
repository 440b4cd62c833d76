"""The ``lrlab`` command. Each command group lives in its own module with a ``register`` hook."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under lrlab.cli that add subcommands: each defines register(subparsers).
COMMAND_MODULES = ("schedules_cmd", "theory_cmd", "sweep_cmd", "find_cmd", "trials_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrlab", description="The learning rate, measured.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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


def main(argv: list[str] | None = None) -> int:
    _log_to_stderr()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"lrlab: error: {exc}", file=sys.stderr)
        return 2
    finally:
        lease = sys.modules.get("lrlab.tune.lease")
        if lease is not None:  # a command that drove a study lets the next driver in now
            lease.release_all()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
