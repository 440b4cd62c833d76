"""The Ray executor on a real local Ray instance (one instance for the module)."""

import pytest

ray = pytest.importorskip("ray")

from lrlab.tune import LocalExecutor, RayExecutor, Study, StudySettings  # noqa: E402


@pytest.fixture(scope="module")
def ray_executor():
    ex = RayExecutor(local_cpus=1)
    yield ex
    ex.close()
    assert not ray.is_initialized()


def test_ray_executor_gives_the_local_results(ray_executor, tmp_path):
    settings = StudySettings(
        task="iris_logreg",
        schedules=("constant", "cosine"),
        lrs=(0.1, 0.8, 6.4),
        seeds=(0, 1),
        steps=40,
    )
    a = Study.open("ray", settings, str(tmp_path / "ray.db"))
    assert a.run(ray_executor, batch_size=4) == 12
    b = Study.open("local", settings, str(tmp_path / "local.db"))
    b.run(LocalExecutor(), batch_size=4)
    cols = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]
    assert a.results()[cols].equals(b.results()[cols])
    assert set(a.complete_counts().values()) == {1}
    assert ray.is_initialized()


def test_ray_workers_load_a_file_spec(ray_executor, tmp_path, monkeypatch):
    from task_files import write_builder

    write_builder(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")  # Ray workers run elsewhere: the stored path is absolute
    settings = StudySettings(
        task="user_tasks.py:build",
        task_options={"l2": 0.05},
        schedules=("constant",),
        lrs=(0.1, 0.8),
        seeds=(0, 1),
        steps=30,
    )
    a = Study.open("ray", settings, str(tmp_path / "ray.db"))
    assert a.run(ray_executor, batch_size=2) == 4
    b = Study.open("local", settings, str(tmp_path / "local.db"))
    b.run(LocalExecutor(), batch_size=2)
    cols = ["schedule", "lr", "seed", "final_loss", "test_metric", "diverged"]
    assert a.results()[cols].equals(b.results()[cols])
    assert set(a.complete_counts().values()) == {1}
