"""PyTorch glue: the schedule-driven ``LRScheduler``, the gradient-norm recorder and the
learning-rate range test ``find_lr``."""

from lrlab.torchx.find_lr import TrainingState, find_lr
from lrlab.torchx.recorder import GradNormRecorder
from lrlab.torchx.scheduler import ScheduleLR

__all__ = ["GradNormRecorder", "ScheduleLR", "TrainingState", "find_lr"]
