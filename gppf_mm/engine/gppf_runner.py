# Copyright (c) gppf_mm contributors. All rights reserved.
"""A Runner that reads a GPPF config's ``tasks`` dict."""
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.runner import Runner

from gppf_mm.registry import RUNNERS
from gppf_mm.utils.checkpoint import (
    commit_file,
    gppf_checkpoint_loading,
    partial_name,
)

from .task_config import expand_tasks


@RUNNERS.register_module()
class GPPFRunner(Runner):
    """MMEngine's Runner for configs with a ``tasks`` dict.

    ``from_cfg`` validates the tasks (before any data is read) and fills the
    model's per-task algorithms, the per-task dataloaders and evaluators and
    the SIMT loop's sampling weights from it (see
    :mod:`gppf_mm.engine.task_config`). Select it in a config with
    ``runner_type = 'GPPFRunner'``.

    Checkpoints are written atomically (a temporary file, flushed to disk
    and renamed: a crash during a save leaves no partial file at the final
    name) and read with gppf_mm's safe loader
    (:func:`gppf_mm.utils.checkpoint.gppf_checkpoint_loading`), which
    MMEngine 0.10 needs on torch >= 2.6; other runners are not affected.
    """

    @classmethod
    def from_cfg(cls, cfg: Config,
                 only_tasks: Optional[List[str]] = None) -> 'Runner':
        cfg = expand_tasks(cfg, only=only_tasks)
        return super().from_cfg(cfg)

    def simt_batch_size(self) -> Optional[float]:
        """Images per rank and iteration that SIMT trains on, on average:
        the mean of the tasks' batch sizes weighted by their sampling
        weights (``None`` when the train loop is not a built SIMT loop)."""
        loop = self._train_loop
        weights = getattr(loop, 'task_weights', None)
        if isinstance(loop, dict) or not weights:
            return None
        sizes = {}
        for task, loader in loop.dataloaders.items():
            size = loader.batch_size or getattr(loader.batch_sampler,
                                                'batch_size', None)
            if not size:
                raise ValueError(f'task {task!r}: auto_scale_lr needs the '
                                 'train dataloader\'s batch_size')
            sizes[task] = size
        total = sum(weights.values())
        return sum(weights[t] * sizes[t] for t in sizes) / total

    def scale_lr(self, optim_wrapper, auto_scale_lr=None) -> None:
        """MMEngine's linear lr scaling, with SIMT's batch size.

        Under SIMT the batch of an iteration is one task's batch per rank,
        so the batch size that ``auto_scale_lr.base_batch_size`` refers to is
        ``world_size`` times :meth:`simt_batch_size` (the tasks' batch
        sizes weighted by their sampling weights). With the per-task batch
        sizes of the config, the lr therefore scales with the number of
        ranks, as for a single-task config.
        """
        if not (auto_scale_lr and auto_scale_lr.get('enable', False)):
            return
        mean = self.simt_batch_size()
        if mean is None:
            return super().scale_lr(optim_wrapper, auto_scale_lr)
        self.logger.info(
            f'auto_scale_lr: SIMT batch size per rank {mean:g} (task batch '
            'sizes weighted by the sampling weights)')
        configured = self._train_dataloader
        self._train_dataloader = dict(batch_size=mean)
        try:
            super().scale_lr(optim_wrapper, auto_scale_lr)
        finally:
            self._train_dataloader = configured

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        remote = '://' in str(out_dir) or any(
            kwargs.get(k) for k in ('file_client_args', 'backend_args')) or (
                args and args[0])
        if remote:
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        tmp = partial_name(filename)
        try:
            super().save_checkpoint(out_dir, tmp, *args, **kwargs)
            commit_file(osp.join(out_dir, tmp), osp.join(out_dir, filename))
        finally:
            if osp.exists(osp.join(out_dir, tmp)):
                os.remove(osp.join(out_dir, tmp))

    def load_checkpoint(self, *args, **kwargs):
        with gppf_checkpoint_loading():
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args, **kwargs):
        with gppf_checkpoint_loading():
            return super().resume(*args, **kwargs)
