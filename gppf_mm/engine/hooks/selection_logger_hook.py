# Copyright (c) gppf_mm contributors. All rights reserved.
import os.path as osp

import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gppf_mm.registry import HOOKS


def _backbone(runner):
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    return getattr(model, 'backbone', None)


@HOOKS.register_module()
class SelectionLoggerHook(Hook):
    """Log the task x layer selection-probability table every ``interval``
    iterations and save the probabilities at the end of training to
    ``{work_dir}/selection_probs.pth`` (tasks, layer names, (T, L, N)
    tensor), the data behind the paper's Figure 3."""
    priority = 'LOW'

    def __init__(self, interval: int = 1000) -> None:
        self.interval = interval

    @master_only
    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        backbone = _backbone(runner)
        if backbone is None or getattr(backbone, 'controller', None) is None:
            return
        if self.every_n_train_iters(runner, self.interval):
            runner.logger.info('unit selection (unit:probability) at iter '
                               f'{runner.iter + 1}:\n' +
                               backbone.probability_table())

    @master_only
    def after_train(self, runner):
        backbone = _backbone(runner)
        if backbone is None or getattr(backbone, 'controller', None) is None:
            return
        torch.save(
            dict(
                tasks=list(backbone.controller.tasks),
                layers=backbone.lego_layer_display_names(),
                probs=backbone.selection_probabilities()),
            osp.join(runner.work_dir, 'selection_probs.pth'))
