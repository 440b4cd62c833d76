"""lrlab: the learning rate, measured.

Closed-form schedules that compose (``lrlab.schedules``), the theory of which schedule is robust
to a misspecified learning rate (``lrlab.theory``), schedule refinement from a pilot run's
gradient norms (``lrlab.refine``), learning-rate-free optimizers (``lrlab.optim``), benchmark
tasks and batched trainers (``lrlab.tasks``, ``lrlab.train``) and resumable sweeps with
robustness reports (``lrlab.tune``, ``lrlab.report``).
"""

__version__ = "0.1.0"

# Names served lazily from their modules (so ``import lrlab`` and ``import lrlab.schedules``
# never import torch): name -> "module:attribute".
_LAZY = {
    "find_lr": "lrlab.torchx.find_lr:find_lr",
    "RangeTest": "lrlab.rangetest:RangeTest",
    "report": "lrlab.reporting:report",
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'lrlab' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
