"""A plain PyTorch training script, swept as it is with ``lrlab sweep --command``.

It trains a small MLP on scikit-learn's digits with SGD, reads its learning-rate schedule from
the JSON file lrlab passes as ``--schedule`` (``Schedule.load``) and drives it with
``ScheduleLR``; it reports the curve and the final loss with ``lrlab.report``. Run alone it
prints its result as a JSON line::

    python examples/train_script.py --lr 0.1 --steps 300

Swept over a factor-2 grid, two schedules and two seeds, two trials at a time::

    lrlab sweep --command 'python examples/train_script.py --lr {lr} --seed {seed} \
        --schedule {schedule} --steps {steps}' --steps 300 --lr-min 0.01 --lr-max 2 \
        --schedules linear,cosine --seeds 2 --processes 2 --study script --out script-report
"""

import argparse

import torch
from torch import nn

import lrlab
from lrlab.schedules import Linear, Schedule
from lrlab.torchx import ScheduleLR


def data(seed: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0)
    return xtr, ytr, xte, yte


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--schedule", help="an lrlab schedule's JSON (default: linear decay)")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = data(args.seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    schedule = Schedule.load(args.schedule) if args.schedule else Linear(args.steps)
    sched = ScheduleLR(opt, schedule)
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        rows = torch.randint(0, len(xtr), (args.batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(model(xtr[rows]), ytr[rows])
        opt.zero_grad()
        loss.backward()
        norm = torch.linalg.vector_norm(torch.stack([q.grad.norm() for q in model.parameters()]))
        lrlab.report(step=step, loss=loss.item(), grad_norm=norm.item())
        if not torch.isfinite(loss):
            break
        opt.step()
        sched.step()
    with torch.no_grad():
        final = nn.functional.cross_entropy(model(xtr), ytr).item()
        accuracy = (model(xte).argmax(1) == yte).float().mean().item()
    lrlab.report(loss=final, metric=accuracy)


if __name__ == "__main__":
    main()
