"""Reports of a sweep: the terminal table, PNG plots, a self-contained HTML page, exports.

Example::

    from lrlab.report import study_report
    report = study_report(study, "lrlab-report")   # PNGs, results.csv, report.html
    print(report.robustness)
"""

import sys
import types

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


class _CallableModule(types.ModuleType):
    """``lrlab.report(loss=...)`` is how a swept script reports (``lrlab.reporting.report``).
    Once this package is imported, the attribute ``lrlab.report`` is the package, so calling
    the package does the same."""

    def __call__(self, *args, **kwargs):
        from lrlab.reporting import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
