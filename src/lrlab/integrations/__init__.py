"""Callbacks for Hugging Face ``transformers.Trainer`` and Lightning ``Trainer``.

Each one drives the learning rate from an lrlab schedule (the values
:class:`lrlab.torchx.ScheduleLR` sets), writes a per-step gradient-norm log that
``lrlab refine`` reads, and switches Schedule-Free optimizers to eval mode for evaluation and
checkpoints. The frameworks are imported only when a callback is first used:

* ``lrlab.integrations.hf.LrlabTrainerCallback`` (``pip install lrlab[hf]``);
* ``lrlab.integrations.lightning.LrlabLightningCallback`` (``pip install lrlab[lightning]``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LrlabLightningCallback", "LrlabTrainerCallback"]

_WHERE = {
    "LrlabTrainerCallback": "lrlab.integrations.hf",
    "LrlabLightningCallback": "lrlab.integrations.lightning",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
