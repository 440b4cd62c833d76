"""The README's pictures of the main job, made from a real run of it.

Runs the built-in study (``lrlab sweep`` with its defaults) in a temporary folder, then writes

- ``docs/terminal_80.svg``: its robustness table and caption as an 80-column terminal shows
  them (rich's SVG export of the same table ``lrlab report`` prints);
- ``docs/report_1280.png``: ``report.html`` in headless Chromium, a 1280 x 2000 window;
- ``docs/sweep_loss_vs_lr.png``: the report's loss-vs-lr figure.

Usage: ``python bench/screenshots.py`` (needs Chromium: ``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def main() -> None:
    from lrlab.cli import main as lrlab
    from lrlab.cli.sweep_cmd import _table, _table_title
    from lrlab.report import study_report
    from lrlab.tune import Study

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Chromium (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if lrlab(["sweep", "--out", "lrlab-report"]) != 0:
            sys.exit("lrlab sweep failed")
        study = Study.open("lrlab-default", None, "sqlite:///lrlab.db")
        rep = study_report(study, "lrlab-report")
        console = Console(width=80, record=True, file=open(os.devnull, "w"))
        console.print(_table(rep.robustness, _table_title(study.settings), console, False))
        console.print(rep.caption, style="dim", markup=False, highlight=False)
        console.save_svg(str(DOCS / "terminal_80.svg"), title="lrlab sweep (80 columns)")
        shutil.copy(Path(rep.files["loss_vs_lr.png"]), DOCS / "sweep_loss_vs_lr.png")
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={DOCS / 'report_1280.png'}", "--window-size=1280,2000",
             f"file://{Path(rep.files['report.html']).resolve()}"],
            check=True, capture_output=True, timeout=120,
        )
    for name in ("terminal_80.svg", "report_1280.png", "sweep_loss_vs_lr.png"):
        print(f"wrote {DOCS / name}")


if __name__ == "__main__":
    main()
