"""Export a results table to CSV or Parquet (by file suffix)."""

from __future__ import annotations

import os

import pandas as pd

from lrlab._io import atomic_write


def export(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write ``df`` to ``path``: ``.csv`` (no index) or ``.parquet`` (needs pyarrow).

    The file is written whole: through a temporary file in its folder, then renamed.

    Example: ``export(study.results(), "results.parquet")``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    p = os.fspath(path)
    suffix = os.path.splitext(p)[1].lower()
    if suffix == ".csv":
        atomic_write(p, df.to_csv(index=False))
    elif suffix in (".parquet", ".pq"):
        try:
            atomic_write(p, lambda fh: df.to_parquet(fh, index=False))
        except ImportError:
            raise ValueError("Parquet export needs pyarrow: pip install 'lrlab[parquet]'") from None
    else:
        raise ValueError(f"path must end in .csv or .parquet, got {p!r}")
    return p
