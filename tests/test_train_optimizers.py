"""Batched methods (``lrlab.train.methods``): the registry, options, masking of frozen members,
per-member options, state, and device cleanliness.

Each method's arithmetic against its single-model class is checked in ``test_train.py``
(torch.optim) and ``test_train_lrfree.py`` (lrlab.optim).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lrlab.schedules import Constant
from lrlab.train import LR_FREE, OPTIMIZERS, SCHEDULE_FREE, RunConfig
from lrlab.train.methods import (
    BATCHED_METHODS,
    batched_method,
    check_options,
    describe_options,
    member_options,
)
from lrlab.train.methods.schedulefree import warmup_steps

#: The methods driven by gradients alone (the per-example ones, which also need each step's
#: example indices, are checked in ``test_train_polyak.py``).
METHODS = [name for name, m in BATCHED_METHODS.items() if not m.per_example]

#: Per method, three members' options: defaults, then non-default values of every option.
MEMBERS = {
    "sgd": [{}, {"weight_decay": 0.1}, {"weight_decay": 1.0}],  # 1: as strong as the gradient
    "momentum": [{}, {"momentum": 0.5, "weight_decay": 0.1},
                 {"momentum": 0.0, "weight_decay": 1.0}],
    "adam": [{}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3}, {"weight_decay": 1.0, "beta1": 0.0}],
    "adamw": [{}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3}, {"weight_decay": 0.0}],
    "schedulefree_sgd": [{}, {"beta": 0.5, "weight_decay": 0.1, "warmup_fraction": 0.5},
                         {"warmup_fraction": 0.0}],
    "schedulefree_adamw": [{}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3, "weight_decay": 0.1,
                                "warmup_fraction": 0.5}, {"warmup_fraction": 0.0}],
    "dadapt_sgd": [{}, {"momentum": 0.0, "d0": 1e-3, "weight_decay": 0.1}, {"momentum": 0.5}],
    "prodigy": [{}, {"beta1": 0.0, "beta2": 0.9, "beta3": 0.5, "eps": 1e-3, "d0": 1e-3,
                     "d_coef": 0.5, "weight_decay": 0.1}, {"beta1": 0.5, "d_coef": 2.0}],
}


def test_registry_and_derived_lists() -> None:
    assert set(MEMBERS) == set(METHODS)
    assert OPTIMIZERS == tuple(BATCHED_METHODS)
    assert OPTIMIZERS == (*METHODS, "sp", "taps", "motaps")
    assert {"sgd", "momentum", "adam", "adamw"}.isdisjoint(LR_FREE)
    assert set(LR_FREE) == {"schedulefree_sgd", "schedulefree_adamw", "dadapt_sgd", "prodigy",
                            "sp", "taps", "motaps"}
    assert SCHEDULE_FREE == ("schedulefree_sgd", "schedulefree_adamw")
    for name, method in BATCHED_METHODS.items():
        assert method.name == name and batched_method(name) is method
        assert "weight_decay" in method.OPTIONS
        if method.per_example:
            continue
        for key in {k for m in MEMBERS[name] for k in m}:
            assert key in method.OPTIONS
    with pytest.raises(ValueError, match="optimizer must be one of sgd, momentum, adam, adamw"):
        batched_method("lion")
    # Adam-like preconditioning (its pilot reads the 1-norm of the gradient)
    coordinatewise = {n for n, m in BATCHED_METHODS.items() if m.coordinatewise}
    assert coordinatewise == {"adam", "adamw", "schedulefree_adamw", "prodigy"}


@pytest.mark.parametrize("kind", sorted(MEMBERS))
def test_every_method_counts_its_steps_in_its_state(kind: str) -> None:
    p = torch.zeros(2, 3, dtype=torch.float64)
    opt = batched_method(kind)([p], {}, steps=10)
    for _ in range(3):
        opt.step([p], [torch.ones_like(p)], torch.full((2,), 0.01, dtype=torch.float64), None)
    assert opt.state_dict()["k"] == 3


def test_options_are_validated_by_name_and_range() -> None:
    adam = batched_method("adam")
    assert adam.resolve({}) == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert batched_method("adamw").resolve({})["weight_decay"] == 0.01
    assert batched_method("prodigy").resolve({"beta2": 0.81})["beta3"] == pytest.approx(0.9)
    assert batched_method("dadapt_sgd").resolve({})["momentum"] == 0.9
    with pytest.raises(ValueError, match=r"adam has no option 'momentum'; its options are "
                                         r"beta1, beta2, eps, weight_decay"):
        adam.resolve({"momentum": 0.9})
    with pytest.raises(ValueError, match=r"option beta2 of adam must be in \[0, 1\), got 1"):
        adam.resolve({"beta2": 1.0})
    with pytest.raises(ValueError, match=r"option beta of schedulefree_sgd must be in \(0, 1\)"):
        batched_method("schedulefree_sgd").resolve({"beta": 0.0})
    with pytest.raises(ValueError, match=r"option warmup_fraction .* \[0, 1\]"):
        batched_method("schedulefree_adamw").resolve({"warmup_fraction": 1.5})
    with pytest.raises(ValueError, match=r"option d0 of dadapt_sgd must be in \(0, inf\)"):
        batched_method("dadapt_sgd").resolve({"d0": 0.0})
    with pytest.raises(ValueError, match="option weight_decay of sgd must be finite"):
        batched_method("sgd").resolve({"weight_decay": float("nan")})
    with pytest.raises(ValueError, match="option eps of adam must be a real number"):
        check_options("adam", {"eps": "small"})
    assert check_options("adam", {"eps": 1e-6, "beta1": 0}) == {"beta1": 0.0, "eps": 1e-6}
    assert list(check_options("adam", {"eps": 1e-6, "beta1": 0})) == ["beta1", "eps"]
    assert describe_options("sgd", {}) == "sgd (weight_decay 0)"
    assert describe_options("adam", {"beta1": 0.5}, every=False) == "adam (beta1 0.5)"


def test_per_member_option_values() -> None:
    p = torch.zeros(3, 2, dtype=torch.float64)
    opt = batched_method("momentum")([p], {"momentum": [0.5, None, 0.1]})
    assert opt.opts["momentum"].tolist() == [0.5, 0.9, 0.1]
    assert opt.opts["momentum"].dtype == torch.float64
    assert opt.opts["weight_decay"].tolist() == [0.0, 0.0, 0.0]
    scalar = batched_method("momentum")([p], {"momentum": torch.tensor(0.5)})
    assert scalar.opts["momentum"].tolist() == [0.5] * 3
    with pytest.raises(ValueError, match="option momentum of momentum has 2 values for 3"):
        batched_method("momentum")([p], {"momentum": [0.5, 0.5]})
    with pytest.raises(ValueError, match=r"option momentum of momentum must be in \[0, 1\)"):
        batched_method("momentum")([p], {"momentum": [0.5, 1.0, 0.5]})
    with pytest.raises(ValueError, match="has no option 'beta'"):
        batched_method("momentum")([p], {"beta": 0.5})
    assert member_options([{"b": 1.0}, {}, {"a": 2.0}]) == {"a": [None, None, 2.0],
                                                          "b": [1.0, None, None]}


def _grads(n: int = 12, M: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(M, 4, generator=gen, dtype=torch.float64) for _ in range(n)]


@pytest.mark.parametrize("kind", METHODS)
def test_member_equals_method_with_its_own_options(kind: str) -> None:
    """Member m of a batch with per-member options == the method on member m alone."""
    method = batched_method(kind)
    members = MEMBERS[kind]
    grads = _grads(M=len(members))
    lr = torch.tensor([0.1, 0.05, 0.2], dtype=torch.float64)
    p = torch.linspace(-1, 1, 3 * 4, dtype=torch.float64).view(3, 4)
    start = p.clone()
    opt = method([p], member_options(members), steps=10)
    for g in grads:
        opt.step([p], [g], lr, None)
    at = opt.eval_params([p])[0]
    trajectories = []
    for m, options in enumerate(members):
        q = start[m : m + 1].clone()
        alone = method([q], options, steps=10)
        for g in grads:
            alone.step([q], [g[m : m + 1]], lr[m : m + 1], None)
        torch.testing.assert_close(p[m : m + 1], q, rtol=1e-14, atol=0)
        torch.testing.assert_close(at[m : m + 1], alone.eval_params([q])[0], rtol=1e-14, atol=0)
        trajectories.append(q)
    # the options matter: member 1 (every option changed) differs from the defaults' run
    q = start[1:2].clone()
    default = method([q], {}, steps=10)
    for g in grads:
        default.step([q], [g[1:2]], lr[1:2], None)
    assert not torch.allclose(q, trajectories[1], rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", METHODS)
def test_frozen_member_keeps_its_values(kind: str) -> None:
    p = torch.tensor([[1.0, 2.0], [float("inf"), 3.0]], dtype=torch.float64)
    g = torch.tensor([[0.5, -0.5], [float("nan"), 1.0]], dtype=torch.float64)
    opt = batched_method(kind)([p], {"weight_decay": 0.1})
    frozen = p[1].clone()
    opt.step([p], [g], torch.tensor([0.1, 0.1], dtype=torch.float64), torch.tensor([True, False]))
    assert torch.equal(p[1], frozen)  # inf stays inf, 3 stays 3: no NaN, no update
    assert torch.isfinite(p[0]).all() and not torch.equal(p[0], torch.tensor([1.0, 2.0]).double())


@pytest.mark.parametrize("kind", METHODS)
def test_state_dict_resumes_exactly(kind: str, tmp_path) -> None:
    grads = _grads(10)
    options = member_options(MEMBERS[kind])
    lr = torch.tensor([0.1, 0.01, 1.0], dtype=torch.float64)

    def fresh():
        p = torch.ones(3, 4, dtype=torch.float64)
        return p, batched_method(kind)([p], options, steps=10)

    p, opt = fresh()
    for g in grads:
        opt.step([p], [g], lr, None)
    q, first = fresh()
    for g in grads[:4]:
        first.step([q], [g], lr, None)
    torch.save({"opt": first.state_dict(), "p": q}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", weights_only=True)
    q2, second = fresh()
    q2.copy_(saved["p"])
    second.load_state_dict(saved["opt"])
    for g in grads[4:]:
        second.step([q2], [g], lr, None)
    assert torch.equal(p, q2)
    other = "sgd" if kind != "sgd" else "adam"
    with pytest.raises(ValueError, match="state is for optimizer"):
        batched_method(other)([q2]).load_state_dict(saved["opt"])


def test_schedulefree_warmup_steps() -> None:
    assert all(warmup_steps(0.05, s) == s // 20 for s in range(1, 5000))
    assert warmup_steps(0.0, 100) == 0 and warmup_steps(1.0, 7) == 7
    with pytest.raises(ValueError, match="steps"):
        batched_method("schedulefree_sgd")([torch.zeros(2, 3)], steps=0)


@pytest.mark.parametrize("kind", METHODS)
def test_device_clean(kind: str) -> None:
    """On a device other than the CPU (here 'meta', which has no data), every state and option
    tensor is built on the parameters' device and dtype, and a step asks the device nothing
    (reading a meta tensor's value on the host raises)."""
    p = torch.zeros(3, 5, 2, device="meta", dtype=torch.float32)
    b = torch.zeros(3, 2, device="meta", dtype=torch.float32)
    opt = batched_method(kind)([p, b], member_options(MEMBERS[kind]), steps=40)
    for t in opt.opts.values():
        assert t.device.type == "meta" and t.dtype == torch.float32
    lr = torch.zeros(3, device="meta", dtype=torch.float32)
    active = torch.ones(3, device="meta", dtype=torch.bool)
    for _ in range(3):
        opt.step([p, b], [torch.zeros_like(p), torch.zeros_like(b)], lr, active)
        opt.step([p, b], [torch.zeros_like(p), torch.zeros_like(b)], lr, None)
    for name in opt.STATE:
        for t in getattr(opt, name):
            assert t.device.type == "meta" and t.dtype == torch.float32
    assert opt.eval_params([p, b])[0].device.type == "meta"


def documented_options() -> dict[str, dict[str, str]]:
    """Per optimizer, its options and the default each is given in the table of
    docs/training.md."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| .*\|$", text, re.M)
    return {name: dict(re.findall(r"`(\w+)` \(([^,)]+)", cell)) for name, cell in rows
            if name in OPTIMIZERS}


def test_the_documented_table_lists_every_option_with_its_default() -> None:
    table = documented_options()
    assert sorted(table) == sorted(OPTIMIZERS)
    for name, options in table.items():
        method = batched_method(name)
        assert list(options) == list(method.OPTIONS), name
        for key, said in options.items():
            opt = method.OPTIONS[key]
            if opt.derive is not None:
                assert opt.default is None and said.startswith("√"), (name, key)
            else:
                number = float(said.split(":")[0].replace(" only", ""))
                assert number == opt.default, f"{name}.{key}: table {said}, code {opt.default}"


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_betas_and_momenta_lie_in_zero_one(kind: str) -> None:
    """As documented: every beta and momentum accepts values up to 1 exclusive."""
    names = [k for k in batched_method(kind).OPTIONS if k.startswith("beta") or k == "momentum"]
    for key in names:
        with pytest.raises(ValueError, match=key):
            RunConfig(0.1, Constant(), optimizer=kind, options={key: 1.0})
        RunConfig(0.1, Constant(), optimizer=kind, options={key: 0.5})
