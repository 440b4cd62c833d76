"""What every reproduction script shares: its command line, the machine line, Markdown tables,
seed statistics and a paired test.

A script ``bench/reproduce/<name>.py`` is one command. It trains what it needs with lrlab,
writes ``<out>/<name>.md`` (the command, the seeds, the machine, the tables) and its PNGs
``<out>/<name>_*.png``, and prints the tables. ``--smoke`` runs the same code at tiny sizes
(the test suite runs it so the scripts cannot rot); smoke output is not evidence and says so.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"


def parser(doc: str) -> argparse.ArgumentParser:
    """The common options: ``--smoke`` (tiny sizes) and ``--out`` (default docs/results)."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the .md and .png files")
    return ap


def machine() -> str:
    """One line: CPU model and count, torch and Python versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def command(script: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command line that ran this script, relative to the repository root (``script``
    and ``argv``: when it ran as a function, e.g. from a test; default ``sys.argv``)."""
    path = os.path.relpath(os.path.abspath(script or sys.argv[0]), ROOT)
    rest = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", shlex.quote(path), *map(shlex.quote, rest)])


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (numbers already formatted by the caller)."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(values: Sequence[float], digits: int = 4) -> str:
    """``"0.1234 ± 0.0012"``: mean and sample standard deviation over seeds (``inf`` if any
    value is not finite: a seed diverged)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return "–"
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v)).sum())
        return "diverged" if bad == v.size else f"inf ({bad} diverged)"
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of the paired differences a - b and the two-sided p-value of a paired t-test
    (NaN with fewer than two pairs or zero spread)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = x - y
    if d.size < 2 or not np.isfinite(d).all() or float(d.std()) == 0.0:
        return float(d.mean()) if d.size else math.nan, math.nan
    return float(d.mean()), float(stats.ttest_rel(x, y).pvalue)


def panels(plt, n: int, cols: int, width: float, height: float, **kw):
    """A figure of ``n`` panels, at most ``cols`` a row, each ``width`` x ``height`` inches,
    and its 2-D axes array; the slots past ``n`` are hidden. ``kw`` goes to
    ``plt.subplots`` (e.g. ``sharey=True``)."""
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             **kw)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Report:
    """Collects a script's Markdown and writes ``<out>/<name>.md``; figures go beside it."""

    def __init__(self, name: str, title: str, args: argparse.Namespace, *,
                 script: str | None = None, argv: Sequence[str] | None = None) -> None:
        self.name, self.out, self.smoke = name, Path(args.out), bool(args.smoke)
        self.script, self.argv = script, argv
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.parts = [f"# {title}", ""]
        if self.smoke:
            self.parts += ["**Smoke run (tiny sizes): these numbers are not evidence.**", ""]

    def add(self, text: str) -> None:
        self.parts += [text, ""]
        print(text, flush=True)

    def figure(self, fig, suffix: str, caption: str) -> str:
        """Save a Matplotlib figure as ``<name>_<suffix>.png`` and reference it."""
        path = self.out / f"{self.name}_{suffix}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.parts += [f"![{caption}]({path.name})", ""]
        return path.name

    def write(self, seeds: str) -> Path:
        minutes = (time.perf_counter() - self.t0) / 60
        self.parts += ["---", "",
                       f"Command: `{command(self.script, self.argv)}`  ",
                       f"Seeds: {seeds}  ",
                       f"Machine: {machine()}; {minutes:.1f} min."]
        path = self.out / f"{self.name}.md"
        path.write_text("\n".join(self.parts) + "\n")
        print(f"wrote {path}")
        return path
