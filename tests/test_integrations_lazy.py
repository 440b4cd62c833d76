"""lrlab.integrations imports no framework until a callback is asked for; bad arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_package_import_is_lazy() -> None:
    code = (
        "import sys, lrlab, lrlab.integrations, lrlab.torchx, lrlab.optim, lrlab.refine\n"
        "names = ('transformers', 'lightning', 'pytorch_lightning')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert 'lrlab.integrations.hf' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_is_an_attribute_error() -> None:
    import lrlab.integrations

    with pytest.raises(AttributeError, match="Nope"):
        lrlab.integrations.Nope  # noqa: B018


@pytest.mark.parametrize("module", ["hf", "lightning"])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"peak_lr": -0.1}, "peak_lr"),
        ({"peak_lr": []}, "peak_lr"),
        ({"log_path": 3}, "log_path"),
        ({"flush_every": 0}, "flush_every"),
    ],
)
def test_bad_arguments(module: str, kwargs: dict, match: str) -> None:
    from lrlab.schedules import Linear

    pytest.importorskip("transformers" if module == "hf" else "lightning")
    import lrlab.integrations as integrations

    cls = getattr(
        integrations, "LrlabTrainerCallback" if module == "hf" else "LrlabLightningCallback"
    )
    with pytest.raises(ValueError, match=match):
        cls(**({"schedule": Linear(10)} | kwargs))
