"""The refinement report when the refined schedule is stretched to another horizon than the
pilot's: steps in the report are output steps, fractions do not depend on the horizon."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.refine import refine

#: a pilot of 200 steps whose norms fall over the first 40 (a warm-up), then stay flat
PILOT = np.concatenate([np.linspace(5.0, 1.0, 40), np.ones(160)])
#: a short pilot whose norms halve every step: the refined shape peaks at its next-to-last knot
HALVING = np.array([64.0, 32, 16, 8, 4, 2, 1, 1])


@pytest.mark.parametrize("steps", [None, 7, 50, 200, 333, 1000])
def test_report_steps_are_output_steps(steps) -> None:
    out = refine(PILOT, steps=steps)
    rep, t_out = out.report, steps or PILOT.size
    assert rep.steps == t_out == out.schedule.horizon
    assert rep.pilot_steps == PILOT.size and rep.points == PILOT.size
    assert rep.warmup_steps == rep.peak_step
    # the reported peak is where the stretched schedule peaks, to the nearest step
    values = out.schedule(np.arange(t_out))
    assert abs(rep.peak_step - int(np.argmax(values))) <= 1
    assert 0 < rep.peak_step <= t_out - 1
    # it sits at the same fraction of the run whatever the horizon
    base = refine(PILOT).report
    assert rep.peak_step == pytest.approx(base.peak_step * t_out / PILOT.size, abs=1.0)


def test_fractions_and_shape_do_not_depend_on_the_horizon() -> None:
    base = refine(PILOT)
    for steps in (7, 50, 1000):
        out = refine(PILOT, steps=steps)
        np.testing.assert_array_equal(out.shape, base.shape)
        assert out.report.anneal_fraction == pytest.approx(base.report.anneal_fraction, abs=1e-12)
        assert out.report.window == base.report.window
    # the last knot at or above 1/2 of the peak, as a fraction of the run, measured on the knots
    half = np.flatnonzero(base.shape >= 0.5)[-1]
    assert base.report.anneal_fraction == pytest.approx(1 - half / (base.shape.size - 1))


@pytest.mark.parametrize("steps, peak", [(None, 7), (100, 86), (4, 3), (3, 2), (1, 0)])
def test_peak_step_of_a_late_peak(steps, peak) -> None:
    # the peak knot is 6 of 0..7, at 6/7 of the run; a short horizon keeps it inside the run
    out = refine(HALVING, steps=steps)
    assert int(np.argmax(out.shape)) == 6
    assert out.report.peak_step == peak
    assert out.report.anneal_fraction == pytest.approx(1 / 7)


def test_constant_norms_report_linear_decay_at_any_horizon() -> None:
    for steps in (10, 64, 5000):
        rep = refine(np.full(64, 3.0), steps=steps).report
        assert rep.peak_step == 0 and rep.warmup_steps == 0
        assert rep.anneal_fraction == pytest.approx(0.5, abs=1 / 63)
        assert rep.steps == steps and rep.pilot_steps == 64
