"""Mutation testing of the core modules: plant one small bug at a time, check the tests see it.

Each mutant is one AST edit of one source file (operators below), written into a private copy
of the tree; the test files mapped to that source file (``MODULES``) then run there with
``pytest -x -q`` under a timeout. A mutant is *killed* when the tests fail, *timed out* when
they run past the limit (a hang the tests provoke: counted as detected), *survived* when they
pass. Mutants listed in ``bench/mutants-equivalent.txt`` (an id and the reason it changes no
observable behaviour) are reported apart and left out of the score.

Operators: comparison flips (< <=, > >=, == !=, is / is not, in / not in), arithmetic swaps
(+ -, * /, // -> /, % -> *, ** -> *), ``and`` <-> ``or``, dropping ``not`` and unary minus,
numeric constants (0 <-> 1, n -> n + 1, True <-> False), and dropping a statement (an
assignment to an attribute or a subscript, an augmented assignment, a call made for its
effect). Docstrings, strings, f-strings and annotations are left alone, and so is a line
marked ``# pragma: no mutate``.

Usage (from the repository root)::

    python bench/mutants.py --list                      # modules and their mutant counts
    python bench/mutants.py                             # every mutant of every module
    python bench/mutants.py --module refine --module theory
    python bench/mutants.py --sample 40 --seed 0        # 40 mutants drawn per module
    python bench/mutants.py --survivors                 # rerun the stored survivors only
    python bench/mutants.py --report                    # summary of the stored results
    python bench/mutants.py --markdown                  # the same as Markdown tables

Results merge into ``bench/results/mutants.json`` (one record per mutant id), so modules and
samples can be run separately and summarised together.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "lrlab"
RESULTS = ROOT / "bench" / "results" / "mutants.json"
EQUIVALENT = ROOT / "bench" / "mutants-equivalent.txt"

#: Module -> {source file (under src/lrlab): the test files that concern it}.
OPTIM_FAMILIES = ("averaging", "dadapt", "madgrad", "mechanic", "momo", "polyak", "prodigy",
                  "schedulefree")
# the families checked against a reference package (test_optim_<family>_parity.py)
OPTIM_PARITY = ("dadapt", "madgrad", "mechanic", "momo", "prodigy", "schedulefree")
MODULES: dict[str, dict[str, list[str]]] = {
    "schedules": {
        **{
            f"schedules/{f}.py": ["test_schedules.py", "test_schedules_props.py",
                                  "test_schedules_values.py", "test_schedules_arguments.py"]
            for f in ("array", "base", "compose", "decay", "onecycle", "phases", "warmup")
        },
        "schedules/spec.py": ["test_schedules_spec.py"],
    },
    "theory": {"theory.py": ["test_theory.py", "test_theory_misspecified.py",
                             "test_theory_inputs.py", "test_theory_long_horizon.py",
                             "test_theory_optimal.py"]},
    "refine": {"refine.py": ["test_refine.py", "test_refine_horizon.py", "test_refine_report.py",
                             "test_refine_binning.py", "test_recorder.py"]},
    "optim": {
        # each family: its tests, then its parity with the reference package (the oracle),
        # then the state-dict round trips of every optimizer
        **{
            f"optim/{f}.py": [f"test_optim_{f}.py"] + (
                [f"test_optim_{f}_parity.py"] if f in OPTIM_PARITY else []) + (
                ["test_lrfree_shared_state.py"] if f in ("dadapt", "prodigy", "schedulefree")
                else []) + (["test_schedulefree_defaults.py"] if f == "schedulefree" else [])
            + ["test_optim_state.py", "test_optim_docs.py"]
            for f in OPTIM_FAMILIES
        },
        # shared by every optimizer: the building blocks' tests first, then every family
        **{
            f"optim/{f}.py": ["test_optim_blocks.py", "test_optim_state.py",
                              *[f"test_optim_{g}.py" for g in OPTIM_FAMILIES],
                              *[f"test_optim_{g}_parity.py" for g in OPTIM_PARITY],
                              "test_lrfree_shared_state.py"]
            for f in ("_base", "_foreach", "_validate")
        },
    },
    "train": {
        **{
            f"train/{f}.py": ["test_train_divergence.py", "test_train_zero_lr.py",
                              "test_train.py", "test_train_optimizers.py"]
            for f in ("api", "engine", "types")
        },
        **{
            f"train/methods/{f}.py": ["test_train_optimizers.py", "test_train_resume_state.py",
                                      "test_train_zero_lr.py", "test_train.py"]
            for f in ("__init__", "_base", "adam", "sgd")
        },
        **{
            f"train/methods/{f}.py": ["test_train_optimizers.py", "test_train_resume_state.py",
                                      "test_train_zero_lr.py", "test_train_lrfree.py"]
            for f in ("dadapt", "prodigy", "schedulefree")
        },
        "train/methods/polyak.py": ["test_train_polyak.py", "test_train_optimizers.py",
                                    "test_train_resume_state.py"],
        "train/devices.py": ["test_tasks_modules.py"],
    },
    "tune": {
        "tune/study.py": ["test_tune_study_records.py", "test_tune_edges.py",
                          "test_tune_pilot.py", "test_tune_study.py", "test_tune_reuse.py"],
        "tune/analysis.py": ["test_tune_analysis.py", "test_tune_exponent.py"],
        "tune/space.py": ["test_tune_space.py", "test_tune_edges.py"],
    },
    "torchx": {
        "torchx/find_lr.py": ["test_torchx_find_lr_steps.py", "test_rangetest_groups.py",
                              "test_rangetest.py"],
        "torchx/recorder.py": ["test_recorder.py"],
        "torchx/scheduler.py": ["test_torchx_scheduler.py"],
    },
}

COMPARE_SWAP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
BINOP_SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.Mult, ast.Pow: ast.Mult,
}
SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.And: "and", ast.Or: "or",
}


@dataclass
class Mutant:
    id: str  # file:line:col:operator, stable while the file is unchanged
    module: str
    file: str
    line: int
    description: str
    status: str = "pending"  # killed | survived | timeout | error
    seconds: float = 0.0


# -- generating mutants -------------------------------------------------------------------------
def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Ids of nodes never mutated: docstrings, f-strings, annotations and what they hold."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                drop(body[0])
        if isinstance(node, ast.JoinedStr):
            drop(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
            for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
                drop(a.annotation)
            drop(node.args.vararg and node.args.vararg.annotation)
            drop(node.args.kwarg and node.args.kwarg.annotation)
        if isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            drop(node)
    return skip


Edit = Callable[[ast.AST, dict], None]


def _sites(tree: ast.AST) -> Iterator[tuple[int, str, Edit]]:
    """(node index in ast.walk order, description, edit) for every mutation of ``tree``.

    An edit takes the node (found again by its index in a fresh parse) and the parent map.
    """
    skip = _skipped_nodes(tree)
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                new = COMPARE_SWAP.get(type(op))
                if new is not None:
                    yield i, f"{SYMBOL[type(op)]} -> {SYMBOL[new]}", _set_compare(j, new)
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            new = BINOP_SWAP.get(type(node.op))
            if new is not None:
                eq = "=" if isinstance(node, ast.AugAssign) else ""
                yield i, f"{SYMBOL[type(node.op)]}{eq} -> {SYMBOL[new]}{eq}", _set_op(new)
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield i, f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}", _set_op(new)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            word = "not" if isinstance(node.op, ast.Not) else "unary -"
            yield i, f"drop {word}", _unwrap
        elif isinstance(node, ast.Constant) and type(node.value) in (bool, int, float):
            v = node.value
            if isinstance(v, bool):
                new_v: object = not v
            elif v == 0:
                new_v = type(v)(1)
            elif v == 1:
                new_v = type(v)(0)
            else:
                new_v = v + 1
            yield i, f"{v!r} -> {new_v!r}", _set_value(new_v)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr)) and _droppable(node):
            yield i, f"drop statement `{_head(node)}`", _drop_statement


def _droppable(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        return all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets)
    if isinstance(node, ast.AugAssign):
        return True
    return isinstance(node.value, ast.Call)  # an ast.Expr: a call made for its effect


def _head(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."


def _set_compare(j: int, new: type) -> Edit:
    def edit(node, parents):
        node.ops[j] = new()
    return edit


def _set_op(new: type) -> Edit:
    def edit(node, parents):
        node.op = new()
    return edit


def _set_value(v: object) -> Edit:
    def edit(node, parents):
        node.value = v
    return edit


def _unwrap(node, parents) -> None:
    _replace(node, parents, node.operand)


def _drop_statement(node, parents) -> None:
    _replace(node, parents, ast.Pass())


def _replace(node: ast.AST, parents: dict, new: ast.AST) -> None:
    parent = parents[id(node)]
    for field, value in ast.iter_fields(parent):
        if value is node:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for k, item in enumerate(value):
                if item is node:
                    value[k] = new
                    return
    raise RuntimeError("node not found under its parent")


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}


def mutants_of(module: str, rel: str) -> list[tuple[Mutant, int, int]]:
    """(mutant, node index, site number) for every mutation of ``src/lrlab/<rel>``."""
    text = (SRC / rel).read_text()
    quiet = {n for n, line in enumerate(text.splitlines(), 1) if "pragma: no mutate" in line}
    tree = ast.parse(text)
    nodes = list(ast.walk(tree))
    out, seen = [], {}
    for k, (i, desc, _) in enumerate(_sites(tree)):
        line = getattr(nodes[i], "lineno", 0)
        if line in quiet:
            continue
        base = f"{rel}:{line}:{getattr(nodes[i], 'col_offset', 0)}:{desc}"
        seen[base] = seen.get(base, 0) + 1
        mid = base if seen[base] == 1 else f"{base}#{seen[base]}"
        out.append((Mutant(mid, module, rel, line, desc), i, k))
    return out


def mutated_source(rel: str, site: int) -> str:
    tree = ast.parse((SRC / rel).read_text())
    i, _, edit = list(_sites(tree))[site]
    node = list(ast.walk(tree))[i]
    edit(node, _parents(tree))
    return ast.unparse(ast.fix_missing_locations(tree))


# -- running ------------------------------------------------------------------------------------
def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.egg-info")
    for name in ("src", "tests", "examples", "docs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)


def _pytest(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    env = dict(os.environ, PYTHONPATH=str(copy / "src"), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           *[f"tests/{t}" for t in tests]]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    took = time.monotonic() - t0
    tail = (proc.stdout + proc.stderr)[-2000:]
    if proc.returncode == 0:
        return "survived", took, tail
    if proc.returncode == 1:
        return "killed", took, tail
    return "error", took, tail  # collection error, internal error, no tests: also detected


def run(mutants: list[tuple[Mutant, int]], timeout_factor: float,
        done: Callable[[Mutant], None]) -> None:
    """Run each (mutant, site) in one private copy of the tree, in order; ``done(mutant)``
    after each."""
    by_tests: dict[tuple[str, ...], float] = {}
    with tempfile.TemporaryDirectory(prefix="lrlab-mutants-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        for n, (m, site) in enumerate(mutants, 1):
            tests = [t for t in MODULES[m.module][m.file] if (copy / "tests" / t).exists()]
            key = tuple(tests)
            if key not in by_tests:  # baseline: the mapped tests must pass on the clean tree
                status, took, tail = _pytest(copy, tests, 1800)
                by_tests[key] = took if status == "survived" else -1.0
                if status != "survived":
                    print(f"tests {tests} fail on the clean tree, their mutants are skipped:"
                          f"\n{tail}", flush=True)
            if by_tests[key] < 0:
                continue
            target = copy / "src" / "lrlab" / m.file
            original = target.read_text()
            target.write_text(mutated_source(m.file, site))
            try:
                limit = by_tests[key] * timeout_factor + 20
                m.status, m.seconds, _ = _pytest(copy, tests, limit)
            finally:
                target.write_text(original)
            m.seconds = round(m.seconds, 2)
            print(f"[{n}/{len(mutants)}] {m.status:8s} {m.id}", flush=True)
            done(m)


# -- results ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _results_lock() -> Iterator[None]:
    """Exclusive use of the results file between campaigns run side by side."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_name(".mutants.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_results() -> dict[str, dict]:
    if RESULTS.exists():
        return {r["id"]: r for r in json.loads(RESULTS.read_text()).get("mutants", [])}
    return {}


def load_equivalent() -> dict[str, str]:
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                mid, _, why = line.partition("  ")
                out[mid.strip()] = why.strip()
    return out


def summarise(records: dict[str, dict], totals: dict[str, int]) -> dict:
    equivalent = load_equivalent()
    modules = {}
    for module in MODULES:
        rs = [r for r in records.values() if r["module"] == module]
        count = {s: sum(r["status"] == s for r in rs) for s in
                 ("killed", "timeout", "error", "survived")}
        eq = sum(r["status"] == "survived" and r["id"] in equivalent for r in rs)
        detected = count["killed"] + count["timeout"] + count["error"]
        scored = len(rs) - eq
        modules[module] = {
            "mutants": totals.get(module, 0), "run": len(rs), **count, "equivalent": eq,
            "score": round(detected / scored, 4) if scored else None,
        }
    run_ = sum(m["run"] for m in modules.values())
    eq = sum(m["equivalent"] for m in modules.values())
    det = sum(m["killed"] + m["timeout"] + m["error"] for m in modules.values())
    return {
        "modules": modules,
        "total": {"mutants": sum(totals.values()), "run": run_, "detected": det,
                  "equivalent": eq, "score": round(det / (run_ - eq), 4) if run_ > eq else None},
        "survivors": sorted(
            ({"id": r["id"], "equivalent": equivalent.get(r["id"])} for r in records.values()
             if r["status"] == "survived"), key=lambda s: s["id"]),
    }


def print_summary(summary: dict) -> None:
    print(f"{'module':10s} {'mutants':>7s} {'run':>5s} {'killed':>6s} {'timeout':>7s} "
          f"{'error':>5s} {'survived':>8s} {'equiv':>5s} {'score':>6s}")
    for name, m in summary["modules"].items():
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f}%"
        print(f"{name:10s} {m['mutants']:7d} {m['run']:5d} {m['killed']:6d} {m['timeout']:7d} "
              f"{m['error']:5d} {m['survived']:8d} {m['equivalent']:5d} {score:>6s}")
    t = summary["total"]
    score = "-" if t["score"] is None else f"{100 * t['score']:.1f}%"
    print(f"total: {t['run']} run of {t['mutants']}, {t['detected']} detected, "
          f"{t['equivalent']} equivalent, score {score} (detected / non-equivalent run)")
    open_ = [s["id"] for s in summary["survivors"] if not s["equivalent"]]
    if open_:
        print(f"\nsurvivors not marked equivalent ({len(open_)}):")
        for s in open_:
            print(f"  {s}")


def markdown(summary: dict) -> str:
    """The score table and the survivors as Markdown (the tables of docs/testing.md)."""
    lines = ["| module | mutants | run | killed | error | timeout | survived | equivalent "
             "| score |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [*summary["modules"].items(), ("all", None)]
    for name, m in rows:
        if m is None:
            t = summary["total"]
            m = {"mutants": t["mutants"], "run": t["run"], "score": t["score"],
                 **{k: sum(x[k] for x in summary["modules"].values())
                    for k in ("killed", "error", "timeout", "survived", "equivalent")}}
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f} %"
        lines.append(f"| {name} | {m['mutants']} | {m['run']} | {m['killed']} | {m['error']} | "
                     f"{m['timeout']} | {m['survived']} | {m['equivalent']} | {score} |")
    lines += ["", "| survivor | why it stays |", "|---|---|"]
    for sv in summary["survivors"]:
        why = sv["equivalent"] or "**not explained: a missing test**"
        lines.append(f"| `{sv['id']}` | {why} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", choices=list(MODULES),
                    help="module to mutate (repeatable; default: all)")
    ap.add_argument("--sample", type=int, default=0, help="mutants drawn per module (0 = all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the draw")
    ap.add_argument("--unrun", action="store_true",
                    help="draw only from mutants with no stored result (a sample that extends "
                         "the earlier ones)")
    ap.add_argument("--survivors", action="store_true",
                    help="rerun the stored survivors not listed as equivalent")
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="per-mutant limit: factor x the clean run's time, plus 20 s")
    ap.add_argument("--list", action="store_true", help="count the mutants per module, run none")
    ap.add_argument("--report", action="store_true", help="summarise the stored results only")
    ap.add_argument("--show", metavar="ID", help="print the mutated line of one mutant")
    ap.add_argument("--markdown", action="store_true",
                    help="print the stored summary as Markdown tables")
    args = ap.parse_args(argv)
    modules = args.module or list(MODULES)
    every = {mod: [(m, s) for rel in MODULES[mod] for m, _, s in mutants_of(mod, rel)]
             for mod in MODULES}
    totals = {mod: len(v) for mod, v in every.items()}
    if args.show:
        for m, site in (x for v in every.values() for x in v):
            if m.id == args.show:
                new = mutated_source(m.file, site).splitlines()
                old = ast.unparse(ast.parse((SRC / m.file).read_text())).splitlines()
                for a, b in zip(old, new, strict=False):
                    if a != b:
                        print(f"- {a.strip()}\n+ {b.strip()}")
                return 0
        raise SystemExit(f"no mutant {args.show!r}")
    if args.list:
        for mod in modules:
            print(f"{mod:10s} {totals[mod]:5d} mutants in {len(MODULES[mod])} files")
        return 0
    records = load_results()
    if args.markdown:  # reads only: a campaign may be writing the results now
        known = {m.id for v in every.values() for m, _ in v}
        print(markdown(summarise({k: r for k, r in records.items() if k in known}, totals)))
        return 0
    if not args.report:
        todo: list[tuple[Mutant, int]] = []
        for mod in modules:
            pool = every[mod]
            if args.survivors:  # the ones not explained as equivalent
                eq = load_equivalent()
                pool = [x for x in pool if x[0].id not in eq
                        and records.get(x[0].id, {}).get("status") == "survived"]
            elif args.unrun:
                pool = [x for x in pool if x[0].id not in records]
            if not args.survivors and args.sample and args.sample < len(pool):
                pool = random.Random(f"{args.seed}:{mod}").sample(pool, args.sample)
            todo.extend(pool)
        def done(m: Mutant) -> None:  # saved after every mutant: an interrupted run keeps
            merge_save(records, every, totals, asdict(m))  # what it measured

        run(todo, args.timeout_factor, done)
    print_summary(merge_save(records, every, totals))
    return 0


def merge_save(records: dict[str, dict], every: dict, totals: dict[str, int],
               *new: dict) -> dict:
    """``records`` updated from the results file as it is now (campaigns of other modules may
    be writing it too), then with ``new``, saved under the lock; returns the summary."""
    with _results_lock():
        records.update(load_results())
        records.update({r["id"]: r for r in new})
        return save(records, every, totals)


def save(records: dict[str, dict], every: dict, totals: dict[str, int]) -> dict:
    known = {m.id for v in every.values() for m, _ in v}
    kept = {k: r for k, r in records.items() if k in known}  # drop stale ids
    summary = summarise(kept, totals)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(
        {"summary": summary, "mutants": sorted(kept.values(), key=lambda r: r["id"])},
        indent=1) + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(main())
