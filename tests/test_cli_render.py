"""Reports that always render: every run diverged; a non-geometric grid grown at its edge."""

from lrlab.cli import main
from lrlab.tune import Study


def _sweep(tmp_path, *extra):
    return main(
        [
            "sweep",
            "--steps",
            "30",
            "--seeds",
            "1",
            "--schedules",
            "constant",
            "--storage",
            str(tmp_path / "r.db"),
            "--out",
            str(tmp_path / "rep"),
            *extra,
        ]
    )


def test_a_study_where_every_run_diverged_renders_its_report(tmp_path, capsys):
    assert _sweep(tmp_path, "--grid", "100000,1000000", "--edge-rounds", "0", "--study", "d") == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err == ""
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Every run diverged" in page
    assert Study.open("d", None, str(tmp_path / "r.db")).results()["diverged"].all()


def test_a_non_geometric_grid_is_grown_past_its_edge_by_its_outermost_step(tmp_path, capsys):
    args = ("--grid", "0.01,0.03,0.05", "--edge-rounds", "1", "--study", "g")
    assert _sweep(tmp_path, *args) == 0
    out = capsys.readouterr().out
    assert "adding lr" in out
    study = Study.open("g", None, str(tmp_path / "r.db"))
    added = study.extra_lrs["constant"]
    assert len(added) == 2
    # the step 0.03 -> 0.05 (factor 5/3), continued upwards
    assert abs(added[0] / 0.05 - 5 / 3) < 1e-12 and abs(added[1] / added[0] - 5 / 3) < 1e-12
    assert (
        main(
            [
                "sweep",
                "--resume",
                "--study",
                "g",
                "--storage",
                str(tmp_path / "r.db"),
                "--out",
                str(tmp_path / "rep"),
                "--edge-rounds",
                "0",
            ]
        )
        == 0
    )
