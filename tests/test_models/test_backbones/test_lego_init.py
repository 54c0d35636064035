# Copyright (c) gppf_mm contributors. All rights reserved.
"""Lego backbones initialise every unit as the upstream backbone they
mirror, and checkpoint entries in ``init_cfg`` load or fail loudly."""
import math

import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.models.backbones import SwinTransformer as MMDetSwin
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier

from gppf_mm.models.backbones import LegoResNet, LegoSwinTransformer

SLIM = dict(depth=50, base_channels=16, stem_channels=16)
SWIN = dict(embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4),
            window_size=4, drop_path_rate=0.)


def initialised(module, seed=0):
    torch.manual_seed(seed)
    module.init_weights()
    return module


def unit_states(lego):
    """The plain-layout state dict of every unit index (path k, k, ...)."""
    layers = len(lego.lego_layer_names)
    return [
        lego.extract_path(path=[k] * layers) for k in range(lego.num_units)
    ]


@pytest.mark.parametrize('depth,last_norm', [(50, 'bn3'), (18, 'bn2')])
@pytest.mark.parametrize('zero_init_residual', [True, False])
def test_static_resnet_init_equals_mmdet(depth, last_norm,
                                         zero_init_residual):
    kw = dict(SLIM, depth=depth, zero_init_residual=zero_init_residual)
    torch.manual_seed(0)
    ref = initialised(MMDetResNet(**kw))
    ours = initialised(LegoResNet(**kw))
    (plain, ) = unit_states(ours)
    theirs = ref.state_dict()
    assert list(plain) == list(theirs)
    for key, value in theirs.items():
        torch.testing.assert_close(plain[key], value, rtol=0, atol=0,
                                   msg=key)
    zeros = [k for k, v in theirs.items()
             if k.endswith(f'{last_norm}.weight') and not v.any()]
    blocks = sum(ref.stage_blocks)
    assert len(zeros) == (blocks if zero_init_residual else 0)


@pytest.mark.parametrize('num_units', [2, 3])
def test_every_unit_gets_the_upstream_init(num_units):
    ref = initialised(MMDetResNet(**SLIM))
    ours = initialised(LegoResNet(**SLIM, num_units=num_units, tasks=['a']))
    states = unit_states(ours)
    for key, value in ref.state_dict().items():
        for k, state in enumerate(states):
            ours_k = state[key]
            if key.endswith('bn3.weight') and key.startswith('layer'):
                assert not ours_k.any(), f'unit {k}: {key} not zero'
            elif 'bn' in key or 'norm' in key or 'downsample.1' in key:
                # constant norms (weights 1, biases 0) and fresh statistics
                torch.testing.assert_close(ours_k, value, rtol=0, atol=0)
            elif key.endswith('conv1.weight') and key.startswith('layer'):
                # Kaiming normal (fan_out, relu) like upstream
                fan_out = value.shape[0] * value[0, 0].numel()
                std = math.sqrt(2.0 / fan_out)
                assert abs(float(ours_k.std()) - std) < 0.2 * std, key
    # the units are independent draws
    assert not torch.equal(states[0]['layer1.0.conv1.weight'],
                           states[1]['layer1.0.conv1.weight'])


def test_swin_init_equals_mmdet():
    ref = initialised(MMDetSwin(**SWIN))
    for num_units, tasks in ((1, None), (2, ['a'])):
        ours = initialised(
            LegoSwinTransformer(**SWIN, num_units=num_units, tasks=tasks))
        theirs = ref.state_dict()
        for k, state in enumerate(unit_states(ours)):
            assert set(state) == set(theirs)
            for key, value in theirs.items():
                if 'patch_embed.projection' in key:
                    continue  # torch's default init in both
                if num_units == 1 or value.dim() < 2 or 'relative' in key:
                    # constants (LN, biases, position tables) and, for one
                    # unit, the same truncated normal draws in the same order
                    torch.testing.assert_close(
                        state[key], value, rtol=0, atol=0, msg=key)
                else:
                    assert abs(float(state[key].std()) - 0.02) < 0.004, key


@pytest.mark.parametrize('mode', ['soft', 'hard'])
def test_copy_unit_init_starts_as_the_static_network(mode):
    """``unit_init='copy'``: every unit of a layer is unit 0, so a routed
    forward and backward equal mmdet's ResNet holding unit 0's weights; a
    second ``init_weights`` call does not copy over trained units."""
    ours = initialised(
        LegoResNet(**SLIM, num_units=3, tasks=['a', 'b'], routing_mode=mode,
                   unit_init='copy'))
    states = unit_states(ours)
    for k, state in enumerate(states[1:], 1):
        for key, value in states[0].items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0,
                                       msg=f'unit {k}: {key}')
    ref = MMDetResNet(**SLIM)
    ref.load_state_dict(states[0])
    ref.train()
    ours.train()
    x = torch.randn(2, 3, 64, 64)
    ours.set_task('b')
    with torch.no_grad():
        ours.controller.logits['b'].normal_()
    out, expected = ours(x), ref(x)
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    sum(o.sum() for o in out).backward()
    # identical units give the selection no preference yet: soft mixing
    # of equal outputs has a zero logit gradient
    grad = ours.controller.logits['b'].grad
    if mode == 'soft':
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0,
                                   atol=1e-4)
    unit1 = ours.layer1[0].units[1].conv1.weight
    with torch.no_grad():
        unit1.add_(1.0)
    ours.init_weights()
    assert torch.equal(unit1, ours.layer1[0].units[0].conv1.weight + 1.0)


def test_copy_unit_init_of_swin_and_bad_value():
    ours = initialised(
        LegoSwinTransformer(**SWIN, num_units=2, tasks=['a'],
                            unit_init='copy'))
    first, second = unit_states(ours)
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, rtol=0, atol=0,
                                   msg=key)
    with pytest.raises(ValueError, match="unit_init must be one of"):
        LegoResNet(**SLIM, num_units=2, tasks=['a'], unit_init='copies')


def classifier(backbone, num_classes=1000):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes,
                      in_channels=512,
                      loss=dict(type='CrossEntropyLoss')))
    torch.manual_seed(0)
    model.init_weights()
    return model


def init_loss(model, seed=1):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 64, 64, generator=gen)
    samples = [DataSample().set_gt_label(i * 97) for i in range(8)]
    model.train()
    if hasattr(model.backbone, 'set_task'):
        model.backbone.set_task('a')
    return float(model.loss(x, samples)['loss'])


def test_loss_at_init_equals_the_stock_backbone():
    """The issue's symptom: with the residual zero-init lost, a classifier
    on the lego backbone started at a loss of ~36 instead of ~ln(1000)."""
    stock = init_loss(classifier(dict(type='mmdet.ResNet', **SLIM)))
    static = init_loss(classifier(LegoResNet(**SLIM)))
    dynamic = init_loss(
        classifier(LegoResNet(**SLIM, num_units=2, tasks=['a'])))
    assert static == pytest.approx(stock, abs=1e-5)
    assert abs(stock - math.log(1000)) < 1.0
    assert abs(dynamic - math.log(1000)) < 1.0


def save(path, state, prefix='backbone.'):
    torch.save(dict(state_dict={prefix + k: v for k, v in state.items()}),
               path)
    return str(path)


def test_pretrained_init_cfg_loads_a_plain_checkpoint_into_every_unit(
        tmp_path):
    torch.manual_seed(3)
    ref = MMDetResNet(**SLIM)
    for p in ref.parameters():
        nn.init.normal_(p)
    file = save(tmp_path / 'plain.pth', ref.state_dict())
    ours = initialised(
        LegoResNet(**SLIM, num_units=2, tasks=['a'],
                   init_cfg=dict(type='Pretrained', checkpoint=file,
                                 prefix='backbone.')))
    for state in unit_states(ours):
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    swin = MMDetSwin(**SWIN)
    file = save(tmp_path / 'swin.pth', swin.state_dict())
    lego_swin = initialised(LegoSwinTransformer(
        **SWIN, num_units=2, tasks=['a'],
        init_cfg=dict(type='Pretrained', checkpoint=file)))
    for state in unit_states(lego_swin):
        torch.testing.assert_close(state['stages.0.blocks.0.ffn.layers.1.weight'],
                                   swin.state_dict()[
                                       'stages.0.blocks.0.ffn.layers.1.weight'])


def test_pretrained_init_cfg_loads_a_lego_checkpoint(tmp_path):
    src = initialised(LegoResNet(**SLIM, num_units=2, tasks=['a']), seed=5)
    with torch.no_grad():
        src.controller.logits['a'].normal_()
    file = save(tmp_path / 'lego.pth', src.state_dict())
    ours = initialised(LegoResNet(
        **SLIM, num_units=2, tasks=['a'],
        init_cfg=dict(type='Pretrained', checkpoint=file)))
    for key, value in src.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0,
                                   atol=0)


def test_pretrained_init_cfg_that_does_not_fit_fails_loudly(tmp_path):
    wide = save(tmp_path / 'wide.pth', MMDetResNet(depth=50).state_dict())
    model = LegoResNet(**SLIM, num_units=2, tasks=['a'],
                       init_cfg=dict(type='Pretrained', checkpoint=wide))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='wide.pth.*shape mismatch'):
        model.init_weights()
    after = model.state_dict()
    # nothing of the checkpoint was loaded
    assert all(torch.equal(before[k], after[k]) for k in before)
    other = save(tmp_path / 'other.pth', {'head.fc.weight': torch.ones(2)},
                 prefix='')
    model = LegoResNet(**SLIM, init_cfg=dict(type='Pretrained',
                                             checkpoint=other))
    with pytest.raises(KeyError, match='other.pth'):
        model.init_weights()
