# Copyright (c) gppf_mm contributors. All rights reserved.
import os.path as osp

from mmengine.config import Config

from gppf_mm.engine.task_config import expand_tasks
from gppf_mm.registry import MODELS
from gppf_mm.utils import register_all_modules

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO, 'configs', 'gppf',
                'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')


def test_footprint_counts_what_a_rank_holds(load_tool):
    tool = load_tool('analysis_tools/config_footprint.py')
    register_all_modules(init_default_scope=False)
    cfg = expand_tasks(Config.fromfile(DEMO))
    for loader in cfg.train_dataloader.values():
        loader.num_workers = 3
    cfg.train_cfg.max_workers = 4
    result = tool.footprint(cfg)
    model = MODELS.build(cfg.model)
    total = sum(p.numel() for p in model.parameters())
    # the backbone once, every task's algorithm, nothing counted twice
    assert sum(result['parts'].values()) == total
    assert set(result['parts']) == {'backbone', *cfg.model.tasks}
    # AdamW (the demo's): weights, gradients and two moments in fp32
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert result['bytes'] == total * 16
    # 5 tasks x 3 workers asked, 4 allowed
    assert sum(result['asked'].values()) == 15
    assert sum(result['workers'].values()) == 4
