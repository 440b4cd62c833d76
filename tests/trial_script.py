"""A torch-free training script for command-trial tests: gradient descent on (x - 0.3)^2.

Its behaviour depends on --lr: 0.8 exits with status 3 after a message on stderr, 1.6 prints
no result, 3.2 sleeps past any short timeout, 0.2 prints its result as a JSON line on stdout
instead of calling lrlab.report; every other lr reports through lrlab.report.
"""

import argparse
import json
import sys
import time

import lrlab
from lrlab.schedules import Schedule

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--schedule", required=True)
p.add_argument("--steps", type=int, required=True)
args = p.parse_args()

if args.lr == 0.8:
    print("loading data...", file=sys.stderr)
    print("CUDA error: out of memory (simulated)", file=sys.stderr)
    sys.exit(3)
if args.lr == 3.2:
    time.sleep(60)
schedule = Schedule.load(args.schedule)
x = 1.0
for t in range(args.steps):
    g = 2.0 * (x - 0.3)
    lrlab.report(step=t, loss=(x - 0.3) ** 2, grad_norm=abs(g))
    x -= args.lr * float(schedule(t)) * g
loss = (x - 0.3) ** 2 + 1e-3 * args.seed
if args.lr == 1.6:
    print("finished, but forgot to report")
elif args.lr == 0.2:
    print("some log line")
    print(json.dumps({"loss": loss, "metric": x}))
else:
    lrlab.report(loss=loss, metric=x)
