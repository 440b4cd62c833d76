"""Smoke run of bench/reproduce/warmup_batch.py: the script runs end to end at tiny sizes and
writes its page and figures."""

import re

from reproduce_scripts import assert_figures, load


def test_smoke_writes_page_and_figures(tmp_path):
    load("warmup_batch").main(["--smoke", "--out", str(tmp_path)])
    page = (tmp_path / "warmup_batch.md").read_text()
    assert_figures(page, tmp_path, "warmup_batch", ("loss", "lr"))
    assert "Smoke run" in page
    header = ("| B | rule | lr | loss, no warm-up | × best | test acc. | loss, warm-up | × best | "
              "test acc. | warm-up − none (p) |")
    assert page.count(header) == 2  # one table per model
    number = r"\d+(\.\d+)?(e-?\d+)?"
    loss = rf"({number} ± {number}|diverged|inf \(\d diverged\))"
    for rule in ("re-tuned (best lr)", "base lr0", "square root √k·lr0", "linear k·lr0"):
        rows = [ln for ln in page.splitlines() if ln.startswith("|") and f"| {rule} |" in ln]
        assert rows, rule
        for ln in rows:
            cells = [c.strip() for c in ln.strip("|").split("|")]
            assert re.fullmatch(rf"{number}( / {number})?", cells[2]), ln  # learning rate(s)
            assert re.fullmatch(loss, cells[3]) and re.fullmatch(loss, cells[6]), ln
    # the reference (one of a re-tuned row's two runs) is finite, with its spread, at × best 1.00
    retuned = [ln for ln in page.splitlines() if "| re-tuned (best lr) |" in ln]
    assert all(re.search(rf"\| {number} ± {number} \| 1\.00 \|", ln) for ln in retuned)
    assert "Command: `" in page and "Seeds: " in page and "Machine: " in page
