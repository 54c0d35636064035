# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch
import torchvision
from mmpretrain.models.backbones import ResNet as MMPretrainResNet

from gppf_mm.models.backbones import LegoResNet


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('model_converters/resnet_to_lego.py')


def test_bad_input(tool, tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        tool.main([str(tmp_path / 'nothing.pth'), 'out.pth',
                   '--num-units', '2'])
    r18 = tmp_path / 'r18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), r18)
    with pytest.raises(ValueError, match='--num-units must be >= 1, got 0'):
        tool.main([str(r18), str(tmp_path / 'o.pth'), '--num-units', '0'])
    with pytest.raises((KeyError, ValueError),
                       match=r"missing key.*'layer1.0.conv3.weight'"):
        tool.main([str(r18), str(tmp_path / 'o.pth'), '--num-units', '2',
                   '--depth', '50'])
    del_key = torchvision.models.resnet18().state_dict()
    del del_key['layer2.1.bn1.weight']
    broken = tmp_path / 'broken.pth'
    torch.save(del_key, broken)
    with pytest.raises(KeyError, match=r"1 missing key\(s\): "
                       r"'layer2.1.bn1.weight'"):
        tool.main([str(broken), str(tmp_path / 'o.pth'), '--num-units', '2'])
    assert not (tmp_path / 'o.pth').exists()


def test_torchvision_checkpoint(tool, tmp_path):
    torch.manual_seed(0)
    src = torchvision.models.resnet18().state_dict()
    torch.save(src, tmp_path / 'r18.pth')
    out = tmp_path / 'lego' / 'r18_n3.pth'
    ckpt = tool.main([str(tmp_path / 'r18.pth'), str(out), '--num-units',
                      '3'])
    assert ckpt['meta']['num_units'] == 3
    assert ckpt['meta']['arch']['depth'] == 18
    model = LegoResNet(depth=18, num_units=3, tasks=['a'],
                       init_cfg=dict(type='Pretrained', checkpoint=str(out),
                                     prefix='backbone.'))
    model.init_weights()
    for k in range(3):
        assert torch.equal(model.stem_layer.units[k].conv1.weight,
                           src['conv1.weight'])
        assert torch.equal(model.layer3[0].units[k].downsample[1].bias,
                           src['layer3.0.downsample.1.bias'])
        assert torch.equal(model.layer4[1].units[k].bn2.running_mean,
                           src['layer4.1.bn2.running_mean'])


def test_mmpretrain_checkpoint(tool, tmp_path):
    torch.manual_seed(1)
    src = MMPretrainResNet(depth=50, base_channels=16, stem_channels=16)
    src.init_weights()
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.rand(10, 64)
    torch.save(dict(state_dict=state, meta={}), tmp_path / 'cls.pth')
    ckpt = tool.main([str(tmp_path / 'cls.pth'), str(tmp_path / 'out.pth'),
                      '--num-units', '2'])
    lego = ckpt['state_dict']
    assert len(lego) == 2 * len(src.state_dict())
    for k in range(2):
        assert torch.equal(lego[f'backbone.layer4.2.units.{k}.conv3.weight'],
                           src.layer4[2].conv3.weight)
