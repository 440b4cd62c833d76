"""Every optimizer's docstring is its reference: the update, every constructor argument with its
default, the paper (an arXiv id), and an example that runs."""

from __future__ import annotations

import ast
import doctest
import inspect
import re

import pytest
import torch

import lrlab.optim

CLASSES = [getattr(lrlab.optim, name) for name in lrlab.optim.__all__]
ARXIV = re.compile(r"arXiv:\d{4}\.\d{4,5}\b")


def section(doc: str, title: str) -> str:
    """The indented block under ``title:`` (up to the next unindented-by-one line)."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{title}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    block = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    return "\n".join(block)


def test_all_seventeen_classes_are_public():
    assert len(CLASSES) == 17 and all(issubclass(c, torch.optim.Optimizer) for c in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_names_the_paper_and_every_argument(cls):
    doc = inspect.getdoc(cls)
    assert "References:" in doc and ARXIV.search(section(doc, "References")), cls.__name__
    assert not re.search(r"paper \d|\.pdf\b|\.tex\b", doc)
    assert ".. math::" in doc  # the update formula
    args = section(doc, "Args")
    for name in list(inspect.signature(cls.__init__).parameters)[1:]:
        entry = re.search(rf"^ {{4}}{name}: (.*(?:\n {{6,}}\S.*)*)", args, re.M)
        assert entry, f"{cls.__name__}: argument {name} is not described"
        default = inspect.signature(cls.__init__).parameters[name].default
        if default is not inspect.Parameter.empty:
            assert "default" in entry.group(1), f"{cls.__name__}.{name}: default not given"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_example_runs(cls):
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(cls) if t.examples]
    assert tests, f"{cls.__name__} has no example"
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 5, runner.summarize(verbose=False)


DEFAULT = re.compile(r"(?:\(|; )default\s+(\([^)]*\)|[^\s;,:)]+)|\((\S+), the default\)")


def documented_default(text: str) -> object:
    """The value an argument's description gives as its default (``(default X``, ``; default X``
    or ``(X, the default)``), as Python reads it (``inf`` as infinity); a default described in
    words (``√β₂``) is returned as the text."""
    match = DEFAULT.search(text)
    assert match, f"no default in {text!r}"
    token = match.group(1) or match.group(2)
    if token == "inf":
        return float("inf")
    try:
        return ast.literal_eval(token)
    except (ValueError, SyntaxError):
        return token


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_documented_defaults_are_the_signature_defaults(cls):
    args = section(inspect.getdoc(cls), "Args")
    checked = 0
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.default is inspect.Parameter.empty:
            continue
        entry = re.search(rf"^ {{4}}{name}: (.*(?:\n {{6,}}\S.*)*)", args, re.M)
        said = documented_default(entry.group(1))
        if isinstance(said, str):  # described in words: the words must name no number
            assert not re.search(r"\d", said), f"{cls.__name__}.{name}: {said!r}"
            continue
        assert said == param.default and type(said) is type(param.default), (
            f"{cls.__name__}.{name}: documented default {said!r}, signature {param.default!r}")
        checked += 1
    assert checked >= 1
