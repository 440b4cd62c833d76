"""docs/results.md: the evidence pages of docs/results/ on one page, their findings and figures.

Reads each page the reproduction scripts wrote (``docs/results/<name>.md``) and copies its
findings (the section headed "What the numbers say") and its first figure, under a heading
per claim, with the command that made it. It writes no number of its own: every figure on the
page comes from a script's page. Run it after the scripts:

    python bench/reproduce/robustness.py && python bench/reproduce/schedules.py && ...
    python bench/reproduce/summary.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402

#: (page, claim): in the order the claims are made.
PAGES = (
    ("robustness", "1. Annealing buys robustness to a misspecified learning rate"),
    ("schedules", "2. Linear decay against cosine and the rest, and refinement"),
    ("lr_free", "3. Learning-rate-free methods against tuned schedules"),
    ("grid_cost", "4. What a coarse grid costs"),
    ("warmup_batch", "5. Warm-up and batch size"),
)
INTRO = """# The evidence: the papers' claims, measured with lrlab

Each section below is one claim of the papers and lecture notes lrlab builds on, the findings
of the script that tests it and one of its figures. The full page of each script (every table,
every figure, the exact protocol, the seeds and the machine) is linked from its heading; every
number there and here was produced by the script named on that page, in the same commit. To
reproduce a page, run its command (printed at the bottom of the page); then
`python bench/reproduce/summary.py` rebuilds this one. Where a result disagrees with a paper,
the page says so."""


def findings(text: str) -> str:
    """The page's findings: its section headed "What the numbers say" (or "Findings",
    "Summary", "Conclusions"), up to the next heading or the closing rule."""
    heads = r"(?:What the numbers say|Findings|Summary|Conclusions?)"
    m = re.search(rf"^#+ {heads}[^\n]*\n(.*?)(?=^#+ |^---\s*$|\Z)", text, re.M | re.S)
    return m.group(1).strip() if m else ""


def relink(text: str) -> str:
    """Links of a page in docs/results/ as seen from docs/ (absolute ones unchanged)."""
    return re.sub(r"\]\((?!https?:|/|#|results/)([^)]+)\)", r"](results/\1)", text)


def first_figure(text: str) -> str:
    m = re.search(r"^!\[[^\]]*\]\(([^)]+)\)", text, re.M)
    return relink(m.group(0)) if m else ""


def footer(text: str) -> str:
    m = re.search(r"^Command: `([^`]+)`", text, re.M)
    return f"Command: `{m.group(1)}`." if m else ""


def build(results: Path = RESULTS) -> str:
    parts = [INTRO, ""]
    for name, claim in PAGES:
        page = results / f"{name}.md"
        parts += [f"## [{claim}](results/{name}.md)", ""]
        if not page.exists():
            parts += ["Not measured yet: run its script.", ""]
            continue
        text = page.read_text()
        found = relink(findings(text))
        parts += [found or "(The page has no findings section.)", ""]
        fig = first_figure(text)
        if fig and "![" not in found:
            parts += [fig, ""]
        parts += [footer(text), ""]
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    out = RESULTS.parent / "results.md"
    out.write_text(build())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
