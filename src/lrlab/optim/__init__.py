"""lrlab.optim: learning-rate-free and averaging optimizers (``torch.optim.Optimizer`` subclasses).

What ``lr`` means differs by method; each optimizer's ``effective_lr()`` returns, per param
group, the step size actually in use, and a schedule attached with
``lrlab.torchx.ScheduleLR(opt, schedule)`` (or any ``LRScheduler``) rescales ``lr`` every step.

- ``DAdaptSGD``, ``DAdaptAdam``, ``DAdaptAdaGrad``, ``Prodigy``: a multiplier on the estimated
  step size d (1 = the published method); step = ``d * lr``. Groups share one ``lr`` (0 freezes).
- ``Mechanic``: the base optimizer's own ``lr``; the updates are scaled by a learned S, so the
  step is ``S * lr``.
- ``Momo``, ``MomoAdam``: a cap on the adaptive Polyak-type step tau_k (``tau_k <= lr / rho_k``).
- ``SGDScheduleFree``, ``AdamWScheduleFree``: the step itself (times the built-in warm-up);
  ``ScheduleFreeWrapper``: the base optimizer's ``lr`` (times its ``d`` if it has one).
- ``MADGRAD``, ``MirrorMADGRAD``: the step itself, used as ``lr + eps``, entering the
  dual-averaging weight lambda_k of each new gradient.
- ``MDA``: the step; the dual weight is ``lr * sqrt(k + 1)``.
- ``PrimalAveragingSGD``: the step on the base sequence z.
- ``SP``, ``TAPS``, ``MOTAPS``: gamma, the multiplier of the Polyak step (the relaxation of the
  projections); ``step`` takes the batch's per-example losses and, for TAPS and MOTAPS, their
  example indices.
"""

from lrlab.optim.averaging import MDA, PrimalAveragingSGD
from lrlab.optim.dadapt import DAdaptAdaGrad, DAdaptAdam, DAdaptSGD
from lrlab.optim.madgrad import MADGRAD, MirrorMADGRAD
from lrlab.optim.mechanic import Mechanic
from lrlab.optim.momo import Momo, MomoAdam
from lrlab.optim.polyak import MOTAPS, SP, TAPS
from lrlab.optim.prodigy import Prodigy
from lrlab.optim.schedulefree import AdamWScheduleFree, ScheduleFreeWrapper, SGDScheduleFree

__all__ = [
    "MADGRAD",
    "MDA",
    "MOTAPS",
    "SP",
    "TAPS",
    "AdamWScheduleFree",
    "DAdaptAdaGrad",
    "DAdaptAdam",
    "DAdaptSGD",
    "Mechanic",
    "MirrorMADGRAD",
    "Momo",
    "MomoAdam",
    "PrimalAveragingSGD",
    "Prodigy",
    "SGDScheduleFree",
    "ScheduleFreeWrapper",
]
