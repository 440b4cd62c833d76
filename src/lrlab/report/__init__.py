"""Reports of a sweep: the terminal table, PNG plots, a self-contained HTML page, exports.

Example::

    from lrlab.report import study_report
    report = study_report(study, "lrlab-report")   # PNGs, results.csv, report.html
    print(report.robustness)
"""

from lrlab.report.export import export
from lrlab.report.html import PNGS, Report, write_report
from lrlab.report.plots import gap_vs_rho_figure, loss_vs_lr_figure, schedule_shapes_figure
from lrlab.report.study import study_report
from lrlab.report.table import robustness_table

__all__ = [
    "PNGS",
    "Report",
    "export",
    "gap_vs_rho_figure",
    "loss_vs_lr_figure",
    "robustness_table",
    "schedule_shapes_figure",
    "study_report",
    "write_report",
]
