"""PyTorch glue: the schedule-driven ``LRScheduler`` and the gradient-norm recorder."""

from lrlab.torchx.recorder import GradNormRecorder
from lrlab.torchx.scheduler import ScheduleLR

__all__ = ["GradNormRecorder", "ScheduleLR"]
