"""A trial function: lrlab's grid, stored study and report for your own training loop.

``train(trial)`` is an ordinary PyTorch loop (a 64-64-10 MLP on scikit-learn's digits with
SGD); lrlab runs it once per (lr, schedule, seed) in worker processes. Run it::

    python examples/trial_function.py

It writes ``trial-function.db`` and ``trial-function-report/`` and prints the robustness table.
"""

import torch
from torch import nn

from lrlab.tune import log_grid, robustness, sweep


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    return train_test_split(x, y, test_size=0.25, random_state=0)


def train(trial):
    torch.set_num_threads(1)
    xtr, xte, ytr, yte = data()
    torch.manual_seed(trial.seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=trial.lr)
    sched = trial.scheduler(opt)
    gen = torch.Generator().manual_seed(trial.seed)
    for step in range(trial.steps):
        rows = torch.randint(0, len(xtr), (32,), generator=gen)
        loss = nn.functional.cross_entropy(model(xtr[rows]), ytr[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        trial.report(step, loss=loss.item())
        if trial.should_stop():
            return float("nan")  # diverged
    with torch.no_grad():
        final = nn.functional.cross_entropy(model(xtr), ytr).item()
        accuracy = (model(xte).argmax(1) == yte).float().mean().item()
    return {"loss": final, "metric": accuracy}


if __name__ == "__main__":
    study = sweep(
        train,
        lrs=log_grid(0.02, 1.28, factor=2),
        steps=300,
        schedules=("constant", "linear", "cosine"),
        seeds=(0, 1),
        processes=2,
        study="trial-function",
        storage="trial-function.db",
        report="trial-function-report",
        on_trial=lambda told, total: print(f"\r{told}/{total} trials", end="", flush=True),
    )
    print()
    print(robustness(study.results()).to_string())
