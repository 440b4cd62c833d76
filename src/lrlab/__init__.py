"""lrlab: the learning rate, measured.

Closed-form schedules that compose (``lrlab.schedules``), the theory of which schedule is robust
to a misspecified learning rate (``lrlab.theory``), schedule refinement from a pilot run's
gradient norms (``lrlab.refine``), learning-rate-free optimizers (``lrlab.optim``), benchmark
tasks and batched trainers (``lrlab.tasks``, ``lrlab.train``) and resumable sweeps with
robustness reports (``lrlab.tune``, ``lrlab.report``).
"""

__version__ = "0.1.0"

from lrlab.reporting import report  # noqa: E402  (torch-free: what a swept script reports)

__all__ = ["__version__", "report"]
