# Copyright (c) gppf_mm contributors. All rights reserved.
"""A Runner that reads a GPPF config's ``tasks`` dict."""
from typing import List, Optional

from mmengine.config import Config
from mmengine.runner import Runner

from gppf_mm.registry import RUNNERS
from gppf_mm.utils.checkpoint import gppf_checkpoint_loading

from .task_config import expand_tasks


@RUNNERS.register_module()
class GPPFRunner(Runner):
    """MMEngine's Runner for configs with a ``tasks`` dict.

    ``from_cfg`` validates the tasks (before any data is read) and fills the
    model's per-task algorithms, the per-task dataloaders and evaluators and
    the SIMT loop's sampling weights from it (see
    :mod:`gppf_mm.engine.task_config`). Select it in a config with
    ``runner_type = 'GPPFRunner'``.

    Checkpoints are read with gppf_mm's safe loader
    (:func:`gppf_mm.utils.checkpoint.gppf_checkpoint_loading`), which
    MMEngine 0.10 needs on torch >= 2.6; other runners are not affected.
    """

    @classmethod
    def from_cfg(cls, cfg: Config,
                 only_tasks: Optional[List[str]] = None) -> 'Runner':
        cfg = expand_tasks(cfg, only=only_tasks)
        return super().from_cfg(cfg)

    def load_checkpoint(self, *args, **kwargs):
        with gppf_checkpoint_loading():
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args, **kwargs):
        with gppf_checkpoint_loading():
            return super().resume(*args, **kwargs)
