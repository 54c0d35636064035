# Copyright (c) gppf_mm contributors. All rights reserved.
"""GPPF: one shared backbone, the upstream algorithm of every task."""
import copy
import logging
import os.path as osp

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmpretrain.structures import DataSample
from mmseg.structures import SegDataSample

from gppf_mm.engine.task_config import resolve_templates
from gppf_mm.models import GPPF
from gppf_mm.utils import register_all_modules, with_scope

REPO = osp.join(osp.dirname(__file__), '..', '..')
TEMPLATES = osp.join(REPO, 'configs', '_base_', 'models',
                     'gppf_algorithms_slim.py')
BACKBONE = dict(
    type='mmdet.ResNet', depth=50, base_channels=16, norm_eval=False,
    init_cfg=None)


@pytest.fixture(scope='module')
def task_cfgs():
    register_all_modules(init_default_scope=False)
    algorithms = Config.fromfile(TEMPLATES).algorithms
    tasks = dict(
        det=dict(
            algorithm=dict(
                template='mask_rcnn',
                roi_head=dict(
                    bbox_head=dict(num_classes=3),
                    mask_head=dict(num_classes=3)))),
        seg=dict(
            algorithm=dict(
                template='upernet',
                decode_head=dict(num_classes=4),
                auxiliary_head=dict(num_classes=4)),
            loss_weight=0.5),
        cls=dict(
            algorithm=dict(
                template='image_classifier',
                data_preprocessor=dict(num_classes=5),
                head=dict(num_classes=5))))
    resolve_templates(tasks, algorithms)
    return tasks


def det_batch():
    packed = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[2, 3],
        num_classes=3, with_mask=True)
    return dict(inputs=packed['inputs'], data_samples=packed['data_samples'])


def seg_batch():
    g = torch.Generator().manual_seed(1)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 255, (3, 64, 64), generator=g,
                                    dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 4, (1, 64, 64), generator=g))
        sample.set_metainfo(
            dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def cls_batch():
    g = torch.Generator().manual_seed(2)
    inputs = [
        torch.randint(0, 255, (3, 32, 32), generator=g, dtype=torch.uint8)
        for _ in range(4)
    ]
    samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
    return dict(inputs=inputs, data_samples=samples)


BATCHES = dict(det=det_batch, seg=seg_batch, cls=cls_batch)


def build_gppf(task_cfgs):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        return GPPF(backbone=BACKBONE, tasks=copy.deepcopy(task_cfgs))


def test_bad_configs(task_cfgs):
    with pytest.raises(ValueError, match='at least one task'):
        GPPF(backbone=BACKBONE, tasks={})
    bad = dict(x=dict(algorithm=dict(type='MaskRCNN')))
    with pytest.raises(ValueError, match="task 'x'.*must name its library"):
        GPPF(backbone=BACKBONE, tasks=bad)
    with_backbone = copy.deepcopy(task_cfgs)
    with_backbone['cls']['algorithm']['backbone'] = dict(type='ResNet')
    with pytest.raises(ValueError, match="task 'cls'.*must not define"):
        GPPF(backbone=BACKBONE, tasks=with_backbone)


def test_structure_shares_one_backbone(task_cfgs):
    model = build_gppf(task_cfgs)
    assert model.tasks == ['det', 'seg', 'cls']
    for name in model.tasks:
        assert model.algorithms[name].backbone is model.backbone
    keys = list(model.state_dict())
    assert not [k for k in keys if '.backbone.' in k and
                k.startswith('algorithms.')]
    n_backbone = sum(1 for k in keys if k.startswith('backbone.'))
    assert n_backbone == len(model.backbone.state_dict())
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        model(torch.zeros(1, 3, 32, 32), task='nope')


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_task_loss_equals_upstream_algorithm(task_cfgs, task):
    """The GPPF loss of a task is its upstream algorithm's loss (scaled)."""
    model = build_gppf(task_cfgs)
    model.train()
    # the same algorithm built alone by its library, with the same weights
    alone_cfg = copy.deepcopy(task_cfgs[task]['algorithm'])
    alone_cfg['backbone'] = dict(BACKBONE)  # 'mmdet.ResNet' anywhere
    from gppf_mm.registry import MODELS
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        alone = MODELS.build(with_scope(alone_cfg))
    state = {
        k[len(f'algorithms.{task}.'):]: v
        for k, v in model.state_dict().items()
        if k.startswith(f'algorithms.{task}.')
    }
    state.update({
        f'backbone.{k}': v
        for k, v in model.backbone.state_dict().items()
    })
    alone.load_state_dict(state, strict=True)
    alone.train()

    batch = BATCHES[task]()
    torch.manual_seed(5)
    data = model.data_preprocessor(dict(batch, task=task), True)
    assert data['task'] == task
    losses = model(**data, mode='loss')
    torch.manual_seed(5)
    ref_data = alone.data_preprocessor(BATCHES[task](), True)
    ref = alone(**ref_data, mode='loss')
    weight = task_cfgs[task].get('loss_weight', 1.0)
    assert set(losses) == {f'{task}.{k}' for k in ref}
    for key, value in ref.items():
        ours = losses[f'{task}.{key}']
        if isinstance(value, (list, tuple)):
            value, ours = torch.stack(list(value)), torch.stack(list(ours))
        scale = weight if 'loss' in key else 1.0
        torch.testing.assert_close(ours, value * scale, rtol=1e-5, atol=1e-6)
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    # the shared backbone and this task's heads got gradients; the other
    # tasks' heads did not
    assert model.backbone.conv1.weight.grad is not None
    for other in model.tasks:
        grads = [
            p.grad for n, p in model.algorithms[other].named_parameters()
        ]
        if other == task:
            assert any(g is not None for g in grads)
        else:
            assert all(g is None for g in grads)


def test_head_sync_bn_becomes_task_local(task_cfgs):
    """The seg task's heads use SyncBN (as upstream configs do): GPPF
    converts them, with the state-dict keys of the BN build, and the loss
    equals the BN build's on the CPU (where SyncBN cannot train)."""
    from mmengine.logging import MMLogger

    from gppf_mm.models.layers import TaskLocalBatchNorm
    sync_cfgs = copy.deepcopy(task_cfgs)
    for head in ('decode_head', 'auxiliary_head'):
        sync_cfgs['seg']['algorithm'][head]['norm_cfg'] = dict(
            type='SyncBN', requires_grad=True)
    logger = MMLogger.get_current_instance()
    records = []

    class Collect(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect()
    logger.addHandler(handler)
    try:
        synced = build_gppf(sync_cfgs)
    finally:
        logger.removeHandler(handler)
    plain = build_gppf(task_cfgs)
    assert not [m for m in synced.modules()
                if isinstance(m, torch.nn.SyncBatchNorm)]
    locals_ = [n for n, m in synced.named_modules()
               if isinstance(m, TaskLocalBatchNorm)]
    assert locals_ and all(n.startswith('algorithms.seg.') for n in locals_)
    assert list(synced.state_dict()) == list(plain.state_dict())
    message = [r for r in records if "task 'seg'" in r]
    assert message and 'SyncBN layer(s)' in message[0] and \
        'decode_head.' in message[0]
    synced.load_state_dict(plain.state_dict())
    for model in (synced, plain):
        model.train()
    losses = []
    for model in (synced, plain):
        torch.manual_seed(5)
        data = model.data_preprocessor(dict(seg_batch(), task='seg'), True)
        losses.append(model(**data, mode='loss'))
    for key, value in losses[1].items():
        torch.testing.assert_close(losses[0][key], value, rtol=0, atol=0)


def test_task_local_bn_equals_batchnorm():
    from gppf_mm.models.layers import convert_head_sync_bn
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1),
                               torch.nn.SyncBatchNorm(3))
    head[1].weight.data.uniform_()
    head[1].weight.requires_grad_(False)
    ref = torch.nn.BatchNorm2d(3)
    ref.load_state_dict(head[1].state_dict())
    assert convert_head_sync_bn(head, 'neck') == ['neck.1']
    assert not head[1].weight.requires_grad
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(head[1](x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(head[1].running_var, ref.running_var)
    assert head[1](torch.randn(4, 3)).shape == (4, 3)  # as SyncBN accepts
