"""MADGRAD and Mirror-MADGRAD: parity with ``madgrad`` 1.3 (skipped without it)."""

import pytest

from lrlab.optim.madgrad import MADGRAD, MirrorMADGRAD
from optim_harness import run_parity

ref = pytest.importorskip("madgrad")

MADGRAD_OPTIONS = [
    {"lr": 0.05},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "decouple_decay": True},
    {"lr": 0.05, "weight_decay": 1.0},  # a decay as strong as the loss
    {"lr": 0.05, "momentum": 0.0},
    {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.1, "decouple_decay": True},
    {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.1},
    {"lr": 0.05, "eps": 0.0, "momentum": 0.5},
]

MIRROR_OPTIONS = [
    {"lr": 0.01},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.01, "weight_decay": 0.1, "decouple_decay": True},
    {"lr": 0.01, "weight_decay": 1.0},  # a decay as strong as the loss
    {"lr": 0.01, "weight_decay": 1.0, "decouple_decay": True},
    {"lr": 0.01, "momentum": 0.0},
    {"lr": 0.01, "eps": 1e-6, "momentum": 0.5},
]


@pytest.mark.parametrize("options", MADGRAD_OPTIONS)
def test_madgrad_matches_reference(options):
    run_parity(lambda p: MADGRAD(p, **options), lambda p: ref.MADGRAD(p, **options))


@pytest.mark.parametrize("options", MIRROR_OPTIONS)
def test_mirror_madgrad_matches_reference(options):
    run_parity(
        lambda p: MirrorMADGRAD(p, **options), lambda p: ref.MirrorMADGRAD(p, **options)
    )


@pytest.mark.parametrize(("ours", "reference"), [(MADGRAD, ref.MADGRAD),
                                                 (MirrorMADGRAD, ref.MirrorMADGRAD)])
def test_two_groups_with_different_options_match_reference(ours, reference):
    def groups(p):
        return [{"params": p[:2], "lr": 0.02, "momentum": 0.5},
                {"params": p[2:], "lr": 0.01, "weight_decay": 0.05, "decouple_decay": True}]

    run_parity(lambda p: ours(groups(p)), lambda p: reference(groups(p)))
