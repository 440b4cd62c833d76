"""The mutation campaign's own seams (bench/mutants.py): what it maps, what it plants, and the
list of explained survivors. The campaign itself is not run here."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "bench" / "mutants.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("mutants", None)


def test_every_mapped_source_and_test_file_exists(mutants):
    """A misspelt test file would be skipped silently and weaken every mutant of its source."""
    for files in mutants.MODULES.values():
        for rel, tests in files.items():
            assert (mutants.SRC / rel).is_file(), rel
            assert tests, rel
            for name in tests:
                assert (ROOT / "tests" / name).is_file(), f"{rel}: {name}"


@pytest.mark.parametrize("package", ["optim", "schedules", "train", "train/methods", "torchx"])
def test_every_module_of_the_core_packages_is_mutated(mutants, package):
    """A new file in a core package (an optimizer, a batched method) joins the campaign."""
    mapped = {rel for files in mutants.MODULES.values() for rel in files}
    for path in sorted((mutants.SRC / package).glob("*.py")):
        rel = path.relative_to(mutants.SRC).as_posix()
        assert path.name == "__init__.py" or rel in mapped, f"{rel} is not in MODULES"


SNIPPET = '''
def f(a: int, b: float = 2.5) -> bool:
    """Docstrings are not mutated."""
    c = a * b
    obj.x = c - 1
    log(c)
    return not (a < b and -a == 0) or c is None
'''


def test_each_operator_plants_one_bug(mutants):
    tree = ast.parse(SNIPPET)
    descriptions = [desc for _, desc, _ in mutants._sites(tree)]
    assert sorted(descriptions) == sorted([
        "* -> /", "- -> +", "1 -> 0", "drop statement `obj.x = c - 1`", "drop statement `log(c)`",
        "drop not", "and -> or", "or -> and", "< -> <=", "drop unary -", "== -> !=",
        "0 -> 1", "is -> is not", "2.5 -> 3.5",
    ])  # the docstring and the annotations stay; a default value is mutated like any number
    original = ast.unparse(tree)
    for k in range(len(descriptions)):
        tree = ast.parse(SNIPPET)
        i, _, edit = list(mutants._sites(tree))[k]
        edit(list(ast.walk(tree))[i], mutants._parents(tree))
        mutated = ast.unparse(ast.fix_missing_locations(tree))
        assert mutated != original, descriptions[k]
        compile(mutated, "<mutant>", "exec")


def test_the_explained_survivors_are_well_formed(mutants):
    """Each line: a mutant id, two spaces, the reason it stays; no id twice."""
    lines = [line for line in mutants.EQUIVALENT.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    ids = [line.partition("  ")[0] for line in lines]
    assert len(ids) == len(set(ids))
    for line in lines:
        mid, _, why = line.partition("  ")
        assert mid.count(":") >= 3 and len(why.strip()) > 20, line
    assert set(mutants.load_equivalent()) == set(ids)
