"""``LrlabLightningCallback``: an lrlab schedule, a gradient-norm log and Schedule-Free modes in
a Lightning ``Trainer``.

Needs ``lightning`` (``pip install lrlab[lightning]``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from lrlab.integrations._common import (
    LrDriver,
    expand_peaks,
    innermost,
    is_schedule_lr,
    mode_switchers,
    parse_log_path,
    parse_peaks,
    set_mode,
)
from lrlab.schedules import Schedule

__all__ = ["LrlabLightningCallback"]


class LrlabLightningCallback(Callback):
    """Drive the learning rate from an lrlab schedule, log gradient norms, and switch
    Schedule-Free optimizers between train and eval mode, in a Lightning ``Trainer``.

    **Learning rate.** Optimizer step t (0-indexed, ``trainer.global_step`` when it runs) uses

        lr_g = peak_g * s(t)

    for every param group g: the callback writes it when each training batch starts and again
    in ``on_before_optimizer_step``, so the sequence is exactly the one
    :class:`lrlab.torchx.ScheduleLR` produces. The peak is ``peak_lr`` (one number, or one
    per param group) or else each group's ``initial_lr`` (set by a scheduler), else its lr when
    training starts; the callback stores it as the group's ``initial_lr`` and in its own state,
    so a resumed run keeps it. One optimizer only. A scheduler from ``configure_optimizers``:

    * a :class:`~lrlab.torchx.ScheduleLR` must follow the same schedule with
      ``"interval": "step"`` and frequency 1 (``ValueError`` otherwise); its peaks are used;
    * any other is overridden before each step, with a ``UserWarning``.

    **Gradient norms.** In ``on_before_optimizer_step`` (after backward, before Lightning's
    ``gradient_clip_val`` clipping) it records ``grad_norm_l2 = sqrt(sum_i ||g_i||_2^2)`` and
    ``grad_norm_l1 = sum_i ||g_i||_1`` over all parameters with a gradient, and ``loss``: the
    mean ``training_step`` loss over the step's batches (from ``on_before_backward``, undoing
    the division by ``accumulate_grad_batches``). At train end the log is written to
    ``log_path`` (CSV, or Parquet for a ``.parquet`` suffix; default
    ``<default_root_dir>/grad_norms.csv``) in the :class:`lrlab.torchx.GradNormRecorder` format
    (``step, grad_norm_l2, grad_norm_l1, loss``), which ``lrlab refine`` reads. The log is part
    of the callback's checkpointed state, so a resumed run continues it.

    **Schedule-Free modes.** An optimizer with ``train()``/``eval()`` is put in eval mode
    (parameters at the averaged point x) when validation starts and when a checkpoint is
    saved (the checkpoint's weights and optimizer state are taken in eval mode), and back in
    train mode when training starts and when each training batch starts. Training ends in
    eval mode, so testing, prediction or saving after ``fit`` use x.

    Args:
        schedule: the lrlab ``Schedule`` s(t), t in optimizer steps; ``None`` leaves the
            learning rate alone (the other two duties remain).
        peak_lr: the lr at s = 1; one number or one per param group.
        log_path: where the gradient-norm log is written at train end; ``False`` records
            nothing.
        flush_every: steps kept on the device before one copy of the log to the host.

    Example::

        import lightning as L
        from lrlab.integrations.lightning import LrlabLightningCallback
        from lrlab.schedules import Linear

        cb = LrlabLightningCallback(Linear(1000), peak_lr=0.1, log_path="pilot.csv")
        L.Trainer(max_steps=1000, callbacks=[cb]).fit(module, loader)
        # then: lrlab refine pilot.csv
    """

    def __init__(
        self,
        schedule: Schedule | None,
        peak_lr: float | Sequence[float] | None = None,
        log_path: str | Path | bool | None = None,
        flush_every: int = 256,
    ) -> None:
        self.driver = None if schedule is None else LrDriver(schedule)
        self._given_peaks = parse_peaks(peak_lr)
        self.log_path, self.norm_log = parse_log_path(log_path, flush_every)
        self.peaks: list[float] | None = None
        self._restored_peaks: list[float] | None = None

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _optimizers(trainer: Any) -> list[Any]:
        return list(getattr(trainer, "optimizers", None) or [])

    def _setup_lr(self, trainer: Any) -> None:
        opts = self._optimizers(trainer)
        if len(opts) != 1:
            raise ValueError(
                f"LrlabLightningCallback drives one optimizer; the trainer has {len(opts)}"
            )
        opt = innermost(opts[0])
        groups = opt.param_groups
        peaks = None
        for config in getattr(trainer, "lr_scheduler_configs", None) or []:
            sched = config.scheduler
            if is_schedule_lr(sched):
                if config.interval != "step" or config.frequency != 1:
                    raise ValueError(
                        "a ScheduleLR driven alongside LrlabLightningCallback must step every "
                        f"optimizer step: got interval={config.interval!r}, "
                        f"frequency={config.frequency}; return it with "
                        '{"interval": "step", "frequency": 1}'
                    )
                peaks = self.driver.check_scheduler(sched, self._given_peaks)
            else:
                warnings.warn(
                    f"the {type(sched).__name__} from configure_optimizers is overridden by "
                    "LrlabLightningCallback before every optimizer step",
                    UserWarning,
                    stacklevel=2,
                )
        if peaks is None:
            if self._given_peaks is not None:
                peaks = expand_peaks(self._given_peaks, len(groups))
            elif self._restored_peaks is not None and len(self._restored_peaks) == len(groups):
                peaks = list(self._restored_peaks)
            else:
                peaks = [float(g.get("initial_lr", g["lr"])) for g in groups]
        for group, peak in zip(groups, peaks, strict=True):
            group.setdefault("initial_lr", peak)
        self.peaks = peaks

    def _drive(self, trainer: Any) -> None:
        if self.driver is not None and self.peaks is not None:
            for opt in self._optimizers(trainer):
                self.driver.apply(innermost(opt), self.peaks, trainer.global_step)

    # -- training ---------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        if self.driver is not None:
            self._setup_lr(trainer)
        set_mode(self._optimizers(trainer), train=True)
        self._drive(trainer)
        if self.norm_log is not None:
            self.norm_log.clear_loss()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        set_mode(self._optimizers(trainer), train=True)
        self._drive(trainer)

    def on_before_backward(self, trainer, pl_module, loss):
        if self.norm_log is not None and trainer.training:
            self.norm_log.add_loss(loss.detach() * trainer.accumulate_grad_batches)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._drive(trainer)
        if self.norm_log is not None:
            self.norm_log.record(innermost(optimizer), trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        set_mode(self._optimizers(trainer), train=False)
        if self.norm_log is not None and trainer.is_global_zero:
            path = self.log_path or Path(trainer.default_root_dir) / "grad_norms.csv"
            self.norm_log.save(path)

    # -- evaluation and checkpoints ---------------------------------------------------------
    def on_validation_start(self, trainer, pl_module):
        set_mode(self._optimizers(trainer), train=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        opts = self._optimizers(trainer)
        if not mode_switchers(opts):
            return
        set_mode(opts, train=False)  # back to train mode when the next training batch starts
        # the weights and optimizer states were collected before this hook: take them again
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = trainer.strategy.lightning_module_state_dict()
        if "optimizer_states" in checkpoint:
            checkpoint["optimizer_states"] = [trainer.strategy.optimizer_state(o) for o in opts]

    def state_dict(self) -> dict[str, Any]:
        """The gradient-norm log so far and the peak lrs."""
        out: dict[str, Any] = {"peaks": None if self.peaks is None else list(self.peaks)}
        if self.norm_log is not None:
            out["log"] = self.norm_log.state_dict()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the log and keep the peak lrs of a saved run."""
        peaks = state_dict.get("peaks")
        self._restored_peaks = None if peaks is None else [float(p) for p in peaks]
        if self.norm_log is not None and "log" in state_dict:
            self.norm_log.load_state_dict(state_dict["log"])
