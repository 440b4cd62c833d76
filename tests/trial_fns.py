"""Trial functions for the tests (module level: worker processes import them by name).

``quadratic`` is gradient descent on f(x) = (x - 0.3)^2 from x = 1 with the trial's lr and
schedule: cheap, exact, and torch-free. ``misbehaving`` fails in a different way per lr.
"""

import os
import signal
import time

TARGET = 0.3


def quadratic(trial):
    x = 1.0
    for t in range(trial.steps):
        g = 2.0 * (x - TARGET)
        trial.report(t, loss=(x - TARGET) ** 2, grad_norm=abs(g), grad_norm_l1=abs(g))
        if trial.should_stop():
            break
        x -= trial.lr * float(trial.schedule(t)) * g
    return {"loss": (x - TARGET) ** 2 + 1e-3 * trial.seed, "metric": x}


def misbehaving(trial):
    """lr 0.8 raises, 1.6 kills its own process, 3.2 sleeps past any short timeout."""
    if trial.lr == 0.8:
        raise RuntimeError(f"boom at lr {trial.lr}")
    if trial.lr == 1.6:
        os.kill(os.getpid(), signal.SIGKILL)
    if trial.lr == 3.2:
        time.sleep(60)
    return quadratic(trial)


def slow_logged(trial):
    """``quadratic`` that first writes its process id to $LRLAB_TEST_PIDS and sleeps a little."""
    with open(os.environ["LRLAB_TEST_PIDS"], "a") as fh:
        fh.write(f"{os.getpid()} {trial.number}\n")
    time.sleep(0.4)
    return quadratic(trial)


def returns_nonsense(trial):
    return "not a loss"
