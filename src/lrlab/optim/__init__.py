"""lrlab.optim: learning-rate-free optimizers (``torch.optim.Optimizer`` subclasses).

``lr`` in D-Adaptation and Prodigy multiplies the estimated step size d; Mechanic keeps the base
optimizer's ``lr`` and scales its updates by a learned S. Each exposes ``effective_lr()``.
"""

from lrlab.optim.dadapt import DAdaptAdaGrad, DAdaptAdam, DAdaptSGD
from lrlab.optim.mechanic import Mechanic
from lrlab.optim.prodigy import Prodigy

__all__ = ["DAdaptAdaGrad", "DAdaptAdam", "DAdaptSGD", "Mechanic", "Prodigy"]
