# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
from mmdet.models.backbones import SwinTransformer as MMDetSwin
from mmpretrain.models.backbones import SwinTransformer as MMPretrainSwin
from mmseg.models.backbones import SwinTransformer as MMSegSwin

from gppf_mm.models.backbones import LegoSwinTransformer
from gppf_mm.models.backbones.path_extraction import extract_path_checkpoint
from gppf_mm.models.backbones.swin_layout import (
    infer_swin_arch,
    to_mmdet_swin_layout,
)
from gppf_mm.models.routing import LegoLayer
from gppf_mm.registry import MODELS
from gppf_mm.testing import assert_outputs_equal, count_unit_calls

SLIM = dict(
    embed_dims=24,
    depths=(2, 2, 2, 2),
    num_heads=(1, 2, 3, 4),
    window_size=4,
    drop_path_rate=0.)
NAMES = ['PatchEmbed'] + [f'Stage{s}.{b}' for s in (1, 2, 3, 4)
                          for b in (0, 1)]
PLAIN = dict(mmdet=MMDetSwin, mmseg=MMSegSwin, mmpretrain=MMPretrainSwin)


def lego(**kwargs):
    torch.manual_seed(0)
    cfg = dict(SLIM)
    cfg.update(kwargs)
    return LegoSwinTransformer(**cfg)


def plain_swin(**kwargs):
    cfg = dict(SLIM)
    cfg.update(kwargs)
    return MMDetSwin(**cfg)


def randomize_(module, seed=1):
    """Random values in every float tensor (norm weights around 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                norm = name.split('.')[-2:][0].startswith('norm')
                offset = 1. if norm and name.endswith('weight') else 0.
                value.copy_(torch.randn(value.shape, generator=gen) * 0.2 +
                            offset)
    return module


def build_plain(cfg):
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    return PLAIN[cfg['type'].split('.')[0]](**kwargs)


def save_plain(path, state, **extra):
    state = {f'backbone.{k}': v for k, v in state.items()}
    state.update(extra)
    torch.save(dict(state_dict=state, meta=dict()), path)
    return str(path)


# ------------------------------------------------------------ bad input
def test_bad_arguments():
    with pytest.raises(ValueError, match='num_units must be an int >= 1, '
                       'got 0'):
        lego(num_units=0)
    with pytest.raises(ValueError, match="num_units must be an int >= 1, "
                       "got '2'"):
        lego(num_units='2')
    with pytest.raises(ValueError, match='in_channels must be an int >= 1'):
        lego(in_channels=0)
    with pytest.raises(ValueError, match='needs the list of task names'):
        lego(num_units=2)
    with pytest.raises(ValueError, match=r'strides\[0\] \(2\) must equal '
                       r'patch_size \(4\)'):
        lego(strides=(2, 2, 2, 2))
    with pytest.raises(ValueError, match='one entry per stage'):
        lego(num_heads=(1, 2, 3))
    with pytest.raises(ValueError, match=r'out_indices \[4\] out of range'):
        lego(out_indices=(0, 4))
    with pytest.raises(ValueError, match="routing mode must be one of .* "
                       "got 'sparse'"):
        lego(num_units=2, tasks=['a'], routing_mode='sparse')
    with pytest.raises(ValueError, match="supports init_cfg of the types"):
        lego(init_cfg=dict(type='Kaiming')).init_weights()


def test_bad_task_input_and_path():
    model = lego(num_units=2, tasks=['coco', 'ade20k']).eval()
    with pytest.raises(KeyError, match="unknown task 'kitti'"):
        model.set_task('kitti')
    with pytest.raises(RuntimeError, match='no task is set'):
        model(torch.rand(1, 3, 32, 32))
    model.set_task('coco')
    with pytest.raises(ValueError, match=r'expects input of shape '
                       r'\(N, 3, H, W\), got \(1, 1, 32, 32\)'):
        model(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r'got \(3, 32, 32\)'):
        model(torch.rand(3, 32, 32))
    with pytest.raises(KeyError, match="unknown task 'kitti'"):
        model.extract_path(task='kitti')
    with pytest.raises(ValueError, match="target must be one of .* got "
                       "'timm'"):
        model.extract_path(task='coco', target='timm')
    with pytest.raises(ValueError, match='path has 2 entries, the backbone '
                       'has 9 lego layers'):
        model.extract_path(path=[0, 1])
    with pytest.raises(ValueError, match=r'unit indices \[2\] out of range'):
        model.extract_path(path=[2] + [0] * 8)


# ------------------------------------------------------------ structure
def test_structure_and_registry():
    model = MODELS.build(
        dict(type='LegoSwinTransformer', num_units=2, tasks=['a', 'b'],
             **SLIM))
    assert isinstance(model, LegoSwinTransformer)
    assert model.lego_layer_names[:2] == ['patch_embed', 'stages.0.blocks.0']
    assert model.lego_layer_display_names() == NAMES
    assert model.controller.logits['a'].shape == (9, 2)
    # the patch merging layers and output norms are shared
    assert not isinstance(model.stages[0].downsample, LegoLayer)
    assert not any('units' in k for k in model.state_dict()
                   if k.startswith(('norm', 'stages.0.downsample')))
    # units of one layer are independent modules with their own weights
    block = model.stages[1].blocks[1]
    assert block.units[0] is not block.units[1]
    assert block.units[0].attn.shift_size == block.units[1].attn.shift_size \
        == 2
    assert not torch.equal(block.units[0].ffn.layers[1].weight,
                           block.units[1].ffn.layers[1].weight)
    assert 'PatchEmbed' in model.probability_table().splitlines()[0].split()
    assert model.train() is model and model.eval() is model


def test_frozen_stages():
    model = lego(num_units=2, tasks=['a'], frozen_stages=1).train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert not model.norm0.weight.requires_grad
    assert not model.stages[0].training
    assert all(p.requires_grad for p in model.stages[1].parameters())


# ------------------------------------------------ equality with upstream
@pytest.mark.parametrize('extra', [
    dict(),
    dict(use_abs_pos_embed=True, pretrain_img_size=64, patch_norm=False,
         qkv_bias=False, mlp_ratio=2, out_indices=(1, 3)),
])
def test_static_network_equals_mmdet(extra):
    theirs = randomize_(plain_swin(**extra))
    ours = lego(**extra)
    assert ours.controller is None
    ours.load_state_dict(
        ours.expand_plain_state_dict(theirs.state_dict()), strict=True)
    x = torch.rand(2, 3, 64, 64)
    theirs.train(False)
    assert_outputs_equal(ours.eval()(x), theirs(x))
    # without dropout the training forward is the same function too
    theirs.train(True)
    assert_outputs_equal(ours.train()(x), theirs(x))
    assert len(ours(x)) == len(extra.get('out_indices', range(4)))


@pytest.mark.parametrize('target', ['mmdet', 'mmseg', 'mmpretrain'])
def test_extracted_path_equals_argmax_network(target):
    model = randomize_(lego(num_units=3, tasks=['coco', 'ade20k'])).eval()
    with torch.no_grad():
        model.controller.logits['ade20k'].normal_()
    path = model.controller.path('ade20k')
    assert len(set(path)) > 1
    model.set_task('ade20k')
    x = torch.rand(1, 3, 64, 64)
    expected = model(x)

    plain = model.extract_path(task='ade20k', target=target)
    assert not any('units' in k or 'controller' in k for k in plain)
    torch.testing.assert_close(
        plain['stages.1.blocks.0.attn.w_msa.qkv.weight'],
        model.stages[1].blocks[0].units[path[3]].attn.w_msa.qkv.weight,
        rtol=0, atol=0)
    cfg = model.plain_backbone_cfg(target)
    assert cfg['type'] == f'{target}.SwinTransformer'
    upstream = build_plain(cfg)
    upstream.load_state_dict(plain, strict=True)
    upstream.train(False)
    assert_outputs_equal(expected, upstream(x))
    # an explicit path gives the same as the task's path
    again = model.extract_path(path=path, target=target)
    assert all(torch.equal(again[k], plain[k]) for k in plain)


def test_mmpretrain_needs_pad_small_map():
    """MMPretrain's default ``pad_small_map=False`` stops shifting windows
    on maps of the window's size: another function than mmdet's."""
    model = randomize_(lego()).eval()
    cfg = model.plain_backbone_cfg('mmpretrain')
    cfg['pad_small_map'] = False
    upstream = build_plain(cfg)
    upstream.load_state_dict(model.extract_path(target='mmpretrain'))
    upstream.train(False)
    x = torch.rand(1, 3, 128, 128)
    ours, theirs = model(x), upstream(x)
    assert_outputs_equal(ours[:3], theirs[:3])  # maps larger than 4
    assert not torch.allclose(ours[3], theirs[3], atol=1e-2)  # 4 x 4


def test_extract_path_checkpoint_meta():
    model = lego(num_units=2, tasks=['a', 'b'], frozen_stages=2).eval()
    ckpt = extract_path_checkpoint(model, task='b', target='mmpretrain')
    meta = ckpt['meta']
    assert meta['layers'] == NAMES and meta['path'] == [0] * 9
    assert meta['backbone_cfg']['frozen_stages'] == 1
    assert meta['backbone_cfg']['arch']['depths'] == [2, 2, 2, 2]
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])


# ------------------------------------------------------------- routing
def test_soft_mode_reaches_every_unit_and_logit():
    model = lego(num_units=2, tasks=['a'], routing_mode='soft').train()
    model.set_task('a')
    calls = count_unit_calls(model)
    outs = model(torch.rand(1, 3, 32, 32))
    sum(o.square().mean() for o in outs).backward()
    assert calls == {(n, k): 1 for n in model.lego_layer_names
                     for k in (0, 1)}
    for name in model.lego_layer_names:
        for k, unit in enumerate(model.get_submodule(name).units):
            for pname, p in unit.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, \
                    f'{name}.units.{k}.{pname} got no gradient'
    grad = model.controller.logits['a'].grad
    assert grad.shape == (9, 2) and bool((grad.abs().sum(-1) > 0).all())


def test_hard_mode_runs_one_unit_per_layer():
    model = lego(num_units=3, tasks=['a'], routing_mode='hard').train()
    model.set_task('a')
    model.controller.manual_seed(0)
    calls = count_unit_calls(model)
    outs = model(torch.rand(1, 3, 32, 32))
    assert sorted(n for n, _ in calls) == sorted(model.lego_layer_names)
    assert set(calls.values()) == {1}
    sum(o.mean() for o in outs).backward()
    grad = model.controller.logits['a'].grad
    assert bool((grad.abs().sum(-1) > 0).all())
    # eval: the argmax path only
    calls.clear()
    with torch.no_grad():
        model.controller.logits['a'].normal_()
    model.eval()(torch.rand(1, 3, 32, 32))
    assert sorted(calls) == sorted(
        zip(model.lego_layer_names, model.controller.path('a')))


def test_with_cp_gives_the_same_gradients():
    grads = []
    for with_cp in (False, True):
        model = lego(num_units=2, tasks=['a'], with_cp=with_cp).train()
        model.set_task('a')
        model.controller.manual_seed(3)
        x = torch.rand(1, 3, 32, 32, requires_grad=True)
        sum(o.mean() for o in model(x)).backward()
        grads.append((model.controller.logits['a'].grad,
                      model.stages[2].blocks[1].units[1].norm2.weight.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------- initialisation
def test_lego_pretrained_copies_every_unit(tmp_path):
    theirs = randomize_(plain_swin(out_indices=(3, )))
    file = save_plain(tmp_path / 'swin_in1k.pth', theirs.state_dict(),
                      **{'head.fc.weight': torch.zeros(10, 192)})
    model = lego(num_units=2, tasks=['a', 'b'],
                 init_cfg=dict(type='LegoPretrained', checkpoint=file))
    model.init_weights()
    plain = theirs.state_dict()
    state = model.state_dict()
    for name in model.lego_layer_names:
        for k in (0, 1):
            prefix = f'{name}.units.{k}.'
            keys = [key for key in state if key.startswith(prefix)]
            assert keys
            for key in keys:
                assert torch.equal(state[key],
                                   plain[name + '.' + key[len(prefix):]])
    assert torch.equal(state['norm3.weight'], plain['norm3.weight'])
    # an ImageNet file has no norm0-2: they keep their init
    assert torch.equal(state['norm0.weight'], torch.ones(24))
    # norms of stages that are not outputs are left out
    narrow = lego(out_indices=(1, ))
    narrow.load_state_dict(
        narrow.expand_plain_state_dict(plain_swin().state_dict()))
    theirs.train(False)
    model.set_task('b')
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x)[3], theirs(x)[0])


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    model = lego(num_units=2, tasks=['a'])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wide = save_plain(tmp_path / 'wide.pth',
                      plain_swin(embed_dims=32).state_dict())
    deep = save_plain(tmp_path / 'deep.pth',
                      plain_swin(depths=(2, 2, 1, 2)).state_dict())
    extra = save_plain(tmp_path / 'extra.pth',
                       plain_swin().state_dict(),
                       **{'backbone.neck.weight': torch.zeros(1)})
    cases = [
        (wide, ValueError, r"shape mismatch.*'patch_embed.projection.weight'"
         r': \(32, 3, 4, 4\) in the checkpoint, \(24, 3, 4, 4\) here'),
        (deep, KeyError, r"missing key\(s\): 'stages.2.blocks.1.norm1."
         r"weight'"),
        (extra, KeyError, r"1 unexpected key\(s\): 'neck.weight'"),
    ]
    for file, error, message in cases:
        model.init_cfg = dict(type='LegoPretrained', checkpoint=file)
        with pytest.raises(error, match=message):
            model.init_weights()
    assert all(torch.equal(v, before[k])
               for k, v in model.state_dict().items())
    model.init_cfg = dict(type='LegoPretrained',
                          checkpoint=str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        model.init_weights()


def official_layout(state):
    """A Swin state dict renamed to the official (Microsoft) layout."""
    renames = [('stages.', 'layers.'), ('attn.w_msa.', 'attn.'),
               ('ffn.layers.0.0.', 'mlp.fc1.'), ('ffn.layers.1.', 'mlp.fc2.'),
               ('patch_embed.projection.', 'patch_embed.proj.'),
               ('norm3.', 'norm.')]
    out = {}
    for key, value in state.items():
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


def test_lego_pretrained_reads_the_official_layout(tmp_path):
    official = official_layout(
        randomize_(plain_swin(out_indices=(3, ))).state_dict())
    official['layers.0.blocks.1.attn_mask'] = torch.zeros(16, 16, 16)
    official['head.weight'] = torch.zeros(1000, 192)
    del official['layers.0.blocks.0.attn.relative_position_index']
    file = str(tmp_path / 'swin_official.pth')
    torch.save(official, file)

    arch = infer_swin_arch(official)
    assert (arch['depths'], arch['num_heads'], arch['window_size'],
            arch['embed_dims'], arch['mlp_ratio']) == ((2, 2, 2, 2),
                                                       (1, 2, 3, 4), 4, 24, 4)
    model = lego(num_units=2, tasks=['a'],
                 init_cfg=dict(type='LegoPretrained', checkpoint=file))
    model.init_weights()
    state = model.state_dict()
    for k in (0, 1):
        assert torch.equal(
            state[f'stages.1.blocks.0.units.{k}.ffn.layers.0.0.weight'],
            official['layers.1.blocks.0.mlp.fc1.weight'])
        assert torch.equal(state[f'patch_embed.units.{k}.projection.weight'],
                           official['patch_embed.proj.weight'])
    assert torch.equal(state['norm3.bias'], official['norm.bias'])
    # mmdet's converter reorders the patch merging weights
    merged = to_mmdet_swin_layout(official)
    assert torch.equal(state['stages.0.downsample.reduction.weight'],
                       merged['stages.0.downsample.reduction.weight'])
    assert not torch.equal(merged['stages.0.downsample.reduction.weight'],
                           official['layers.0.downsample.reduction.weight'])
