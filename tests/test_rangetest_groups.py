"""The range test with several parameter groups, gradient accumulation, and an optimizer that
keeps plain attributes of its own: group lrs keep their ratios along the ramp, an accumulated
step is the mean of its micro-batch gradients, and the optimizer's own attributes come back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrlab.torchx import find_lr


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 2)).double()


def _batches(n: int = 24) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    out = []
    for _ in range(n):
        X = torch.randn(16, 4, generator=g, dtype=torch.float64)
        out.append((X, (X[:, 0] > 0).long()))
    return out


LOSS = torch.nn.functional.cross_entropy


@pytest.mark.parametrize("base", [0.1, 2.0])
def test_groups_keep_their_lr_ratio_along_the_ramp(base) -> None:
    model = _model()
    opt = torch.optim.SGD([{"params": model[0].parameters()},
                           {"params": model[2].parameters(), "lr": 3 * base}], lr=base)
    seen = []

    def loss_fn(out, target):
        seen.append([g["lr"] for g in opt.param_groups])
        return LOSS(out, target)

    rt = find_lr(model, opt, loss_fn, _batches(), lr_min=1e-4, lr_max=1.0, steps=20)
    lrs = np.array(seen)
    np.testing.assert_allclose(lrs[:, 0], rt.lrs[: len(lrs)], rtol=1e-12)
    np.testing.assert_allclose(lrs[:, 1], 3 * lrs[:, 0], rtol=1e-12)
    assert [g["lr"] for g in opt.param_groups] == [base, 3 * base]


def test_an_accumulated_step_is_the_mean_of_its_micro_batches() -> None:
    # accumulating two copies of each batch takes the same steps as one pass over the batches
    data = _batches()
    twice = [b for b in data for _ in range(2)]
    runs = []
    for batches, acc in ((data, 1), (twice, 2)):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        runs.append(find_lr(model, opt, LOSS, batches, lr_min=1e-3, lr_max=3.0, steps=20,
                            accumulate=acc))
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)


class CountingSGD(torch.optim.SGD):
    """SGD with attributes of its own: a step count and a running tensor."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.calls = 0
        self.label = "counting"
        self.total = torch.zeros(())

    def step(self, closure=None):
        self.calls += 1
        self.total += 1.0
        return super().step(closure)


def test_the_optimizers_own_attributes_are_restored() -> None:
    model = _model()
    opt = CountingSGD(model.parameters(), lr=0.1)
    opt.step()
    find_lr(model, opt, LOSS, _batches(), lr_min=1e-3, lr_max=1.0, steps=15)
    assert opt.calls == 1 and opt.total.item() == 1.0 and opt.label == "counting"
    assert opt.param_groups[0]["lr"] == 0.1
