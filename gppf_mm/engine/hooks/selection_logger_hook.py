# Copyright (c) gppf_mm contributors. All rights reserved.
import os.path as osp
from typing import List, Optional

import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gppf_mm.registry import HOOKS

from .temperature_hook import controllers

HISTORY_KEY = 'selection_history'


def _backbone(runner):
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    return getattr(model, 'backbone', None)


def _layer_names(runner, num_layers: int) -> Optional[List[str]]:
    backbone = _backbone(runner)
    names = getattr(backbone, 'lego_layer_display_names', None)
    if names is None:
        return None
    names = list(names())
    return names if len(names) == num_layers else None


@HOOKS.register_module()
class SelectionLoggerHook(Hook):
    """Log the unit-selection probabilities of the Gumbel controllers.

    Every ``interval`` iterations the task x layer table (most likely unit
    and its probability, :meth:`GumbelController.probability_table`) goes
    to the log and the (T, L, N) probabilities are kept. At the end of
    training ``{work_dir}/selection_probs.pth`` receives the final
    probabilities and their history (the data behind the paper's
    Figure 3)::

        dict(tasks=[...], layers=[...], probs=Tensor(T, L, N),
             history_iters=[...], history=Tensor(K, T, L, N))

    It holds tensors, strings and ints only (``weights_only`` loadable).
    Models without a controller are skipped.

    The history survives a resume: every checkpoint stores it under
    ``checkpoint['meta']['selection_history']`` (``dict(iters=[...],
    probs=Tensor(K, T, L, N))``) and loading a checkpoint of iteration
    ``k`` restores the entries of iterations ``<= k``. A run that only
    loads weights (``load_from``) starts at iteration 0 and drops them
    in ``before_train``.

    Args:
        interval (int): iterations between two tables. Defaults to 1000.
        save (bool): write ``selection_probs.pth``. Defaults to True.
        filename (str): file name in the work directory.
    """
    priority = 'LOW'

    def __init__(self,
                 interval: int = 1000,
                 save: bool = True,
                 filename: str = 'selection_probs.pth') -> None:
        if not (isinstance(interval, int) and interval > 0):
            raise ValueError(f'interval must be a positive int, got '
                             f'{interval!r}')
        self.interval = interval
        self.save = save
        self.filename = filename
        self.history_iters: List[int] = []
        self.history: List[torch.Tensor] = []

    @master_only
    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if not self.every_n_train_iters(runner, self.interval):
            return
        ctrls = controllers(runner)
        if not ctrls:
            return
        ctrl = ctrls[0]
        names = _layer_names(runner, ctrl.num_layers)
        runner.logger.info('unit selection (unit:probability) at iter '
                           f'{runner.iter + 1}:\n' +
                           ctrl.probability_table(names))
        self.history_iters.append(runner.iter + 1)
        self.history.append(ctrl.probabilities().cpu())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta[HISTORY_KEY] = dict(
            iters=[int(i) for i in self.history_iters],
            probs=torch.stack(self.history) if self.history else
            torch.zeros(0))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        saved = meta.get(HISTORY_KEY)
        if not isinstance(saved, dict):
            return
        iters = [int(i) for i in saved.get('iters', [])]
        probs = saved.get('probs')
        if len(iters) == 0 or probs is None or len(probs) != len(iters):
            self.history_iters, self.history = [], []
            return
        last = meta.get('iter')
        keep = [
            k for k, it in enumerate(iters) if last is None or it <= last
        ]
        self.history_iters = [iters[k] for k in keep]
        self.history = [probs[k].detach().cpu().clone() for k in keep]

    def before_train(self, runner) -> None:
        self._drop_after(runner.iter)

    def _drop_after(self, iteration: int) -> None:
        """Forget the entries of iterations after ``iteration``."""
        keep = [
            k for k, it in enumerate(self.history_iters) if it <= iteration
        ]
        self.history_iters = [self.history_iters[k] for k in keep]
        self.history = [self.history[k] for k in keep]

    @master_only
    def after_train(self, runner):
        ctrls = controllers(runner)
        if not ctrls or not self.save:
            return
        ctrl = ctrls[0]
        names = _layer_names(runner, ctrl.num_layers) or [
            f'L{i}' for i in range(ctrl.num_layers)
        ]
        probs = ctrl.probabilities().cpu()
        torch.save(
            dict(
                tasks=list(ctrl.tasks),
                layers=names,
                probs=probs,
                history_iters=list(self.history_iters),
                history=torch.stack(self.history)
                if self.history else probs.new_zeros((0, ) + probs.shape)),
            osp.join(runner.work_dir, self.filename))
