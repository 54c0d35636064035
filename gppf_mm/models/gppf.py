# Copyright (c) gppf_mm contributors. All rights reserved.
"""The GPPF multi-task model: one shared backbone, one upstream algorithm
(MMDet detector, MMSeg segmentor, MMPretrain classifier ...) per task."""
import copy
from contextlib import contextmanager, nullcontext
from typing import Dict, Iterator, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor, BaseModel

from gppf_mm.registry import MODELS
from gppf_mm.utils.scope import build_in_scope, scope_of

LEGO_BACKBONES = ('LegoResNet', 'LegoSwinTransformer')



def _mmcv_sync_bn_as_torch(cfg):
    """``cfg`` with every ``norm_cfg`` of type ``'MMSyncBN'`` (mmcv's SyncBN,
    which needs an initialised process group when it is built) turned into
    torch's ``'SyncBN'``."""
    if isinstance(cfg, dict):
        out = {k: _mmcv_sync_bn_as_torch(v) for k, v in cfg.items()}
        if out.get('type') == 'MMSyncBN':
            out['type'] = 'SyncBN'
        return ConfigDict(out)
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_mmcv_sync_bn_as_torch(v) for v in cfg)
    return cfg

@MODELS.register_module()
class SharedBackbonePlaceholder(nn.Module):
    """Stands in for the backbone while a task's algorithm is built; GPPF
    then points the algorithm at the shared backbone."""

    def forward(self, x):  # pragma: no cover - replaced before use
        raise RuntimeError('the shared backbone was not attached')


class TaskDataPreprocessor(BaseDataPreprocessor):
    """Dispatch a batch to the data preprocessor of its task's algorithm.

    The batch is a dict with a ``'task'`` key (added by the SIMT loop); the
    output keeps it so that the model's forward can route the task.
    """

    def __init__(self, owner: 'GPPF') -> None:
        super().__init__()
        # a plain attribute: the owner's algorithms are registered there
        object.__setattr__(self, '_owner', owner)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or 'task' not in data:
            raise KeyError(
                'a GPPF batch must be a dict with a "task" key naming one of '
                f'{self._owner.tasks}')
        task = data['task']
        algorithm = self._owner.algorithm(task)
        rest = {k: v for k, v in data.items() if k != 'task'}
        out = algorithm.data_preprocessor(rest, training)
        out = dict(out)
        out['task'] = task
        return out


@MODELS.register_module()
class GPPF(BaseModel):
    """Shared backbone + one OpenMMLab algorithm per task.

    Running task ``t`` routes the (lego) backbone with ``t``'s controller
    path, then calls ``t``'s own upstream algorithm (its neck, heads, losses
    and post-processing are the upstream code, unchanged).

    Args:
        backbone (dict): the shared backbone, e.g. ``dict(type='LegoResNet',
            depth=50, num_units=2)``; a lego backbone gets the task names
            when its config gives none.
        tasks (dict): ``name -> dict(algorithm=..., loss_weight=1.0)``;
            ``algorithm`` is an upstream model config without a backbone
            (e.g. ``dict(type='mmdet.MaskRCNN', neck=..., rpn_head=...)``).
        cross_task_bn (bool): convert the backbone's BatchNorm layers to
            :class:`CrossTaskBatchNorm2d`, whose statistics are computed over
            every rank's batch whatever task the rank runs.
        task_stats (bool): with ``cross_task_bn``, keep running statistics
            per task in every cross-task norm (what the ranks running the
            task were normalised with) and evaluate each task with its own;
            ``False`` keeps the paper's statistics shared by all tasks.
            Defaults to True.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Dict[str, dict],
                 cross_task_bn: bool = False,
                 task_stats: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not tasks:
            raise ValueError('GPPF needs at least one task in `tasks`')
        backbone = copy.deepcopy(dict(backbone))
        if str(backbone.get('type', '')).split('.')[-1] in LEGO_BACKBONES:
            backbone.setdefault('tasks', list(tasks))
        self.backbone = build_in_scope(MODELS, backbone)
        if cross_task_bn:
            from gppf_mm.models.layers import convert_cross_task_bn
            self.backbone = convert_cross_task_bn(self.backbone)
        # plain attribute: the norms are registered in the backbone
        object.__setattr__(self, '_task_norms', [])
        if task_stats:
            self._enable_task_stats(list(tasks))

        self.algorithms = nn.ModuleDict()
        self.loss_weights: Dict[str, float] = {}
        for name, task_cfg in tasks.items():
            if 'algorithm' not in task_cfg:
                raise KeyError(f'task {name!r} has no "algorithm" config')
            self.algorithms[name] = self._build_algorithm(
                name, task_cfg['algorithm'])
            self.loss_weights[name] = float(task_cfg.get('loss_weight', 1.0))
        self.data_preprocessor = TaskDataPreprocessor(self)

    def _build_algorithm(self, name: str, cfg: dict) -> nn.Module:
        cfg = copy.deepcopy(dict(cfg))
        if 'backbone' in cfg:
            raise ValueError(
                f'task {name!r}: the algorithm config must not define a '
                'backbone; GPPF shares the model-level `backbone`')
        if scope_of(cfg) is None:
            raise ValueError(
                f'task {name!r}: algorithm.type {cfg.get("type")!r} must '
                'name its library, e.g. "mmdet.MaskRCNN", "mmseg.'
                'EncoderDecoder" or "mmpretrain.ImageClassifier"')
        cfg['backbone'] = dict(type='gppf_mm.SharedBackbonePlaceholder')
        # mmcv's SyncBN needs a process group to be built at all; torch's
        # does not, and both become TaskLocalBatchNorm below
        cfg = _mmcv_sync_bn_as_torch(cfg)
        algorithm = build_in_scope(MODELS, cfg)
        # Point the algorithm at the shared backbone without registering it a
        # second time (one copy of its weights in state dicts).
        del algorithm._modules['backbone']
        # only this task's ranks run its heads: a SyncBN there would be a
        # collective that the other ranks never enter (a hang on NCCL)
        from gppf_mm.models.layers import convert_head_sync_bn
        converted = convert_head_sync_bn(algorithm)
        if converted:
            shown = ', '.join(converted[:4]) + (
                f' and {len(converted) - 4} more'
                if len(converted) > 4 else '')
            print_log(
                f'task {name!r}: {len(converted)} SyncBN layer(s) of its '
                f'algorithm ({shown}) became TaskLocalBatchNorm: under SIMT '
                'only the ranks running a task run its heads, so their '
                'collectives would not be entered by the other ranks; the '
                'running statistics are averaged over the ranks that ran '
                'them after each update', logger='current')
        object.__setattr__(algorithm, 'backbone', self.backbone)
        return algorithm

    # ----------------------------------------------------------- helpers
    @property
    def tasks(self) -> List[str]:
        return list(self.algorithms.keys())

    def algorithm(self, task: str) -> nn.Module:
        if task not in self.algorithms:
            raise KeyError(f'unknown task {task!r}; GPPF has the tasks '
                           f'{self.tasks}')
        return self.algorithms[task]

    def _enable_task_stats(self, tasks: List[str]) -> None:
        from gppf_mm.models.layers import CrossTaskBatchNorm2d
        norms = [
            m for m in self.backbone.modules()
            if isinstance(m, CrossTaskBatchNorm2d)
        ]
        for m in norms:
            m.set_tasks(tasks)
        object.__setattr__(self, '_task_norms', norms)

    def set_task_stats(self, enabled: bool) -> None:
        """Evaluate with per-task statistics (``True``, where a task has
        them) or with the statistics shared by all tasks (``False``)."""
        for m in self._task_norms:
            m.use_task_stats = bool(enabled)

    @contextmanager
    def _norms_task(self, task: str) -> Iterator[None]:
        previous = [m.active_task for m in self._task_norms]
        for m in self._task_norms:
            m.set_active_task(task)
        try:
            yield
        finally:
            for m, p in zip(self._task_norms, previous):
                m.active_task = p

    @contextmanager
    def _task_context(self, task: str) -> Iterator[None]:
        use_task = getattr(self.backbone, 'use_task', None)
        with (use_task(task) if use_task is not None else nullcontext()), \
                self._norms_task(task):
            yield

    # ----------------------------------------------------------- forward
    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor',
                task: Optional[str] = None):
        """Run ``task``'s algorithm (``mode`` as in upstream models).

        In ``'loss'`` mode the loss names are prefixed by the task name and
        every loss term is scaled by the task's ``loss_weight``.
        """
        if task is None:
            raise ValueError(f'GPPF.forward needs task=..., one of '
                             f'{self.tasks}')
        algorithm = self.algorithm(task)
        with self._task_context(task):
            out = algorithm(inputs, data_samples, mode=mode)
        if mode != 'loss':
            return out
        weight = self.loss_weights[task]
        losses = {}
        for key, value in out.items():
            if 'loss' in key and weight != 1.0:
                if isinstance(value, (list, tuple)):
                    value = [v * weight for v in value]
                else:
                    value = value * weight
            losses[f'{task}.{key}'] = value
        return losses

    def lockstep_features(self, inputs: List[torch.Tensor], tasks: List[str],
                          lockstep) -> list:
        """Backbone features of several virtual devices' ``inputs``, each
        along its task's path, run in ``lockstep`` (see
        :mod:`gppf_mm.models.layers.lockstep`)."""
        for task in tasks:
            self.algorithm(task)
        set_task = getattr(self.backbone, 'set_task', None)
        previous = getattr(self.backbone, 'task', None)

        def device(d):
            def run():
                # the path is sampled at the start of the forward, before
                # the device hands over at its first norm
                if set_task is not None:
                    set_task(tasks[d])
                return self.backbone(inputs[d])
            return run

        try:
            return lockstep.run([device(d) for d in range(len(tasks))])
        finally:
            if set_task is not None:
                set_task(previous)

    def extract_feat(self, inputs: torch.Tensor, task: str):
        """Backbone features of ``inputs`` along ``task``'s path."""
        self.algorithm(task)
        with self._task_context(task):
            return self.backbone(inputs)
