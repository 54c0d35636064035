# Copyright (c) gppf_mm contributors. All rights reserved.
"""Models of MMDet, MMSeg and MMPretrain build from gppf_mm-scoped configs
and equal the same model built in their own library's scope."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gppf_mm.registry import MODELS
from gppf_mm.utils import register_all_modules, resolve_scopes, with_scope

CONFIGS = osp.join(osp.dirname(__file__), '..', 'data', 'configs')


@pytest.fixture(autouse=True)
def gppf_scope():
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        yield


def _upstream_build(cfg: dict, scope: str):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    cfg = dict(cfg)
    cfg.pop('_scope_', None)
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg)


@pytest.mark.parametrize('name,scope,cls_name', [
    ('faster-rcnn_slim-r50_gppf-scope.py', 'mmdet', 'FasterRCNN'),
    ('fcn_slim-r50-d8_gppf-scope.py', 'mmseg', 'EncoderDecoder'),
    ('resnet18-slim_gppf-scope.py', 'mmpretrain', 'ImageClassifier'),
])
def test_upstream_model_from_gppf_config(name, scope, cls_name):
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    assert cfg.default_scope == 'gppf_mm'
    resolve_scopes(cfg)
    assert cfg.model['_scope_'] == scope
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == cls_name
    assert type(model).__module__.startswith(scope)
    # the same model built by its own library: same structure, same output
    reference = _upstream_build(cfg.model, scope)
    reference.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    reference.eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        if scope == 'mmdet':  # tensor mode of a detector needs samples
            out = model.rpn_head(model.extract_feat(x))
            ref = reference.rpn_head(reference.extract_feat(x))
        else:
            out, ref = model(x, mode='tensor'), reference(x, mode='tensor')
    flat, flat_ref = _flatten(out), _flatten(ref)
    assert len(flat) == len(flat_ref) > 0
    for a, b in zip(flat, flat_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _flatten(item)]


def test_without_scope_the_pitfall_is_real():
    # A hand-written (not inherited) config naming an upstream type: its
    # children are looked up in the gppf_mm scope unless `_scope_` is set.
    model = dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(type='ResNet', depth=18, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64))
    with pytest.raises(KeyError, match='ClsDataPreprocessor'):
        MODELS.build(model)
    built = MODELS.build(with_scope(model))
    assert type(built.backbone).__module__.startswith('mmpretrain')
    assert built.head.fc.out_features == 3


def test_with_scope_forms():
    assert with_scope(dict(type='mmdet.MaskRCNN')) == dict(
        type='MaskRCNN', _scope_='mmdet')
    assert with_scope(dict(type='LegoResNet')) == dict(type='LegoResNet')
    assert with_scope(dict(type='X', _scope_='mmseg')) == dict(
        type='X', _scope_='mmseg')
