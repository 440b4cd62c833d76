"""Benchmark problems: data, a batched model, loss, metric and defaults, each self-describing.

Example::

    from lrlab.tasks import get_task, task_names
    task = get_task("digits_logreg")
    print(task.description, task.default_steps, task.metric_name)

A task built by your own code is named by an import spec, ``pkg.mod:builder`` or
``path/to/file.py:builder`` (``load_task``; ``get_task`` accepts both kinds of name).
"""

from lrlab.tasks import charlm, classification, synthetic  # noqa: F401  (registers builders)
from lrlab.tasks.base import Task, get_task, register, task_names
from lrlab.tasks.contract import BatchedModel, Members
from lrlab.tasks.modules import ModuleModel, from_module, member_torch_seed
from lrlab.tasks.spec import is_task_spec, load_task, resolve_task_spec
from lrlab.tasks.svmlight import svmlight_task

__all__ = [
    "BatchedModel",
    "Members",
    "ModuleModel",
    "Task",
    "from_module",
    "get_task",
    "is_task_spec",
    "load_task",
    "member_torch_seed",
    "register",
    "resolve_task_spec",
    "svmlight_task",
    "task_names",
]
