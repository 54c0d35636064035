# Copyright (c) gppf_mm contributors. All rights reserved.
from .lego_pretrained import (
    LegoPretrained,
    load_lego_pretrained,
    load_plain_checkpoint,
    plain_backbone_state_dict,
    save_lego_checkpoint,
)
from .lego_resnet import (
    LegoResNet,
    infer_resnet_arch,
    resnet_to_lego_state_dict,
)
from .lego_swin import LegoSwinTransformer
from .path_extraction import (
    GPPFPath,
    extract_path_checkpoint,
    load_lego_backbone,
    path_rows,
    path_table,
    path_uri,
)

__all__ = [
    'LegoResNet', 'LegoSwinTransformer', 'LegoPretrained',
    'load_lego_pretrained', 'load_plain_checkpoint', 'save_lego_checkpoint',
    'plain_backbone_state_dict', 'infer_resnet_arch',
    'resnet_to_lego_state_dict', 'extract_path_checkpoint',
    'load_lego_backbone', 'path_rows', 'path_table', 'GPPFPath', 'path_uri'
]
