# Copyright (c) gppf_mm contributors. All rights reserved.
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from gppf_mm.registry import HOOKS
from gppf_mm.utils.checkpoint import commit_file, partial_name


@HOOKS.register_module()
class ExtractPathHook(Hook):
    """Write a task's path as a plain backbone checkpoint when training
    ends: the last step of dynamic finetuning (the unit with the highest
    probability per layer), with the task's own normalisation statistics.

    The file (``work_dir/<task>_path.pth`` by default, written atomically)
    is what ``tools/extract_path.py`` writes: ``{'state_dict':
    {prefix + key: tensor}, 'meta': {task, path, layers, probabilities,
    target, backbone_cfg}}``. A stock config loads it with
    ``init_cfg=dict(type='Pretrained', checkpoint=FILE)`` (the "retrain on
    the fixed path" step).

    Args:
        task (str): the task whose argmax path is extracted.
        target (str): the library whose ResNet layout the keys follow
            ('mmdet', 'mmseg' or 'mmpretrain'; LegoResNet only).
        filename (str, optional): file name in the work dir.
        prefix (str): key prefix of the state dict. Defaults to
            ``'backbone.'``.
    """
    priority = 'LOW'

    def __init__(self, task: str, target: str = 'mmdet',
                 filename: Optional[str] = None,
                 prefix: str = 'backbone.') -> None:
        self.task = task
        self.target = target
        self.filename = filename or f'{task}_path.pth'
        self.prefix = prefix

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        from gppf_mm.models.backbones import (
            extract_path_checkpoint,
            path_table,
        )
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        backbone = getattr(model, 'backbone', model)
        ckpt = extract_path_checkpoint(
            backbone, task=self.task, target=self.target, prefix=self.prefix,
            source=runner.work_dir)
        path = osp.join(runner.work_dir, self.filename)
        tmp = osp.join(runner.work_dir, partial_name(self.filename))
        try:
            torch.save(ckpt, tmp)
            commit_file(tmp, path)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
        meta = ckpt['meta']
        rows = list(zip(meta['layers'], meta['path'],
                        meta['probabilities']))
        print_log(f'the path of task {self.task!r} is in {path}:\n' +
                  path_table(rows), logger='current')
