# Copyright (c) gppf_mm contributors. All rights reserved.
"""Fixed-path finetuning from a config alone: a stock upstream backbone
with ``init_cfg=dict(type='gppf_mm.GPPFPath', checkpoint=..., task=...)``
starts from that task's path of a GPPF checkpoint."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gppf_mm.models.backbones import LegoResNet
from gppf_mm.utils import register_all_modules

LEGO = dict(type='LegoResNet', depth=18, base_channels=8, num_units=2,
            routing_mode='hard', norm_eval=False, init_cfg=None)
TASKS = ['coco', 'ade20k']


@pytest.fixture
def checkpoint(tmp_path):
    """A GPPF-like checkpoint: the lego backbone under 'backbone.', a
    random selection, the config text in meta."""
    torch.manual_seed(0)
    lego = LegoResNet(tasks=TASKS, **{k: v for k, v in LEGO.items()
                                      if k != 'type'})
    with torch.no_grad():
        for task in TASKS:
            lego.controller.logits[task].normal_()
        for m in lego.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    meta = dict(cfg=Config(dict(
        model=dict(type='GPPF', backbone=LEGO),
        tasks={t: dict() for t in TASKS})).pretty_text)
    path = str(tmp_path / 'iter_10.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in lego.state_dict().items()},
                    meta=meta), path)
    return path, lego.eval()


def build(scope, cfg):
    from gppf_mm.registry import MODELS
    from gppf_mm.utils import with_scope
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(with_scope(dict(cfg, _scope_=scope)))


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_stock_backbone_starts_from_the_task_path(checkpoint, scope):
    path, lego = checkpoint
    init = dict(type='gppf_mm.GPPFPath', checkpoint=path, task='ade20k')
    extra = dict(out_indices=(0, 1, 2, 3)) if scope == 'mmpretrain' else {}
    plain = build(scope, dict(type='ResNet', depth=18, base_channels=8,
                              stem_channels=8,
                              init_cfg=init, **extra))
    plain.init_weights()
    plain.eval()
    lego.set_task('ade20k')
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(lego(x), plain(x)):
            torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_mismatched_backbone_names_the_task(checkpoint):
    path, _ = checkpoint
    plain = build('mmdet', dict(
        type='ResNet', depth=34, base_channels=8,
        init_cfg=dict(type='gppf_mm.GPPFPath', checkpoint=path,
                      task='coco')))
    with pytest.raises(RuntimeError, match=r"the path of task 'coco' in .* "
                       'does not fit ResNet'):
        plain.init_weights()
    with pytest.raises(ValueError, match='needs task=NAME'):
        build('mmdet', dict(type='ResNet', depth=18, init_cfg=dict(
            type='gppf_mm.GPPFPath', checkpoint=path))).init_weights()
