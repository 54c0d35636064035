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


PAPER = osp.join(REPO, 'configs', 'gppf',
                 'gppf_lego-r50-n2-soft_8xgpu-7vd-simt-500k_gppf-15m.py')


def test_train_image_sizes_of_the_paper_tasks(load_tool):
    """The pixels of a training image come from the last crop or resize of
    each task's upstream pipeline (dataset wrappers included)."""
    tool = load_tool('analysis_tools/config_footprint.py')
    register_all_modules(init_default_scope=False)
    cfg = expand_tasks(Config.fromfile(PAPER))
    loaders = cfg.train_dataloader
    # ImageNet: RandomResizedCrop 224; COCO: large-scale jitter, crop 1024;
    # ADE20K: crop 512; Objects365: resize to 1333 x 800
    assert tool.train_pixels(loaders['in21k']) == 224 * 224
    assert tool.train_pixels(loaders['coco']) == 1024 * 1024
    assert tool.train_pixels(loaders['ade20k']) == 512 * 512
    assert tool.train_pixels(loaders['objects365']) == 1333 * 800
    assert cfg.train_cfg.virtual_devices == 7


def test_backbone_activations_scale_with_pixels_and_shrink_with_cp(
        load_tool):
    tool = load_tool('analysis_tools/config_footprint.py')
    register_all_modules(init_default_scope=False)
    backbone = dict(type='LegoResNet', depth=50, base_channels=16,
                    num_units=2, routing_mode='soft', norm_eval=False)
    full = tool.backbone_activation_bytes(backbone, ['a', 'b'], False, 64)
    larger = tool.backbone_activation_bytes(backbone, ['a', 'b'], False,
                                            128)
    cp = tool.backbone_activation_bytes(backbone, ['a', 'b'], True, 128)
    # per pixel the same at two sizes (the stages' maps scale with it)
    assert abs(larger / full - 1) < 0.05
    # the stem's first conv keeps its fp32 input: 3 channels x 4 bytes
    assert larger > 12
    # checkpointing keeps only the lego layers' inputs
    assert cp < larger / 3
