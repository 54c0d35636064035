# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
from mmdet.models.backbones import SwinTransformer as MMDetSwin

from gppf_mm.models.backbones import LegoSwinTransformer

SLIM = dict(embed_dims=24, depths=(1, 1, 2, 1), num_heads=(1, 2, 3, 4),
            window_size=4, drop_path_rate=0.)


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('model_converters/swin_to_lego.py')


def plain_state(**kwargs):
    torch.manual_seed(0)
    model = MMDetSwin(**dict(SLIM, **kwargs))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model.state_dict()


def test_bad_input(tool, tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        tool.main([str(tmp_path / 'nothing.pth'), 'out.pth',
                   '--num-units', '2'])
    src = str(tmp_path / 'swin.pth')
    torch.save(plain_state(), src)
    with pytest.raises(ValueError, match='--num-units must be >= 1, got 0'):
        tool.main([src, str(tmp_path / 'o.pth'), '--num-units', '0'])
    broken = plain_state()
    del broken['stages.2.blocks.1.attn.w_msa.qkv.bias']
    torch.save(broken, tmp_path / 'broken.pth')
    with pytest.raises(KeyError, match=r"1 missing key\(s\): "
                       r"'stages.2.blocks.1.attn.w_msa.qkv.bias'"):
        tool.main([str(tmp_path / 'broken.pth'), str(tmp_path / 'o.pth'),
                   '--num-units', '2'])
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(2)}),
               tmp_path / 'head.pth')
    with pytest.raises(KeyError, match='holds no Swin weights'):
        tool.main([str(tmp_path / 'head.pth'), str(tmp_path / 'o.pth'),
                   '--num-units', '2'])
    assert not (tmp_path / 'o.pth').exists()


def test_official_file_to_lego(tool, tmp_path):
    """An official file (``model`` with ``layers.*``) becomes a lego
    checkpoint that initialises LegoSwinTransformer with ``Pretrained``."""
    plain = plain_state(out_indices=(3, ))
    renames = [('stages.', 'layers.'), ('attn.w_msa.', 'attn.'),
               ('ffn.layers.0.0.', 'mlp.fc1.'), ('ffn.layers.1.', 'mlp.fc2.'),
               ('patch_embed.projection.', 'patch_embed.proj.'),
               ('norm3.', 'norm.')]
    official = {}
    for key, value in plain.items():
        for old, new in renames:
            key = key.replace(old, new)
        official[key] = value
    official['head.weight'] = torch.zeros(10, 192)
    src = str(tmp_path / 'swin_official.pth')
    torch.save(dict(model=official), src)
    dst = str(tmp_path / 'out' / 'lego.pth')

    ckpt = tool.main([src, dst, '--num-units', '3', '--out-indices', '1',
                      '3'])
    arch = ckpt['meta']['arch']
    assert (arch['depths'], arch['num_heads'], arch['out_indices']) == (
        [1, 1, 2, 1], [1, 2, 3, 4], [1, 3])
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert 'backbone.norm3.weight' in ckpt['state_dict']

    model = LegoSwinTransformer(
        **dict(SLIM, out_indices=(1, 3)), num_units=3, tasks=['a'],
        init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    model.init_weights()
    state = model.state_dict()
    for k in range(3):
        assert torch.equal(
            state[f'stages.2.blocks.1.units.{k}.attn.w_msa.qkv.weight'],
            plain['stages.2.blocks.1.attn.w_msa.qkv.weight'])
    assert torch.equal(state['norm3.weight'], plain['norm3.weight'])
