"""The robustness table in the terminal (rich), as wide as the terminal it lands in.

``robustness_table(rob, width=...)`` keeps the columns that matter most and adds the others
while they fit: schedule, best lr, best loss, loss at 4x and 16x the best lr, the fitted
over-estimate exponent with the theory's, the coarsest grid factor (fits 80 columns); then
loss at 4x and 16x below the best lr, at 2x and 8x, the under-estimate exponent and the seed
spread. ``wide=True`` (or ``width=None``) shows every column; the HTML report and
``results.csv`` always hold everything.

Numbers: 4 significant digits for losses and lrs, 2 decimals for exponents; the best value of
each loss column is bold; "div" marks a diverged run, "-" a point off the grid, "—" an
exponent whose gaps are within seed noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from lrlab.tune.analysis import RHOS

#: Columns in the order they are added as width allows: (key, header, width in characters).
#: Keys: a column of ``robustness()``'s frame, or "over_rho"/"under_rho"/"exponents".
_ORDER = (
    ("best_lr", "best lr", 8),
    ("best_loss", "best loss", 9),
    ("over_4", "x4", 8),
    ("over_16", "x16", 8),
    ("exponents", "a over (th.)", 12),
    ("max_grid_factor", "grid", 5),
    ("under_4", "/4", 8),
    ("under_16", "/16", 8),
    ("over_2", "x2", 8),
    ("over_8", "x8", 8),
    ("under_2", "/2", 8),
    ("under_8", "/8", 8),
    ("exponent_under", "a under", 7),
    ("seed_spread", "seed sd", 7),
)


def _num(x: float, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "div"
    return format(x, fmt)


def exponent_text(row: pd.Series, side: str, *, interval: bool = False) -> str:
    """A fitted exponent as shown: "0.35" (with ``interval``: "0.35 [0.30, 0.41]" when its
    bootstrap interval is known), "—" when its gaps were within seed noise, "-" when there
    was nothing to fit."""
    e = row.get(f"exponent_{side}", math.nan)
    if e is None or not np.isfinite(e):
        return "—" if bool(row.get(f"noise_{side}", False)) else "-"
    lo, hi = row.get(f"exponent_{side}_lo", math.nan), row.get(f"exponent_{side}_hi", math.nan)
    if interval and lo is not None and np.isfinite(lo) and np.isfinite(hi):
        return f"{e:.2f} [{lo:.2f}, {hi:.2f}]"
    return f"{e:.2f}"


def _columns(rob: pd.DataFrame, rhos: Sequence[float], width: int | None) -> list[tuple]:
    """The columns to show, in display order, within ``width`` characters (None: all)."""
    names = {f"over_{r:g}" for r in rhos} | {f"under_{r:g}" for r in rhos}
    candidates = [c for c in _ORDER if not c[0].startswith(("over_", "under_")) or c[0] in names]
    extra = [
        (f"{side}_{r:g}", f"{'x' if side == 'over' else '/'}{r:g}", 8)
        for side in ("over", "under")
        for r in rhos
        if f"{side}_{r:g}" not in {c[0] for c in _ORDER}
    ]
    candidates += extra
    name_w = max([len("schedule"), *[len(str(s)) for s in rob["schedule"]]])
    used = name_w
    chosen = []
    for col in candidates:
        if width is not None and used + 2 + col[2] > width:
            continue
        chosen.append(col)
        used += 2 + col[2]
    # display order: lr and loss, over side ascending, under side ascending, the rest
    def order(col: tuple) -> tuple:
        key = col[0]
        if key.startswith(("over_", "under_")):
            side, r = key.split("_")
            return (1 if side == "over" else 2, float(r))
        rank = {"best_lr": 0, "best_loss": 0.5, "exponents": 3, "exponent_under": 4,
                "max_grid_factor": 5, "seed_spread": 6}
        return (0 if rank[key] < 1 else 3, rank[key])

    return sorted(chosen, key=order)


def robustness_table(
    rob: pd.DataFrame,
    *,
    rhos: Sequence[float] = RHOS,
    title: str = "Robustness",
    width: int | None = None,
) -> Table:
    """A rich ``Table`` of ``robustness()``'s frame, one row per schedule, that fits
    ``width`` characters (None: every column).

    Args:
        rob: ``lrlab.tune.robustness(df)``.
        rhos: the misspecification factors of its over/under columns.
        title: the table's title (shortened to ``width``).
        width: the characters available (a terminal's width); columns that do not fit are
            left out, most important first kept (see the module docstring).

    Returns:
        The table; "div" marks a diverged run, "-" a point off the grid, and the best value
        of each loss column is bold.

    Example: ``rich.print(robustness_table(robustness(study.results()), width=80))``.
    """
    cols = _columns(rob, rhos, width)
    if width is not None and len(title) > width:
        title = title[: max(0, width - 3)] + "..."
    t = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("schedule", no_wrap=True)
    for _, header, w in cols:
        t.add_column(header, justify="right", no_wrap=True, min_width=min(w, len(header)))
    best = {}
    for key, _, _ in cols:
        if key == "best_loss" or key.startswith(("over_", "under_")):
            vals = pd.to_numeric(rob[key], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(vals)
            best[key] = vals[ok].min() if ok.any() else None
    for _, row in rob.iterrows():
        cells = []
        for key, _, _ in cols:
            if key == "exponents":
                pred = row.get("predicted_over", math.nan)
                cells.append(f"{exponent_text(row, 'over')} ({_num(pred, '.2f')})")
                continue
            if key == "exponent_under":
                cells.append(exponent_text(row, "under"))
                continue
            value = row.get(key, math.nan)
            fmt = {"seed_spread": ".1g", "max_grid_factor": "g", "exponent_under": ".2f"}
            text = _num(value, fmt.get(key, ".4g"))
            if best.get(key) is not None and value == best[key]:
                text = f"[bold]{text}[/]"
            cells.append(text)
        t.add_row(str(row["schedule"]), *cells)
    return t
