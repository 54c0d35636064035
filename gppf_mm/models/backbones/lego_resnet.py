# Copyright (c) gppf_mm contributors. All rights reserved.
"""ResNet whose stem and residual blocks are lego layers."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.layers import ResLayer

from gppf_mm.models.routing import LegoBackboneMixin, LegoLayer
from gppf_mm.registry import MODELS

PLAIN_TARGETS = ('mmdet', 'mmseg', 'mmpretrain')


class ResNetStem(nn.Module):
    """The ResNet stem as one unit: conv1-norm1-relu (or the deep stem).

    Parameter names match the upstream ResNets (``conv1``/``bn1`` or
    ``stem.*``), so a unit's keys map one-to-one onto a plain backbone.
    """

    def __init__(self, in_channels: int, stem_channels: int, deep_stem: bool,
                 conv_cfg: Optional[dict], norm_cfg: dict) -> None:
        super().__init__()
        self.deep_stem = deep_stem
        if deep_stem:
            half = stem_channels // 2
            layers = []
            for cin, cout, stride in ((in_channels, half, 2), (half, half, 1),
                                      (half, stem_channels, 1)):
                layers += [
                    build_conv_layer(
                        conv_cfg, cin, cout, 3, stride=stride, padding=1,
                        bias=False),
                    build_norm_layer(norm_cfg, cout)[1],
                    nn.ReLU(inplace=True)
                ]
            self.stem = nn.Sequential(*layers)
        else:
            self.conv1 = build_conv_layer(
                conv_cfg, in_channels, stem_channels, kernel_size=7,
                stride=2, padding=3, bias=False)
            self.norm1_name, norm1 = build_norm_layer(
                norm_cfg, stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deep_stem:
            return self.stem(x)
        return self.relu(getattr(self, self.norm1_name)(self.conv1(x)))


@MODELS.register_module()
class LegoResNet(LegoBackboneMixin, ResNet):
    """ResNet (mmdet's ``ResNet`` API) with N lego units per layer.

    Lego layers are the stem and every residual block: 17 for ResNet-50
    (Stem, Res2.0 ... Res5.2, the paper's Figure 11). Each holds
    ``num_units`` blocks of the same architecture with separate weights, and
    a :class:`GumbelController` chooses, per task, how they are combined
    (soft / hard / argmax). ``num_units=1`` without tasks is the static
    network, numerically identical to mmdet's ``ResNet``.

    Args:
        num_units (int): units per lego layer. Defaults to 1.
        tasks (Sequence[str], optional): task names of the controller.
        routing_mode (str): 'soft', 'hard' or 'argmax' during training.
        tau (float): initial Gumbel-Softmax temperature.
        **kwargs: the arguments of ``mmdet.models.ResNet`` (``depth``,
            ``base_channels``, ``out_indices``, ``frozen_stages``,
            ``norm_cfg``, ``norm_eval``, ``with_cp``, ``init_cfg`` ...).

    Example:
        >>> import torch
        >>> self = LegoResNet(depth=50, base_channels=16, num_units=2,
        ...                   tasks=['coco', 'ade20k']).eval()
        >>> self.set_task('coco')
        >>> outs = self(torch.rand(1, 3, 64, 64))
        >>> for out in outs:
        ...     print(tuple(out.shape))
        (1, 64, 16, 16)
        (1, 128, 8, 8)
        (1, 256, 4, 4)
        (1, 512, 2, 2)
    """

    def __init__(self,
                 depth: int,
                 num_units: int = 1,
                 tasks: Optional[Sequence[str]] = None,
                 routing_mode: str = 'soft',
                 tau: float = 5.0,
                 in_channels: int = 3,
                 **kwargs) -> None:
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(
                f'num_units must be an int >= 1, got {num_units!r}')
        for unsupported in ('dcn', 'plugins'):
            if kwargs.get(unsupported) is not None:
                raise ValueError(f'LegoResNet does not support {unsupported}')
        self._num_units = num_units
        self.in_channels = in_channels
        super().__init__(depth=depth, in_channels=in_channels, **kwargs)
        self._init_lego(tasks, num_units, routing_mode, tau)

    # ------------------------------------------------------------ building
    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.stem_layer = LegoLayer(
            lambda: ResNetStem(in_channels, stem_channels, self.deep_stem,
                               self.conv_cfg, self.norm_cfg),
            self._num_units)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def make_res_layer(self, **kwargs) -> nn.Sequential:
        """A stage whose every block is a lego layer of independent
        copies of mmdet's block."""
        copies = [ResLayer(**kwargs) for _ in range(self._num_units)]
        blocks = []
        for i in range(len(copies[0])):
            units = iter([c[i] for c in copies])
            blocks.append(LegoLayer(lambda: next(units), self._num_units))
        return nn.Sequential(*blocks)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.stem_layer.eval()
            for param in self.stem_layer.parameters():
                param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f'layer{i}')
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'LegoResNet':
        """As mmdet's ResNet (frozen stages, ``norm_eval``), returning self."""
        ResNet.train(self, mode)
        return self

    # ------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'LegoResNet expects input of shape (N, {self.in_channels}, '
                f'H, W), got {tuple(x.shape)}')
        routings = iter(self.lego_routings())
        x = self.maxpool(self.stem_layer(x, next(routings)))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            for block in getattr(self, layer_name):
                x = block(x, next(routings))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # --------------------------------------------------------- read-out
    def lego_layer_display_names(self) -> List[str]:
        names = []
        for name in self.lego_layer_names:
            if name == 'stem_layer':
                names.append('Stem')
            else:  # 'layer1.0' -> 'Res2.0'
                stage, block = name.split('.')
                names.append(f'Res{int(stage[5:]) + 1}.{block}')
        return names

    # ------------------------------------------------------- extraction
    def plain_layer_prefixes(self) -> List[Tuple[str, str]]:
        return [(name, '' if name == 'stem_layer' else name)
                for name in self.lego_layer_names]

    def extract_path(self,
                     task: Optional[str] = None,
                     path: Optional[Sequence[int]] = None,
                     target: str = 'mmdet'
                     ) -> 'OrderedDict[str, torch.Tensor]':
        """A plain ResNet state dict of one path.

        The keys are those of ``mmdet.models.ResNet``, which
        ``mmseg.models.ResNet`` (``ResNetV1c`` with ``deep_stem``) and
        ``mmpretrain.models.ResNet`` share, so the result loads with
        ``strict=True`` into any of them (same depth and widths).
        """
        if target not in PLAIN_TARGETS:
            raise ValueError(f'target must be one of {PLAIN_TARGETS}, got '
                             f'{target!r}')
        return super().extract_path(task=task, path=path)

    def expand_plain_state_dict(
            self, plain: Dict[str, torch.Tensor]
    ) -> 'OrderedDict[str, torch.Tensor]':
        """Copy a plain ResNet state dict into every unit of every layer.

        Raises:
            KeyError: keys of the lego backbone that ``plain`` lacks, or
                keys of ``plain`` that the backbone has no place for.
            ValueError: shapes that disagree.
        """
        own = self.state_dict()
        lookup = dict(self.plain_layer_prefixes())
        out = OrderedDict()
        used = set()
        for key, value in own.items():
            if key.startswith('controller.'):
                continue
            head, sep, tail = key.partition('.units.')
            plain_key = key
            if sep and head in lookup:
                rest = tail.partition('.')[2]
                plain_key = f'{lookup[head]}.{rest}' if lookup[head] else rest
            if plain_key not in plain:
                continue
            if tuple(plain[plain_key].shape) != tuple(value.shape):
                raise ValueError(
                    f'checkpoint key {plain_key!r} has shape '
                    f'{tuple(plain[plain_key].shape)}, the lego backbone '
                    f'needs {tuple(value.shape)} for {key!r}')
            out[key] = plain[plain_key]
            used.add(plain_key)
        missing = [
            k for k in own if not k.startswith('controller.') and k not in out
            and not k.endswith('num_batches_tracked')
        ]
        unexpected = [
            k for k in plain
            if k not in used and not k.endswith('num_batches_tracked')
        ]
        if missing or unexpected:
            raise KeyError(
                'the checkpoint does not match this LegoResNet (depth '
                f'{self.depth}): missing {missing[:8]}'
                f'{" ..." if len(missing) > 8 else ""} ({len(missing)} in '
                f'all), unexpected {unexpected[:8]}'
                f'{" ..." if len(unexpected) > 8 else ""} '
                f'({len(unexpected)} in all)')
        return out


def plain_backbone_state_dict(checkpoint: dict,
                              prefix: Optional[str] = None
                              ) -> 'OrderedDict[str, torch.Tensor]':
    """The backbone weights of a checkpoint in the plain ResNet layout.

    Accepts torchvision files (``conv1.weight``, ``fc.*`` dropped), MMPretrain
    / MMDet / MMSeg files (``state_dict`` with ``backbone.*``) and bare
    backbone state dicts. ``prefix`` forces the prefix to keep.
    """
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state:
        raise ValueError('the checkpoint holds no state dict')
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        if not state:
            raise KeyError(f'no key of the checkpoint starts with {prefix!r}')
    return OrderedDict((k, v) for k, v in state.items()
                       if not k.startswith('fc.'))


def load_lego_pretrained(backbone: nn.Module,
                         checkpoint: str,
                         prefix: Optional[str] = None) -> None:
    """Initialise every unit of a lego backbone from a plain checkpoint.

    The whole checkpoint is checked against the backbone first; nothing is
    changed when it does not match.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    expanded = backbone.expand_plain_state_dict(
        plain_backbone_state_dict(ckpt, prefix))
    backbone.load_state_dict(expanded, strict=False)


@MODELS.register_module()
class LegoPretrained:
    """``init_cfg=dict(type='LegoPretrained', checkpoint=PATH)``: start every
    lego unit from the matching block of a plain ImageNet checkpoint
    (torchvision or MMPretrain layout).

    Lego backbones apply it after every other initialisation (like MMEngine's
    ``Pretrained``), so the blocks' own init configs do not overwrite it.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix

    def __call__(self, module: nn.Module) -> None:
        load_lego_pretrained(module, self.checkpoint, self.prefix)


def _split_lego_pretrained(init_cfg):
    cfgs = init_cfg if isinstance(init_cfg, list) else (
        [init_cfg] if init_cfg else [])
    lego = [c for c in cfgs if c.get('type') == 'LegoPretrained']
    rest = [c for c in cfgs if c.get('type') != 'LegoPretrained']
    return lego, rest


def _lego_init_weights(self) -> None:
    lego, rest = _split_lego_pretrained(self.init_cfg)
    if lego:
        self.init_cfg = rest or None
        try:
            ResNet.init_weights(self)
        finally:
            self.init_cfg = rest + lego
        for cfg in lego:
            LegoPretrained(cfg['checkpoint'], cfg.get('prefix'))(self)
    else:
        ResNet.init_weights(self)


LegoResNet.init_weights = _lego_init_weights
