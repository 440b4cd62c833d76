"""The report says what its theory numbers mean: the bound itself, in the loss's units, for a
convex Lipschitz task that knows D, G and f*; the worst case's exponents, labelled so,
elsewhere."""

import numpy as np
import pytest

from lrlab.report import study_report
from lrlab.report.html import _bounds
from lrlab.report.table import exponent_text
from lrlab.schedules import Linear
from lrlab.tasks import get_task
from lrlab.theory import last_iterate_bound
from lrlab.tune import LocalExecutor, Study, StudySettings, predicted_exponent


def _study(tmp_path, task, optimizer="sgd", lrs=(0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8)):
    s = StudySettings(task, ("constant", "linear"), lrs=lrs, seeds=(0, 1, 2), steps=60,
                      optimizer=optimizer)
    study = Study.open("t", s, str(tmp_path / f"{task}.db"))
    study.run(LocalExecutor())
    return study


def test_a_convex_task_gets_the_bound_in_its_own_units(tmp_path):
    task = get_task("abs_regression")
    D, G = task.info["D"], task.info["G"]
    assert D == pytest.approx(np.linalg.norm(np.zeros(10) - _lp_minimiser(task)), rel=1e-6)
    assert G == pytest.approx(float(task.X_train.norm(dim=1).max()), rel=1e-12)
    rep = study_report(_study(tmp_path, "abs_regression"), tmp_path / "rep")
    page = open(rep.files["report.html"]).read()
    assert f"G = {G:.4g}" in page and f"D = {D:.4g}" in page
    assert "a over (bound)" in page and "worst case" not in page
    assert "the theory's bound for this convex Lipschitz task" in rep.caption
    # the drawn bound is lrlab.theory's plain bound at the measured peaks, in absolute units
    row = rep.robustness.set_index("schedule").loc["linear"]
    bounds = _bounds({"linear": Linear(60)}, 60, (2, 4, 8, 16), (D, G),
                     {"linear": row.best_lr})
    for i, r in enumerate((1, 2, 4, 8, 16)):
        terms = last_iterate_bound(Linear(60), D=D, G=G, steps=60, peak=row.best_lr * r)
        assert bounds["linear"][i] == pytest.approx(terms.total, rel=1e-12)
    # a bound: above the measured gap at the best lr and at 2x (f* exact)
    assert 0 < row.best_loss - task.f_star < bounds["linear"][0]
    assert 0 < row.over_2 - task.f_star < bounds["linear"][1]
    assert row.predicted_over == pytest.approx(predicted_exponent(Linear(60)))


def test_other_tasks_label_the_theory_as_the_worst_case(tmp_path):
    rep = study_report(_study(tmp_path, "iris_logreg", lrs=(0.1, 0.2, 0.4, 0.8, 1.6)),
                       tmp_path / "rep")
    page = open(rep.files["report.html"]).read()
    assert "a over (worst case)" in page
    assert "is not known to be such a problem with known constants D and G" in page
    assert "worst case over convex Lipschitz problems, not a prediction" in rep.caption
    # every exponent is shown with its 90 % interval (3 seeds), or as a dash
    for _, row in rep.robustness.iterrows():
        for side in ("over", "under"):
            text = exponent_text(row, side, interval=True)
            assert f"<td>{text}</td>" in page
            assert "[" in text or text in ("—", "-")


def _lp_minimiser(task):
    from lrlab.tasks.optimum import abs_f_star

    X, y = task.X_train.numpy(), task.y_train.numpy()
    return abs_f_star(X, y.reshape(-1))[1]
