"""Export a results table to CSV or Parquet (by file suffix)."""

from __future__ import annotations

import os

import pandas as pd


def export(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write ``df`` to ``path``: ``.csv`` (no index) or ``.parquet`` (needs pyarrow).

    Example: ``export(study.results(), "results.parquet")``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    p = os.fspath(path)
    suffix = os.path.splitext(p)[1].lower()
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix in (".parquet", ".pq"):
        try:
            df.to_parquet(p, index=False)
        except ImportError:
            raise ValueError("Parquet export needs pyarrow: pip install 'lrlab[parquet]'") from None
    else:
        raise ValueError(f"path must end in .csv or .parquet, got {p!r}")
    return p
