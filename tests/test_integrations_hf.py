"""LrlabTrainerCallback in a real transformers.Trainer: a 1-layer GPT-2 built from a config, CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

from lrlab.cli import main  # noqa: E402
from lrlab.integrations.hf import LrlabTrainerCallback  # noqa: E402
from lrlab.optim import SGDScheduleFree  # noqa: E402
from lrlab.refine import refine_log  # noqa: E402
from lrlab.schedules import Cosine, Linear, Warmup  # noqa: E402
from lrlab.torchx import ScheduleLR  # noqa: E402
from lrlab.torchx.recorder import read_log  # noqa: E402

PEAK = 1e-2


def tiny_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    return GPT2LMHeadModel(cfg)


def dataset(n: int = 64) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32, (n, 8), generator=g)
    return [{"input_ids": x, "labels": x.clone()} for x in ids]


def args(tmp_path, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=PEAK,
        max_steps=8,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return TrainingArguments(**(base | kw))


def lrs_used(optimizer: torch.optim.Optimizer) -> list[list[float]]:
    """Record, at each optimizer step, the lr of every group (a step pre-hook sees the lr the
    step will use)."""
    seen: list[list[float]] = []
    optimizer.register_step_pre_hook(
        lambda opt, a, k: seen.append([float(g["lr"]) for g in opt.param_groups])
    )
    return seen


def schedule_lr_reference(schedule, peak: float, groups: int, steps: int) -> np.ndarray:
    """The lrs a ScheduleLR sets for optimizer steps 0..steps-1 (per-batch loop)."""
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
    opt = torch.optim.SGD(params, lr=peak)
    sched = ScheduleLR(opt, schedule)
    out = []
    for _ in range(steps):
        out.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return np.array(out)


class LrProbe(transformers.TrainerCallback):
    """Hooks the Trainer's optimizer, whichever it built, to record the lrs each step uses."""

    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.seen = lrs_used(optimizer.optimizer)  # accelerate's wrapper around the torch one


def test_lr_sequence_with_the_trainers_own_optimizer_and_scheduler(tmp_path) -> None:
    schedule, peak = Warmup(Cosine(8, 0.1), 2), 0.02
    probe = LrProbe()
    trainer = Trainer(
        model=tiny_model(),
        args=args(tmp_path, weight_decay=0.1, lr_scheduler_type="linear"),
        train_dataset=dataset(),
        callbacks=[probe, LrlabTrainerCallback(schedule, peak_lr=peak, log_path=False)],
    )
    trainer.train()
    expect = schedule_lr_reference(schedule, peak, 2, 8)  # weight-decay and no-decay groups
    assert len(probe.seen) == 8
    np.testing.assert_allclose(np.array(probe.seen), expect, rtol=1e-15, atol=0)
    assert probe.seen[0] == [0.0, 0.0] and probe.seen[2] == [peak, peak]
    # the Trainer's scheduler was re-pointed: what it logs is what was used
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    np.testing.assert_allclose(logged, expect[:, 0], rtol=1e-12, atol=0)


def test_lr_sequence_with_a_schedule_lr_given(tmp_path) -> None:
    schedule = Warmup(Cosine(8, 0.1), 2)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK)
    seen = lrs_used(opt)
    trainer = Trainer(
        model=model,
        args=args(tmp_path, gradient_accumulation_steps=2),
        train_dataset=dataset(),
        optimizers=(opt, ScheduleLR(opt, schedule)),
        callbacks=[LrlabTrainerCallback(schedule, log_path=False)],
    )
    trainer.train()
    expect = schedule_lr_reference(schedule, PEAK, 1, 8)
    assert len(seen) == 8
    np.testing.assert_allclose(np.array(seen), expect, rtol=1e-15, atol=0)
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    np.testing.assert_allclose(logged, expect[:, 0], rtol=1e-12, atol=0)


def test_peak_lr_given_and_mismatched_schedule_refused(tmp_path) -> None:
    schedule = Linear(8)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = lrs_used(opt)
    Trainer(
        model=model,
        args=args(tmp_path, max_steps=4),
        train_dataset=dataset(),
        optimizers=(opt, None),
        callbacks=[LrlabTrainerCallback(schedule, peak_lr=0.05, log_path=False)],
    ).train()
    np.testing.assert_allclose(np.array(seen)[:, 0], 0.05 * Linear(8)(np.arange(4)), rtol=1e-15)

    opt = torch.optim.SGD(tiny_model().parameters(), lr=0.1)
    trainer = Trainer(
        model=tiny_model(),
        args=args(tmp_path, max_steps=2),
        train_dataset=dataset(),
        optimizers=(opt, ScheduleLR(opt, Cosine(8))),
        callbacks=[LrlabTrainerCallback(schedule, log_path=False)],
    )
    with pytest.raises(ValueError, match="same schedule"):
        trainer.train()


def test_grad_norm_log_read_by_refine(tmp_path, capsys) -> None:
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK)
    expect_norms: list[tuple[float, float]] = []

    def independent(o, a, k):  # all gradients flattened into one vector
        flat = torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])
        expect_norms.append((float(flat.norm(2)), float(flat.abs().sum())))

    opt.register_step_pre_hook(independent)
    log = tmp_path / "pilot.csv"
    trainer = Trainer(
        model=model,
        args=args(tmp_path, max_grad_norm=0.0, gradient_accumulation_steps=2),
        train_dataset=dataset(),
        optimizers=(opt, None),
        callbacks=[LrlabTrainerCallback(Linear(8), log_path=log)],
    )
    trainer.train()
    frame = read_log(log)
    assert frame["step"].tolist() == list(range(8))
    np.testing.assert_allclose(
        frame[["grad_norm_l2", "grad_norm_l1"]].to_numpy(), expect_norms, rtol=1e-5
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and "step" in h]
    np.testing.assert_allclose(frame["loss"].to_numpy(), losses, rtol=1e-5)
    assert all(math.isfinite(x) and x > 0 for x in frame["grad_norm_l1"])

    out = refine_log(log, norm="l1", steps=100)
    assert out.report.pilot_steps == 8 and out.report.steps == 100
    assert main(["refine", str(log), "--norm", "l2", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())
    capsys.readouterr()


def optimizer_mode(opt) -> bool:
    """True in train mode, for lrlab's and the schedulefree package's optimizers."""
    if hasattr(opt, "train_mode"):
        return bool(opt.train_mode)
    return bool(opt.param_groups[0]["train_mode"])


def make_schedule_free(kind: str, params):
    if kind == "lrlab":
        return SGDScheduleFree(params, lr=0.1, momentum=0.9)
    schedulefree = pytest.importorskip("schedulefree")
    return schedulefree.SGDScheduleFree(params, lr=0.1, momentum=0.9)


@pytest.mark.parametrize("kind", ["lrlab", "schedulefree"])
def test_schedule_free_eval_mode_for_evaluation_and_saving(tmp_path, kind: str) -> None:
    model = tiny_model()
    opt = make_schedule_free(kind, model.parameters())
    events: list[tuple[str, bool]] = []
    model.register_forward_hook(
        lambda m, a, o: events.append(("train" if m.training else "eval", optimizer_mode(opt)))
    )

    class Probe(Trainer):
        def _save_checkpoint(self, model, trial):
            events.append(("save", optimizer_mode(opt)))
            return super()._save_checkpoint(model, trial)

    trainer = Probe(
        model=model,
        args=args(
            tmp_path,
            max_steps=6,
            eval_strategy="steps",
            eval_steps=3,
            save_strategy="steps",
            save_steps=2,
            save_only_model=True,
        ),
        train_dataset=dataset(),
        eval_dataset=dataset(8),
        optimizers=(opt, None),
        callbacks=[LrlabTrainerCallback(None, log_path=False)],
    )
    trainer.train()
    kinds = [k for k, _ in events]
    assert kinds.count("train") == 6 and kinds.count("eval") == 2 and kinds.count("save") == 3
    assert all(mode for k, mode in events if k == "train")
    assert not any(mode for k, mode in events if k in ("eval", "save"))
    assert not optimizer_mode(opt)  # training ends in eval mode
