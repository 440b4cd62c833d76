"""The sizes the ``lrlab`` command accepts, checked before any work starts.

Every command checks the amount of work or memory an option asks for here, and refuses it
with the number asked for and the limit, instead of running for hours or exhausting memory.

- ``lrlab sweep``: at most ``MAX_RUNS`` runs per study (the grid points x schedules x seeds,
  counting the points the edge rule may add); ``--max-runs`` raises the limit. A batch of the
  built-in trainer holds a learning-rate table of runs x steps float64 values: at most
  ``MAX_LR_TABLE_BYTES`` (lower ``--steps`` or ``--batch-size``).
- ``lrlab schedules plot`` draws at most ``PLOT_POINTS`` points per schedule (a subsampled,
  evenly spaced grid of steps that includes the first and the last); steps are at most
  ``MAX_STEPS`` (2**53, where float64 steps stop being exact).
- ``lrlab bound`` works on long horizons in bounded memory (``lrlab.theory`` evaluates a
  schedule longer than ``lrlab.theory.EXACT_STEPS`` steps on a subsampled grid); its steps are
  at most ``MAX_STEPS`` too.
"""

from __future__ import annotations

import math

import numpy as np

MAX_RUNS = 10_000
MAX_LR_TABLE_BYTES = 4 * 2**30
PLOT_POINTS = 4_000
MAX_STEPS = 2**53


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_runs(runs: int, limit: int, detail: str) -> None:
    """``runs`` (``detail`` says how they were counted) must be at most ``limit``."""
    if runs > limit:
        raise ValueError(
            f"the sweep would train up to {runs:,} runs ({detail}), over the limit of "
            f"{limit:,}: use a coarser grid, fewer seeds or schedules, or raise the limit "
            "with --max-runs N"
        )


def check_lr_table(runs_per_batch: int, steps: int) -> None:
    """A batch's learning-rate table (runs x steps float64) must fit ``MAX_LR_TABLE_BYTES``."""
    need = 8 * runs_per_batch * steps
    if need > MAX_LR_TABLE_BYTES:
        raise ValueError(
            f"a batch of {runs_per_batch:,} runs x {steps:,} steps needs a learning-rate table "
            f"of {_bytes(need)}, over the limit of {_bytes(MAX_LR_TABLE_BYTES)}: lower --steps "
            "or --batch-size"
        )


def check_steps(flag: str, steps: int) -> int:
    """``steps`` must be in [1, MAX_STEPS]."""
    if steps < 1:
        raise ValueError(f"{flag} must be >= 1, got {steps}")
    if steps > MAX_STEPS:
        raise ValueError(f"{flag} must be at most 2**53 ({MAX_STEPS:,}), got {steps:,}")
    return steps


def plot_steps(steps: int, points: int = PLOT_POINTS) -> np.ndarray:
    """The steps a plot of 0..steps-1 draws: all of them, or ``points`` evenly spaced ones
    (first and last included) when there are more."""
    if steps <= points:
        return np.arange(steps, dtype=np.float64)
    return np.unique(np.round(np.linspace(0.0, steps - 1.0, points)))


def parse_steps(flag: str, text: str) -> int:
    """A step count from the command line: an integer, also written like ``1e6``, in
    [1, MAX_STEPS]."""
    raw = str(text).strip()
    try:
        value = int(raw)
    except ValueError:
        try:
            f = float(raw)
        except ValueError:
            raise ValueError(f"{flag} must be an integer >= 1, got {raw!r}") from None
        if not math.isfinite(f) or not f.is_integer():
            raise ValueError(f"{flag} must be an integer >= 1, got {raw!r}") from None
        value = int(f)
    return check_steps(flag, value)


def steps_type(text: str) -> int:
    """``type=`` of a ``--steps`` option (argparse reports the error in one line)."""
    import argparse

    try:
        return parse_steps("--steps", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--steps ")) from None
