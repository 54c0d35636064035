# Copyright (c) gppf_mm contributors. All rights reserved.
"""Swin Transformer whose patch embedding and Swin blocks are lego layers."""
import copy
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmdet.models.layers import PatchEmbed
from mmengine.logging import print_log

from gppf_mm.models.routing import (
    LegoBackboneMixin,
    LegoLayer,
    expand_lego_state_dict,
)
from gppf_mm.registry import MODELS

from .lego_pretrained import (
    LegoPretrained,
    split_lego_pretrained,
)
from .swin_layout import infer_swin_arch, to_mmdet_swin_layout

PLAIN_TARGETS = ('mmdet', 'mmseg', 'mmpretrain')


class SwinPatchEmbedUnit(PatchEmbed):
    """mmdet's ``PatchEmbed`` returning one tensor ``(B, H', W', C)``.

    The token grid travels in the tensor's shape, so the outputs of several
    units can be weighted and summed by a :class:`LegoLayer`. Parameter
    names are those of ``PatchEmbed`` (``projection``, ``norm``).

    Example:
        >>> unit = SwinPatchEmbedUnit(in_channels=3, embed_dims=8,
        ...                           kernel_size=4, stride=4)
        >>> tuple(unit(torch.rand(2, 3, 30, 32)).shape)
        (2, 8, 8, 8)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (h, w) = super().forward(x)
        return tokens.view(tokens.shape[0], h, w, tokens.shape[-1])


@MODELS.register_module()
class LegoSwinTransformer(LegoBackboneMixin, SwinTransformer):
    """Swin Transformer (mmdet's ``SwinTransformer`` API) with N lego units.

    Lego layers are the patch embedding and every Swin block: 13 for Swin-T
    (``PatchEmbed``, ``Stage1.0`` ... ``Stage4.1``). Each holds
    ``num_units`` copies of mmdet's module with separate weights, and a
    :class:`GumbelController` chooses, per task, how they are combined
    (soft / hard / argmax; eval mode always routes by argmax).

    The patch merging (downsample) layers, the absolute position embedding
    and the output norms ``norm{i}`` stay shared by all tasks: they hold few
    parameters and keep the output layout of every stage task-independent.
    All norms are LayerNorms, so nothing is synchronised across devices.

    ``num_units=1`` without tasks is the static network, numerically
    identical to mmdet's ``SwinTransformer`` with the same weights. The
    outputs are the normed NCHW stage features at ``out_indices``, so
    upstream necks and heads consume them unchanged. A path extracted with
    :meth:`extract_path` loads with ``strict=True`` into the
    ``SwinTransformer`` of MMDetection, MMSegmentation or MMPretrain (see
    :meth:`plain_backbone_cfg`).

    Args:
        pretrain_img_size (int | tuple[int]): image size of the absolute
            position embedding. Defaults to 224.
        in_channels (int): input image channels. Defaults to 3.
        embed_dims (int): feature dimension of the first stage.
        patch_size (int): patch size (equal to ``strides[0]``).
        window_size (int): attention window size.
        mlp_ratio (int): FFN hidden dimension / feature dimension.
        depths (Sequence[int]): Swin blocks per stage.
        num_heads (Sequence[int]): attention heads per stage.
        strides (Sequence[int]): patch embedding and patch merging strides.
        out_indices (Sequence[int]): stages whose outputs are returned.
        qkv_bias (bool): learnable bias of q, k, v.
        qk_scale (float, optional): overrides ``head_dims ** -0.5``.
        patch_norm (bool): norms in patch embedding and patch merging.
        drop_rate (float): dropout rate.
        attn_drop_rate (float): attention dropout rate.
        drop_path_rate (float): stochastic depth rate (linear over blocks).
        use_abs_pos_embed (bool): add an absolute position embedding.
        act_cfg (dict): FFN activation.
        norm_cfg (dict): norm layers.
        with_cp (bool): recompute every block lego layer (all its units and
            their combination) in backward to save memory.
        frozen_stages (int): as mmdet's (-1: nothing frozen, 0: the patch
            embedding, k: also stages 1..k and their output norms).
        num_units (int): units per lego layer. Defaults to 1.
        tasks (Sequence[str], optional): task names of the controller
            (required when ``num_units > 1``).
        routing_mode (str): 'soft', 'hard' or 'argmax' during training.
        tau (float): initial Gumbel-Softmax temperature.
        task (str, optional): the task whose path a forward takes when
            none is set, for a lego backbone in a plain upstream config
            (GPPF sets the task of every call itself).
        unit_init (str): 'independent' (the default) or 'copy': every unit
            of a layer starts as a copy of unit 0 (see ``LegoResNet``).
        init_cfg (dict | list[dict], optional): ``None`` (mmdet's truncated
            normal init), ``dict(type='LegoPretrained', checkpoint=PATH)``
            (a plain Swin checkpoint copied into every unit) and/or
            ``dict(type='Pretrained', checkpoint=PATH, prefix=...)`` (a
            checkpoint in this backbone's own, lego layout).

    Example:
        >>> import torch
        >>> self = LegoSwinTransformer(
        ...     embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4),
        ...     num_units=2, tasks=['coco', 'ade20k'])
        >>> self = self.eval()
        >>> self.set_task('coco')
        >>> outs = self(torch.rand(1, 3, 64, 64))
        >>> for out in outs:
        ...     print(tuple(out.shape))
        (1, 24, 16, 16)
        (1, 48, 8, 8)
        (1, 96, 4, 4)
        (1, 192, 2, 2)
    """

    def __init__(self,
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 embed_dims: int = 96,
                 patch_size: int = 4,
                 window_size: int = 7,
                 mlp_ratio: int = 4,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 strides: Sequence[int] = (4, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 patch_norm: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 use_abs_pos_embed: bool = False,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 num_units: int = 1,
                 tasks: Optional[Sequence[str]] = None,
                 routing_mode: str = 'soft',
                 tau: float = 5.0,
                 task: Optional[str] = None,
                 unit_init: str = 'independent',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        _check_arch(in_channels, num_units, patch_size, depths, num_heads,
                    strides, out_indices)
        self.plain_kwargs = dict(
            pretrain_img_size=pretrain_img_size,
            in_channels=in_channels,
            embed_dims=embed_dims,
            patch_size=patch_size,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            strides=tuple(strides),
            out_indices=tuple(out_indices),
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            patch_norm=patch_norm,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            use_abs_pos_embed=use_abs_pos_embed,
            act_cfg=act_cfg,
            norm_cfg=norm_cfg,
            with_cp=with_cp,
            frozen_stages=frozen_stages)
        # The blocks checkpoint nothing themselves: the lego layer
        # recomputes all its units and their combination.
        build_kwargs = dict(self.plain_kwargs, with_cp=False)
        super().__init__(**build_kwargs, init_cfg=init_cfg)
        self.in_channels = in_channels
        self.with_cp = with_cp
        self._build_lego_layers(num_units, build_kwargs)
        self._init_lego(tasks, num_units, routing_mode, tau, task,
                        unit_init)

    # ------------------------------------------------------------ building
    def _build_lego_layers(self, num_units: int, build_kwargs: dict) -> None:
        """Make the patch embedding and every block a lego layer.

        Unit 0 of a block layer is the block mmdet built for this backbone;
        unit ``k`` is the block at the same place in another, independently
        initialised mmdet ``SwinTransformer`` of the same arguments.
        """
        kw = build_kwargs
        self.patch_embed = LegoLayer(
            lambda: SwinPatchEmbedUnit(
                in_channels=kw['in_channels'],
                embed_dims=kw['embed_dims'],
                conv_type='Conv2d',
                kernel_size=kw['patch_size'],
                stride=kw['strides'][0],
                norm_cfg=kw['norm_cfg'] if kw['patch_norm'] else None),
            num_units)
        copies = [self] + [
            SwinTransformer(**build_kwargs) for _ in range(num_units - 1)
        ]
        for i, stage in enumerate(self.stages):
            for j in range(len(stage.blocks)):
                units = iter([c.stages[i].blocks[j] for c in copies])
                stage.blocks[j] = LegoLayer(
                    lambda: next(units), num_units, with_cp=self.with_cp)

    def init_weights(self) -> None:
        """mmdet's initialisation, or the checkpoints of ``init_cfg``.

        Without ``init_cfg``: mmdet's truncated normal init. Otherwise the
        ``Pretrained`` / ``LegoPretrained`` checkpoints load in order: a
        plain Swin checkpoint into every unit, a lego one as it is (see
        :func:`load_lego_pretrained`).
        """
        lego, rest = split_lego_pretrained(self.init_cfg)
        if rest:
            raise ValueError(
                'LegoSwinTransformer supports init_cfg of the types '
                f"'LegoPretrained' and 'Pretrained', got {rest}")
        if not lego:
            original, self.init_cfg = self.init_cfg, None
            try:
                SwinTransformer.init_weights(self)
            finally:
                self.init_cfg = original
            self.apply_unit_init()
        for cfg in lego:
            LegoPretrained.from_cfg(cfg)(self)
        self._is_init = True

    def train(self, mode: bool = True) -> 'LegoSwinTransformer':
        """As mmdet's Swin (frozen stages stay frozen), returning self."""
        SwinTransformer.train(self, mode)
        return self

    # ------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                'LegoSwinTransformer expects input of shape (N, '
                f'{self.in_channels}, H, W), got {tuple(x.shape)}')
        routings = iter(self.lego_routings())
        x = self.patch_embed(x, next(routings))
        hw_shape = (x.shape[1], x.shape[2])
        x = x.flatten(1, 2)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)

        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                x = block(x, next(routings), hw_shape)
            out, out_hw_shape = x, hw_shape
            if stage.downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                out = out.view(-1, *out_hw_shape, self.num_features[i])
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)

    # ------------------------------------------------------------ read-out
    def lego_layer_display_names(self) -> List[str]:
        """'PatchEmbed', 'Stage1.0', ... (stages counted from 1)."""
        names = []
        for name in self.lego_layer_names:
            if name == 'patch_embed':
                names.append('PatchEmbed')
            else:  # 'stages.0.blocks.1' -> 'Stage1.1'
                _, stage, _, block = name.split('.')
                names.append(f'Stage{int(stage) + 1}.{block}')
        return names

    # ---------------------------------------------------------- extraction
    @staticmethod
    def _check_target(target: str) -> None:
        if target not in PLAIN_TARGETS:
            raise ValueError(f'target must be one of {PLAIN_TARGETS}, got '
                             f'{target!r}')

    def plain_backbone_cfg(self, target: str = 'mmdet') -> dict:
        """The config of the upstream Swin an extracted path loads into.

        MMDetection and MMSegmentation take this backbone's arguments. For
        MMPretrain they are translated: a custom ``arch`` dict,
        ``pad_small_map=True`` (MMPretrain's default ``False`` shrinks or
        stops shifting the windows of feature maps not larger than the
        window, which mmdet never does), the block, patch embedding and
        merging options in ``stage_cfgs`` / ``patch_cfg``, and
        ``frozen_stages`` shifted by one (MMPretrain counts stages from 0;
        mmdet's ``frozen_stages=0``, the patch embedding alone, has no
        MMPretrain equivalent and becomes -1).

        Example:
            >>> self = LegoSwinTransformer(embed_dims=24, num_heads=(1, 2,
            ...                            3, 4))
            >>> cfg = self.plain_backbone_cfg('mmpretrain')
            >>> cfg['type'], cfg['arch']['num_heads'], cfg['pad_small_map']
            ('mmpretrain.SwinTransformer', [1, 2, 3, 4], True)
        """
        self._check_target(target)
        kw = {
            k: list(v) if isinstance(v, tuple) else copy.deepcopy(v)
            for k, v in self.plain_kwargs.items()
        }
        if target != 'mmpretrain':
            return dict(type=f'{target}.SwinTransformer', **kw)
        norm = kw['norm_cfg'] if kw['patch_norm'] else None
        block = dict(
            ffn_ratio=kw['mlp_ratio'],
            attn_cfgs=dict(
                qkv_bias=kw['qkv_bias'],
                qk_scale=kw['qk_scale'],
                attn_drop=kw['attn_drop_rate'],
                proj_drop=kw['drop_rate']),
            ffn_cfgs=dict(act_cfg=kw['act_cfg'], ffn_drop=kw['drop_rate']),
            norm_cfg=kw['norm_cfg'])
        num_stages = len(kw['depths'])
        stage_cfgs = [
            dict(
                block_cfgs=copy.deepcopy(block),
                downsample_cfg=dict(stride=kw['strides'][i + 1],
                                    norm_cfg=norm)
                if i < num_stages - 1 else {}) for i in range(num_stages)
        ]
        frozen = kw['frozen_stages']
        return dict(
            type='mmpretrain.SwinTransformer',
            arch=dict(
                embed_dims=kw['embed_dims'],
                depths=kw['depths'],
                num_heads=kw['num_heads']),
            img_size=kw['pretrain_img_size'],
            patch_size=kw['patch_size'],
            in_channels=kw['in_channels'],
            window_size=kw['window_size'],
            drop_rate=kw['drop_rate'],
            drop_path_rate=kw['drop_path_rate'],
            out_indices=kw['out_indices'],
            use_abs_pos_embed=kw['use_abs_pos_embed'],
            with_cp=kw['with_cp'],
            frozen_stages=frozen - 1 if frozen > 0 else -1,
            pad_small_map=True,
            norm_cfg=kw['norm_cfg'],
            stage_cfgs=stage_cfgs,
            patch_cfg=dict(norm_cfg=norm))

    def extract_path(self,
                     task: Optional[str] = None,
                     path: Optional[Sequence[int]] = None,
                     target: str = 'mmdet'
                     ) -> 'OrderedDict[str, torch.Tensor]':
        """A plain Swin state dict of one path.

        MMDetection, MMSegmentation and MMPretrain lay out Swin's weights
        with the same keys (``patch_embed.projection``,
        ``stages.{i}.blocks.{j}.attn.w_msa.*``, ``stages.{i}.downsample``,
        ``norm{i}``), so ``target`` only picks the config of
        :meth:`plain_backbone_cfg`; the result loads into each of them with
        ``strict=True``.

        Args:
            task (str, optional): take the argmax path of this task.
            path (Sequence[int], optional): or this unit per lego layer.
            target (str): 'mmdet', 'mmseg' or 'mmpretrain'.

        Returns:
            OrderedDict: the plain state dict (no controller keys).
        """
        self._check_target(target)
        return super().extract_path(task=task, path=path)

    # ------------------------------------------------------ initialisation
    def expand_plain_state_dict(
            self, plain: Dict[str, torch.Tensor]
    ) -> 'OrderedDict[str, torch.Tensor]':
        """Copy a plain Swin state dict into every unit of every layer.

        ``plain`` may be in the layout of MMDetection, MMSegmentation or
        MMPretrain, or the official one (``layers.0.blocks.0...``, converted
        by mmdet's ``swin_converter``). ``attn_mask`` buffers of old files
        are dropped and ``relative_position_index`` buffers are rebuilt, not
        read. Output norms that the checkpoint lacks (an ImageNet file has
        only the last) keep their initial values, and those of stages not in
        ``out_indices`` are left out; everything else must match, and is
        checked before anything is returned.

        Raises:
            KeyError: keys of this backbone that ``plain`` lacks, or keys of
                ``plain`` that it has no place for (the keys are named).
            ValueError: shapes that disagree (e.g. another window size).
        """
        plain = to_mmdet_swin_layout(plain, last_stage=len(self.stages) - 1)
        own = self.state_dict()
        lookup = dict(self.plain_layer_prefixes())
        for key, value in own.items():
            if key.endswith('relative_position_index'):
                head, _, tail = key.partition('.units.')
                plain[f'{lookup[head]}.{tail.partition(".")[2]}'] = value
        norms = tuple(f'norm{i}.' for i in self.out_indices)
        absent = sorted({
            k.split('.')[0]
            for k in own if k.startswith(norms) and k not in plain
        })
        others = tuple(f'norm{i}.' for i in range(len(self.stages))
                       if i not in self.out_indices)
        unused = sorted({k.split('.')[0] for k in plain
                         if k.startswith(others)})
        plain = {k: v for k, v in plain.items() if not k.startswith(others)}
        expanded = expand_lego_state_dict(
            own,
            plain,
            self.plain_layer_prefixes(),
            optional=lambda key: key.startswith(norms),
            owner='this LegoSwinTransformer (embed_dims '
            f'{self.plain_kwargs["embed_dims"]}, depths '
            f'{self.plain_kwargs["depths"]}, window_size '
            f'{self.plain_kwargs["window_size"]})')
        if absent:
            print_log(
                f'the checkpoint has no output norm(s) {absent}; they keep '
                'their initial values', logger='current')
        if unused:
            print_log(
                f'output norm(s) {unused} of the checkpoint are not used '
                f'(out_indices={self.out_indices})', logger='current')
        return expanded


def _check_arch(in_channels: int, num_units: int, patch_size: int,
                depths: Sequence[int], num_heads: Sequence[int],
                strides: Sequence[int], out_indices: Sequence[int]) -> None:
    """Clear errors for arguments mmdet would reject with a bare assert."""
    if not isinstance(num_units, int) or num_units < 1:
        raise ValueError(f'num_units must be an int >= 1, got {num_units!r}')
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(
            f'in_channels must be an int >= 1, got {in_channels!r}')
    if len(num_heads) != len(depths) or len(strides) != len(depths):
        raise ValueError(
            f'depths {tuple(depths)}, num_heads {tuple(num_heads)} and '
            f'strides {tuple(strides)} must have one entry per stage')
    if strides[0] != patch_size:
        raise ValueError(f'strides[0] ({strides[0]}) must equal patch_size '
                         f'({patch_size}): the patch embedding does not '
                         'overlap')
    bad = [i for i in out_indices if not 0 <= i < len(depths)]
    if bad:
        raise ValueError(f'out_indices {bad} out of range for '
                         f'{len(depths)} stages')


def swin_to_lego_state_dict(
        plain: Dict[str, torch.Tensor], num_units: int,
        **arch) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """A ``LegoSwinTransformer`` state dict whose every unit is ``plain``'s.

    Args:
        plain (dict): a plain Swin state dict (see
            :func:`to_mmdet_swin_layout` for the layouts).
        num_units (int): units per lego layer.
        **arch: ``LegoSwinTransformer`` arguments that override the
            inferred ones (e.g. ``out_indices=(1, 2, 3)``).

    Returns:
        tuple: the lego state dict (no controller keys) and the
        architecture arguments used.

    Raises:
        KeyError / ValueError: ``plain`` does not fit (keys named).
    """
    if not isinstance(num_units, int) or num_units < 1:
        raise ValueError(f'num_units must be an int >= 1, got {num_units!r}')
    found = infer_swin_arch(plain)
    found.update(arch)
    tasks = ['default'] if num_units > 1 else None
    model = LegoSwinTransformer(num_units=num_units, tasks=tasks, **found)
    return model.expand_plain_state_dict(plain), found
