# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
import torchvision
from mmdet.models.backbones import ResNet as MMDetResNet
from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from mmseg.models.backbones import ResNet as MMSegResNet
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c

from gppf_mm.models.backbones import LegoResNet

SLIM = dict(depth=50, base_channels=16)


def lego(**kwargs):
    torch.manual_seed(0)
    cfg = dict(SLIM)
    cfg.update(kwargs)
    return LegoResNet(**cfg)


# ------------------------------------------------------------ bad input
def test_bad_arguments():
    with pytest.raises(ValueError, match='num_units must be an int >= 1'):
        LegoResNet(depth=50, num_units=0)
    with pytest.raises(ValueError, match='needs the list of task names'):
        LegoResNet(depth=50, base_channels=8, num_units=2)
    with pytest.raises(KeyError, match='invalid depth 42'):
        LegoResNet(depth=42)
    with pytest.raises(ValueError, match='does not support dcn'):
        LegoResNet(depth=50, dcn=dict(type='DCNv2'))


def test_unknown_task_and_channels():
    model = lego(num_units=2, tasks=['coco', 'ade20k'])
    with pytest.raises(KeyError, match=r"unknown task 'voc'.*\['coco', "
                       r"'ade20k'\]"):
        model.set_task('voc')
    with pytest.raises(RuntimeError, match='no task is set'):
        model(torch.rand(1, 3, 32, 32))
    model.set_task('coco')
    with pytest.raises(ValueError, match=r'expects input of shape \(N, 3, '
                       r'H, W\), got \(1, 4, 32, 32\)'):
        model(torch.rand(1, 4, 32, 32))


# ------------------------------------------------------------ structure
def test_structure():
    model = lego(num_units=3, tasks=['a', 'b'])
    assert len(model.lego_layer_names) == 17
    assert model.lego_layer_display_names()[:2] == ['Stem', 'Res2.0']
    assert model.lego_layer_display_names()[-1] == 'Res5.2'
    assert all(
        len(m.units) == 3 for n, m in model.named_modules()
        if n in model.lego_layer_names)
    # units have separate weights
    u0 = model.layer1[0].units[0].conv1.weight
    u1 = model.layer1[0].units[1].conv1.weight
    assert u0.data_ptr() != u1.data_ptr()
    assert model.controller.logits['a'].shape == (17, 3)
    assert model.selection_probabilities().shape == (2, 17, 3)
    assert 'Res5.2' in model.probability_table()


def test_frozen_stages_and_norm_eval():
    model = lego(num_units=2, tasks=['a'], frozen_stages=1, norm_eval=True)
    model.train()
    for unit in model.stem_layer.units:
        assert all(not p.requires_grad for p in unit.parameters())
    for block in model.layer1:
        assert all(not p.requires_grad for p in block.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)


# ------------------------------------------------------ static = mmdet
def test_static_equals_mmdet_resnet50_full_width():
    torch.manual_seed(0)
    ref = MMDetResNet(depth=50, norm_eval=False)
    model = LegoResNet(depth=50, norm_eval=False)
    assert model.controller is None
    model.load_state_dict(model.expand_plain_state_dict(ref.state_dict()))
    x = torch.rand(2, 3, 32, 32)
    for mode in ('eval', 'train'):
        getattr(ref, mode)()
        getattr(model, mode)()
        with torch.no_grad():
            for a, b in zip(model(x), ref(x)):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ------------------------------------------------------------ extraction
@pytest.mark.parametrize('reference', [
    lambda: MMDetResNet(**SLIM),
    lambda: MMSegResNet(stem_channels=16, **SLIM),
    lambda: MMPretrainResNet(
        depth=50, base_channels=16, stem_channels=16,
        out_indices=(0, 1, 2, 3)),
])
def test_extracted_path_loads_into_upstream(reference):
    model = lego(num_units=3, tasks=['a', 'b'])
    with torch.no_grad():
        model.controller.logits['b'].normal_()
    path = model.resolve_path(task='b')
    assert len(path) == 17 and len(set(path)) > 1
    plain = reference()
    plain.load_state_dict(model.extract_path(task='b'), strict=True)
    model.eval()
    plain.eval()
    model.set_task('b')
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = model(x)
        theirs = plain(x)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_explicit_path_and_deep_stem():
    model = lego(num_units=2, tasks=['a'], deep_stem=True)
    path = [1] * 17
    plain = MMSegResNetV1c(depth=50, base_channels=16, stem_channels=16)
    plain.load_state_dict(model.extract_path(path=path), strict=True)
    model.eval()
    plain.eval()
    with torch.no_grad():
        model.set_task('a')
        # an explicit path: route the lego network along it too
        model.controller.logits['a'].zero_()
        model.controller.logits['a'][:, 1] = 1.0
        x = torch.rand(1, 3, 32, 32)
        for a, b in zip(model(x), plain(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='path has 3 entries'):
        model.extract_path(path=[0, 1, 0])
    with pytest.raises(ValueError, match=r'unit indices \[2\] out of range'):
        model.extract_path(path=[2] + [0] * 16)


# ------------------------------------------------------------ routing
def test_soft_mode_gradients_reach_every_unit_and_logits():
    model = lego(num_units=2, tasks=['a', 'b'], routing_mode='soft',
                 norm_eval=False)
    model.train()
    model.set_task('a')
    sum(o.sum() for o in model(torch.rand(2, 3, 32, 32))).backward()
    for name in model.lego_layer_names:
        layer = model.get_submodule(name)
        for unit in layer.units:
            assert any(p.grad is not None and p.grad.abs().sum() > 0
                       for p in unit.parameters())
    assert model.controller.logits['a'].grad.abs().sum() > 0
    assert model.controller.logits['b'].grad is None


def test_hard_mode_runs_one_unit_per_layer():
    model = lego(num_units=3, tasks=['a'], routing_mode='hard',
                 norm_eval=False)
    model.train()
    model.set_task('a')
    calls = {}
    for name in model.lego_layer_names:
        for k, unit in enumerate(model.get_submodule(name).units):
            unit.register_forward_hook(
                lambda m, i, o, key=(name, k): calls.__setitem__(
                    key, calls.get(key, 0) + 1))
    sum(o.sum() for o in model(torch.rand(2, 3, 32, 32))).backward()
    per_layer = {}
    for (name, _), n in calls.items():
        per_layer[name] = per_layer.get(name, 0) + n
    assert per_layer == {name: 1 for name in model.lego_layer_names}
    grad = model.controller.logits['a'].grad
    assert grad is not None and (grad.abs().sum(dim=1) > 0).all()


def test_argmax_mode_matches_extracted_path_in_training():
    model = lego(num_units=2, tasks=['a'], routing_mode='argmax',
                 norm_eval=False)
    with torch.no_grad():
        model.controller.logits['a'].normal_()
    plain = MMDetResNet(norm_eval=False, **SLIM)
    plain.load_state_dict(model.extract_path(task='a'))
    model.train()
    plain.train()
    model.set_task('a')
    x = torch.rand(2, 3, 32, 32)
    for a, b in zip(model(x), plain(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ------------------------------------------------------------ init
def _tv_checkpoint(tmp_path):
    torch.manual_seed(3)
    tv = torchvision.models.resnet50(weights=None)
    path = tmp_path / 'tv.pth'
    torch.save(tv.state_dict(), path)
    return str(path), tv.state_dict()


def test_init_from_torchvision_checkpoint(tmp_path):
    path, src = _tv_checkpoint(tmp_path)
    model = LegoResNet(
        depth=50, num_units=2, tasks=['a'],
        init_cfg=dict(type='LegoPretrained', checkpoint=path))
    model.init_weights()
    for k in range(2):
        torch.testing.assert_close(model.stem_layer.units[k].conv1.weight,
                                   src['conv1.weight'])
        torch.testing.assert_close(
            model.layer4[2].units[k].bn3.running_var,
            src['layer4.2.bn3.running_var'])
        torch.testing.assert_close(
            model.layer3[0].units[k].downsample[0].weight,
            src['layer3.0.downsample.0.weight'])


def test_init_from_mmpretrain_checkpoint(tmp_path):
    torch.manual_seed(4)
    src = MMPretrainResNet(depth=50, base_channels=16, stem_channels=16)
    path = tmp_path / 'mmpretrain.pth'
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(3, 2048)
    torch.save(dict(state_dict=state, meta=dict()), path)
    model = lego(num_units=2, tasks=['a'],
                 init_cfg=dict(type='LegoPretrained', checkpoint=str(path)))
    model.init_weights()
    for k in range(2):
        torch.testing.assert_close(model.layer2[1].units[k].conv2.weight,
                                   src.layer2[1].conv2.weight)


def test_mismatched_checkpoint_changes_nothing(tmp_path):
    path, _ = _tv_checkpoint(tmp_path)  # full width, model is slim
    model = lego(num_units=2, tasks=['a'])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from gppf_mm.models.backbones import load_lego_pretrained
    with pytest.raises(ValueError, match=r"'conv1.weight' has shape"):
        load_lego_pretrained(model, path)
    r18 = tmp_path / 'r18.pth'
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), r18)
    full = LegoResNet(depth=50, num_units=1)
    with pytest.raises((KeyError, ValueError), match='does not match|shape'):
        load_lego_pretrained(full, str(r18))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
