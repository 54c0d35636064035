# Copyright (c) gppf_mm contributors. All rights reserved.
"""Validation and test over every task, each with its own split and its own
upstream metric.

Metrics are reported as ``'{task}/{metric}'``: the task name, a slash, then
the metric's own name (which OpenMMLab metrics already prefix, e.g.
``'coco/coco/bbox_mAP'`` for a task ``coco`` evaluated by MMDetection's
``CocoMetric``, ``'ade20k/mIoU'`` for MMSegmentation's ``IoUMetric``).
Use that full name for ``CheckpointHook(save_best=...)``.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import HistoryBuffer
from mmengine.runner import BaseLoop, autocast
from mmengine.runner.loops import _parse_losses, _update_losses
from torch.utils.data import DataLoader

from gppf_mm.registry import LOOPS

from .task_loaders import check_task_dict

# 'task': every task is evaluated with its own normalisation statistics
# (where the model keeps them); 'shared': with those of all tasks together
BN_STATS = ('task', 'shared')


class _MultiTaskEvalLoop(BaseLoop):
    """Evaluate task after task (see the module docstring for names)."""
    split = 'val'

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[DataLoader, dict]],
                 evaluator: Dict[str, Union[Evaluator, dict, list]],
                 fp16: bool = False,
                 tasks: Optional[Union[str, Sequence[str]]] = None,
                 bn_stats: str = 'task') -> None:
        self._runner = runner
        loop_name = f'MultiTask{self.split.capitalize()}Loop'
        if bn_stats not in BN_STATS:
            raise ValueError(f'{loop_name}: bn_stats must be one of '
                             f'{BN_STATS}, got {bn_stats!r}')
        self.bn_stats = bn_stats
        check_task_dict(dataloader, loop_name, self.split)
        if not isinstance(evaluator, dict):
            raise ValueError(f'{loop_name} needs a dict of task name -> '
                             f'{self.split} evaluator, got '
                             f'{type(evaluator).__name__}')
        if isinstance(tasks, str):
            tasks = [tasks]
        names = list(tasks) if tasks else list(dataloader)
        for task in names:
            if task not in dataloader:
                raise ValueError(f'task {task!r} has no {self.split} '
                                 f'dataloader; tasks with one: '
                                 f'{list(dataloader)}')
            if task not in evaluator:
                raise ValueError(f'task {task!r} has a {self.split} '
                                 f'dataloader but no {self.split} evaluator')
        self.dataloaders: Dict[str, DataLoader] = {}
        self.evaluators: Dict[str, Evaluator] = {}
        for task in names:
            loader = dataloader[task]
            if isinstance(loader, dict):
                loader = runner.build_dataloader(loader, seed=runner.seed)
            ev = evaluator[task]
            if isinstance(ev, (dict, list)):
                ev = runner.build_evaluator(ev)
            elif not isinstance(ev, Evaluator):
                raise TypeError(f'task {task!r}: {self.split} evaluator must '
                                'be a config dict, a list of them or an '
                                f'Evaluator, got {type(ev).__name__}')
            meta = getattr(loader.dataset, 'metainfo', None)
            if meta is not None:
                ev.dataset_meta = meta
            else:
                runner.logger.warning(
                    f'task {task!r}: the {self.split} dataset has no '
                    'metainfo; its metrics get no dataset_meta')
            self.dataloaders[task] = loader
            self.evaluators[task] = ev
        self.tasks = names
        # MMEngine reads `loop.dataloader` / `loop.evaluator`
        self.dataloader = self.dataloaders[names[0]]
        self.evaluator = self.evaluators[names[0]]
        self.fp16 = fp16
        self.losses: Dict[str, HistoryBuffer] = {}

    def run(self) -> dict:
        """Evaluate every task; return ``{'{task}/{metric}': value}``."""
        stage = self.split
        self.runner.call_hook(f'before_{stage}')
        self.runner.call_hook(f'before_{stage}_epoch')
        self.runner.model.eval()
        model = self.runner.model
        model = getattr(model, 'module', model)
        if hasattr(model, 'set_task_stats'):
            model.set_task_stats(self.bn_stats == 'task')
        metrics = {}
        for task in self.tasks:
            metrics.update(self.run_task(task))
        self.runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{stage}')
        return metrics

    def run_task(self, task: str) -> dict:
        """Evaluate one task; its metrics, prefixed by ``'{task}/'``."""
        loader = self.dataloaders[task]
        meta = getattr(loader.dataset, 'metainfo', None)
        if meta is not None:
            self.runner.visualizer.dataset_meta = meta
        self.losses = {}
        for idx, data_batch in enumerate(loader):
            self.run_iter(task, idx, data_batch)
        task_metrics = self.evaluators[task].evaluate(len(loader.dataset))
        if self.losses:
            task_metrics.update(_parse_losses(self.losses, self.split))
        return {f'{task}/{k}': v for k, v in task_metrics.items()}

    @torch.no_grad()
    def run_iter(self, task: str, idx: int, data_batch: dict) -> None:
        """Predict one batch of ``task`` and feed its evaluator."""
        data_batch = dict(data_batch)
        data_batch['task'] = task
        stage = self.split
        self.runner.call_hook(
            f'before_{stage}_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = getattr(self.runner.model, f'{stage}_step')(data_batch)
        if outputs:
            outputs, self.losses = _update_losses(outputs, self.losses)
        self.evaluators[task].process(
            data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            f'after_{stage}_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


@LOOPS.register_module()
class MultiTaskValLoop(_MultiTaskEvalLoop):
    """Validate every task (``val_cfg = dict(type='MultiTaskValLoop')``).

    Args:
        runner (Runner): the runner.
        dataloader (dict): task name -> val dataloader (config or object).
        evaluator (dict): task name -> evaluator (a metric config, a list of
            them, or an ``Evaluator``). Metric types of another library are
            written with its prefix (``'mmdet.CocoMetric'``) or carry
            ``_scope_``.
        fp16 (bool): autocast the forward. Defaults to False.
        tasks (str | list[str], optional): only these tasks. Defaults to
            every task of ``dataloader``.
        bn_stats (str): ``'task'`` evaluates each task with its own
            BatchNorm statistics where the model keeps them (GPPF with
            ``task_stats=True``), ``'shared'`` with the statistics shared by
            all tasks (the paper's). Defaults to ``'task'``.
    """
    split = 'val'


@LOOPS.register_module()
class MultiTaskTestLoop(_MultiTaskEvalLoop):
    """Test every task (``test_cfg = dict(type='MultiTaskTestLoop')``);
    arguments as :class:`MultiTaskValLoop`."""
    split = 'test'


__all__: List[str] = ['MultiTaskValLoop', 'MultiTaskTestLoop']
