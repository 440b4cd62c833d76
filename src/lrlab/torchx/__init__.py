"""PyTorch glue for lrlab schedules."""

from lrlab.torchx.scheduler import ScheduleLR

__all__ = ["ScheduleLR"]
