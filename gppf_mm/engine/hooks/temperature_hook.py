# Copyright (c) gppf_mm contributors. All rights reserved.
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from gppf_mm.models.routing import GumbelController
from gppf_mm.registry import HOOKS


def linear_temperature(step: int, start: float, end: float,
                       end_step: int) -> float:
    """``start`` at step 0, linearly to ``end`` at ``end_step``, then
    ``end``."""
    if end_step <= 0 or step >= end_step:
        return end
    return start + (end - start) * step / end_step


def controllers(runner) -> List[GumbelController]:
    """Every :class:`GumbelController` of the runner's model."""
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    return [m for m in model.modules() if isinstance(m, GumbelController)]


@HOOKS.register_module()
class GumbelTemperatureHook(Hook):
    """Decay the Gumbel-Softmax temperature linearly (paper, D.1: 5.0 to
    0.01 by 45w of 50w iterations, then fixed).

    Before every training iteration the temperature is computed from
    ``runner.iter`` (or ``runner.epoch``), set on every
    :class:`GumbelController` of the model and logged as ``train/tau``; it
    is therefore right after a resume.

    The iteration where the schedule ends is resolved once (``end_iter``,
    or ``end_ratio`` of ``max_iters``) and saved in checkpoints. A resumed
    run keeps the saved end unless the config gives ``end_iter``: extending
    a run (``--resume --cfg-options train_cfg.max_iters=...``) therefore
    continues the temperature where it stopped instead of moving the end
    with the new ``max_iters`` (which made tau jump back up). ``load_from``
    without resume starts a new schedule.

    Args:
        start (float): temperature at iteration 0. Defaults to 5.0.
        end (float): final temperature. Defaults to 0.01.
        end_iter (int, optional): iteration (epoch with ``by_epoch``) where
            ``end`` is reached. Defaults to None: ``end_ratio`` of the
            training length.
        end_ratio (float): fraction of ``max_iters`` (``max_epochs``) where
            ``end`` is reached when ``end_iter`` is None. Defaults to 0.9.
        by_epoch (bool): count epochs instead of iterations.
            Defaults to False.
        freeze_at_end (bool): from the step where the temperature reaches
            ``end`` on, the selection logits take no more gradient steps
            (``requires_grad`` False on every rank at the same step): the
            selection is decided when the temperature has forced it, and the
            rest of training trains the chosen units. Defaults to False (the
            paper: the logits learn to the last iteration).

    Example:
        >>> hook = GumbelTemperatureHook(start=5.0, end=0.01, end_iter=450)
        >>> hook.temperature(225), hook.temperature(1000)
        (2.505, 0.01)
    """
    priority = 'NORMAL'

    def __init__(self,
                 start: float = 5.0,
                 end: float = 0.01,
                 end_iter: Optional[int] = None,
                 end_ratio: float = 0.9,
                 by_epoch: bool = False,
                 freeze_at_end: bool = False) -> None:
        if not (start > 0 and end > 0):
            raise ValueError(f'temperatures must be > 0, got start={start}, '
                             f'end={end}')
        if end_iter is not None and not (isinstance(end_iter, int)
                                         and end_iter >= 0):
            raise ValueError(f'end_iter must be an int >= 0 or None, got '
                             f'{end_iter!r}')
        if not 0 < end_ratio <= 1:
            raise ValueError(f'end_ratio must be in (0, 1], got {end_ratio}')
        self.start = float(start)
        self.end = float(end)
        self.end_iter = end_iter
        self.end_ratio = end_ratio
        self.by_epoch = by_epoch
        self.freeze_at_end = freeze_at_end
        self._saved_end: Optional[int] = None

    def _ratio_end(self, runner) -> int:
        total = runner.max_epochs if self.by_epoch else runner.max_iters
        return int(round(total * self.end_ratio))

    def _end_step(self, runner) -> int:
        if self.end_iter is not None:
            return self.end_iter
        if self._saved_end is not None and getattr(runner, '_resume', False):
            return self._saved_end
        return self._ratio_end(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['gumbel_temperature'] = dict(
            end_step=self._end_step(runner), start=self.start, end=self.end,
            by_epoch=self.by_epoch)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('gumbel_temperature')
        if not isinstance(saved, dict) or 'end_step' not in saved:
            return
        self._saved_end = int(saved['end_step'])
        ratio_end = self._ratio_end(runner)
        if (getattr(runner, '_resume', False) and self.end_iter is None
                and ratio_end != self._saved_end):
            unit = 'epoch' if self.by_epoch else 'iteration'
            print_log(
                f'GumbelTemperatureHook: the resumed schedule ends at {unit} '
                f'{self._saved_end} as in the checkpoint (end_ratio '
                f'{self.end_ratio} of the new length would end it at '
                f'{ratio_end} and change the temperature at the resumed '
                f'{unit}); set end_iter to choose another end.',
                logger='current')

    def temperature(self, step: int, end_step: Optional[int] = None) -> float:
        """The temperature at ``step`` (iteration or epoch)."""
        if end_step is None:
            if self.end_iter is None:
                raise ValueError('end_step is needed when end_iter is None')
            end_step = self.end_iter
        return linear_temperature(step, self.start, self.end, end_step)

    def _apply(self, runner) -> None:
        step = runner.epoch if self.by_epoch else runner.iter
        end_step = self._end_step(runner)
        tau = self.temperature(step, end_step)
        freeze = self.freeze_at_end and step >= end_step
        for ctrl in controllers(runner):
            ctrl.set_temperature(tau)
            if freeze and any(p.requires_grad
                              for p in ctrl.logits.parameters()):
                ctrl.logits.requires_grad_(False)
                unit = 'epoch' if self.by_epoch else 'iteration'
                print_log(f'GumbelTemperatureHook: tau reached {self.end} '
                          f'at {unit} {step}; the selection logits are '
                          'frozen from here on', logger='current')
        runner.message_hub.update_scalar('train/tau', tau)

    def before_train(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._apply(runner)
