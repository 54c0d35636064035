# Copyright (c) gppf_mm contributors. All rights reserved.
from .lego_resnet import (
                          LegoPretrained,
                          LegoResNet,
                          load_lego_pretrained,
                          plain_backbone_state_dict,
)

__all__ = [
    'LegoResNet', 'LegoPretrained', 'load_lego_pretrained',
    'plain_backbone_state_dict'
]
