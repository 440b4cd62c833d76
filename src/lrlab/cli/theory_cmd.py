"""Placeholder: this command group registers nothing yet."""


def register(subparsers) -> None:  # noqa: ARG001
    return None
