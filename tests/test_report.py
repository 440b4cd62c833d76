import base64
import math
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from lrlab.report import (
    export,
    gap_vs_rho_figure,
    loss_vs_lr_figure,
    robustness_table,
    schedule_shapes_figure,
    write_report,
)
from lrlab.schedules import Constant, Cosine
from lrlab.tune import predicted_exponent, robustness

LRS = [2.0**k for k in range(-4, 5)]


@pytest.fixture
def df():
    rows = []
    for name, best in (("constant", 0.5), ("cosine", 2.0)):
        for lr in LRS:
            for seed in (0, 1, 2):
                div = name == "constant" and (lr > 4 or (lr == 4 and seed == 1))
                loss = math.nan if div else 1 + 0.1 * abs(math.log2(lr / best)) + 0.01 * seed
                rows.append(
                    {"schedule": name, "lr": lr, "seed": seed, "final_loss": loss, "diverged": div}
                )
    return pd.DataFrame(rows)


SCHEDS = {"constant": Constant(), "cosine": Cosine(steps=50)}


def test_loss_vs_lr_draws_diverged_runs_at_the_top_edge(df):
    fig = loss_vs_lr_figure(df)
    ax = fig.axes[0]
    marks = [c for c in ax.collections if (c.get_gid() or "").startswith("diverged:")]
    assert [c.get_gid() for c in marks] == ["diverged:constant"]
    xy = marks[0].get_offsets()
    assert sorted(xy[:, 0]) == [4.0, 8.0, 8.0, 8.0, 16.0, 16.0, 16.0]
    assert np.all(xy[:, 1] == 1.0)  # y in axes coordinates: the top edge
    # the mean line breaks where any seed diverged; the seed band spans min..max
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "constant")
    y = line.get_ydata()
    assert np.isnan(y[LRS.index(4.0) :]).all() and np.isfinite(y[: LRS.index(4.0)]).all()
    assert y[LRS.index(0.5)] == pytest.approx(1.01)
    bands = [c for c in ax.collections if c.get_gid() is None]
    assert len(bands) == 2  # one fill_between per schedule


def test_gap_and_shape_figures(df):
    rob = robustness(df, f_star=0.9, schedules=SCHEDS)
    fig = gap_vs_rho_figure(rob, f_star=0.9)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert any(lbl.startswith("cosine (over") for lbl in labels)
    assert any(lbl.startswith("constant (under") for lbl in labels)
    shapes = schedule_shapes_figure(SCHEDS, 50)
    cos = next(ln for ln in shapes.axes[0].get_lines() if ln.get_label() == "cosine")
    np.testing.assert_allclose(cos.get_ydata(), Cosine(steps=50).values())


def test_write_report_is_self_contained(df, tmp_path):
    rep = write_report(df, tmp_path / "r", schedules=SCHEDS, steps=50, description=["demo"])
    for name in ("loss_vs_lr.png", "gap_vs_rho.png", "schedules.png", "report.html", "results.csv"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    html = (tmp_path / "r" / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3
    png = (tmp_path / "r" / "loss_vs_lr.png").read_bytes()
    assert base64.b64decode(images[0]) == png and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in html and "demo" in html and 'src="http' not in html
    assert list(rep.robustness.schedule) == ["constant", "cosine"]
    back = pd.read_csv(tmp_path / "r" / "results.csv")
    assert len(back) == len(df) and back.diverged.sum() == df.diverged.sum()
    with pytest.raises(ValueError, match="empty"):
        write_report(df.iloc[:0], tmp_path / "e", schedules=SCHEDS, steps=50)


def test_export_csv_and_parquet_round_trip(df, tmp_path):
    export(df, tmp_path / "a.csv")
    export(df, tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), df)
    back = pd.read_csv(tmp_path / "a.csv")
    np.testing.assert_allclose(back.final_loss, df.final_loss)
    with pytest.raises(ValueError, match=".csv or .parquet"):
        export(df, tmp_path / "a.xlsx")


def test_terminal_table_lists_every_schedule(df):
    rob = robustness(df, schedules=SCHEDS, steps=50)
    console = Console(width=200, record=True)
    console.print(robustness_table(rob))
    text = console.export_text()
    assert "constant" in text and "cosine" in text and "div" in text
    # each schedule's theory exponent (lrlab.theory at 50 steps) beside the fit
    for name in ("constant", "cosine"):
        assert f"({predicted_exponent(SCHEDS[name], steps=50):.2f})" in text


def test_a_study_where_every_run_diverged_still_renders(tmp_path):
    rows = [
        {"trial": i, "schedule": s, "seed": 0, "lr": lr, "weight_decay": 0.0,
         "final_loss": np.nan, "test_metric": np.nan, "diverged": True, "diverged_at": 3}
        for i, (s, lr) in enumerate([(s, lr) for s in ("constant", "cosine") for lr in (1e5, 1e6)])
    ]
    df = pd.DataFrame(rows)
    rep = write_report(
        df, tmp_path, schedules={"constant": Constant(), "cosine": Cosine(10)}, steps=10
    )
    page = (tmp_path / "report.html").read_text()
    assert "Every run diverged" in page
    assert page.count("<img") == 3  # every figure drew
    assert rep.robustness["best_loss"].tolist() == [math.inf, math.inf]
