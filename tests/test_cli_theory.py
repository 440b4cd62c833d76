import json
import re

import numpy as np
import pandas as pd

from lrlab.cli import main
from lrlab.schedules import Linear, Polynomial, Schedule
from lrlab.theory import best_peak, rho_curve


def _numbers(line):
    return [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", line)]


def test_bound_polynomial_prints_best_peak_table_and_exponents(capsys):
    assert main(["bound", "polynomial", "--power", "2", "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    res = best_peak(Polynomial(1000, 2.0))
    assert f"best peak c* = {res.peak:.6g}" in out
    assert f"best bound = {res.bound:.6g}" in out
    curve = rho_curve(Polynomial(1000, 2.0))
    rows = {int(_numbers(line)[0]): line for line in out.splitlines() if re.match(r"│\s+\d", line)}
    assert sorted(rows) == [2, 4, 8, 16]
    assert f"{curve.over_restarted[3]:.4g}" in rows[16]
    exp_line = next(line for line in out.splitlines() if "exponent" in line)
    assert f"{curve.exponent('over', True):.3f}" in exp_line


def test_bound_params_and_rho_and_scale(capsys):
    argv = ["bound", "cosine", "--s-min", "0.1", "--steps", "500", "--rho", "3", "9",
            "--D", "2", "--G", "0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "s_min=0.1" in out
    from lrlab.schedules import Cosine

    assert f"{best_peak(Cosine(500, 0.1), 2.0, 0.5).bound:.6g}" in out
    assert main(["bound", "constant", "--steps", "100"]) == 0


def test_bound_bad_arguments(capsys):
    assert main(["bound", "cosine", "--power", "2", "--steps", "100"]) == 2
    assert "no parameter" in capsys.readouterr().err
    assert main(["bound", "nosuch", "--steps", "100"]) == 2
    assert main(["bound", "linear", "--steps", "0"]) == 2
    assert main(["bound", "linear", "--steps", "10", "--rho", "-1"]) == 2
    capsys.readouterr()
    assert main(["bound", "linear"]) == 2
    assert "required: --steps" in capsys.readouterr().err


def test_refine_writes_schedule_and_plot(tmp_path, capsys):
    T = 400
    g = np.full(T, 2.0)
    g[10] = np.nan
    log = tmp_path / "pilot.csv"
    pd.DataFrame(
        {"step": np.arange(T), "grad_norm_l2": g, "grad_norm_l1": 3 * g, "loss": np.nan}
    ).to_csv(log, index=False)
    out_json, png = tmp_path / "schedule.json", tmp_path / "refined.png"
    argv = ["refine", str(log), "--norm", "l1", "--tau", "0.2", "--steps", "800",
            "-o", str(out_json), "--plot", str(png)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "dropped 1 non-finite" in captured.err
    assert "dropped_nonfinite" in captured.out
    sched = Schedule.from_dict(json.loads(out_json.read_text()))
    t = np.arange(800)
    np.testing.assert_allclose(sched(t), Linear(800)(t), atol=1e-14)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the refined schedule feeds back into `lrlab bound`
    assert main(["bound", str(out_json), "--steps", "800", "--rho", "2", "4"]) == 0
    assert f"{best_peak(Linear(800)).bound:.4g}" in capsys.readouterr().out


def test_refine_bad_input(tmp_path, capsys):
    log = tmp_path / "pilot.csv"
    log.write_text("step,grad_norm_l2,grad_norm_l1,loss\n0,1.0,1.0,\n")
    assert main(["refine", str(log), "-o", str(tmp_path / "s.json")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["refine", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "s.json")]) == 2
    log.write_text("step,grad_norm_l2,grad_norm_l1,loss\n0,1.0,1.0,\n1,1.0,1.0,\n")
    assert main(["refine", str(log), "--tau", "1.5", "-o", str(tmp_path / "s.json")]) == 2
    assert "tau" in capsys.readouterr().err
