# Copyright (c) gppf_mm contributors. All rights reserved.
"""Plain Swin Transformer checkpoints: their key layouts (official,
mmpretrain, mmdet), the architecture they imply, and their conversion to a
lego Swin state dict."""
import os.path as osp
from typing import Dict, Optional

import torch
from mmdet.models.backbones.swin import swin_converter

from gppf_mm.utils.checkpoint import load_checkpoint_file

from .lego_pretrained import plain_backbone_state_dict


def to_mmdet_swin_layout(plain: Dict[str, torch.Tensor],
                         last_stage: Optional[int] = None
                         ) -> Dict[str, torch.Tensor]:
    """Bring a plain Swin state dict into mmdet's layout.

    Recognises the official layout (``layers.*``, ``patch_embed.proj``;
    converted by mmdet's ``swin_converter``, which also reorders the patch
    merging weights), renames a single final ``norm.*`` (official files,
    old MMClassification files) to ``norm{last_stage}.*`` (by default the
    last stage of ``plain``) and drops ``attn_mask`` buffers. MMDetection,
    MMSegmentation and MMPretrain layouts pass through.

    Raises:
        KeyError: ``plain`` holds no tensors.

    Example:
        >>> plain = {'layers.0.blocks.0.attn.qkv.weight': torch.zeros(3, 1),
        ...          'norm.weight': torch.ones(1)}
        >>> sorted(to_mmdet_swin_layout(plain, last_stage=3))
        ['norm3.weight', 'stages.0.blocks.0.attn.w_msa.qkv.weight']
    """
    if not plain:
        raise KeyError(
            'the checkpoint holds no Swin weights (an official file keeps '
            "them under 'model': convert it with "
            'tools/model_converters/swin_to_lego.py)')
    if any(k.startswith('layers.') for k in plain):
        plain = {
            k[len('backbone.'):]: v
            for k, v in swin_converter(plain).items()
        }
    if last_stage is None:
        last_stage = max((int(k.split('.')[1])
                          for k in plain if k.startswith('stages.')),
                         default=0)
    out = {}
    for key, value in plain.items():
        if 'attn_mask' in key:
            continue
        if key.startswith('norm.'):
            key = f'norm{last_stage}.' + key[len('norm.'):]
        out[key] = value
    return out


def infer_swin_arch(plain: Dict[str, torch.Tensor]) -> dict:
    """The ``LegoSwinTransformer`` arguments a plain Swin was built with.

    Reads ``in_channels``, ``embed_dims``, ``patch_size``, ``depths``,
    ``num_heads``, ``window_size``, ``mlp_ratio``, ``qkv_bias``,
    ``patch_norm``, ``use_abs_pos_embed`` and ``pretrain_img_size`` from the
    keys and shapes (any layout :func:`to_mmdet_swin_layout` knows).
    ``out_indices`` is every stage; the other arguments keep mmdet's
    defaults.

    Raises:
        KeyError: the state dict is not a Swin (the message names what is
            missing).

    Example:
        >>> from mmdet.models.backbones import SwinTransformer
        >>> arch = infer_swin_arch(SwinTransformer(
        ...     embed_dims=24, num_heads=(1, 2, 3, 4)).state_dict())
        >>> arch['depths'], arch['num_heads'], arch['window_size']
        ((2, 2, 6, 2), (1, 2, 3, 4), 7)
    """
    plain = to_mmdet_swin_layout(plain)
    stages = {int(k.split('.')[1]) for k in plain if k.startswith('stages.')}
    proj = plain.get('patch_embed.projection.weight')
    if proj is None or not stages:
        raise KeyError(
            "not a Swin state dict: no 'patch_embed.projection.weight' / "
            "'stages.*' keys; keys start with "
            f'{sorted(plain)[:6]}')
    depths, num_heads = [], []
    for s in range(max(stages) + 1):
        blocks = {
            int(k.split('.')[3])
            for k in plain if k.startswith(f'stages.{s}.blocks.')
        }
        if not blocks:
            raise KeyError(f'not a Swin state dict: stage {s} has no blocks')
        depths.append(max(blocks) + 1)
        table = plain[f'stages.{s}.blocks.0.attn.w_msa.'
                      'relative_position_bias_table']
        num_heads.append(int(table.shape[1]))
    embed_dims, in_channels, patch_size = (int(proj.shape[0]),
                                           int(proj.shape[1]),
                                           int(proj.shape[2]))
    side = int(round(table.shape[0]**0.5))
    fc1 = plain['stages.0.blocks.0.ffn.layers.0.0.weight']
    arch = dict(
        in_channels=in_channels,
        embed_dims=embed_dims,
        patch_size=patch_size,
        strides=(patch_size, ) + (2, ) * (len(depths) - 1),
        window_size=(side + 1) // 2,
        mlp_ratio=int(fc1.shape[0]) // embed_dims,
        depths=tuple(depths),
        num_heads=tuple(num_heads),
        out_indices=tuple(range(len(depths))),
        qkv_bias='stages.0.blocks.0.attn.w_msa.qkv.bias' in plain,
        patch_norm='patch_embed.norm.weight' in plain,
        use_abs_pos_embed='absolute_pos_embed' in plain)
    if arch['use_abs_pos_embed']:
        tokens = plain['absolute_pos_embed'].shape[1]
        arch['pretrain_img_size'] = int(round(tokens**0.5)) * patch_size
    return arch


def load_swin_checkpoint(checkpoint: str, prefix: Optional[str] = None
                         ) -> Dict[str, torch.Tensor]:
    """The plain Swin weights of a file, in mmdet's layout.

    Reads OpenMMLab files (``state_dict`` with ``backbone.*``), bare
    backbone state dicts and official files (weights under ``model``).

    Args:
        checkpoint (str): path or URL.
        prefix (str, optional): the backbone's key prefix in the file;
            ``'backbone.'`` when such keys exist.

    Raises:
        FileNotFoundError: a local path that does not exist.
        KeyError: the file holds no Swin weights.
    """
    if '://' not in str(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file {checkpoint!r} does not '
                                'exist')
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    if isinstance(ckpt, dict) and 'state_dict' not in ckpt and \
            isinstance(ckpt.get('model'), dict):
        ckpt = ckpt['model']
    plain = plain_backbone_state_dict(ckpt, prefix, drop_prefixes=('head.', ))
    return to_mmdet_swin_layout(plain)
