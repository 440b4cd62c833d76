"""Every relative link and ``#anchor`` in README.md and docs/*.md resolves.

Anchors follow GitHub's rule for headings: lower-case, drop everything but letters, digits,
spaces, hyphens and underscores, spaces become hyphens, and a repeated heading gets ``-1``,
``-2``, ... Links inside code blocks and inline code are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.add(base if k == 0 else f"{base}-{k}")
    return out


def links(path: Path):
    for n, line in prose_lines(path.read_text(encoding="utf-8")):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            yield n, m.group(1)


CASES = [(page, n, target) for page in PAGES for n, target in links(page)]


def test_pages_have_links():
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 1
    assert any(target.startswith("docs/") for page, _, target in CASES)


@pytest.mark.parametrize(
    ("page", "line", "target"),
    [c for c in CASES if not EXTERNAL.match(c[2])],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_relative_link_resolves(page: Path, line: int, target: str):
    file, _, anchor = target.partition("#")
    dest = (page.parent / unquote(file)).resolve() if file else page
    where = f"{page.relative_to(ROOT)}:{line}: {target}"
    assert dest.exists(), f"{where}: {file} does not exist"
    if anchor:
        assert dest.suffix == ".md", f"{where}: an anchor into a file that is not Markdown"
        assert unquote(anchor) in anchors(dest), f"{where}: no heading gives #{anchor}"


def test_slug_follows_github():
    assert slug("Tasks and trainers (`lrlab.tasks`, `lrlab.train`)") == (
        "tasks-and-trainers-lrlabtasks-lrlabtrain"
    )
    assert slug("The main job: `lrlab sweep`") == "the-main-job-lrlab-sweep"
    assert slug("What `lr` means, and `effective_lr()`") == "what-lr-means-and-effective_lr"
