# Copyright (c) gppf_mm contributors. All rights reserved.
"""ResNet whose stem and residual blocks are lego layers."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet
from mmdet.models.layers import ResLayer
from mmengine.model import Sequential

from gppf_mm.models.routing import (
    LegoBackboneMixin,
    LegoLayer,
    expand_lego_state_dict,
)
from gppf_mm.registry import MODELS

from .lego_pretrained import init_weights_with_lego_pretrained

PLAIN_TARGETS = ('mmdet', 'mmseg', 'mmpretrain')

_PLAIN_ARGS = ('depth', 'in_channels', 'stem_channels', 'base_channels',
               'num_stages', 'strides', 'dilations', 'out_indices', 'style',
               'deep_stem', 'avg_down', 'frozen_stages', 'conv_cfg',
               'norm_cfg', 'norm_eval', 'with_cp', 'zero_init_residual')


def _set_dilation(block: nn.Module, dilation: int) -> None:
    """The dilation of a residual block's 3x3 convolution (as mmseg's
    ``ResLayer`` builds the first block with ``contract_dilation``)."""
    conv = block.conv2 if hasattr(block, 'conv3') else block.conv1
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation)
    block.dilation = dilation


class ResNetStem(nn.Module):
    """The ResNet stem as one unit: conv1-norm1-relu (or the deep stem) and
    the max pooling, built by mmdet's ``ResNet._make_stem_layer``.

    Parameter names are those of mmdet's ``ResNet`` (``conv1``/``bn1`` or
    ``stem.*``), so a unit's keys map one-to-one onto a plain backbone.
    """

    def __init__(self, in_channels: int, stem_channels: int, deep_stem: bool,
                 conv_cfg: Optional[dict], norm_cfg: dict) -> None:
        super().__init__()
        self.deep_stem = deep_stem
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        ResNet._make_stem_layer(self, in_channels, stem_channels)

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        return self.maxpool(x)


@MODELS.register_module()
class LegoResNet(LegoBackboneMixin, ResNet):
    """ResNet (mmdet's ``ResNet`` API) with N lego units per layer.

    Lego layers are the stem and every residual block: 17 for ResNet-50
    (Stem, Res2.0 ... Res5.2, the paper's Figure 11). Each holds
    ``num_units`` blocks of the same architecture (mmdet's ``Bottleneck`` /
    ``BasicBlock``) with separate weights, and a :class:`GumbelController`
    chooses, per task, how they are combined (soft / hard / argmax).
    ``num_units=1`` without tasks is the static network, numerically
    identical to mmdet's ``ResNet``. Outputs are the stage outputs at
    ``out_indices``, so upstream necks and heads consume them unchanged.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        num_units (int): units per lego layer. Defaults to 1.
        tasks (Sequence[str], optional): task names of the controller
            (required when ``num_units > 1``).
        routing_mode (str): 'soft', 'hard' or 'argmax' during training;
            eval mode always routes by argmax.
        tau (float): initial Gumbel-Softmax temperature.
        task (str, optional): the task whose path a forward takes when
            none is set, for a lego backbone in a plain upstream config
            (GPPF sets the task of every call itself).
        unit_init (str): 'independent' (every unit its own random
            initialisation, the default) or 'copy' (every unit of a layer
            starts as a copy of unit 0: the static network at step 0).
        in_channels (int): input image channels.
        with_cp (bool): recompute every block lego layer (all its units and
            their combination) in backward to save memory.
        init_cfg (dict | list[dict], optional): MMEngine init config; it
            may contain ``dict(type='LegoPretrained', checkpoint=PATH)``.
        **kwargs: the other arguments of ``mmdet.models.ResNet``
            (``stem_channels``, ``base_channels``, ``num_stages``,
            ``strides``, ``dilations``, ``out_indices``, ``style``,
            ``deep_stem``, ``avg_down``, ``frozen_stages``, ``conv_cfg``,
            ``norm_cfg``, ``norm_eval``, ``zero_init_residual``) and
            mmseg's ``contract_dilation`` (``multi_grid`` is refused).

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
                 task: Optional[str] = None,
                 unit_init: str = 'independent',
                 in_channels: int = 3,
                 with_cp: bool = False,
                 **kwargs) -> None:
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(
                f'num_units must be an int >= 1, got {num_units!r}')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(
                f'in_channels must be an int >= 1, got {in_channels!r}')
        for unsupported in ('dcn', 'plugins', 'pretrained'):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f'LegoResNet does not support {unsupported}; got '
                    f'{unsupported}={kwargs[unsupported]!r}')
        if kwargs.pop('multi_grid', None) is not None:
            raise ValueError('LegoResNet does not support multi_grid')
        self._num_units = num_units
        self.in_channels = in_channels
        # mmseg's ResNetV1c argument: the first block of a dilated stage
        # uses half the dilation
        self.contract_dilation = bool(kwargs.pop('contract_dilation', False))
        super().__init__(
            depth=depth, in_channels=in_channels, with_cp=with_cp, **kwargs)
        self._init_lego(tasks, num_units, routing_mode, tau, task,
                        unit_init)

    # ------------------------------------------------------------ building
    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.stem_layer = LegoLayer(
            lambda: ResNetStem(in_channels, stem_channels, self.deep_stem,
                               self.conv_cfg, self.norm_cfg),
            self._num_units)

    def make_res_layer(self, **kwargs) -> Sequential:
        """A stage whose every block is a lego layer of independent copies
        of mmdet's block (``ResLayer`` builds each copy).

        The stage is MMEngine's ``Sequential`` (as mmdet's ``ResLayer``), so
        ``init_weights`` reaches the blocks' own ``init_cfg`` (the zero
        init of the last norm with ``zero_init_residual``)."""
        kwargs['with_cp'] = False  # the lego layer checkpoints the units
        copies = [ResLayer(**kwargs) for _ in range(self._num_units)]
        dilation = kwargs.get('dilation', 1)
        if self.contract_dilation and dilation > 1:
            for copy in copies:
                _set_dilation(copy[0], dilation // 2)
        blocks = []
        for i in range(len(copies[0])):
            units = iter([c[i] for c in copies])
            blocks.append(
                LegoLayer(lambda: next(units), self._num_units,
                          with_cp=self.with_cp))
        return Sequential(*blocks)

    def init_weights(self) -> None:
        """MMEngine initialisation, then ``unit_init``; ``LegoPretrained``
        entries last."""

        def init(module: 'LegoResNet') -> None:
            fresh = not getattr(module, '_is_init', False)
            ResNet.init_weights(module)
            if fresh:
                module.apply_unit_init()

        init_weights_with_lego_pretrained(self, init)

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
        """As mmdet's ResNet (frozen stages, ``norm_eval``), returning
        self."""
        ResNet.train(self, mode)
        return self

    # ------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'LegoResNet expects input of shape (N, {self.in_channels}, '
                f'H, W), got {tuple(x.shape)}')
        routings = self.lego_routings()
        x = self.stem_layer(x, routings[0])
        outs = []
        index = 1
        for i, layer_name in enumerate(self.res_layers):
            for block in getattr(self, layer_name):
                x = block(x, routings[index])
                index += 1
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # ------------------------------------------------------------ read-out
    def lego_layer_display_names(self) -> List[str]:
        """'Stem', 'Res2.0', ... 'Res5.2' (stage numbering of the paper)."""
        names = []
        for name in self.lego_layer_names:
            if name == 'stem_layer':
                names.append('Stem')
            else:  # 'layer1.0' -> 'Res2.0'
                stage, block = name.split('.')
                names.append(f'Res{int(stage[5:]) + 1}.{block}')
        return names

    # ---------------------------------------------------------- extraction
    def plain_layer_prefixes(self) -> List[Tuple[str, str]]:
        return [(name, '' if name == 'stem_layer' else name)
                for name in self.lego_layer_names]

    def _layout_renames(self, target: str) -> Dict[str, str]:
        """Key prefixes of mmdet's layout -> those of ``target``.

        MMPretrain's ResNet builds the deep stem from ``ConvModule`` s
        (``stem.0.conv`` / ``stem.0.bn`` instead of ``stem.0`` / ``stem.1``)
        and, with ``avg_down``, adds no pooling to a downsample of stride 1.
        MMDet and MMSeg share one layout.
        """
        renames = {}
        if target != 'mmpretrain':
            return renames
        if self.deep_stem:
            for i in range(3):
                renames[f'stem.{3 * i}.'] = f'stem.{i}.conv.'
                renames[f'stem.{3 * i + 1}.'] = f'stem.{i}.bn.'
        if self.avg_down:
            for s, stride in enumerate(self.strides[:self.num_stages]):
                if stride == 1:
                    block = f'layer{s + 1}.0.downsample'
                    renames[f'{block}.1.'] = f'{block}.0.'
                    renames[f'{block}.2.'] = f'{block}.1.'
        return renames

    @staticmethod
    def _rename(state: Dict[str, torch.Tensor], renames: Dict[str, str]
                ) -> 'OrderedDict[str, torch.Tensor]':
        out = OrderedDict()
        for key, value in state.items():
            for old, new in renames.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = value
        return out

    def plain_backbone_cfg(self, target: str = 'mmdet') -> dict:
        """The config of the upstream ResNet an extracted path loads into,
        e.g. ``dict(type='mmseg.ResNet', depth=50, deep_stem=True, ...)``.
        """
        self._check_target(target)
        cfg = dict(type=f'{target}.ResNet')
        for name in _PLAIN_ARGS:
            value = getattr(self, name)
            cfg[name] = list(value) if isinstance(value, tuple) else value
        if target == 'mmseg':
            cfg['contract_dilation'] = self.contract_dilation
        elif self.contract_dilation and max(self.dilations) > 1:
            raise ValueError(
                f'a path of a LegoResNet with contract_dilation=True and '
                f'dilations {self.dilations} only has an mmseg ResNet '
                f'equivalent; {target}.ResNet has no contract_dilation')
        return cfg

    @staticmethod
    def _check_target(target: str) -> None:
        if target not in PLAIN_TARGETS:
            raise ValueError(f'target must be one of {PLAIN_TARGETS}, got '
                             f'{target!r}')

    def extract_path(self,
                     task: Optional[str] = None,
                     path: Optional[Sequence[int]] = None,
                     target: str = 'mmdet'
                     ) -> 'OrderedDict[str, torch.Tensor]':
        """A plain ResNet state dict of one path.

        Args:
            task (str, optional): take the argmax path of this task.
            path (Sequence[int], optional): or this unit per lego layer.
            target (str): the library whose ``ResNet`` (same depth, widths,
                ``deep_stem`` and ``avg_down``) the keys are laid out for:
                'mmdet', 'mmseg' or 'mmpretrain'. The result loads into it
                with ``strict=True``.

        Returns:
            OrderedDict: the plain state dict (no controller keys).
        """
        self._check_target(target)
        plain = super().extract_path(task=task, path=path)
        return self._rename(plain, self._layout_renames(target))

    def _to_mmdet_layout(self, plain: Dict[str, torch.Tensor]
                         ) -> 'OrderedDict[str, torch.Tensor]':
        """Recognise MMPretrain's layout (see :meth:`_layout_renames`) in a
        plain state dict and rename it to mmdet's."""
        renames = {}
        if self.deep_stem and 'stem.0.conv.weight' in plain:
            renames.update({
                v: k
                for k, v in self._layout_renames('mmpretrain').items()
                if k.startswith('stem.')
            })
        if self.avg_down:
            for s in range(self.num_stages):
                block = f'layer{s + 1}.0.downsample'
                conv = plain.get(f'{block}.0.weight')
                if conv is not None and conv.dim() == 4:
                    renames[f'{block}.0.'] = f'{block}.1.'
                    renames[f'{block}.1.'] = f'{block}.2.'
        return self._rename(plain, renames)

    def expand_plain_state_dict(
            self, plain: Dict[str, torch.Tensor]
    ) -> 'OrderedDict[str, torch.Tensor]':
        """Copy a plain ResNet state dict into every unit of every layer.

        ``plain`` may be in mmdet / mmseg / torchvision layout or in
        MMPretrain's (deep stem of ``ConvModule`` s). Everything is checked
        before anything is returned.

        Raises:
            KeyError: keys of the lego backbone that ``plain`` lacks, or
                keys of ``plain`` that the backbone has no place for.
            ValueError: shapes that disagree.
        """
        return expand_lego_state_dict(
            self.state_dict(),
            self._to_mmdet_layout(plain),
            self.plain_layer_prefixes(),
            optional=lambda key: key.endswith('num_batches_tracked'),
            owner=f'this LegoResNet (depth {self.depth}, base_channels '
            f'{self.base_channels})')


def infer_resnet_arch(plain: Dict[str, torch.Tensor]) -> dict:
    """The ``LegoResNet`` arguments a plain ResNet state dict was built with.

    Reads the depth (blocks per stage and block type), ``num_stages``,
    ``in_channels``, ``stem_channels``, ``base_channels``, ``deep_stem`` and
    ``avg_down`` from the keys and shapes (mmdet / mmseg / MMPretrain /
    torchvision layouts). Strides and dilations leave no trace in the
    weights and keep their defaults.

    Raises:
        KeyError: the state dict is not a ResNet (the message names what is
            missing).

    Example:
        >>> from mmdet.models.backbones import ResNet
        >>> infer_resnet_arch(ResNet(depth=18).state_dict())['depth']
        18
    """
    deep_stem = 'stem.0.weight' in plain or 'stem.0.conv.weight' in plain
    if deep_stem:
        first = plain.get('stem.0.weight', plain.get('stem.0.conv.weight'))
        last = plain.get('stem.6.weight', plain.get('stem.2.conv.weight'))
    else:
        first = last = plain.get('conv1.weight')
    if first is None or last is None:
        raise KeyError('not a ResNet state dict: no stem convolution '
                       "('conv1.weight' or 'stem.0.weight'); keys start "
                       f'with {sorted(plain)[:6]}')
    counts = []
    for s in range(1, 5):
        blocks = {
            int(k.split('.')[1])
            for k in plain if k.startswith(f'layer{s}.')
        }
        if not blocks:
            break
        counts.append(max(blocks) + 1)
    if not counts:
        raise KeyError("not a ResNet state dict: no 'layer1.*' keys")
    bottleneck = 'layer1.0.conv3.weight' in plain
    depths = [
        depth for depth, (block, stages) in ResNet.arch_settings.items()
        if (block.expansion == 4) == bottleneck
        and list(stages[:len(counts)]) == counts
    ]
    if not depths:
        raise KeyError(f'no ResNet depth has {counts} blocks per stage '
                       f'with {"Bottleneck" if bottleneck else "BasicBlock"}')
    return dict(
        depth=depths[0],
        num_stages=len(counts),
        in_channels=int(first.shape[1]),
        stem_channels=int(last.shape[0]),
        base_channels=int(plain['layer1.0.conv1.weight'].shape[0]),
        deep_stem=deep_stem,
        avg_down=any('.downsample.2.' in k for k in plain),
        strides=(1, 2, 2, 2)[:len(counts)],
        dilations=(1, 1, 1, 1)[:len(counts)],
        out_indices=tuple(range(len(counts))))


def resnet_to_lego_state_dict(
        plain: Dict[str, torch.Tensor], num_units: int,
        **arch) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """A ``LegoResNet`` state dict whose every unit is ``plain``'s block.

    Args:
        plain (dict): a plain ResNet state dict (see
            :func:`infer_resnet_arch` for the layouts).
        num_units (int): units per lego layer.
        **arch: ``LegoResNet`` arguments that override the inferred ones
            (e.g. ``depth=50`` to insist on a depth).

    Returns:
        tuple: the lego state dict (no controller keys) and the
        architecture arguments used.

    Raises:
        KeyError / ValueError: ``plain`` does not fit (keys named).
    """
    if not isinstance(num_units, int) or num_units < 1:
        raise ValueError(f'num_units must be an int >= 1, got {num_units!r}')
    found = infer_resnet_arch(plain)
    found.update(arch)
    tasks = ['default'] if num_units > 1 else None
    model = LegoResNet(num_units=num_units, tasks=tasks, **found)
    return model.expand_plain_state_dict(plain), found
