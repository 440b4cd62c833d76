"""The robustness table in the terminal (rich)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from rich import box
from rich.table import Table

from lrlab.tune.analysis import RHOS


def _num(x: float, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "div"
    return format(x, fmt)


def robustness_table(
    rob: pd.DataFrame, *, rhos: Sequence[float] = RHOS, title: str = "Robustness"
) -> Table:
    """A rich ``Table``: best lr and loss, loss at rho x over/under, fitted and predicted
    exponents, seed spread and the tolerable grid factor, one row per schedule.

    "div" marks a diverged run, "-" a point off the grid.
    Example: ``rich.print(robustness_table(robustness(study.results())))``.
    """
    t = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("schedule", no_wrap=True)
    t.add_column("best lr", justify="right")
    t.add_column("best loss", justify="right")
    t.add_column("seed sd", justify="right")
    for r in rhos:
        t.add_column(f"x{r:g}", justify="right")
    for r in rhos:
        t.add_column(f"/{r:g}", justify="right")
    t.add_column("a over (theory)", justify="right", no_wrap=True)
    t.add_column("a under", justify="right")
    t.add_column("grid factor", justify="right")
    for _, row in rob.iterrows():
        pred = row.get("predicted_over", math.nan)
        t.add_row(
            str(row["schedule"]),
            _num(row["best_lr"]),
            _num(row["best_loss"]),
            _num(row["seed_spread"], ".1g"),
            *[_num(row.get(f"over_{r:g}", math.nan)) for r in rhos],
            *[_num(row.get(f"under_{r:g}", math.nan)) for r in rhos],
            f"{_num(row['exponent_over'], '.2f')} ({_num(pred, '.2f')})",
            _num(row["exponent_under"], ".2f"),
            _num(row["max_grid_factor"], "g"),
        )
    return t
