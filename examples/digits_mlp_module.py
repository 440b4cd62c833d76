"""A user-written MLP (an nn.Module) on scikit-learn's digits.

The same network as lrlab's built-in hand-written ``digits_mlp`` task (64-64-10, ReLU,
``nn.Linear`` initialisation), written the way anyone writes it in PyTorch. Sweep it::

    lrlab sweep --task examples/digits_mlp_module.py:build_task --schedules constant,cosine,linear \
        --seeds 2 --study digits-mlp --out digits-mlp-report
"""

import torch
from torch import nn

from lrlab.tasks import from_module
from lrlab.tasks.classification import split_standardise


class MLP(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, hidden)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLP()


def build_task(steps: int = 500, batch_size: int = 32):
    from sklearn.datasets import load_digits

    digits = load_digits()
    Xtr, ytr, Xte, yte = split_standardise(digits.data, digits.target)
    return from_module(
        make_model,
        (Xtr.float(), ytr),
        test=(Xte.float(), yte),
        loss_fn=nn.functional.cross_entropy,
        metric="accuracy",
        batch_size=batch_size,
        steps=steps,
        lr=0.1,
        name="digits_mlp_module",
        description="user-written MLP (64-64-10) on scikit-learn's digits",
    )
