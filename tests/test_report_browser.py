"""The HTML report in a real browser: headless Chromium, a desktop and a phone-width window;
the page must never scroll sideways (wide tables scroll inside their own box)."""

import math
import re
import shutil
import subprocess

import pandas as pd
import pytest

from lrlab.report import write_report
from lrlab.schedules import Constant, Cosine, Linear, Polynomial

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; .ci/run does)"
)
PROBE = (
    "<script>const boxes = Array.from(document.querySelectorAll('.scroll'));"
    "document.title = 'scroll ' + document.documentElement.scrollWidth + ' client ' "
    "+ document.documentElement.clientWidth + ' inner ' "
    "+ Math.max(0, ...boxes.map(b => b.scrollWidth - b.clientWidth));</script></body>"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    schedules = {
        "constant": Constant(),
        "cosine": Cosine(200),
        "linear": Linear(200),
        "poly2": Polynomial(200, 2.0),
    }
    rows = []
    for name in schedules:
        for k in range(-6, 8):
            lr = 2.0**k
            for seed in range(3):
                div = k > 5
                loss = math.nan if div else 0.26 + 0.01 * abs(k) + 0.001 * seed
                rows.append(
                    {
                        "schedule": name,
                        "lr": lr,
                        "seed": seed,
                        "final_loss": loss,
                        "test_metric": 0.9,
                        "diverged": div,
                    }
                )
    failures = pd.DataFrame(
        [
            {
                "trial": 7,
                "schedule": "cosine",
                "seed": 0,
                "lr": 0.5,
                "error": "Traceback (most recent call last):\n"
                + "x" * 300
                + "\nRuntimeError: "
                + "a very long message without any break " * 8,
            }
        ]
    )
    write_report(
        pd.DataFrame(rows),
        out,
        schedules=schedules,
        steps=200,
        title="lrlab sweep: python train.py --lr {lr} --seed {seed} --schedule {schedule} "
        "--steps {steps} --a-very-long-option-name-that-does-not-break",
        description=["a long description line " * 12],
        failures=failures,
    )
    page = (out / "report.html").read_text()
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    return probe


@pytest.mark.parametrize("size", [(1280, 900), (400, 800)])
def test_the_report_never_scrolls_sideways(report, size):
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={size[0]},{size[1]}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    m = re.search(r"<title>scroll (\d+) client (\d+) inner (\d+)</title>", dom)
    assert m, dom[:500]
    scroll, client, inner = (int(g) for g in m.groups())
    assert client > 0 and scroll <= client, f"page {scroll}px wide in a {client}px window"
    if size[0] >= 1280:  # on a desktop window even the tables fit without scrolling
        assert inner == 0, f"a table overflows its box by {inner}px"
