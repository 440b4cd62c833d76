"""A user's LIBSVM / svmlight file as a multinomial logistic-regression task.

Each non-blank line is ``<label> [qid:<int>] <index>:<value> ...`` with an optional trailing
``# comment``; lines that are blank or start with ``#`` are skipped. Labels are mapped to classes
0..c-1 in sorted order; rows are split and standardised as for the bundled datasets.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from lrlab._checks import check_int, check_real
from lrlab.tasks.base import Task
from lrlab.tasks.classification import logreg_task, split_standardise


def _number(tok: str) -> float | None:
    try:
        v = float(tok)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def validate_svmlight(path: str | os.PathLike) -> int:
    """Check every line of ``path``; return the number of rows.

    Raises ``ValueError("<path>, line <n>: <what is wrong>")`` at the first malformed line.
    """
    rows = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            toks = line.split()
            where = f"{path}, line {n}"
            if _number(toks[0]) is None:
                raise ValueError(f"{where}: label {toks[0]!r} is not a finite number")
            last = -1
            for tok in toks[1:]:
                key, sep, val = tok.partition(":")
                if not sep:
                    raise ValueError(f"{where}: expected <index>:<value>, got {tok!r}")
                if key == "qid":
                    if not val.lstrip("-").isdigit():
                        raise ValueError(f"{where}: qid {val!r} is not an integer")
                    continue
                if not key.isdigit():
                    raise ValueError(f"{where}: feature index {key!r} is not a non-negative int")
                if int(key) <= last:
                    raise ValueError(f"{where}: feature indices must increase ({key} after {last})")
                last = int(key)
                if _number(val) is None:
                    what = f"value {val!r} of feature {key}"
                    raise ValueError(f"{where}: {what} is not a finite number")
            rows += 1
    return rows


def svmlight_task(
    path: str | os.PathLike,
    *,
    test_fraction: float = 0.25,
    split_seed: int = 0,
    default_steps: int = 500,
    default_batch_size: int = 32,
    default_lr: float = 0.5,
    l2: float = 0.0,
) -> Task:
    """Load ``path`` (LIBSVM format) as a logistic-regression task.

    Example: ``svmlight_task("a1a.txt").description``.
    """
    from sklearn.datasets import load_svmlight_file

    if not Path(path).is_file():
        raise ValueError(f"path must be an existing file, got {str(path)!r}")
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    split_seed = check_int("split_seed", split_seed, lo=0)
    l2 = check_real("l2", l2, 0.0)
    rows = validate_svmlight(path)
    if rows < 4:
        raise ValueError(f"{path}: need at least 4 data rows, found {rows}")
    X, labels = load_svmlight_file(str(path))
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{path}: need at least 2 distinct labels, found {len(classes)}")
    split = split_standardise(
        X.toarray(), y.astype(np.int64), test_fraction=test_fraction, seed=split_seed
    )
    return logreg_task(
        f"svmlight:{Path(path).name}",
        str(path),
        split,
        n_classes=len(classes),
        steps=default_steps,
        batch=default_batch_size,
        lr=default_lr,
        l2=l2,
        info={"classes": classes.tolist()},
    )
