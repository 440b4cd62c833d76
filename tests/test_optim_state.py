"""Optimizer state lives in ``state`` and ``param_groups`` only: a state dict rebuilt from those two
entries alone (as checkpointing and re-sharding tools do) resumes every optimizer exactly, and one
that lacks a piece of that state is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from lrlab.optim import (
    MADGRAD,
    MDA,
    AdamWScheduleFree,
    DAdaptAdaGrad,
    DAdaptAdam,
    DAdaptSGD,
    Mechanic,
    MirrorMADGRAD,
    Momo,
    MomoAdam,
    PrimalAveragingSGD,
    Prodigy,
    ScheduleFreeWrapper,
    SGDScheduleFree,
)
from optim_harness import clone_params, compute_grads, groups_of, make_params, roundtrip

TWO_GROUPS = [{"idx": [0, 1]}, {"idx": [2, 3]}]
Check = Callable[[torch.optim.Optimizer, dict[str, Any]], None]


@dataclass
class Case:
    make: Callable[[Any], torch.optim.Optimizer]
    check: Check  # the saved state has moved away from its start
    spec: list[dict[str, Any]] | None = None
    needs_loss: bool = False
    schedule_free: bool = False


def grew_d(opt, plain):
    d0 = plain["param_groups"][0]["d0"]
    assert all(g["d"] == opt.d > 2 * d0 for g in plain["param_groups"])
    assert all(g["k"] == SPLIT for g in plain["param_groups"])


def counted_dual_weights(opt, plain):
    groups = plain["param_groups"]
    assert all(g["k"] == SPLIT for g in groups)
    assert all(g["dual_weight"] > g["lr"] for g in groups)
    assert opt.effective_lr() == [g["dual_weight"] for g in groups]


def moved_z(opt, plain):
    start = make_params()
    assert all(not torch.equal(plain["state"][i]["z"], start[i]) for i in range(4))


def momo_averages(opt, plain):
    groups = plain["param_groups"]
    first = groups[0]
    assert first["k"] == SPLIT and first["loss_avg"] != 0 and first["gamma"] != 0
    assert first["fstar"] != first["lb"]  # the online lower bound has moved
    assert all(g[key] == first[key] for g in groups for key in ("k", "loss_avg", "fstar"))
    assert [g["tau"] for g in groups] == opt.effective_lr()
    assert groups[0]["tau"] != groups[1]["tau"]  # per group (different lr caps)


def schedule_free_counters(opt, plain):
    for g in plain["param_groups"]:
        assert g["k"] == SPLIT and g["weight_sum"] > 0 and g["train_mode"] is False


def wrapper_counters(opt, plain):
    for g in plain["param_groups"]:
        assert g["sf_k"] == SPLIT and g["sf_weight_sum"] > 0 and g["train_mode"] is False
    assert all({"sf_z", "exp_avg_sq"} <= set(plain["state"][i]) for i in range(4))


def mechanic_tuner(opt, plain):
    for g in plain["param_groups"]:
        assert g["mechanic_k"] == SPLIT and sum(g["mechanic_s"]) == pytest.approx(opt.scale)
        assert opt.scale > 1e-6
    assert all({"mechanic_ref", "momentum_buffer"} <= set(plain["state"][i]) for i in range(4))


CASES = {
    "DAdaptSGD": Case(lambda p: DAdaptSGD(p, momentum=0.9, weight_decay=0.01), grew_d,
                      TWO_GROUPS),
    "DAdaptAdam": Case(lambda p: DAdaptAdam(p, lr=0.3, use_bias_correction=True), grew_d,
                       TWO_GROUPS),
    "DAdaptAdaGrad": Case(lambda p: DAdaptAdaGrad(p, momentum=0.5), grew_d, TWO_GROUPS),
    "Prodigy": Case(lambda p: Prodigy(p, weight_decay=0.01, safeguard_warmup=True), grew_d,
                    TWO_GROUPS),
    "MDA": Case(lambda p: MDA(p, lr=0.05), counted_dual_weights, TWO_GROUPS),
    "MADGRAD": Case(lambda p: MADGRAD(p, lr=0.05, momentum=0.0), counted_dual_weights,
                    TWO_GROUPS),
    "MirrorMADGRAD": Case(lambda p: MirrorMADGRAD(p, lr=0.01), counted_dual_weights,
                          TWO_GROUPS),
    "PrimalAveragingSGD": Case(lambda p: PrimalAveragingSGD(p, lr=0.5), moved_z),
    "Momo": Case(lambda p: Momo(p, use_fstar=True, weight_decay=0.01), momo_averages,
                 [{"idx": [0, 1]}, {"idx": [2, 3], "lr": 0.2}], needs_loss=True),
    "MomoAdam": Case(lambda p: MomoAdam(p, use_fstar=True), momo_averages,
                     [{"idx": [0, 1]}, {"idx": [2, 3], "lr": 0.003}], needs_loss=True),
    "SGDScheduleFree": Case(lambda p: SGDScheduleFree(p, lr=0.5, warmup_steps=5),
                            schedule_free_counters, TWO_GROUPS, schedule_free=True),
    "AdamWScheduleFree": Case(lambda p: AdamWScheduleFree(p, lr=0.05, r=1.0),
                              schedule_free_counters, TWO_GROUPS, schedule_free=True),
    "ScheduleFreeWrapper": Case(
        lambda p: ScheduleFreeWrapper(torch.optim.Adam(p, lr=0.05, betas=(0.0, 0.99))),
        wrapper_counters, TWO_GROUPS, schedule_free=True),
    "Mechanic": Case(lambda p: Mechanic(torch.optim.SGD(p, lr=0.01, momentum=0.9)),
                     mechanic_tuner, TWO_GROUPS),
}
SPLIT, MORE = 12, 8


def step(opt, params, k, case):
    loss = compute_grads(params, k)
    if case.needs_loss:
        opt.step(loss=loss)
    else:
        opt.step()


def plain_copy(opt) -> dict[str, Any]:
    """What a tool that keeps only ``state`` and ``param_groups`` hands back, saved and loaded."""
    sd = opt.state_dict()
    return roundtrip({"state": sd["state"], "param_groups": sd["param_groups"]})


def run_until_split(case):
    params = make_params()
    opt = case.make(groups_of(params, case.spec))
    for k in range(SPLIT):
        step(opt, params, k, case)
    if case.schedule_free:
        opt.eval()  # saved in eval mode, as a checkpoint is
    return params, opt


def continue_run(opt, params, case):
    if case.schedule_free:
        opt.train()
    for k in range(SPLIT, SPLIT + MORE):
        step(opt, params, k, case)
    return params


@pytest.mark.parametrize("name", list(CASES))
def test_plain_state_dict_resumes_exactly(name):
    case = CASES[name]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params, opt = run_until_split(case)
        plain = plain_copy(opt)
        case.check(opt, plain)
        fresh_params = clone_params(params)
        fresh = case.make(groups_of(fresh_params, case.spec))
        fresh.load_state_dict(plain)
        unloaded_params = clone_params(params)  # the same start without the saved state
        unloaded = case.make(groups_of(unloaded_params, case.spec))
        if case.schedule_free:
            unloaded.eval()
        continue_run(opt, params, case)
        continue_run(fresh, fresh_params, case)
        continue_run(unloaded, unloaded_params, case)
    finally:
        torch.set_default_dtype(previous)
    for i, (a, b) in enumerate(zip(fresh_params, params, strict=True)):
        assert torch.equal(a, b), f"tensor {i} differs after resuming from the plain state dict"
    assert not all(torch.equal(a, b) for a, b in zip(unloaded_params, params, strict=True)), \
        "the saved state made no difference: the comparison tests nothing"


def group_state_keys(opt) -> list[str]:
    if isinstance(opt, Mechanic):
        return [k for k in opt.param_groups[0] if k.startswith("mechanic_")]
    return [*opt.GLOBALS, *opt.GROUP_STATE]


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_without_a_group_entry_is_refused(name):
    case = CASES[name]
    params, opt = run_until_split(case)
    keys = group_state_keys(opt)
    assert keys or name == "PrimalAveragingSGD"
    for key in keys:
        plain = plain_copy(opt)
        del plain["param_groups"][-1][key]
        fresh = case.make(groups_of(clone_params(params), case.spec))
        with pytest.raises(ValueError, match=f"lack.*{key}"):
            fresh.load_state_dict(plain)


def old_layout(opt, plain: dict[str, Any]) -> dict[str, Any]:
    """``plain`` as older lrlab versions saved it: the optimizer-wide scalars in a ``"scalars"``
    entry instead of the param groups."""
    groups = [dict(g) for g in plain["param_groups"]]
    first = groups[0]
    if isinstance(opt, (Momo, MomoAdam)):
        scalars = {"step": first["k"], "loss_avg": first["loss_avg"], "gamma": first["gamma"],
                   "lb": first["fstar"], "tau": [g["tau"] for g in groups]}
    elif isinstance(opt, SGDScheduleFree):
        scalars = {"train_mode": first["train_mode"]}
    else:
        scalars = {"step": first["k"], "dual_weight": [g["dual_weight"] for g in groups]}
    for g in groups:
        for key in (*opt.GLOBALS, "tau", "dual_weight"):
            g.pop(key, None)
    return {"state": plain["state"], "param_groups": groups, "scalars": scalars}


@pytest.mark.parametrize("name", ["Momo", "MADGRAD", "SGDScheduleFree"])
def test_state_dict_of_the_older_layout_resumes_exactly(name):
    case = CASES[name]
    params, opt = run_until_split(case)
    old = old_layout(opt, plain_copy(opt))
    fresh_params = clone_params(params)
    fresh = case.make(groups_of(fresh_params, case.spec))
    fresh.load_state_dict(old)
    continue_run(opt, params, case)
    continue_run(fresh, fresh_params, case)
    assert all(torch.equal(a, b) for a, b in zip(fresh_params, params, strict=True))


def test_scalars_entry_is_refused_where_it_never_existed():
    opt = Prodigy(make_params())
    with pytest.raises(ValueError, match="'scalars' entry, which Prodigy never saves"):
        opt.load_state_dict({**opt.state_dict(), "scalars": {"step": 3}})


def test_added_group_receives_the_current_globals():
    makers = [(lambda p: Momo(p, use_fstar=True), True), (lambda p: MADGRAD(p, lr=0.05), False),
              (SGDScheduleFree, False), (lambda p: Mechanic(torch.optim.SGD(p, lr=0.01)), False),
              (lambda p: ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)), False)]
    for make, needs_loss in makers:
        params = make_params()
        opt = make(params[:2])
        for k in range(3):
            loss = compute_grads(params, k, skip=(2, 3))
            opt.step(loss=loss) if needs_loss else opt.step()
        if isinstance(opt, (SGDScheduleFree, ScheduleFreeWrapper)):
            opt.eval()
        opt.add_param_group({"params": params[2:3]})
        opt.add_param_group({"params": params[3:]})  # the third group too, not only the second
        first, *added = opt.param_groups
        assert [g["params"] for g in added] == [params[2:3], params[3:]]
        keys = (opt.GLOBALS if not isinstance(opt, Mechanic)
                else [k for k in first if k.startswith("mechanic_") and k != "mechanic_betas"])
        start = make(make_params()[:2]).param_groups[0]
        assert all(first[k] != start[k] for k in keys), "a global had not moved"
        assert all(group[k] == first[k] for group in added for k in keys)


def mechanic_old_layout(opt: Mechanic) -> dict[str, Any]:
    """Mechanic's state dict as older lrlab versions saved it: ``{"base": the base optimizer's
    state dict, "state": {index: own entries}, "tuner": {s, v, r, m, step, betas} or {} before
    the first step}``."""
    plain = plain_copy(opt)
    prefix = "mechanic_"
    base_state = {i: {k: v for k, v in st.items() if not k.startswith(prefix)}
                  for i, st in plain["state"].items()}
    own = {i: {k[len(prefix):]: v for k, v in st.items() if k.startswith(prefix)}
           for i, st in plain["state"].items()}
    groups = [{k: v for k, v in g.items() if not k.startswith(prefix)}
              for g in plain["param_groups"]]
    first = plain["param_groups"][0]
    tuner = {}
    if first[prefix + "k"]:
        tuner = {k: torch.tensor(first[prefix + k], dtype=torch.float64) for k in "svrm"}
        tuner.update(step=torch.tensor(first[prefix + "k"]), betas=list(first[prefix + "betas"]))
    return {"base": {"state": {i: st for i, st in base_state.items() if st},
                     "param_groups": groups},
            "state": {i: st for i, st in own.items() if st}, "tuner": tuner}


@pytest.mark.parametrize("steps", [0, SPLIT])
def test_mechanic_state_dict_of_the_older_layout_resumes_exactly(steps):
    """Saved after ``steps`` steps (0: before the tuner existed) in the older layout, loaded into
    a fresh Mechanic on a copy of the parameters: the rest of the run is the same."""
    case = CASES["Mechanic"]
    params = make_params()
    opt = case.make(groups_of(params, case.spec))
    for k in range(steps):
        step(opt, params, k, case)
    old = roundtrip(mechanic_old_layout(opt))
    assert bool(old["tuner"]) == bool(steps) and bool(old["state"]) == bool(steps)
    fresh_params = clone_params(params)
    fresh = case.make(groups_of(fresh_params, case.spec))
    fresh.load_state_dict(old)
    assert fresh.param_groups[0]["mechanic_k"] == steps
    assert fresh.effective_lr() == opt.effective_lr()  # the step S·lr it reports
    for k in range(steps, SPLIT + MORE):
        step(opt, params, k, case)
        step(fresh, fresh_params, k, case)
    assert all(torch.equal(a, b) for a, b in zip(fresh_params, params, strict=True))


def wrapper_old_layout(plain: dict[str, Any]) -> dict[str, Any]:
    """ScheduleFreeWrapper's state dict as older lrlab versions saved it: its own ``z`` under
    ``state``, the mode in a ``"scalars"`` entry, and the base optimizer's state dict (whose
    param groups it shared) under ``"base"``."""
    prefix = "sf_z"
    groups = [{k: v for k, v in g.items() if k != "train_mode"} for g in plain["param_groups"]]
    return {
        "state": {i: {"z": st[prefix]} for i, st in plain["state"].items() if prefix in st},
        "param_groups": groups,
        "scalars": {"train_mode": plain["param_groups"][0]["train_mode"]},
        "base": {"state": {i: {k: v for k, v in st.items() if k != prefix}
                           for i, st in plain["state"].items()},
                 "param_groups": groups},
    }


def test_wrapper_state_dict_of_the_older_layout_resumes_exactly():
    case = CASES["ScheduleFreeWrapper"]
    params, opt = run_until_split(case)
    old = roundtrip(wrapper_old_layout(plain_copy(opt)))
    fresh_params = clone_params(params)
    fresh = case.make(groups_of(fresh_params, case.spec))
    fresh.load_state_dict(old)
    assert fresh.train_mode is False and fresh.param_groups[0]["sf_k"] == SPLIT
    continue_run(opt, params, case)
    continue_run(fresh, fresh_params, case)
    assert all(torch.equal(a, b) for a, b in zip(fresh_params, params, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_loading_replaces_the_state_of_an_optimizer_that_has_stepped(name):
    """A state dict saved before any step, loaded into an optimizer that has taken steps,
    leaves nothing of those steps behind: from the same parameters the two then step alike."""
    case = CASES[name]
    params, used = run_until_split(case)
    if case.schedule_free:
        used.train()
    start_params = clone_params(params)
    start = case.make(groups_of(start_params, case.spec))
    used.load_state_dict(roundtrip(start.state_dict()))
    for k in range(SPLIT, SPLIT + MORE):
        step(used, params, k, case)
        step(start, start_params, k, case)
    assert all(torch.equal(a, b) for a, b in zip(params, start_params, strict=True))


def load_older_layout_with_one_entry(name: str, key: str):
    """(the optimizer after ``SPLIT`` steps, a fresh one loaded from its older-layout state
    dict whose per-group list ``scalars[key]`` kept only the first group's entry)."""
    case = CASES[name]
    params, opt = run_until_split(case)
    old = old_layout(opt, plain_copy(opt))
    old["scalars"][key] = old["scalars"][key][:1]
    fresh = case.make(groups_of(clone_params(params), case.spec))
    fresh.load_state_dict(roundtrip(old))
    return opt, fresh


def test_momo_older_layout_with_fewer_step_sizes_than_groups():
    """Older state dicts kept MoMo's per-group step sizes in a list that could be shorter than
    the groups (a group that had not stepped): such a group loads with no step size yet, and
    reports its lr until its next step."""
    opt, fresh = load_older_layout_with_one_entry("Momo", "tau")
    assert fresh.param_groups[0]["tau"] == opt.param_groups[0]["tau"]
    assert fresh.param_groups[1]["tau"] is None
    assert fresh.effective_lr() == [opt.effective_lr()[0], fresh.param_groups[1]["lr"]]


def test_dual_averaging_older_layout_with_fewer_weights_than_groups():
    """Older state dicts kept the dual-averaging weights in a list that could be shorter than
    the groups: such a group loads with weight 0, as before its first step."""
    opt, fresh = load_older_layout_with_one_entry("MADGRAD", "dual_weight")
    assert fresh.effective_lr() == [opt.effective_lr()[0], 0.0]
