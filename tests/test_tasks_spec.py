"""Tasks named by an import spec: ``pkg.mod:builder`` and ``path/to/file.py:builder``."""

import sys

import pytest

from lrlab.tasks import Task, get_task, is_task_spec, load_task, resolve_task_spec
from lrlab.tune import StudySettings
from task_files import write_builder, write_package


@pytest.mark.parametrize(
    "name, spec",
    [
        ("digits_logreg", False),
        ("iris_logreg", False),
        ("pkg.mod:build", True),
        ("tasks.py:build", True),
        ("dir/tasks.py:build", True),
        ("pkg.mod", True),  # a spec without its builder: an error, not an unknown name
        ("tasks.py", True),
    ],
)
def test_a_spec_is_told_from_a_registered_name(name, spec):
    assert is_task_spec(name) is spec


def test_file_spec_builds_caches_and_leaves_sys_path_alone(tmp_path, monkeypatch):
    path = write_builder(tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    task = load_task("a/user_tasks.py:build")  # relative to the working directory
    assert isinstance(task, Task) and task.name == "user_iris" and task.default_lr == 0.4
    assert sys.path == before and "task_helper" in sys.modules  # the sibling was imported
    assert load_task(f"{path}:build") is task  # one cache entry per resolved spec and options
    other = load_task(f"{path}:build", lr=0.2, default_steps=7)
    assert other.default_lr == 0.2 and other.default_steps == 7
    assert get_task(f"{path}:build", lr=0.2) is load_task(f"{path}:build", lr=0.2)
    assert sys.path == before


def test_same_file_name_in_two_folders_gives_two_modules(tmp_path):
    a = write_builder(tmp_path / "a")
    b = write_builder(tmp_path / "b")
    b.write_text(b.read_text().replace('name="user_iris"', 'name="user_iris_b"'))
    assert load_task(f"{a}:build").name == "user_iris"
    assert load_task(f"{b}:build").name == "user_iris_b"


def test_module_spec(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = write_package(tmp_path, "lrlab_user_pkg_ok")
    task = load_task(f"{pkg}.tasks:build", l2=0.05)
    assert task.name == "user_iris" and task.f_star is not None
    assert resolve_task_spec(f"{pkg}.tasks:build") == f"{pkg}.tasks:build"


def test_study_settings_store_a_file_spec_with_its_absolute_path(tmp_path, monkeypatch):
    write_builder(tmp_path)
    monkeypatch.chdir(tmp_path)
    s = StudySettings("user_tasks.py:build", ("constant",), lrs=(0.1,), steps=5)
    assert s.task == f"{tmp_path / 'user_tasks.py'}:build"
    assert StudySettings.from_dict(s.to_dict()) == s
    assert s.task_spec == {"name": s.task}
    s = StudySettings("pkg.mod:build", ("constant",), lrs=(0.1,), steps=5)
    assert s.task == "pkg.mod:build"
    with pytest.raises(ValueError, match="names no builder"):
        StudySettings("user_tasks.py", ("constant",), lrs=(0.1,), steps=5)


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("lrlab_no_such_module:build", {}, "no module named 'lrlab_no_such_module'"),
        ("lrlab.no_such:build", {}, "no module named 'lrlab.no_such'"),
        ("{d}/missing.py:build", {}, "no such file '{d}/missing.py'"),
        ("{d}/user_tasks.py:nosuch", {}, "user_tasks.py has no attribute 'nosuch'"),
        ("{d}/user_tasks.py:NOT_CALLABLE", {}, "NOT_CALLABLE is a int, not a callable"),
        ("{d}/user_tasks.py:broken", {}, "task builder {d}/user_tasks.py:broken raised "
         "RuntimeError: no data here"),
        ("{d}/user_tasks.py:not_a_task", {}, "returned int, not a lrlab.tasks.Task"),
        ("{d}/user_tasks.py:build", {"depth": 3}, "unknown option(s) depth for task builder"),
        ("{d}/user_tasks.py", {}, "names no builder"),
        ("lrlab.tasks", {}, "names no builder"),
        ("lrlab.tasks:", {}, "names no builder"),
        ("{d}/syntax.py:build", {}, "importing {d}/syntax.py raised SyntaxError"),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, spec, options, message):
    write_builder(tmp_path)
    (tmp_path / "syntax.py").write_text("def build(:\n    pass\n")
    spec, message = spec.format(d=tmp_path), message.format(d=tmp_path)
    with pytest.raises(ValueError) as info:
        load_task(spec, **options)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert spec.rpartition(":")[0] in text or spec in text


def test_a_file_that_fails_to_import_can_be_fixed_and_loaded(tmp_path):
    path = tmp_path / "late.py"
    path.write_text("raise ImportError('not yet')\n")
    with pytest.raises(ValueError, match="raised ImportError: not yet"):
        load_task(f"{path}:build")
    path.write_text(write_builder(tmp_path).read_text())
    assert load_task(f"{path}:build").name == "user_iris"


def test_registered_names_must_be_identifiers():
    from lrlab.tasks import register

    with pytest.raises(TypeError, match="identifier"):
        register("my.task")
