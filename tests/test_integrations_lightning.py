"""LrlabLightningCallback in a real lightning.pytorch.Trainer: a small MLP on random data, CPU."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from lrlab.cli import main  # noqa: E402
from lrlab.integrations.lightning import LrlabLightningCallback  # noqa: E402
from lrlab.optim import SGDScheduleFree  # noqa: E402
from lrlab.refine import refine_log  # noqa: E402
from lrlab.schedules import Cosine, Linear, Warmup  # noqa: E402
from lrlab.torchx import ScheduleLR  # noqa: E402
from lrlab.torchx.recorder import read_log  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`:UserWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
]


class Net(pl.LightningModule):
    def __init__(self, make_opt, make_sched=None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
        )
        self.make_opt, self.make_sched = make_opt, make_sched
        self.losses: list[float] = []
        self.norms: list[tuple[float, float]] = []
        self.saves: list[dict] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def on_before_optimizer_step(self, optimizer):  # runs after the callbacks' hook
        flat = torch.cat([p.grad.reshape(-1).double() for p in self.parameters()])
        self.norms.append((float(flat.norm(2)), float(flat.abs().sum())))

    def on_save_checkpoint(self, checkpoint):  # runs after the callbacks' hook
        opt = self.trainer.optimizers[0]
        if not callable(getattr(opt, "eval", None)):
            return
        self.saves.append(
            {
                "mode": optimizer_mode(opt),
                "weights_match": all(
                    torch.equal(checkpoint["state_dict"][k], v)
                    for k, v in self.state_dict().items()
                ),
                "saved_mode": saved_mode(checkpoint["optimizer_states"][0]),
            }
        )

    def configure_optimizers(self):
        opt = self.make_opt(self.parameters())
        if self.make_sched is None:
            return opt
        sched = {"scheduler": self.make_sched(opt), "interval": "step"}
        return {"optimizer": opt, "lr_scheduler": sched}


def loader(n: int = 64, seed: int = 1) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def trainer(tmp_path, callbacks, **kw) -> pl.Trainer:
    base = dict(
        max_steps=8,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
        deterministic=True,
    )
    return pl.Trainer(callbacks=callbacks, **(base | kw))


def lrs_used(optimizer) -> list[list[float]]:
    """The lrs each optimizer step used (read in a post-hook: Lightning's closure runs inside
    the step, after any pre-hook)."""
    seen: list[list[float]] = []
    optimizer.register_step_post_hook(
        lambda opt, a, k: seen.append([float(g["lr"]) for g in opt.param_groups])
    )
    return seen


def schedule_lr_reference(schedule, peaks, steps: int) -> np.ndarray:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": p} for p in peaks]
    opt = torch.optim.SGD(params, lr=0.0)
    sched = ScheduleLR(opt, schedule)
    out = []
    for _ in range(steps):
        out.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return np.array(out)


def two_groups(params, lr=0.1):
    params = list(params)
    return torch.optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.05}], lr=lr)


@pytest.mark.parametrize("how", ["optimizer_lrs", "schedule_lr", "peak_given"])
def test_lr_sequence_equals_schedule_lr(tmp_path, how: str) -> None:
    schedule = Warmup(Cosine(8, 0.1), 2)
    seen: list[list[float]] = []

    def make_opt(params):
        opt = two_groups(params)
        seen[:] = []
        opt.register_step_post_hook(
            lambda o, a, k: seen.append([float(g["lr"]) for g in o.param_groups])
        )
        return opt

    make_sched = (lambda opt: ScheduleLR(opt, schedule)) if how == "schedule_lr" else None
    peak = 0.3 if how == "peak_given" else None
    accum = 2 if how == "schedule_lr" else 1
    cb = LrlabLightningCallback(schedule, peak_lr=peak, log_path=False)
    trainer(tmp_path, [cb], accumulate_grad_batches=accum).fit(Net(make_opt, make_sched), loader())
    peaks = [0.3, 0.3] if how == "peak_given" else [0.1, 0.05]
    expect = schedule_lr_reference(schedule, peaks, 8)
    assert len(seen) == 8
    np.testing.assert_allclose(np.array(seen), expect, rtol=1e-15, atol=0)
    assert seen[0] == [0.0, 0.0] and seen[2] == peaks


def test_conflicting_scheduler_refused_and_other_schedulers_warned(tmp_path) -> None:
    cb = LrlabLightningCallback(Linear(8), log_path=False)
    net = Net(two_groups, lambda opt: ScheduleLR(opt, Cosine(8)))
    with pytest.raises(ValueError, match="same schedule"):
        trainer(tmp_path, [cb]).fit(net, loader())

    seen: list[list[float]] = []

    def make_opt(params):
        opt = two_groups(params)
        opt.register_step_post_hook(
            lambda o, a, k: seen.append([float(g["lr"]) for g in o.param_groups])
        )
        return opt

    net = Net(make_opt, lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, 0.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path, [LrlabLightningCallback(Linear(8), log_path=False)]).fit(net, loader())
    assert any("overridden" in str(w.message) for w in caught)
    np.testing.assert_allclose(np.array(seen), schedule_lr_reference(Linear(8), [0.1, 0.05], 8))


def test_grad_norm_log_read_by_refine(tmp_path, capsys) -> None:
    log = tmp_path / "pilot.csv"
    net = Net(lambda p: torch.optim.Adam(p, lr=1e-2))
    cb = LrlabLightningCallback(Linear(8), log_path=log)
    trainer(tmp_path, [cb], accumulate_grad_batches=2).fit(net, loader())
    frame = read_log(log)
    assert frame["step"].tolist() == list(range(8))
    np.testing.assert_allclose(
        frame[["grad_norm_l2", "grad_norm_l1"]].to_numpy(), net.norms, rtol=1e-5
    )
    step_losses = np.array(net.losses).reshape(8, 2).mean(axis=1)  # two batches per step
    np.testing.assert_allclose(frame["loss"].to_numpy(), step_losses, rtol=1e-6)

    out = refine_log(log, norm="l2", steps=50)
    assert out.report.pilot_steps == 8 and out.report.steps == 50
    assert main(["refine", str(log), "--norm", "l1", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())
    capsys.readouterr()


def optimizer_mode(opt) -> bool:
    """True in train mode, for lrlab's and the schedulefree package's optimizers."""
    if hasattr(opt, "train_mode"):
        return bool(opt.train_mode)
    return bool(opt.param_groups[0]["train_mode"])


def saved_mode(state: dict) -> bool:
    if "scalars" in state:
        return bool(state["scalars"]["train_mode"])
    return bool(state["param_groups"][0]["train_mode"])


def make_schedule_free(kind: str):
    if kind == "lrlab":
        return lambda p: SGDScheduleFree(p, lr=0.1, momentum=0.9)
    schedulefree = pytest.importorskip("schedulefree")
    return lambda p: schedulefree.SGDScheduleFree(p, lr=0.1, momentum=0.9)


@pytest.mark.parametrize("kind", ["lrlab", "schedulefree"])
def test_schedule_free_eval_mode_for_validation_and_checkpoints(tmp_path, kind: str) -> None:
    net = Net(make_schedule_free(kind))
    events: list[tuple[str, bool]] = []
    net.net.register_forward_hook(
        lambda m, a, o: events.append(
            ("train" if m.training else "eval", optimizer_mode(net.trainer.optimizers[0]))
        )
    )
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"), every_n_train_steps=2, save_top_k=-1
    )
    cb = LrlabLightningCallback(None, log_path=False)
    trainer(tmp_path, [cb, ckpt], enable_checkpointing=True, val_check_interval=3, max_steps=6).fit(
        net, loader(), loader(16, seed=2)
    )
    kinds = [k for k, _ in events]
    assert kinds.count("train") == 6 and kinds.count("eval") == 4  # 2 validations x 2 batches
    assert all(mode for k, mode in events if k == "train")
    assert not any(mode for k, mode in events if k == "eval")
    assert len(net.saves) >= 3
    for save in net.saves:  # the checkpoint holds x and an optimizer state in eval mode
        assert save == {"mode": False, "weights_match": True, "saved_mode": False}
    assert not optimizer_mode(net.trainer.optimizers[0])  # training ends in eval mode


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
def test_resume_from_checkpoint_continues_lrs_and_log(tmp_path) -> None:
    schedule = Warmup(Cosine(8, 0.1), 2)
    seen: list[list[float]] = []

    def make_opt(params):
        opt = two_groups(params)
        opt.register_step_post_hook(
            lambda o, a, k: seen.append([float(g["lr"]) for g in o.param_groups])
        )
        return opt

    log = tmp_path / "pilot.csv"
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), every_n_train_steps=4)
    cb = LrlabLightningCallback(schedule, log_path=log)
    trainer(tmp_path, [cb, ckpt], enable_checkpointing=True, max_steps=4).fit(
        Net(make_opt), loader()
    )
    (path,) = (tmp_path / "ckpt").glob("*.ckpt")
    cb = LrlabLightningCallback(schedule, log_path=log)  # a fresh process: nothing in memory
    trainer(tmp_path, [cb], max_steps=8).fit(Net(make_opt), loader(), ckpt_path=str(path))
    expect = schedule_lr_reference(schedule, [0.1, 0.05], 8)
    np.testing.assert_allclose(np.array(seen), expect, rtol=1e-15, atol=0)
    frame = read_log(log)
    assert frame["step"].tolist() == list(range(8))
    assert np.isfinite(frame[["grad_norm_l2", "grad_norm_l1", "loss"]].to_numpy()).all()
