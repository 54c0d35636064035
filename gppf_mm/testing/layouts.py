# Copyright (c) gppf_mm contributors. All rights reserved.
"""Train one GPPF config with a given layout of processes x virtual devices
(gloo), for the tests that compare layouts: every layout with the same
number of devices must train the same model."""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from gppf_mm.testing.dist import run_distributed


def _train(rank: int, world_size: int, config: str, work_dir: str,
           devices: int, options: dict, data_root: str,
           resume_from: Optional[str]) -> dict:
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper

    from gppf_mm.engine import GPPFRunner
    from gppf_mm.utils import register_all_modules
    os.environ['GPPF_DATA_ROOT'] = data_root
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.train_cfg.virtual_devices = devices
    cfg.work_dir = work_dir
    cfg.launcher = 'pytorch' if world_size > 1 else 'none'
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    if resume_from:
        cfg.load_from, cfg.resume = resume_from, True
    runner = GPPFRunner.from_cfg(cfg)
    runner.train()
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return dict(state=state)


def _logs(work_dir: str) -> List[dict]:
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        return [json.loads(line) for line in f]


def train_layout(config: str, work_dir: str, processes: int, devices: int,
                 options: dict, data_root: str,
                 resume_from: Optional[str] = None,
                 timeout: float = 600) -> Dict[str, object]:
    """Train ``config`` on ``processes`` gloo processes with ``devices``
    virtual devices each; return the final model state and the logged
    scalars of every iteration."""
    # one process too runs apart, so that MMEngine's global state (scopes,
    # message hubs, visualizers) starts afresh in every run
    (result, *_) = run_distributed(
        _train, processes, config, work_dir, devices, options, data_root,
        resume_from, timeout=timeout)
    result['logs'] = _logs(work_dir)
    return result
