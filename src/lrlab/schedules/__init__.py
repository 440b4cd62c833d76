"""Closed-form learning-rate schedules: NumPy in, NumPy out; no torch import.

A schedule is the dimensionless factor s(t); the learning rate is ``eta_t = eta0 * s(t)``.
"""

from lrlab.schedules.array import FromArray
from lrlab.schedules.base import Schedule, registry
from lrlab.schedules.decay import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    Linear,
    Polynomial,
    Step,
)

__all__ = [
    "Schedule",
    "registry",
    "Constant",
    "Cosine",
    "Exponential",
    "FromArray",
    "InverseSqrt",
    "Linear",
    "Polynomial",
    "Step",
]
