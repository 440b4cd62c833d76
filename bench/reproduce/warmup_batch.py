"""Warm-up and batch size: do the linear and square-root learning-rate scaling rules, with and
without a linear warm-up, keep large-batch training as good as a learning rate re-tuned at that
batch size?

What it measures. For the 64-64-10 MLP on digits (``digits_mlp``; SGD, and SGD with momentum
0.9) and the example CNN (``examples/digits_cnn.py:build_task``, SGD): the final training loss
(the full training objective at the last iterate) and the test accuracy, mean ± sd over seeds,
of large-batch runs whose learning rate follows a scaling rule, relative to the best run at that
batch size with the learning rate re-tuned; whether runs diverged; the re-tuned learning rate
against the rules' predictions; and whether ``run_batched(compile=True)`` saves time on the CNN,
compile time included.

Protocol (exactly as run; the page repeats it with the numbers):

1. Base batch size B0 = 32. Every run decays the learning rate linearly to 0:
   ``Linear(S)`` without warm-up, or ``warmup(Linear(S - W), W, start="nanogpt")`` with a
   linear warm-up over W = max(1, round(0.1·S)) steps, s(t) = (t + 1)/(W + 1) for t < W.
2. Same number of epochs at every batch size: B = k·B0 trains S = S0/k steps (S0 = 1024 steps,
   24.3 epochs, for the MLP; S0 = 512 steps, 12.2 epochs, for the CNN), so every run processes
   the same number of examples. This is the setting the linear rule is derived for (k small
   steps ≈ one step of k·lr on a k-times larger batch).
3. lr0 = the learning rate at B0 without warm-up with the lowest mean final training loss on a
   factor-2 grid (a run "diverged" if its loss or gradient became non-finite or its final loss
   is at least 0.9·ln 10 = 2.07, within 10% of the loss of the uniform prediction, where
   collapsed runs settle; a learning rate with a diverged seed is not eligible). The grid is
   extended by factors of 2 until the best learning rate of each schedule (with and without
   warm-up) has a worse neighbour on both sides (at most 3 extensions per side).
4. For k = 1, 4, 16, 32 (B up to 1024 of the 1347 training rows) and both schedules:
   (a) base lr0 unchanged, (b) linear scaling k·lr0, (c) square-root scaling √k·lr0
   (``lrlab.units``), and (d) the re-tuned reference: every learning rate lr0·2^j,
   j = 0..log2 k, plus √k·lr0, with both schedules, extended as in 3. The reference at B is
   the best (learning rate, schedule) over everything tried there; "× best" = mean final loss
   of a rule / that of the reference.
5. Seeds 0..4 (MLP) and 0..3 (CNN); a seed fixes the initialisation and the data order. The
   configurations of a batch size train together in one ``run_batched`` call per grid
   extension (float32, one thread, uncompiled).
6. Compile check (full size only): the CNN at lr0 and B0 (both schedules, every seed, S0
   steps) trained uncompiled, then compiled from an empty compile cache on a fresh task object
   (first call, compilation included), again on that object, and on another fresh object in
   the same process.

Usage (from the repository root)::

    PYTHONPATH=src python bench/reproduce/warmup_batch.py            # full size, ~6 min
    PYTHONPATH=src python bench/reproduce/warmup_batch.py --smoke --out /tmp/wb   # seconds

writes ``docs/results/warmup_batch.md`` and ``docs/results/warmup_batch_*.png``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _common as C  # noqa: E402

NAME = "warmup_batch"
LN10 = math.log(10.0)
#: A final training loss at or above this (90% of the uniform prediction's) counts as diverged.
FAIL = 0.9 * LN10
WARMUP_FRACTION = 0.1
MAX_EXTENSIONS = 3
KINDS = ("none", "warmup")
KIND_LABEL = {"none": "no warm-up", "warmup": "warm-up"}
SHORT = {"base": "lr0", "sqrt": "√k·lr0", "linear": "k·lr0"}
RULE_NAME = {"base": "Base-lr", "sqrt": "Square-root", "linear": "Linear"}
#: (key, label, lr(lr0, k)) of the scaling rules, in table order.
RULES: tuple[tuple[str, str, Callable[[float, int], float]], ...] = (
    ("base", "base lr0", lambda lr0, k: lr0),
    ("sqrt", "square root √k·lr0", lambda lr0, k: _units().sqrt_scaled_lr(lr0, k, 1)),
    ("linear", "linear k·lr0", lambda lr0, k: _units().linear_scaled_lr(lr0, k, 1)),
)


def _units():
    import lrlab.units

    return lrlab.units


def _key(lr: float) -> float:
    return float(f"{lr:.12g}")


def warmup_steps(steps: int) -> int:
    return max(1, round(WARMUP_FRACTION * steps))


def schedule(kind: str, steps: int):
    from lrlab.schedules import Linear, warmup

    if kind == "none":
        return Linear(steps)
    w = warmup_steps(steps)
    return warmup(Linear(steps - w), w, start="nanogpt")


_CNN_BUILDER: list[Callable] = []


def cnn_builder() -> Callable:
    """``build_task`` of ``examples/digits_cnn.py``, imported from its file."""
    if not _CNN_BUILDER:
        path = C.ROOT / "examples" / "digits_cnn.py"
        spec = importlib.util.spec_from_file_location("_warmup_batch_digits_cnn", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _CNN_BUILDER.append(mod.build_task)
    return _CNN_BUILDER[0]


def mlp_task(batch: int, steps: int):
    from lrlab.tasks import get_task

    return get_task("digits_mlp").replace(default_batch_size=batch, default_steps=steps)


def cnn_task(batch: int, steps: int):
    return cnn_builder()(steps=steps, batch_size=batch)


@dataclass
class Setup:
    """One model and optimizer, with its sizes."""

    key: str
    label: str
    make_task: Callable[[int, int], object]
    optimizer: str
    options: dict[str, float]
    base_steps: int
    ks: tuple[int, ...]
    seeds: tuple[int, ...]
    grid: tuple[float, ...]  # initial learning rates at B0
    b0: int = 32
    max_extensions: int = MAX_EXTENSIONS
    #: run_batched(max_members=...) at a batch size (a number also skips the memory probe)
    chunk: Callable[[int], int | None] = lambda batch: 512
    # filled in by the study
    runs: dict[tuple[int, float, str], list] = field(default_factory=dict)
    tried: dict[int, set[float]] = field(default_factory=dict)
    edge: dict[tuple[int, str], str] = field(default_factory=dict)
    seconds: float = 0.0
    calls: int = 0

    def steps(self, k: int) -> int:
        return self.base_steps // k

    def epochs(self) -> float:
        n = self.make_task(self.b0, self.base_steps).n_train
        return self.base_steps * self.b0 / n

    # -- training ---------------------------------------------------------------------------

    def ensure(self, k: int, lrs: Sequence[float]) -> None:
        """Train every (lr, schedule, seed) at k·B0 not trained yet, in one run_batched call."""
        from lrlab.train import RunConfig, run_batched

        batch, steps = k * self.b0, self.steps(k)
        todo = sorted({_key(lr) for lr in lrs if (batch, _key(lr), "none") not in self.runs})
        if not todo:
            return
        cells = [(lr, kind) for lr in todo for kind in KINDS]
        configs = [RunConfig(lr, schedule(kind, steps), seed=s, steps=steps,
                             optimizer=self.optimizer, options=self.options)
                   for lr, kind in cells for s in self.seeds]
        t0 = time.perf_counter()
        out = run_batched(self.make_task(batch, steps), configs, max_members=self.chunk(batch))
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.calls += 1
        n = len(self.seeds)
        for i, (lr, kind) in enumerate(cells):
            self.runs[(batch, lr, kind)] = out[i * n:(i + 1) * n]
        self.tried.setdefault(batch, set()).update(todo)
        print(f"  {self.key} B={batch} S={steps}: {len(configs)} runs "
              f"(lr {', '.join(f'{x:g}' for x in todo)}) {dt:.1f} s", flush=True)

    def losses(self, batch: int, lr: float, kind: str) -> np.ndarray:
        """Final training loss per seed, NaN where the run diverged."""
        return np.array([r.final_loss if ok(r) else math.nan
                         for r in self.runs[(batch, _key(lr), kind)]])

    def accuracies(self, batch: int, lr: float, kind: str) -> np.ndarray:
        return np.array([r.test_metric if ok(r) else math.nan
                         for r in self.runs[(batch, _key(lr), kind)]])

    def score(self, batch: int, lr: float, kind: str) -> float:
        """Mean final loss over seeds; inf if any seed diverged."""
        v = self.losses(batch, lr, kind)
        return float(v.mean()) if np.isfinite(v).all() else math.inf

    def best(self, batch: int, kind: str | None = None) -> tuple[float, str, float]:
        """(lr, schedule, mean loss) of the best run tried at ``batch`` (of one schedule, or
        of both)."""
        kinds = KINDS if kind is None else (kind,)
        cands = [(self.score(batch, lr, kd), lr, kd)
                 for lr in sorted(self.tried[batch]) for kd in kinds]
        s, lr, kd = min(cands, key=lambda c: (c[0], c[1]))
        return lr, kd, s

    def tune(self, k: int, lrs: Sequence[float]) -> None:
        """Train ``lrs`` at k·B0 and extend by factors of 2 until each schedule's best
        learning rate has a tried neighbour on both sides."""
        batch = k * self.b0
        lrs = {_key(x) for x in lrs}
        ext = {"down": 0, "up": 0}
        while True:
            self.ensure(k, sorted(lrs))
            grid = sorted(self.tried[batch])
            grow = set()
            for kind in KINDS:
                scores = [self.score(batch, lr, kind) for lr in grid]
                i = int(np.argmin(scores))
                if not np.isfinite(scores[i]) or i == 0:
                    if ext["down"] < self.max_extensions:
                        grow.add(("down", _key(grid[0] / 2)))
                    else:
                        self.edge[(batch, kind)] = "lowest"
                elif i == len(grid) - 1:
                    if ext["up"] < self.max_extensions:
                        grow.add(("up", _key(grid[-1] * 2)))
                    else:
                        self.edge[(batch, kind)] = "highest"
            if not grow:
                return
            for side, lr in grow:
                ext[side] += 1
                lrs.add(lr)

    def lr0(self) -> float:
        return self.best(self.b0, "none")[0]

    def study(self) -> None:
        print(f"{self.label}: tuning lr0 at B0 = {self.b0}", flush=True)
        self.tune(1, self.grid)
        lr0 = self.lr0()
        for k in self.ks:
            if k == 1:
                continue
            j_max = int(round(math.log2(k)))
            lrs = [lr0 * 2.0**j for j in range(j_max + 1)]
            lrs += [rule(lr0, k) for _, _, rule in RULES]
            self.tune(k, lrs)


def ok(r) -> bool:
    return (not r.diverged) and math.isfinite(r.final_loss) and r.final_loss < FAIL


# ----------------------------------------------------------------------------- formatting


def loss_cell(values: np.ndarray) -> str:
    """mean ± sd (``inf (n diverged)`` if any seed diverged); below 0.01 in scientific
    notation, three significant digits."""
    if np.isfinite(values).all() and values.size and 0 < values.mean() < 1e-2:
        sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return f"{values.mean():.2e} ± {sd:.1e}"
    return C.mean_sd(values)


def sci(x: float) -> str:
    """``8.5e6`` rather than ``8.5e+06``."""
    m, e = f"{x:.2g}".split("e") if "e" in f"{x:.2g}" else (f"{x:.2g}", "")
    return f"{m}e{int(e)}" if e else m


def acc_cell(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "–"
    sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    note = "" if finite.size == values.size else f" ({finite.size} of {values.size})"
    return f"{finite.mean():.3f} ± {sd:.3f}{note}"


def ratio_cell(score: float, ref: float) -> str:
    if not math.isfinite(score):
        return "diverged"
    r = score / ref
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}" if r < 1e4 else sci(r)


def lr_cell(lr: float) -> str:
    return f"{lr:.4g}"


def paired_cell(a: np.ndarray, b: np.ndarray) -> str:
    """Mean paired difference a − b and its p-value, or – when a seed diverged."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return "–"
    d, p = C.paired(a, b)
    return f"{d:+.2g} (p {p:.2g})" if math.isfinite(p) else f"{d:+.2g}"


# ----------------------------------------------------------------------------- the page


def tuning_table(s: Setup) -> str:
    rows = []
    for lr in sorted(s.tried[s.b0]):
        row = [lr_cell(lr)]
        for kind in KINDS:
            row += [loss_cell(s.losses(s.b0, lr, kind)), acc_cell(s.accuracies(s.b0, lr, kind))]
        rows.append(row)
    return C.table(["lr", "final loss, no warm-up", "test acc.", "final loss, warm-up",
                    "test acc."], rows)


def rules_table(s: Setup) -> str:
    lr0 = s.lr0()
    rows = []
    for k in s.ks:
        batch, steps = k * s.b0, s.steps(k)
        ref = s.best(batch)[2]
        where = f"{batch} (k={k}, {steps} steps, W={warmup_steps(steps)})"
        bl = {kind: s.best(batch, kind)[0] for kind in KINDS}
        row = [where, "re-tuned (best lr)", f"{lr_cell(bl['none'])} / {lr_cell(bl['warmup'])}"]
        for kind in KINDS:
            row += [loss_cell(s.losses(batch, bl[kind], kind)),
                    ratio_cell(s.score(batch, bl[kind], kind), ref),
                    acc_cell(s.accuracies(batch, bl[kind], kind))]
        rows.append(row + ["–"])
        for _, label, rule in RULES:
            if k == 1 and label != RULES[0][1]:
                continue
            lr = rule(lr0, k)
            row = ["", label, lr_cell(lr)]
            for kind in KINDS:
                row += [loss_cell(s.losses(batch, lr, kind)),
                        ratio_cell(s.score(batch, lr, kind), ref),
                        acc_cell(s.accuracies(batch, lr, kind))]
            row.append(paired_cell(s.losses(batch, lr, "warmup"), s.losses(batch, lr, "none")))
            rows.append(row)
    header = ["B", "rule", "lr", "loss, no warm-up", "× best", "test acc.", "loss, warm-up",
              "× best", "test acc.", "warm-up − none (p)"]
    return C.table(header, rows)


def stable_max(s: Setup, batch: int, kind: str) -> str:
    """The largest learning rate tried at ``batch`` with no diverged seed."""
    good = [lr for lr in sorted(s.tried[batch]) if math.isfinite(s.score(batch, lr, kind))]
    return lr_cell(good[-1]) if good else "–"


def lr_table(s: Setup) -> str:
    lr0 = s.lr0()
    rows = []
    for k in s.ks:
        batch = k * s.b0
        cells = []
        for kind in KINDS:
            lr = s.best(batch, kind)[0]
            edge = s.edge.get((batch, kind))
            cells.append(f"{lr_cell(lr)} (×{lr / lr0:.3g})" + (f", {edge} tried" if edge else ""))
        lr_ref, kind_ref, _ = s.best(batch)
        tried = sorted(s.tried[batch])
        rows.append([str(batch), str(k), *cells, f"{lr_cell(lr_ref)} ({KIND_LABEL[kind_ref]})",
                     f"×{math.sqrt(k):.3g}", f"×{k}",
                     f"{stable_max(s, batch, 'none')} / {stable_max(s, batch, 'warmup')}",
                     f"{lr_cell(tried[0])} – {lr_cell(tried[-1])} ({len(tried)})"])
    return C.table(["B", "k", "best lr, no warm-up (÷ lr0)", "best lr, warm-up (÷ lr0)",
                    "reference", "√k rule", "k rule", "largest lr without divergence "
                    "(no warm-up / warm-up)", "lrs tried (count)"], rows)


def divergence_note(s: Setup) -> str:
    """When the rule runs at k > 1 diverged: inside or after the warm-up."""
    lr0 = s.lr0()
    parts = []
    for kind in KINDS:
        steps_at, blown, total = [], 0, 0
        for k in s.ks:
            if k == 1:
                continue
            batch, S = k * s.b0, s.steps(k)
            lrs = {_key(rule(lr0, k)) for _, _, rule in RULES}
            for lr in lrs:
                for r in s.runs[(batch, lr, kind)]:
                    if ok(r):
                        continue
                    total += 1
                    if r.diverged and r.diverged_at is not None and r.diverged_at < S:
                        steps_at.append((r.diverged_at, S, warmup_steps(S)))
                    else:
                        blown += 1
        if not total:
            parts.append(f"{KIND_LABEL[kind]}: no rule run diverged")
            continue
        text = f"{KIND_LABEL[kind]}: {total} rule runs diverged"
        if steps_at:
            frac = float(np.median([t / S for t, S, _ in steps_at]))
            text += (f", {len(steps_at)} with a non-finite loss at a median {frac:.0%} of "
                     "their steps")
            if kind == "warmup":
                after = sum(t >= w for t, _, w in steps_at)
                text += f" ({after} of them after the warm-up had ended)"
            else:
                early = sum(t < w for t, S, w in steps_at)
                text += (f" ({early} of them within the first W steps, where a warm-up would "
                         "have ramped)")
        if blown:
            text += (f", {blown} without a non-finite value, with a final loss ≥ {FAIL:.2f} "
                     "(collapsed near the uniform prediction or blown up)")
        parts.append(text)
    return "Divergence of the rule runs at k > 1 — " + "; ".join(parts) + "."


def warmup_effects(s: Setup) -> tuple[list[str], list[str], list[str], list[str], int]:
    """Warm-up against none for each rule at k > 1 (same lr, same seeds): where it changed the
    number of diverged seeds (fewer, more), where it changed a loss that converged both ways by
    more than 10% with p < 0.05 (lower, higher), and how many pairs converged both ways."""
    lr0 = s.lr0()
    rescued, broke, better, worse, n_both = [], [], [], [], 0
    for key, _, rule in RULES:
        for k in s.ks:
            if k == 1:
                continue
            batch, lr = k * s.b0, rule(lr0, k)
            a, b = s.losses(batch, lr, "none"), s.losses(batch, lr, "warmup")
            fa, fb = int((~np.isfinite(a)).sum()), int((~np.isfinite(b)).sum())
            tag = f"{RULE_NAME[key].lower()} at B = {batch}"
            if fa > fb:
                rescued.append(f"{tag} ({fa} → {fb} of {len(s.seeds)} seeds diverged)")
            elif fb > fa:
                broke.append(f"{tag} ({fa} → {fb} of {len(s.seeds)} seeds diverged)")
            elif fa == 0:
                n_both += 1
                _, p = C.paired(b, a)
                r = b.mean() / a.mean()
                if math.isfinite(p) and p < 0.05 and abs(math.log(r)) > math.log(1.1):
                    (better if r < 1 else worse).append(f"{tag} (× {r:.2f}, p {p:.2g})")
    return rescued, broke, better, worse, n_both


def summary(s: Setup) -> str:
    """One paragraph per model for the top of the page, computed from the results."""
    lr0 = s.lr0()
    big = [k for k in s.ks if k > 1]
    growth = ", ".join(f"×{s.best(k * s.b0)[0] / lr0:.3g}" for k in big)
    off = {key: float(np.mean([abs(math.log2(s.best(k * s.b0)[0] / lr0) - e * math.log2(k))
                               for k in big])) for key, e in (("sqrt", 0.5), ("linear", 1.0))}
    closer = ("square-root" if off["sqrt"] < off["linear"] else
              "linear" if off["linear"] < off["sqrt"] else "neither")

    def cases(pred) -> str:
        parts = []
        for key, _, rule in RULES[1:]:
            ks = []
            for k in big:
                kinds = [kd for kd in KINDS if pred(k * s.b0, rule(lr0, k), kd)]
                if kinds:
                    ks.append(f"{k}" + ("" if len(kinds) == 2 else
                                        f" ({KIND_LABEL[kinds[0]]} only)"))
            if ks:
                parts.append(f"{RULE_NAME[key].lower()} at k = {', '.join(ks)}")
        return "; ".join(parts) or "none"

    def near(batch: int, lr: float, kind: str) -> bool:
        score = s.score(batch, lr, kind)
        return math.isfinite(score) and score <= 1.1 * s.best(batch)[2]

    def diverged(batch: int, lr: float, kind: str) -> bool:
        return not np.isfinite(s.losses(batch, lr, kind)).all()

    rescued, broke, better, worse, n_both = warmup_effects(s)
    wu_lr, _, wu_best = s.best(s.b0, "warmup")
    none0 = s.score(s.b0, lr0, "none")
    at_b0 = (f"at B0 the best warm-up run (lr {lr_cell(wu_lr)}) reached × {wu_best / none0:.2f} "
             "of lr0's loss without warm-up")
    return (
        f"**{s.label}.** The re-tuned learning rate grew {growth} at k = "
        f"{', '.join(map(str, big))}: closer to the {closer} rule (off by {off['sqrt']:.2f} "
        f"octaves on average for √k, {off['linear']:.2f} for k). Within 10% of the re-tuned "
        f"best: {cases(near)}. Diverged (at least one seed): {cases(diverged)}. Warm-up: "
        f"{at_b0}; at k > 1 it prevented divergence for {'; '.join(rescued) or 'no rule'}, "
        f"caused it for {'; '.join(broke) or 'no rule'}, and lowered the loss of a rule that "
        f"converged both ways by more than 10% (p < 0.05) in {len(better)} of {n_both} cases"
        + (f" ({'; '.join(better)})" if better else "")
        + (f", raised it in {len(worse)} ({'; '.join(worse)})" if worse else "") + ".")


def findings(s: Setup) -> list[str]:
    """Sentences computed from the results (no number typed in by hand)."""
    lr0 = s.lr0()
    out = []
    b0_wu_lr, _, b0_wu = s.best(s.b0, "warmup")
    ref0 = s.best(s.b0)[2]
    out.append(
        f"lr0 = {lr_cell(lr0)} (mean final loss {s.score(s.b0, lr0, 'none'):.3g}). At B0 the "
        f"best warm-up run used lr {lr_cell(b0_wu_lr)} (loss {b0_wu:.3g}); relative to the best "
        f"run at B0, lr0 without warm-up is × {s.score(s.b0, lr0, 'none') / ref0:.2f} and the "
        f"best warm-up run × {b0_wu / ref0:.2f}.")
    big = [k for k in s.ks if k > 1]
    grow = []
    err = {"sqrt": [], "linear": []}
    for k in big:
        lr_ref = s.best(k * s.b0)[0]
        grow.append(f"×{lr_ref / lr0:.3g} at k = {k}")
        err["sqrt"].append(abs(math.log2(lr_ref / lr0) - 0.5 * math.log2(k)))
        err["linear"].append(abs(math.log2(lr_ref / lr0) - math.log2(k)))
    es, el = float(np.mean(err["sqrt"])), float(np.mean(err["linear"]))
    closer = "square-root" if es < el else "linear" if el < es else "neither"
    per_kind = []
    for kind in KINDS:
        base = s.best(s.b0, kind)[0]
        per_kind.append(f"{KIND_LABEL[kind]}: " + ", ".join(
            f"×{s.best(k * s.b0, kind)[0] / base:.3g}" for k in big))
    out.append(
        f"The re-tuned learning rate (reference) grew {', '.join(grow)} over lr0 (square root: "
        f"×√k; linear: ×k). The square-root rule was off by {es:.2f} octaves on average, the "
        f"linear rule by {el:.2f}: the {closer} rule tracked the re-tuned learning rate more "
        f"closely. Per schedule, relative to that schedule's own best lr at B0 "
        f"({'; '.join(per_kind)}).")
    for key, _, rule in RULES:
        parts = []
        for kind in KINDS:
            ratios = []
            for k in big:
                batch = k * s.b0
                sc = s.score(batch, rule(lr0, k), kind)
                nd = int((~np.isfinite(s.losses(batch, rule(lr0, k), kind))).sum())
                ratios.append(f"{ratio_cell(sc, s.best(batch)[2])}"
                              + (f" ({nd}/{len(s.seeds)} seeds diverged)"
                                 if 0 < nd < len(s.seeds) else ""))
            parts.append(f"{KIND_LABEL[kind]} × best {', '.join(ratios)}")
        out.append(f"{RULE_NAME[key]} rule at k = "
                   f"{', '.join(map(str, big))}: {'; '.join(parts)}.")
    rescued, broke, better, worse, _ = warmup_effects(s)
    out.append("Warm-up prevented divergence (fewer diverged seeds) for: "
               + ("; ".join(rescued) or "none") + ". "
               "Warm-up caused divergence (more diverged seeds) for: "
               + ("; ".join(broke) or "none") + ". "
               "Among rules that converged both ways, warm-up lowered the loss by more than 10% "
               "(paired over seeds, p < 0.05) for: " + ("; ".join(better) or "none")
               + "; raised it by more than 10% for: " + ("; ".join(worse) or "none") + ".")
    out.append(divergence_note(s))
    for k in s.ks:
        batch = k * s.b0
        lr_ref, kind_ref, ref = s.best(batch)
        if ref < 1e-4:
            accs = [float(np.nanmean(s.accuracies(batch, rule(lr0, k), kind)))
                    for _, _, rule in RULES for kind in KINDS
                    if np.isfinite(s.accuracies(batch, rule(lr0, k), kind)).any()]
            acc = float(np.mean(s.accuracies(batch, lr_ref, kind_ref)))
            out.append(
                f"At B = {batch} the reference (lr {lr_cell(lr_ref)}, {KIND_LABEL[kind_ref]}) "
                f"drove the training loss to {ref:.2g}: it interpolates the training set, so "
                "× best there measures how close to zero a run got. Its test accuracy, "
                f"{acc:.3f}, is not above the rules' ({min(accs):.3f}–{max(accs):.3f}).")
    edges = [f"B = {b} ({KIND_LABEL[kd]}, {side} lr tried)" for (b, kd), side in s.edge.items()]
    if edges:
        out.append("The best learning rate stayed at the edge of the grid after "
                   f"{s.max_extensions} extensions for: {'; '.join(edges)}.")
    return out


def loss_figure(report: C.Report, setups: Sequence[Setup]) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, len(setups), figsize=(5.2 * len(setups), 4.2), squeeze=False)
    colors = {"base": "tab:gray", "sqrt": "tab:blue", "linear": "tab:red"}
    shift = {("base", "none"): 0.91, ("base", "warmup"): 0.94, ("sqrt", "none"): 0.97,
             ("sqrt", "warmup"): 1.0, ("linear", "none"): 1.03, ("linear", "warmup"): 1.06}
    for ax, s in zip(axes[0], setups, strict=True):
        lr0 = s.lr0()
        bs = np.array([k * s.b0 for k in s.ks], dtype=float)
        refs = [s.best(int(b))[2] for b in bs]
        finite = [v for v in refs if math.isfinite(v)]
        for _, _, rule in RULES:
            for kind in KINDS:
                ys = [s.score(k * s.b0, rule(lr0, k), kind) for k in s.ks]
                finite += [y for y in ys if math.isfinite(y)]
        top = max(finite) * 4
        for key, _, rule in RULES:
            for kind in KINDS:
                ys = np.array([s.score(k * s.b0, rule(lr0, k), kind) for k in s.ks])
                style = "-" if kind == "warmup" else "--"
                x = bs * shift[(key, kind)]
                marker = "o" if kind == "warmup" else "s"
                ax.plot(x, np.where(np.isfinite(ys), ys, np.nan), style, marker=marker,
                        color=colors[key], label=f"{SHORT[key]}, {KIND_LABEL[kind]}",
                        alpha=0.85, mfc="none" if kind == "none" else colors[key])
                bad = ~np.isfinite(ys)
                if bad.any():
                    ax.plot(x[bad], [top] * int(bad.sum()), "x", color=colors[key],
                            markersize=8, mew=2)
        ax.plot(bs, refs, "-", color="black", lw=2.5, label="re-tuned best", zorder=0)
        ax.axhline(top, color="0.6", lw=0.8, ls=":")
        ax.text(bs[0] * 0.85, top, "diverged (any seed)", va="bottom", fontsize=8, color="0.4")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(bs, [str(int(b)) for b in bs])
        ax.set_xlabel("batch size B (same epochs)")
        ax.set_ylabel("final training loss (mean over seeds)")
        ax.set_title(s.label, fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=7, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    report.figure(fig, "loss", "Final training loss against batch size for each scaling rule, "
                  "with (solid, filled) and without (dashed, open) warm-up, and the re-tuned "
                  "best (black); × = a seed diverged")


def lr_figure(report: C.Report, setups: Sequence[Setup]) -> None:
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for s, color in zip(setups, ("tab:blue", "tab:orange", "tab:green"), strict=False):
        lr0 = s.lr0()
        ks = np.array(s.ks, dtype=float)
        for kind, marker in (("none", "o"), ("warmup", "s")):
            ys = [s.best(int(k) * s.b0, kind)[0] / lr0 for k in ks]
            ax.plot(ks * s.b0 * (1.04 if kind == "warmup" else 1.0), ys, marker, color=color,
                    mfc="none" if kind == "warmup" else color,
                    label=f"{s.label}, {KIND_LABEL[kind]}")
    ks = np.array(sorted({k for s in setups for k in s.ks}), dtype=float)
    b0 = setups[0].b0
    ax.plot(ks * b0, ks, "k-", lw=1, label="linear rule (×k)")
    ax.plot(ks * b0, np.sqrt(ks), "k--", lw=1, label="square-root rule (×√k)")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(ks * b0, [str(int(b)) for b in ks * b0])
    ax.set_xlabel("batch size B")
    ax.set_ylabel("re-tuned lr / lr0 (factor-2 grid)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    report.figure(fig, "lr", "The learning rate re-tuned at each batch size, relative to lr0, "
                  "against the linear and square-root rules")


def compile_check(s: Setup) -> str:
    """Times lr0 at B0 (both schedules, every seed) on the CNN uncompiled and compiled, the
    compilation starting from an empty on-disk cache."""
    import os
    import tempfile

    from lrlab.train import RunConfig, run_batched

    steps = s.base_steps
    lr0 = s.lr0()
    configs = [RunConfig(lr0, schedule(kind, steps), seed=seed, steps=steps,
                         optimizer=s.optimizer, options=s.options)
               for kind in KINDS for seed in s.seeds]
    times, outs = [], []
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # nothing compiled before: a cold start
        try:
            fresh = cnn_task(s.b0, steps)
            for task, comp in ((cnn_task(s.b0, steps), False), (fresh, True), (fresh, True),
                               (cnn_task(s.b0, steps), True)):
                t0 = time.perf_counter()
                outs.append(run_batched(task, configs, compile=comp))
                times.append(time.perf_counter() - t0)
                print(f"  compile={comp}: {times[-1]:.1f} s", flush=True)
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous

    def rel(get) -> float:
        a = np.array([get(r) for r in outs[0]])
        b = np.array([get(r) for r in outs[1]])
        both = np.isfinite(a) & np.isfinite(b)
        return float((np.abs(b - a)[both] / np.maximum(np.abs(a[both]), 1e-12)).max())

    first, final = rel(lambda r: r.curve_loss[0]), rel(lambda r: r.final_loss)
    same_div = [r.diverged for r in outs[0]] == [r.diverged for r in outs[1]]
    eager, cold, warm, again = times
    overhead = cold - warm
    saving = 1 - warm / eager
    pays = (f"at the measured per-step saving of {saving:.0%}, the {overhead:.0f} s of a cold "
            f"compilation pay off after about {overhead / saving:.0f} s of uncompiled training "
            "with the same shapes" if saving > 0 else "the compiled step was not faster")
    batches = sorted({b for b, _, _ in s.runs})
    return (
        f"{len(configs)} members × {steps} steps at B = {s.b0} (lr0 × 2 schedules × "
        f"{len(s.seeds)} seeds), the compiled calls starting from an empty torch compile cache: "
        f"uncompiled **{eager:.1f} s**; `compile=True` **{cold:.1f} s** on the first call "
        f"(compilation included), {warm:.1f} s on a second call on the same task object, and "
        f"{again:.1f} s on a new task object built the same way, in the same process. "
        f"Uncompiled / compiled: {eager / cold:.2f}× on the "
        f"first call, {eager / warm:.2f}× warm; {pays}. The experiment above trained the CNN "
        f"uncompiled in {s.calls} `run_batched` calls, each on a task object of its own, at "
        f"{len(batches)} batch sizes, {s.seconds:.0f} s in all. Compiled and uncompiled runs "
        f"agree to {first:.1e} relative in the minibatch loss of step 0 and to {final:.1e} in "
        f"the final loss after {steps} steps (largest over members; the same members "
        f"diverged: {'yes' if same_div else 'no'}).")


def setups(smoke: bool) -> list[Setup]:
    grid = lambda lo, hi: tuple(2.0**j for j in range(lo, hi + 1))  # noqa: E731
    if smoke:
        return [
            Setup("mlp_sgd", "MLP, SGD", mlp_task, "sgd", {}, 16, (1, 4), (0, 1), grid(0, 1),
                  max_extensions=1),
            Setup("cnn_sgd", "CNN, SGD", cnn_task, "sgd", {}, 16, (1, 2), (0, 1), grid(-2, -2),
                  max_extensions=0),
        ]
    return [
        Setup("mlp_sgd", "MLP (digits_mlp), SGD", mlp_task, "sgd", {}, 1024, (1, 4, 16, 32),
              tuple(range(5)), grid(-2, 2)),
        Setup("mlp_momentum", "MLP (digits_mlp), SGD + momentum 0.9", mlp_task, "momentum",
              {"momentum": 0.9}, 1024, (1, 4, 16, 32), tuple(range(5)), grid(-4, 0)),
        Setup("cnn_sgd", "CNN (examples/digits_cnn.py), SGD", cnn_task, "sgd", {}, 512,
              (1, 4, 16, 32), tuple(range(4)), grid(-3, 1),
              chunk=lambda batch: max(4, 4096 // batch)),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    args = C.parser(__doc__).parse_args(argv)
    report = C.Report(NAME, "Warm-up and batch size: the linear and square-root scaling rules",
                      args)
    ss = setups(args.smoke)
    for s in ss:
        s.study()
    report.add(
        "Does large-batch SGD keep its quality when the learning rate follows the linear "
        "(lr0·k) or square-root (lr0·√k) scaling rule, with and without a linear warm-up? "
        "Each rule is compared with the best learning rate re-tuned at that batch size, at "
        "the same number of epochs.")
    report.add("## Summary\n\n" + "\n\n".join(summary(s) for s in ss))
    lines = [
        "## Protocol",
        "",
        "- Models: " + "; ".join(
            f"{s.label}: S0 = {s.base_steps} steps at B0 = {s.b0} ({s.epochs():.1f} epochs of "
            f"{s.make_task(s.b0, s.base_steps).n_train} training rows), k = "
            f"{', '.join(map(str, s.ks))}, seeds {s.seeds[0]}–{s.seeds[-1]}" for s in ss) + ".",
        "- Same number of epochs at every batch size: B = k·B0 trains S = S0/k steps, so "
        "every run sees the same examples count; this is the setting the linear rule is derived "
        "for (k small steps ≈ one step of k·lr on a k-times larger batch).",
        "- Schedules: linear decay to 0, `Linear(S)`; with warm-up, "
        "`warmup(Linear(S − W), W, start=\"nanogpt\")`, W = max(1, round(0.1·S)): "
        "s(t) = (t + 1)/(W + 1) for t < W, then the decay (about the same area under the "
        "curve as without warm-up).",
        "- lr0: the learning rate at B0 **without** warm-up with the lowest mean final "
        "training loss on a factor-2 grid, extended by ×2 steps until each schedule's best "
        f"had a worse neighbour on both sides (at most {MAX_EXTENSIONS} extensions per side). "
        "The rules use this lr0 with both schedules.",
        "- Diverged: the loss or gradient became non-finite, or the final training loss is at "
        f"least 0.9·ln 10 = {FAIL:.2f}, within 10% of the loss of the uniform prediction over "
        "the 10 classes (runs that blow up without a non-finite value collapse there, test "
        "accuracy ≈ 0.1). A learning rate with a diverged seed "
        "is not eligible as best; its loss cell reads `inf (n diverged)`.",
        "- Re-tuned reference at B: every lr0·2^j, j = 0..log2 k, plus √k·lr0, with both "
        "schedules, extended as for lr0; the reference is the best (learning rate, schedule) "
        "tried at that B. \"× best\" = mean final loss / the reference's mean final loss.",
        "- Final loss: the full training objective at the last iterate (for the CNN: eval "
        "mode, BatchNorm running statistics, no dropout); test accuracy on the 450 held-out "
        "rows. Mean ± sd over seeds; \"warm-up − none\" is the mean paired (same seed) "
        "difference of final loss and its paired t-test p-value.",
        "- The configurations of a batch size train together in one `run_batched` call per "
        "grid extension (float32, one thread, uncompiled).",
    ]
    report.add("\n".join(lines))
    for s in ss:
        report.add(f"## {s.label}")
        report.add(f"Tuning at B0 = {s.b0} ({s.base_steps} steps; every learning rate tried):\n\n"
                   + tuning_table(s))
        report.add("Scaling rules against the re-tuned best at each batch size (lr0 = "
                   f"{lr_cell(s.lr0())}; re-tuned lr as no warm-up / warm-up):\n\n"
                   + rules_table(s))
        report.add("Re-tuned learning rate against the rules:\n\n" + lr_table(s))
        notes = findings(s)
        if s.key == "cnn_sgd":
            S = s.steps(max(s.ks))
            notes.append(
                f"The CNN's final loss is measured in eval mode, with BatchNorm's running "
                f"statistics (PyTorch's default momentum 0.1): after the {S} steps at "
                f"B = {max(s.ks) * s.b0}, 0.9^{S} = {0.9**S:.0%} of their weight is still on "
                "their initial values (mean 0, variance 1), a negligible share after the "
                f"{s.base_steps} steps at B0. Part of the loss gap between batch sizes may "
                "come from this; the rules at one batch size share it.")
        report.add("\n".join(f"- {x}" for x in notes))
        print(f"{s.key}: {s.seconds:.0f} s of training", flush=True)
    report.add("## Figures")
    loss_figure(report, ss)
    lr_figure(report, ss)
    report.add("## Compile check (CNN)")
    if args.smoke:
        report.add("Skipped in a smoke run.")
    else:
        cnn = next(s for s in ss if s.key == "cnn_sgd")
        report.add(compile_check(cnn))
    seeds = "; ".join(f"{s.label}: {', '.join(map(str, s.seeds))}" for s in ss)
    report.write(seeds + " (a seed fixes the initialisation and the data order)")


if __name__ == "__main__":
    main()
