# Copyright (c) gppf_mm contributors. All rights reserved.
import math

import pytest
import torch
import torchvision
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.models.necks import FPN
from mmengine.model import initialize
from mmengine.registry import DefaultScope
from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from mmpretrain.models.backbones import ResNetV1d as MMPretrainResNetV1d
from mmseg.models.backbones import ResNet as MMSegResNet
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c

from gppf_mm.models.backbones import LegoResNet, load_lego_pretrained
from gppf_mm.models.backbones.lego_resnet import (
    infer_resnet_arch,
    resnet_to_lego_state_dict,
)

SLIM = dict(depth=50, base_channels=16, stem_channels=16)
NAMES = ['Stem'] + [f'Res{s}.{b}' for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3))
                    for b in range(n)]


def lego(**kwargs):
    torch.manual_seed(0)
    cfg = dict(SLIM)
    cfg.update(kwargs)
    return LegoResNet(**cfg)


def randomize(model, task):
    with torch.no_grad():
        model.controller.logits[task].normal_()


def assert_outputs_equal(ours, theirs, atol=1e-5):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


def unit_calls(model):
    """Count forward calls per (layer, unit) with hooks."""
    calls = {}
    for name in model.lego_layer_names:
        for k, unit in enumerate(model.get_submodule(name).units):
            unit.register_forward_hook(
                lambda m, i, o, key=(name, k): calls.__setitem__(
                    key, calls.get(key, 0) + 1))
    return calls


# ------------------------------------------------------------ bad input
def test_bad_arguments():
    with pytest.raises(ValueError, match='num_units must be an int >= 1, '
                       'got 0'):
        LegoResNet(depth=50, num_units=0)
    with pytest.raises(ValueError, match="num_units must be an int >= 1, "
                       "got '2'"):
        LegoResNet(depth=50, num_units='2')
    with pytest.raises(ValueError, match='in_channels must be an int >= 1'):
        LegoResNet(depth=50, in_channels=0)
    with pytest.raises(ValueError, match='needs the list of task names'):
        LegoResNet(depth=18, base_channels=8, num_units=2)
    with pytest.raises(KeyError, match='invalid depth 42'):
        LegoResNet(depth=42)
    with pytest.raises(ValueError, match='does not support dcn'):
        LegoResNet(depth=50, dcn=dict(type='DCNv2'))
    with pytest.raises(ValueError, match="routing mode must be one of .* "
                       "got 'sparse'"):
        LegoResNet(depth=18, base_channels=8, num_units=2, tasks=['a'],
                   routing_mode='sparse')
    with pytest.raises(ValueError, match='tau must be > 0, got -1'):
        LegoResNet(depth=18, base_channels=8, num_units=2, tasks=['a'],
                   tau=-1)


def test_unknown_task_and_bad_input():
    model = lego(num_units=2, tasks=['coco', 'ade20k'])
    with pytest.raises(KeyError, match=r"unknown task 'voc'.*\['coco', "
                       r"'ade20k'\]"):
        model.set_task('voc')
    with pytest.raises(RuntimeError, match=r"no task is set.*\['coco', "
                       r"'ade20k'\]"):
        model(torch.rand(1, 3, 32, 32))
    model.set_task('coco')
    with pytest.raises(ValueError, match=r'expects input of shape \(N, 3, '
                       r'H, W\), got \(1, 4, 32, 32\)'):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r'got \(3, 32, 32\)'):
        model(torch.rand(3, 32, 32))
    with pytest.raises(KeyError, match=r"unknown task 'voc'"):
        model.extract_path(task='voc')
    with pytest.raises(ValueError, match="target must be one of .* got "
                       "'timm'"):
        model.extract_path(task='coco', target='timm')
    with pytest.raises(ValueError, match='path has 3 entries, the backbone '
                       'has 17 lego layers'):
        model.extract_path(path=[0, 1, 0])
    with pytest.raises(ValueError, match=r'unit indices \[2\] out of range '
                       'for num_units=2'):
        model.extract_path(path=[2] + [0] * 16)


def test_mismatched_checkpoint_names_keys_and_changes_nothing(tmp_path):
    model = lego(num_units=2, tasks=['a'])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_lego_pretrained(model, str(tmp_path / 'nope.pth'))
    # full-width torchvision ResNet-50 into a slim LegoResNet-50
    wide = tmp_path / 'r50.pth'
    torch.save(torchvision.models.resnet50().state_dict(), wide)
    with pytest.raises(ValueError, match=r"shape mismatch.*'conv1.weight': "
                       r'\(64, 3, 7, 7\) in the checkpoint, \(16, 3, 7, 7\) '
                       'here'):
        load_lego_pretrained(model, str(wide))
    # a ResNet-18 (BasicBlock) into a ResNet-50
    r18 = tmp_path / 'r18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), r18)
    with pytest.raises((KeyError, ValueError),
                       match=r"missing key.*'layer1.0.conv3.weight'"):
        load_lego_pretrained(lego(), str(r18))
    # one key dropped, one extra
    state = MMDetResNet(**SLIM).state_dict()
    del state['layer3.1.bn2.running_var']
    state['layer9.0.conv1.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"1 missing key\(s\): "
                       r"'layer3.1.bn2.running_var'; 1 unexpected key\(s\): "
                       r"'layer9.0.conv1.weight'"):
        model.expand_plain_state_dict(state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------ structure
def test_structure_and_selection_readout():
    model = lego(num_units=3, tasks=['a', 'b'])
    assert len(model.lego_layer_names) == 17
    assert model.lego_layer_names[:3] == ['stem_layer', 'layer1.0',
                                          'layer1.1']
    assert model.lego_layer_display_names() == NAMES
    for name in model.lego_layer_names:
        layer = model.get_submodule(name)
        assert len(layer.units) == 3
        assert layer.with_cp is False
        # units have separate, differently initialised weights
        w = [next(u.parameters()) for u in layer.units]
        assert w[0].data_ptr() != w[1].data_ptr()
        assert not torch.equal(w[0], w[1])
    assert type(model.layer1[0].units[0]).__name__ == 'Bottleneck'
    assert model.layer1[0].units[0].with_cp is False
    assert model.controller.logits['a'].shape == (17, 3)

    with torch.no_grad():
        model.controller.logits['b'][0] = torch.tensor([math.log(0.2),
                                                        math.log(0.5),
                                                        math.log(0.3)])
    probs = model.selection_probabilities()
    assert probs.shape == (2, 17, 3)
    torch.testing.assert_close(probs[1, 0], torch.tensor([0.2, 0.5, 0.3]))
    torch.testing.assert_close(probs[0], torch.full((17, 3), 1 / 3))
    lines = model.probability_table().splitlines()
    assert lines[0].split() == NAMES
    assert lines[2].split()[:2] == ['b', '1:0.50']
    assert lines[1].split()[1:] == ['0:0.33'] * 17


def test_static_network_and_basic_block():
    static = LegoResNet(depth=18, base_channels=8)
    assert static.controller is None
    assert static.selection_probabilities().shape == (1, 9, 1)
    assert static.lego_layer_display_names() == [
        'Stem', 'Res2.0', 'Res2.1', 'Res3.0', 'Res3.1', 'Res4.0', 'Res4.1',
        'Res5.0', 'Res5.1'
    ]
    assert 'static' in static.probability_table()
    outs = static.eval()(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 8), (1, 16, 4, 4),
                                              (1, 32, 2, 2), (1, 64, 1, 1)]


def test_frozen_stages_and_norm_eval():
    model = lego(num_units=2, tasks=['a'], frozen_stages=1, norm_eval=True)
    ref = MMDetResNet(frozen_stages=1, norm_eval=True, **SLIM)
    assert model.train() is model
    ref.train()
    for unit in model.stem_layer.units:
        assert all(not p.requires_grad for p in unit.parameters())
        assert not unit.training
    for block in model.layer1:
        assert all(not p.requires_grad for p in block.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert model.controller.logits['a'].requires_grad
    frozen = sum(not p.requires_grad for p in model.parameters())
    ref_frozen = sum(not p.requires_grad for p in ref.parameters())
    assert frozen == 2 * ref_frozen
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.layer3[0].units[1].conv1.training  # convs still train

    free = lego(num_units=2, tasks=['a'], frozen_stages=-1, norm_eval=False)
    free.train()
    assert all(m.training for m in free.modules())
    assert all(p.requires_grad for p in free.parameters())


# ------------------------------------------------------ static = mmdet
def test_static_equals_mmdet_resnet50_full_width():
    torch.manual_seed(0)
    ref = MMDetResNet(depth=50, norm_eval=False)
    model = LegoResNet(depth=50, norm_eval=False)
    assert model.controller is None
    model.load_state_dict(model.expand_plain_state_dict(ref.state_dict()))
    x = torch.rand(2, 3, 32, 32)
    ref.train()
    model.train()
    assert_outputs_equal(model(x), ref(x))
    ref.eval()
    model.eval()
    with torch.no_grad():
        outs = model(x[:1])
        assert [tuple(o.shape) for o in outs] == [(1, 256, 8, 8),
                                                  (1, 512, 4, 4),
                                                  (1, 1024, 2, 2),
                                                  (1, 2048, 1, 1)]
        assert_outputs_equal(outs, ref(x[:1]))


@pytest.mark.filterwarnings('ignore:torch.utils.checkpoint')
@pytest.mark.parametrize('variant', [
    dict(),
    dict(deep_stem=True, avg_down=True),
    dict(with_cp=True, out_indices=(1, 3), zero_init_residual=False),
])
def test_static_slim_equals_mmdet_with_gradients(variant):
    torch.manual_seed(1)
    ref = MMDetResNet(norm_eval=False, **SLIM, **variant)
    ref.init_weights()
    model = LegoResNet(norm_eval=False, **SLIM, **variant)
    model.load_state_dict(model.expand_plain_state_dict(ref.state_dict()))
    x = torch.rand(2, 3, 32, 32)
    ours, theirs = model(x), ref(x)
    assert_outputs_equal(ours, theirs)
    sum(o.square().mean() for o in ours).backward()
    sum(o.square().mean() for o in theirs).backward()
    torch.testing.assert_close(model.layer2[0].units[0].conv2.weight.grad,
                               ref.layer2[0].conv2.weight.grad)
    stem = model.stem_layer.units[0]
    ref_stem = ref.stem if ref.deep_stem else ref.conv1
    ours_stem = stem.stem if ref.deep_stem else stem.conv1
    torch.testing.assert_close(
        next(ours_stem.parameters()).grad,
        next(ref_stem.parameters()).grad)


# ------------------------------------------------------------ extraction
@pytest.mark.parametrize('target,reference', [
    ('mmdet', lambda: MMDetResNet(**SLIM)),
    ('mmseg', lambda: MMSegResNet(**SLIM)),
    ('mmpretrain',
     lambda: MMPretrainResNet(out_indices=(0, 1, 2, 3), **SLIM)),
])
def test_extracted_path_loads_into_upstream(target, reference):
    model = lego(num_units=3, tasks=['a', 'b'])
    randomize(model, 'b')
    path = model.resolve_path(task='b')
    assert len(path) == 17 and len(set(path)) > 1
    plain = reference()
    plain.load_state_dict(
        model.extract_path(task='b', target=target), strict=True)
    model.eval()
    plain.eval()
    model.set_task('b')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = model(x)
        assert [tuple(o.shape) for o in ours] == [(1, 64, 16, 16),
                                                  (1, 128, 8, 8),
                                                  (1, 256, 4, 4),
                                                  (1, 512, 2, 2)]
        assert_outputs_equal(ours, plain(x))


@pytest.mark.parametrize('target,reference', [
    ('mmseg', lambda: MMSegResNetV1c(**SLIM)),
    ('mmpretrain',
     lambda: MMPretrainResNetV1d(out_indices=(0, 1, 2, 3), **SLIM)),
])
def test_explicit_path_with_deep_stem(target, reference):
    avg_down = target == 'mmpretrain'  # V1d: deep stem and avg_down
    model = lego(num_units=2, tasks=['a'], deep_stem=True,
                 avg_down=avg_down)
    path = [1, 0] * 8 + [1]
    plain = reference()
    plain.load_state_dict(
        model.extract_path(path=path, target=target), strict=True)
    assert model.plain_backbone_cfg(target)['type'] == f'{target}.ResNet'
    assert model.plain_backbone_cfg(target)['deep_stem'] is True
    with torch.no_grad():
        model.controller.logits['a'].copy_(
            torch.nn.functional.one_hot(torch.tensor(path), 2).float())
    assert model.resolve_path(task='a') == path
    model.eval()
    plain.eval()
    model.set_task('a')
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert_outputs_equal(model(x), plain(x))


def test_argmax_mode_matches_extracted_path_in_training():
    model = lego(num_units=2, tasks=['a'], routing_mode='argmax',
                 norm_eval=False)
    randomize(model, 'a')
    plain = MMDetResNet(norm_eval=False, **SLIM)
    plain.load_state_dict(model.extract_path(task='a'), strict=True)
    model.train()
    plain.train()
    model.set_task('a')
    calls = unit_calls(model)
    x = torch.rand(2, 3, 32, 32)
    assert_outputs_equal(model(x), plain(x))
    path = model.resolve_path(task='a')
    assert calls == {(n, k): 1 for n, k in zip(model.lego_layer_names, path)}


def test_upstream_neck_consumes_outputs():
    model = lego(num_units=2, tasks=['a']).eval()
    model.set_task('a')
    neck = FPN(in_channels=[64, 128, 256, 512], out_channels=8, num_outs=5)
    with torch.no_grad():
        outs = neck(model(torch.rand(1, 3, 64, 64)))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 16, 16), (1, 8, 8, 8),
                                              (1, 8, 4, 4), (1, 8, 2, 2),
                                              (1, 8, 1, 1)]


# ------------------------------------------------------------ routing
def test_soft_mode_gradients_reach_every_unit_and_logits():
    model = lego(num_units=2, tasks=['a', 'b'], routing_mode='soft',
                 norm_eval=False)
    model.train()
    model.set_task('a')
    calls = unit_calls(model)
    sum(o.sum() for o in model(torch.rand(2, 3, 32, 32))).backward()
    assert set(calls.values()) == {1} and len(calls) == 34
    for name in model.lego_layer_names:
        for unit in model.get_submodule(name).units:
            assert all(p.grad is not None and p.grad.abs().sum() > 0
                       for p in unit.parameters())
    grad = model.controller.logits['a'].grad
    assert grad is not None and (grad.abs().sum(dim=1) > 0).all()
    assert model.controller.logits['b'].grad is None


@pytest.mark.parametrize('with_cp', [False, True])
def test_hard_mode_runs_one_unit_per_layer(with_cp):
    model = lego(num_units=3, tasks=['a'], routing_mode='hard',
                 norm_eval=False, with_cp=with_cp)
    randomize(model, 'a')
    model.train()
    model.set_task('a')
    calls = unit_calls(model)
    model.controller.manual_seed(5)
    x = torch.rand(2, 3, 32, 32)
    outs = model(x)
    per_layer = {}
    for (name, _), n in calls.items():
        per_layer[name] = per_layer.get(name, 0) + n
    assert per_layer == {name: 1 for name in model.lego_layer_names}
    chosen = [k for _, k in sorted(
        calls, key=lambda key: model.lego_layer_names.index(key[0]))]
    # the forward value is the plain network of the sampled path
    plain = MMDetResNet(norm_eval=False, **SLIM)
    plain.load_state_dict(model.extract_path(path=chosen), strict=True)
    assert_outputs_equal(outs, plain(x))
    sum(o.sum() for o in outs).backward()
    grad = model.controller.logits['a'].grad
    assert grad is not None and (grad.abs().sum(dim=1) > 0).all()
    for name, k in zip(model.lego_layer_names, chosen):
        units = model.get_submodule(name).units
        assert all(p.grad is not None for p in units[k].parameters())
        assert all(p.grad is None for i, u in enumerate(units) if i != k
                   for p in u.parameters())


def test_with_cp_gives_the_same_gradients():
    grads = []
    for with_cp in (False, True):
        model = lego(num_units=2, tasks=['a'], routing_mode='soft',
                     norm_eval=False, with_cp=with_cp)
        assert model.layer1[0].with_cp is with_cp
        assert model.stem_layer.with_cp is False
        model.train()
        model.set_task('a')
        model.controller.manual_seed(2)
        torch.manual_seed(3)
        sum(o.sum() for o in model(torch.rand(2, 3, 32, 32))).backward()
        grads.append((model.controller.logits['a'].grad.clone(),
                      model.layer3[1].units[1].conv2.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_seeded_sampling_is_reproducible():
    model = lego(num_units=3, tasks=['a'], routing_mode='hard',
                 norm_eval=False)
    model.train()
    model.set_task('a')
    paths = []
    for seed in (7, 7, 8):
        model.controller.manual_seed(seed)
        paths.append([r.active for r in model.lego_routings()])
    assert paths[0] == paths[1] != paths[2]


def test_use_task_context():
    model = lego(num_units=2, tasks=['a', 'b'])
    model.set_task('a')
    with model.use_task('b'):
        assert model.task == 'b'
    assert model.task == 'a'


# ------------------------------------------------------------ init
def _save_torchvision(tmp_path, **kwargs):
    torch.manual_seed(3)
    tv = torchvision.models.resnet50(**kwargs)
    path = tmp_path / 'tv.pth'
    torch.save(tv.state_dict(), path)
    return str(path), tv.state_dict()


def test_init_from_torchvision_checkpoint(tmp_path):
    path, src = _save_torchvision(tmp_path)
    model = LegoResNet(
        depth=50, num_units=2, tasks=['a'],
        init_cfg=dict(type='LegoPretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.controller.logits['a'], torch.zeros(17, 2))
    lookup = dict(model.plain_layer_prefixes())
    for key, value in model.state_dict().items():
        if key.startswith('controller.'):
            continue
        head, _, tail = key.partition('.units.')
        rest = tail.partition('.')[2]
        plain_key = f'{lookup[head]}.{rest}' if lookup[head] else rest
        assert torch.equal(value, src[plain_key]), key


def test_init_from_mmpretrain_checkpoint(tmp_path):
    torch.manual_seed(4)
    src = MMPretrainResNet(**SLIM)
    src.init_weights()
    path = tmp_path / 'mmpretrain.pth'
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(3, 64)
    torch.save(dict(state_dict=state, meta=dict()), path)
    model = lego(num_units=2, tasks=['a'], zero_init_residual=True,
                 init_cfg=[dict(type='Kaiming', layer='Conv2d'),
                           dict(type='LegoPretrained', checkpoint=str(path))])
    model.init_weights()
    for k in range(2):
        for block, ref in ((model.layer2[1], src.layer2[1]),
                           (model.layer4[0], src.layer4[0])):
            for (name, a), b in zip(block.units[k].state_dict().items(),
                                    ref.state_dict().values()):
                assert torch.equal(a, b), name
        assert torch.equal(model.stem_layer.units[k].conv1.weight,
                           src.conv1.weight)


def test_lego_pretrained_is_a_weight_initializer(tmp_path):
    src = MMPretrainResNetV1d(**SLIM)
    path = tmp_path / 'v1d.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in src.state_dict().items()}), path)
    model = lego(num_units=2, tasks=['a'], deep_stem=True, avg_down=True)
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        initialize(model, dict(type='LegoPretrained', checkpoint=str(path)))
    for k in range(2):
        unit = model.stem_layer.units[k]
        assert torch.equal(unit.stem[3].weight, src.stem[1].conv.weight)
        assert torch.equal(unit.stem[7].running_var,
                           src.stem[2].bn.running_var)
        assert torch.equal(model.layer1[0].units[k].downsample[1].weight,
                           src.layer1[0].downsample[0].weight)
        assert torch.equal(model.layer2[0].units[k].downsample[2].bias,
                           src.layer2[0].downsample[2].bias)


def test_resnet_to_lego_state_dict_infers_the_architecture():
    src = MMPretrainResNetV1d(**SLIM).state_dict()
    arch = infer_resnet_arch(src)
    assert {k: arch[k] for k in ('depth', 'base_channels', 'stem_channels',
                                 'deep_stem', 'avg_down', 'num_stages')} == \
        dict(depth=50, base_channels=16, stem_channels=16, deep_stem=True,
             avg_down=True, num_stages=4)
    assert infer_resnet_arch(
        torchvision.models.resnet18().state_dict())['depth'] == 18
    state, _ = resnet_to_lego_state_dict(src, 3)
    assert torch.equal(state['layer3.5.units.2.conv3.weight'],
                       src['layer3.5.conv3.weight'])
    assert not any(k.startswith('controller.') for k in state)
    with pytest.raises(KeyError, match=r"missing key.*'layer3.6.conv1"):
        resnet_to_lego_state_dict(src, 2, depth=101)
    with pytest.raises(KeyError, match='not a ResNet state dict'):
        infer_resnet_arch({'patch_embed.weight': torch.zeros(1)})


def test_task_given_in_the_config_of_a_plain_upstream_model():
    """A lego backbone in a stock MMPretrain classifier: ``task=`` picks the
    path, so the upstream model runs it unchanged (before: 'no task is set
    on the lego backbone' at the first forward)."""
    from gppf_mm.registry import MODELS
    from gppf_mm.utils import register_all_modules, with_scope
    register_all_modules(init_default_scope=False)
    cfg = dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(type='gppf_mm.LegoResNet', depth=18, base_channels=8,
                      num_units=2, tasks=['coco', 'ade20k'], task='ade20k',
                      out_indices=(3, )),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(type='mmpretrain.LinearClsHead', num_classes=3,
                  in_channels=64))
    with DefaultScope.overwrite_default_scope('gppf_mm'):
        model = MODELS.build(with_scope(cfg)).eval()
    assert model.backbone.task == 'ade20k'
    x = torch.rand(2, 3, 32, 32)
    out = model(x, mode='tensor')
    with model.backbone.use_task('ade20k'):
        ref = model(x, mode='tensor')
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    with model.backbone.use_task('coco'):  # use_task overrides it
        assert model.backbone.task == 'coco'
    assert model.backbone.task == 'ade20k'
    with pytest.raises(KeyError, match="unknown task 'voc'"):
        LegoResNet(depth=18, num_units=2, tasks=['coco'], task='voc')


@pytest.mark.parametrize('depth', [18, 50])
def test_contract_dilation_equals_mmseg_resnet_v1c(depth):
    """mmseg's dilated ResNetV1c (as in its DeepLab / PSPNet configs): the
    first block of a dilated stage uses half the dilation."""
    arch = dict(depth=depth, deep_stem=True, dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1), contract_dilation=True)
    model = lego(num_units=2, tasks=['a'], **arch)
    path = [1, 0] * 8 + [1] if depth == 50 else [1, 0] * 4 + [1]
    cfg = model.plain_backbone_cfg('mmseg')
    assert cfg['contract_dilation'] is True
    plain = MMSegResNetV1c(**dict(
        SLIM, **{k: v for k, v in arch.items() if k != 'deep_stem'}))
    plain.load_state_dict(
        model.extract_path(path=path, target='mmseg'), strict=True)
    with torch.no_grad():
        model.controller.logits['a'].copy_(
            torch.nn.functional.one_hot(torch.tensor(path), 2).float())
    model.eval()
    plain.eval()
    model.set_task('a')
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ours = model(x)
        assert_outputs_equal(ours, plain(x))
        # without the contraction the outputs differ
        uncontracted = lego(num_units=2, tasks=['a'], **dict(
            arch, contract_dilation=False))
        uncontracted.load_state_dict(model.state_dict())
        uncontracted.eval()
        uncontracted.set_task('a')
        assert not torch.allclose(uncontracted(x)[3], ours[3])
    with pytest.raises(ValueError, match='only has an mmseg ResNet'):
        model.plain_backbone_cfg('mmdet')
    with pytest.raises(ValueError, match='multi_grid'):
        lego(multi_grid=(1, 2, 4))
