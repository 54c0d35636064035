# Copyright (c) gppf_mm contributors. All rights reserved.
"""Validation and test over every task, each with its own split and its own
upstream metric."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import BaseLoop, autocast
from torch.utils.data import DataLoader

from gppf_mm.registry import LOOPS


class _MultiTaskEvalLoop(BaseLoop):
    """Evaluate task after task; metrics are named ``'{task}/{metric}'``."""
    split = 'val'

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[DataLoader, dict]],
                 evaluator: Dict[str, Union[Evaluator, dict, list]],
                 fp16: bool = False,
                 tasks: Optional[Sequence[str]] = None) -> None:
        self._runner = runner
        if not isinstance(dataloader, dict) or not isinstance(
                evaluator, dict):
            raise ValueError(f'MultiTask{self.split.capitalize()}Loop needs '
                             'dicts of task name -> dataloader / evaluator')
        names = list(tasks) if tasks else list(dataloader)
        unknown = [t for t in names if t not in dataloader]
        if unknown:
            raise ValueError(f'unknown task(s) {unknown}; tasks with a '
                             f'{self.split} split: {list(dataloader)}')
        self.dataloaders: Dict[str, DataLoader] = {}
        self.evaluators: Dict[str, Evaluator] = {}
        for name in names:
            if name not in evaluator:
                raise ValueError(f'task {name!r} has a {self.split} '
                                 'dataloader but no evaluator')
            loader = dataloader[name]
            if isinstance(loader, dict):
                loader = runner.build_dataloader(loader, seed=runner.seed)
            ev = runner.build_evaluator(evaluator[name])
            meta = getattr(loader.dataset, 'metainfo', None)
            if meta is not None:
                ev.dataset_meta = meta
            self.dataloaders[name] = loader
            self.evaluators[name] = ev
        self.dataloader = next(iter(self.dataloaders.values()))
        self.evaluator = next(iter(self.evaluators.values()))
        self.fp16 = fp16

    def run(self) -> dict:
        hook = self.split
        self.runner.call_hook(f'before_{hook}')
        self.runner.call_hook(f'before_{hook}_epoch')
        self.runner.model.eval()
        metrics = {}
        for task, loader in self.dataloaders.items():
            for idx, data_batch in enumerate(loader):
                self.run_iter(task, idx, data_batch)
            task_metrics = self.evaluators[task].evaluate(len(loader.dataset))
            metrics.update(
                {f'{task}/{k}': v
                 for k, v in task_metrics.items()})
        self.runner.call_hook(f'after_{hook}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{hook}')
        return metrics

    @torch.no_grad()
    def run_iter(self, task: str, idx: int, data_batch: dict) -> None:
        data_batch = dict(data_batch)
        data_batch['task'] = task
        hook = self.split
        self.runner.call_hook(
            f'before_{hook}_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            step = getattr(self.runner.model, f'{hook}_step')
            outputs = step(data_batch)
        self.evaluators[task].process(data_samples=outputs,
                                      data_batch=data_batch)
        self.runner.call_hook(
            f'after_{hook}_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


@LOOPS.register_module()
class MultiTaskValLoop(_MultiTaskEvalLoop):
    """Validate every task (``val_cfg = dict(type='MultiTaskValLoop')``)."""
    split = 'val'


@LOOPS.register_module()
class MultiTaskTestLoop(_MultiTaskEvalLoop):
    """Test every task (``test_cfg = dict(type='MultiTaskTestLoop')``)."""
    split = 'test'


__all__: List[str] = ['MultiTaskValLoop', 'MultiTaskTestLoop']
