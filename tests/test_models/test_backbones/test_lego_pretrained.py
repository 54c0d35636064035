# Copyright (c) gppf_mm contributors. All rights reserved.
import pytest
import torch

from gppf_mm.models.backbones.lego_pretrained import plain_backbone_state_dict


def test_checkpoint_layouts():
    w = torch.ones(2)
    # MMPretrain / MMDet: backbone.* under state_dict, heads dropped
    mm = dict(state_dict={'backbone.conv1.weight': w, 'head.fc.weight': w})
    assert list(plain_backbone_state_dict(mm)) == ['conv1.weight']
    # torchvision: bare, classifier dropped
    tv = {'conv1.weight': w, 'fc.weight': w, 'fc.bias': w}
    assert list(plain_backbone_state_dict(tv)) == ['conv1.weight']
    # official Swin release: weights under 'model'
    swin = dict(model={'patch_embed.proj.weight': w, 'head.weight': w},
                config='x')
    out = plain_backbone_state_dict(swin, drop_prefixes=('head.', ))
    assert list(out) == ['patch_embed.proj.weight']
    assert out['patch_embed.proj.weight'] is w
    with pytest.raises(KeyError, match="'neck.'"):
        plain_backbone_state_dict(mm, prefix='neck.')
    with pytest.raises(ValueError, match='no state dict'):
        plain_backbone_state_dict(dict(state_dict={}))
