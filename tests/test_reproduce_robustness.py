"""bench/reproduce/robustness.py at tiny sizes: the script runs and writes its page."""

import re

from reproduce_scripts import load


def test_smoke_run_writes_the_page_and_its_figures(tmp_path):
    mod = load("robustness")
    mod.main(["--smoke", "--out", str(tmp_path)])
    page = (tmp_path / "robustness.md").read_text()
    assert "Smoke run" in page and "Command: `python bench/reproduce/robustness.py" in page
    assert page.count("| schedule | best lr | gap at best ± se |") == 2
    for name in mod.SCHEDULES:
        row = re.search(rf"^\| {name} \| ([^|]+) \| ([^|]+) \|", page, re.M)
        assert row, name
        float(row.group(1))  # a best lr
        gap = float(row.group(2).split("±")[0])
        assert gap > 0  # the final objective lies above the exact f*
    pngs = sorted(p.name for p in tmp_path.glob("robustness_*.png"))
    assert len(pngs) == 2 and all((tmp_path / p).stat().st_size > 10_000 for p in pngs)
    assert "### What the numbers say" in page


def test_the_summary_page_copies_each_pages_findings_and_figure(tmp_path):
    mod = load("summary")
    (tmp_path / "robustness.md").write_text(
        "# T\n\n| a |\n|---|\n| 1 |\n\n![gap](robustness_x.png)\n\n"
        "### What the numbers say\n\n- linear 0.79, constant 1.40.\n\n---\n\n"
        "Command: `python bench/reproduce/robustness.py`  \nSeeds: 0..7\n")
    page = mod.build(tmp_path)
    assert "- linear 0.79, constant 1.40." in page
    assert "![gap](results/robustness_x.png)" in page
    assert "Command: `python bench/reproduce/robustness.py`." in page
    assert page.count("Not measured yet") == len(mod.PAGES) - 1
