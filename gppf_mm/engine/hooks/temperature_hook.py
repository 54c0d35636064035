# Copyright (c) gppf_mm contributors. All rights reserved.
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gppf_mm.models.routing import GumbelController
from gppf_mm.registry import HOOKS


def linear_temperature(it: int, start: float, end: float,
                       end_iter: int) -> float:
    """``start`` at iteration 0, linearly to ``end`` at ``end_iter``, then
    ``end``."""
    if end_iter <= 0 or it >= end_iter:
        return end
    return start + (end - start) * it / end_iter


def controllers(runner):
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    return [m for m in model.modules() if isinstance(m, GumbelController)]


@HOOKS.register_module()
class GumbelTemperatureHook(Hook):
    """Decay the Gumbel-Softmax temperature linearly (paper, D.1: 5.0 to
    0.01 by 45w of 50w iterations, then fixed).

    The temperature is computed from ``runner.iter`` before every iteration,
    so it is right after a resume.

    Args:
        start (float): temperature at iteration 0.
        end (float): final temperature.
        end_iter (int, optional): iteration where ``end`` is reached.
        end_ratio (float): used when ``end_iter`` is None: the fraction of
            ``max_iters`` where ``end`` is reached. Defaults to 0.9.
    """
    priority = 'NORMAL'

    def __init__(self,
                 start: float = 5.0,
                 end: float = 0.01,
                 end_iter: Optional[int] = None,
                 end_ratio: float = 0.9) -> None:
        if not (start > 0 and end > 0):
            raise ValueError(f'temperatures must be > 0, got start={start}, '
                             f'end={end}')
        self.start = start
        self.end = end
        self.end_iter = end_iter
        self.end_ratio = end_ratio

    def _end_iter(self, runner) -> int:
        if self.end_iter is not None:
            return self.end_iter
        return int(round(runner.max_iters * self.end_ratio))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        tau = linear_temperature(runner.iter, self.start, self.end,
                                 self._end_iter(runner))
        for ctrl in controllers(runner):
            ctrl.set_temperature(tau)
        runner.message_hub.update_scalar('train/tau', tau)
