"""A small CNN with BatchNorm and dropout on scikit-learn's digits as 8x8 images.

Sweep it (every member of the grid trains batched through torch.func)::

    lrlab sweep --task examples/digits_cnn.py:build_task --schedules constant,cosine,linear \
        --seeds 2 --study digits-cnn --out digits-cnn-report
"""

import torch
from torch import nn

from lrlab.tasks import from_module
from lrlab.tasks.classification import split_standardise


class DigitsCNN(nn.Module):
    """conv 3x3 (8) -> BatchNorm -> ReLU -> conv 3x3 (16) -> BatchNorm -> ReLU -> 2x2 max-pool
    -> dropout -> linear (10)."""

    def __init__(self, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(16 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return DigitsCNN()


def build_task(steps: int = 300, batch_size: int = 32):
    from sklearn.datasets import load_digits

    digits = load_digits()
    Xtr, ytr, Xte, yte = split_standardise(digits.data, digits.target)
    as_image = lambda X: X.float().view(-1, 1, 8, 8)  # noqa: E731
    return from_module(
        make_model,
        (as_image(Xtr), ytr),
        test=(as_image(Xte), yte),
        loss_fn=nn.functional.cross_entropy,
        metric="accuracy",
        batch_size=batch_size,
        steps=steps,
        lr=0.1,
        name="digits_cnn",
        description="CNN (2 conv + BatchNorm, dropout 0.25) on scikit-learn's digits as 8x8 images",
    )
