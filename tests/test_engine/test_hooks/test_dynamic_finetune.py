# Copyright (c) gppf_mm contributors. All rights reserved.
"""The building blocks of dynamic finetuning: a lego backbone for a new
task starts from the units of a GPPF checkpoint (its controller afresh, the
pre-training tasks' statistics skipped), and ExtractPathHook writes the new
task's argmax path as a plain backbone that loads into a stock ResNet."""
from types import SimpleNamespace

import torch
from mmdet.models.backbones import ResNet as MMDetResNet
from mmengine.config import ConfigDict

from gppf_mm.engine.hooks import ExtractPathHook
from gppf_mm.models.backbones import LegoResNet
from gppf_mm.models.layers import convert_cross_task_bn
from gppf_mm.utils import register_all_modules, safe_torch_load

ARCH = dict(depth=18, base_channels=8, num_units=2)


def with_task_stats(backbone, tasks):
    backbone = convert_cross_task_bn(backbone)
    for m in backbone.modules():
        if hasattr(m, 'set_tasks'):
            m.set_tasks(tasks)
    return backbone


def test_new_task_over_pretrained_units_and_its_extracted_path(tmp_path):
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    pre = with_task_stats(LegoResNet(tasks=['coco', 'ade20k'], **ARCH),
                          ['coco', 'ade20k'])
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ckpt = str(tmp_path / 'gppf.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in pre.state_dict().items()},
                    meta={}), ckpt)

    # built from a config, as in a runner: its norm_cfg is a ConfigDict,
    # which must not reach the extracted file (the safe loader refuses it)
    down = LegoResNet(tasks=['voc'], routing_mode='soft', init_cfg=dict(
        type='LegoPretrained', checkpoint=ckpt, prefix='backbone.'),
        norm_cfg=ConfigDict(type='BN', requires_grad=True), **ARCH)
    down = with_task_stats(down, ['voc'])
    down.init_weights()
    theirs = pre.state_dict()
    for key, value in down.state_dict().items():
        if key.startswith('controller.'):
            assert torch.equal(value, torch.zeros_like(value))  # afresh
        elif '__voc' in key:
            assert not int(down.get_submodule(
                key.rsplit('.', 1)[0]).task_statistics('voc')[2])
        else:
            assert torch.equal(value, theirs[key]), key

    # the controller learns a path; the hook extracts it at the end
    with torch.no_grad():
        down.controller.logits['voc'].copy_(torch.tensor(
            [[0.0, 2.0], [1.0, 0.0]] * 4 + [[0.0, 1.0]]))
    runner = SimpleNamespace(model=SimpleNamespace(backbone=down),
                             work_dir=str(tmp_path))
    ExtractPathHook(task='voc', target='mmdet').after_train(runner)
    out = safe_torch_load(str(tmp_path / 'voc_path.pth'))
    assert out['meta']['path'] == [1, 0] * 4 + [1]
    plain = MMDetResNet(depth=18, base_channels=8)
    plain.load_state_dict({k[len('backbone.'):]: v
                           for k, v in out['state_dict'].items()},
                          strict=True)
    down.eval()
    plain.eval()
    down.set_task('voc')
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(down(x), plain(x)):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert not [n for n in tmp_path.iterdir() if 'partial' in n.name]
