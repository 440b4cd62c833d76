"""``LrlabTrainerCallback``: an lrlab schedule, a gradient-norm log and Schedule-Free modes in a
Hugging Face ``transformers.Trainer``.

Needs ``transformers`` (and ``accelerate``, which its Trainer uses): ``pip install lrlab[hf]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback

from lrlab.integrations._common import (
    LrDriver,
    expand_peaks,
    innermost,
    is_schedule_lr,
    model_loss,
    parse_log_path,
    parse_peaks,
    set_mode,
)
from lrlab.schedules import Schedule

__all__ = ["LrlabTrainerCallback"]


class LrlabTrainerCallback(TrainerCallback):
    """Drive the Trainer's learning rate from an lrlab schedule, log gradient norms, and switch
    Schedule-Free optimizers between train and eval mode.

    **Learning rate.** Optimizer step t (0-indexed, ``state.global_step`` when it runs) uses

        lr_g = peak_g * s(t)

    for every param group g: the callback writes it just before each optimizer step (after
    gradient clipping) and again after each step, so the sequence is exactly the one
    :class:`lrlab.torchx.ScheduleLR` produces, whatever the Trainer's own scheduler does. The
    peak is ``peak_lr`` (one number, or one per param group) or else the Trainer's
    ``learning_rate``. The Trainer's scheduler is made to agree, so that the ``learning_rate``
    it logs and the scheduler state it checkpoints are the ones used:

    * a :class:`~lrlab.torchx.ScheduleLR` (``Trainer(optimizers=(opt, ScheduleLR(opt, s)))``)
      must follow the same schedule (``ValueError`` otherwise); its peaks are used;
    * a ``LambdaLR``, which is what ``lr_scheduler_type`` builds (``"linear"`` by default), is
      re-pointed at the schedule: its factor becomes s(t) and its base lrs the peaks;
    * any other scheduler (e.g. ``"reduce_lr_on_plateau"``) is overridden before each step,
      with a ``UserWarning``: the lr it logs is not the one used.

    **Gradient norms.** Just before each optimizer step (after clipping: set
    ``max_grad_norm=0`` for a pilot run whose norms feed :func:`lrlab.refine.refine_log`) it
    records ``grad_norm_l2 = sqrt(sum_i ||g_i||_2^2)`` and ``grad_norm_l1 = sum_i ||g_i||_1``
    over all parameters with a gradient, and ``loss``, the step's loss from the ``loss`` the
    model returned for each micro-batch (the sum when the Trainer passed
    ``num_items_in_batch``, each being a share of the step's loss, else the mean; as the
    Trainer reports it; NaN if the model returns no loss). At train end the log is
    written to ``log_path`` (CSV, or Parquet for a ``.parquet`` suffix; default
    ``<output_dir>/grad_norms.csv``) with the columns ``step, grad_norm_l2, grad_norm_l1,
    loss`` of :class:`lrlab.torchx.GradNormRecorder`, so ``lrlab refine`` reads it. Row
    ``step`` is the optimizer step; a resumed run logs the steps it runs.

    **Schedule-Free modes.** An optimizer with ``train()``/``eval()`` (lrlab's
    ``SGDScheduleFree``/``AdamWScheduleFree``/``ScheduleFreeWrapper``, the ``schedulefree``
    package's) is put in eval mode (parameters at the averaged point x) when the step ends
    with an evaluation or a checkpoint due, so both see x, and back in train mode when the
    next step begins. Training ends in eval mode, so ``trainer.save_model()`` and
    ``trainer.evaluate()`` afterwards use x.

    Args:
        schedule: the lrlab ``Schedule`` s(t), t in optimizer steps; ``None`` leaves the
            learning rate alone (the other two duties remain).
        peak_lr: the lr at s = 1; one number or one per param group. Default: the Trainer's
            ``learning_rate`` (or the peaks of its ``ScheduleLR``).
        log_path: where the gradient-norm log is written at train end; ``False`` records
            nothing.
        flush_every: steps kept on the device before one copy of the log to the host.

    Example::

        from transformers import Trainer, TrainingArguments
        from lrlab.integrations.hf import LrlabTrainerCallback
        from lrlab.schedules import Cosine, Warmup

        args = TrainingArguments("out", learning_rate=3e-4, max_steps=1000, max_grad_norm=0)
        cb = LrlabTrainerCallback(Warmup(Cosine(900), warmup=100), log_path="out/pilot.csv")
        Trainer(model, args, train_dataset=data, callbacks=[cb]).train()
        # then: lrlab refine out/pilot.csv --norm l1
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
        self._handle: Any = None

    # -- helpers ----------------------------------------------------------------------------
    def _drive(self, optimizer: Any, step: int) -> None:
        if self.driver is not None and optimizer is not None and self.peaks is not None:
            self.driver.apply(innermost(optimizer), self.peaks, step)

    def _adopt_scheduler(self, args: Any, optimizer: Any, scheduler: Any) -> None:
        groups = len(innermost(optimizer).param_groups)
        if is_schedule_lr(scheduler):
            self.peaks = self.driver.check_scheduler(scheduler, self._given_peaks)
            return
        given = self._given_peaks or [float(args.learning_rate)]
        self.peaks = expand_peaks(given, groups)
        if isinstance(scheduler, LambdaLR):
            driver = self.driver

            def factor(t: int) -> float:  # a plain function: LambdaLR's state_dict skips it
                return driver.factor(t)

            scheduler.lr_lambdas = [factor] * groups
            scheduler.base_lrs = list(self.peaks)
            scheduler._last_lr = [p * factor(scheduler.last_epoch) for p in self.peaks]
        elif scheduler is not None:
            warnings.warn(
                f"the Trainer's {type(scheduler).__name__} is overridden by "
                "LrlabTrainerCallback before every optimizer step; the learning_rate it logs "
                "is not the one used (pass optimizers=(opt, ScheduleLR(opt, schedule)))",
                UserWarning,
                stacklevel=2,
            )

    def _loss_hook(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if module.training and self.norm_log is not None:
            loss = model_loss(output)
            if loss is not None:
                self.norm_log.add_loss(loss, part=kwargs.get("num_items_in_batch") is not None)

    # -- events -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        optimizer, scheduler = kwargs.get("optimizer"), kwargs.get("lr_scheduler")
        if self.driver is not None and optimizer is not None:
            self._adopt_scheduler(args, optimizer, scheduler)
            self._drive(optimizer, state.global_step)
        model = kwargs.get("model")
        if self.norm_log is not None:
            self.norm_log.clear_loss()
            if model is not None and self._handle is None:
                self._handle = model.register_forward_hook(self._loss_hook, with_kwargs=True)
        set_mode([optimizer], train=not args.eval_on_start)

    def on_step_begin(self, args, state, control, **kwargs):
        set_mode([kwargs.get("optimizer")], train=True)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        optimizer = kwargs.get("optimizer")
        set_mode([optimizer], train=True)
        self._drive(optimizer, state.global_step)
        if self.norm_log is not None and optimizer is not None:
            self.norm_log.record(innermost(optimizer), state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        optimizer = kwargs.get("optimizer")
        self._drive(optimizer, state.global_step)
        if control.should_evaluate or control.should_save:
            set_mode([optimizer], train=False)

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_evaluate or control.should_save:
            set_mode([kwargs.get("optimizer")], train=False)

    def on_train_end(self, args, state, control, **kwargs):
        set_mode([kwargs.get("optimizer")], train=False)
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.norm_log is not None and state.is_world_process_zero:
            path = self.log_path or Path(args.output_dir) / "grad_norms.csv"
            self.norm_log.save(path)
