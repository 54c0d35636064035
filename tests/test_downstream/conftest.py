# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
from mmengine.config import Config

from gppf_mm.datasets.generation import generate_benchmark
from gppf_mm.models.backbones import LegoResNet
from gppf_mm.models.layers import convert_cross_task_bn

PRE_TASKS = ['street_det', 'shapes_cls']


@pytest.fixture(scope='session')
def bench(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bench') / 'gppf_bench')
    generate_benchmark(root, seed=0, scale='tiny')
    return root


@pytest.fixture(scope='session')
def gppf_ckpt(tmp_path_factory):
    """A GPPF checkpoint of the slim lego ResNet-50 the downstream configs
    expect (2 units, per-task statistics, distinct units and paths)."""
    torch.manual_seed(0)
    backbone_cfg = dict(type='LegoResNet', depth=50, base_channels=16,
                        num_units=2, routing_mode='hard', norm_eval=False)
    lego = LegoResNet(**{k: v for k, v in backbone_cfg.items()
                         if k != 'type'}, tasks=PRE_TASKS)
    lego = convert_cross_task_bn(lego)
    for m in lego.modules():
        if hasattr(m, 'set_tasks'):
            m.set_tasks(PRE_TASKS)
    with torch.no_grad():
        for p in lego.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for task in PRE_TASKS:
            lego.controller.logits[task].copy_(
                torch.randn_like(lego.controller.logits[task]) * 3)
    cfg = Config(dict(model=dict(type='GPPF', backbone=backbone_cfg,
                                 cross_task_bn=True, task_stats=True),
                      tasks={t: dict() for t in PRE_TASKS}))
    path = str(tmp_path_factory.mktemp('gppf') / 'gppf.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in lego.state_dict().items()},
                    meta=dict(cfg=cfg.pretty_text)), path)
    return path


SWIN_SLIM = dict(embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4),
                 window_size=4, drop_path_rate=0.)


@pytest.fixture(scope='session')
def gppf_swin_ckpt(tmp_path_factory):
    """A GPPF checkpoint of a slim lego Swin-T (2 units per layer, distinct
    units and selections for 'coco' and 'ade20k')."""
    from gppf_mm.models.backbones import LegoSwinTransformer
    torch.manual_seed(0)
    tasks = ['coco', 'ade20k']
    backbone_cfg = dict(type='LegoSwinTransformer', num_units=2,
                        **SWIN_SLIM)
    lego = LegoSwinTransformer(
        **{k: v for k, v in backbone_cfg.items() if k != 'type'},
        tasks=tasks)
    with torch.no_grad():
        for p in lego.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for task in tasks:
            lego.controller.logits[task].copy_(
                torch.randn_like(lego.controller.logits[task]) * 3)
    cfg = Config(dict(model=dict(type='GPPF', backbone=backbone_cfg),
                      tasks={t: dict() for t in tasks}))
    path = str(tmp_path_factory.mktemp('gppf_swin') / 'gppf_swin.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in lego.state_dict().items()},
                    meta=dict(cfg=cfg.pretty_text)), path)
    return path, lego
