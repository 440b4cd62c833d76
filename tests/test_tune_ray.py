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


def test_ray_trials_fail_one_trial_per_crash_and_complete_the_rest(ray_executor, tmp_path):
    from pathlib import Path

    from lrlab.tune import RayTrials

    fn = f"{Path(__file__).parent / 'trial_fns.py'}:misbehaving"
    settings = StudySettings(
        fn, ("constant",), lrs=(0.1, 0.2, 0.8, 1.6), steps=10, kind="function"
    )
    study = Study.open("ray-trials", settings, str(tmp_path / "t.db"))
    with RayTrials(timeout=60) as ex:
        assert study.run(ex) == 4
    assert sorted(study.results()["lr"]) == [0.1, 0.2]
    reasons = study.failures().set_index("lr")["error"]
    assert "RuntimeError: boom at lr 0.8" in reasons[0.8]
    assert "the Ray task failed" in reasons[1.6]  # the worker killed itself
    assert ray.is_initialized()  # RayTrials reused the running instance and left it up
