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
