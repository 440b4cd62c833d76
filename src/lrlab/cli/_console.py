"""The console every ``lrlab`` command prints to: as wide as the terminal it runs in.

On a terminal, rich measures it (and follows ``COLUMNS`` when set); when the output is not a
terminal (a pipe, a file, CI logs) the width is ``PIPE_WIDTH`` columns unless ``COLUMNS`` says
otherwise. Tables are built for ``console.width`` (``robustness_table(..., width=...)``), so
no printed line is wider than the console.
"""

from __future__ import annotations

import os
import sys

PIPE_WIDTH = 100


def console(stderr: bool = False):
    """A ``rich.console.Console`` for stdout (or stderr) sized as described above."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH)
