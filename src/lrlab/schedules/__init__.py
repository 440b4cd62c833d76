"""Closed-form learning-rate schedules: NumPy in, NumPy out; no torch import.

A schedule is the dimensionless factor s(t); the learning rate is ``eta_t = eta0 * s(t)``.
Steps are 0-indexed; schedules with a horizon are clamped past it.
"""

from lrlab.schedules.array import FromArray
from lrlab.schedules.base import Schedule, registry
from lrlab.schedules.compose import Join, Multiply, Scale, join, multiply, scale, warmup
from lrlab.schedules.decay import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    Linear,
    MultiStep,
    Polynomial,
    Step,
)
from lrlab.schedules.onecycle import OneCycle
from lrlab.schedules.phases import CosinePhases, last_completed_phase_end, sgdr
from lrlab.schedules.spec import known_specs
from lrlab.schedules.warmup import Warmup, WarmupStableDecay

__all__ = [
    "Schedule",
    "registry",
    "Constant",
    "Cosine",
    "CosinePhases",
    "Exponential",
    "FromArray",
    "InverseSqrt",
    "Join",
    "Linear",
    "MultiStep",
    "Multiply",
    "OneCycle",
    "Polynomial",
    "Scale",
    "Step",
    "Warmup",
    "WarmupStableDecay",
    "join",
    "known_specs",
    "last_completed_phase_end",
    "multiply",
    "scale",
    "sgdr",
    "warmup",
]
