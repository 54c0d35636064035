# Copyright (c) gppf_mm contributors. All rights reserved.
"""Rebuild a lego backbone from a GPPF checkpoint and extract one path as a
plain backbone checkpoint (used by ``tools/extract_path.py``)."""
import copy
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from gppf_mm.registry import MODELS, WEIGHT_INITIALIZERS
from gppf_mm.utils.checkpoint import load_checkpoint_file

LEGO_TYPES = ('LegoResNet', 'LegoSwinTransformer')


def _type_name(cfg: Any) -> str:
    type_ = cfg.get('type', '') if isinstance(cfg, dict) else ''
    return type_.__name__ if isinstance(type_, type) else str(type_)


def lego_backbone_cfg(cfg: Union[Config, dict]) -> dict:
    """The lego backbone config of a model config, with its task names.

    Accepts a GPPF config (``model.backbone`` plus ``model.tasks`` or a
    top-level ``tasks`` dict), any config whose ``model.backbone`` is a
    lego backbone, or a backbone config itself. ``init_cfg`` is dropped:
    the weights come from the checkpoint.

    Raises:
        ValueError: no lego backbone in the config.
    """
    model = cfg.get('model', cfg)
    backbone = model.get('backbone', model) if isinstance(model,
                                                          dict) else None
    if not isinstance(backbone, dict) or \
            _type_name(backbone).split('.')[-1] not in LEGO_TYPES:
        raise ValueError(
            'the config has no lego backbone (model.backbone.type must be '
            f'one of {LEGO_TYPES}, got {_type_name(backbone or {})!r})')
    backbone = copy.deepcopy(dict(backbone))
    if not backbone.get('tasks'):
        tasks = model.get('tasks') or cfg.get('tasks') or {}
        if tasks:
            backbone['tasks'] = list(tasks)
    backbone['init_cfg'] = None
    return backbone


# The layers that predict a task's own label space (classes, boxes per
# class, masks per class, segmentation classes, a classifier's fc): what a
# downstream model with other classes cannot take over.
FINAL_LAYERS = (r'\.fc_cls\.', r'\.fc_reg\.', r'\.conv_logits\.',
                r'\.conv_seg\.', r'^head\.fc\.')


def task_heads_state_dict(state: Dict[str, torch.Tensor], task: str,
                          exclude: Sequence[str] = FINAL_LAYERS
                          ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The weights of ``task``'s own algorithm in a GPPF state dict (its
    neck and heads, keys ``algorithms.<task>.*``) under the key names of
    the stock model, without the keys that match a regex of ``exclude``.

    Returns:
        tuple: the state dict and the excluded keys.

    Raises:
        KeyError: the state dict holds no weights of ``task``'s algorithm.
    """
    import re
    prefix = f'algorithms.{task}.'
    own = {k[len(prefix):]: v for k, v in state.items()
           if k.startswith(prefix)}
    if not own:
        tasks = sorted({k.split('.')[1] for k in state
                        if k.startswith('algorithms.')})
        raise KeyError(f'no weights of the algorithm of task {task!r} '
                       f'(keys {prefix}*); the checkpoint has {tasks}')
    patterns = [re.compile(p) for p in exclude]
    dropped = sorted(k for k in own if any(p.search(k) for p in patterns))
    return {k: v for k, v in own.items() if k not in dropped}, dropped


def _builtin(value: Any) -> Any:
    """``value`` with every mapping a dict and every sequence a list."""
    if isinstance(value, dict):
        return {k: _builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_builtin(v) for v in value]
    return value


def _checkpoint_config(ckpt: dict) -> Optional[Config]:
    text = (ckpt.get('meta') or {}).get('cfg')
    if not text:
        return None
    if isinstance(text, (Config, dict)):
        return text
    return Config.fromstring(text, '.py')


def load_lego_backbone(checkpoint: str,
                       config: Optional[Union[str, Config, dict]] = None,
                       prefix: str = 'backbone.'
                       ) -> Tuple[nn.Module, dict]:
    """Rebuild a lego backbone and load its weights from a checkpoint.

    Args:
        checkpoint (str): a GPPF checkpoint (the backbone under ``prefix``)
            or a bare lego backbone state dict.
        config (str | Config | dict, optional): the config to build the
            backbone from; by default the one MMEngine stores in the
            checkpoint's ``meta['cfg']``.
        prefix (str): the backbone's key prefix in the checkpoint's state
            dict (ignored when no key has it).

    Returns:
        tuple: the backbone (eval mode) and the checkpoint's ``meta``.

    Raises:
        FileNotFoundError: a missing checkpoint or config file.
        ValueError: no config given or stored; no lego backbone in it.
        RuntimeError: the weights do not fit the rebuilt backbone.
    """
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file {checkpoint!r} does not '
                                'exist')
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config!r} does not exist')
        config = Config.fromfile(config)
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint!r} does not hold a state dict')
    if config is None:
        config = _checkpoint_config(ckpt)
        if config is None:
            raise ValueError(
                f'{checkpoint!r} stores no config in meta["cfg"]; pass the '
                'training config (--config)')
    backbone_cfg = lego_backbone_cfg(config)
    backbone_cfg['type'] = _type_name(backbone_cfg).split('.')[-1]
    backbone_cfg['_scope_'] = 'gppf_mm'
    backbone = MODELS.build(backbone_cfg)

    state = ckpt.get('state_dict', ckpt)
    if prefix and any(k.startswith(prefix) for k in state):
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
    if any('.task_mean__' in k for k in state):
        # trained with per-task statistics: keep them to extract from
        from gppf_mm.models.layers import convert_cross_task_bn
        backbone = convert_cross_task_bn(backbone)
        for m in backbone.modules():
            if hasattr(m, 'set_tasks'):
                m.set_tasks(backbone.tasks)
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(
            f'the weights in {checkpoint!r} do not fit the lego backbone '
            f'built from the config ({backbone_cfg}): {err}') from None
    return backbone.eval(), dict(ckpt.get('meta') or {})


def resolve_task_path(backbone: nn.Module,
                      task: Optional[str] = None,
                      path: Optional[Sequence[int]] = None) -> List[int]:
    """The unit of every lego layer (explicit ``path`` or ``task``'s argmax
    path), validated with messages naming the bad value."""
    if task is not None and backbone.controller is not None:
        backbone.controller.check_task(task)
    return backbone.resolve_path(task=task, path=path)


def path_rows(backbone: nn.Module,
              path: Sequence[int],
              task: Optional[str] = None) -> List[Tuple[str, int, float]]:
    """``(layer name, unit, probability)`` per lego layer; the probability
    is ``task``'s selection probability of that unit (NaN without a task or
    controller)."""
    names = backbone.lego_layer_display_names()
    probs = None
    if task is not None and backbone.controller is not None:
        index = backbone.controller.tasks.index(task)
        probs = backbone.selection_probabilities()[index]
    return [(name, int(k), float(probs[i, k]) if probs is not None else
             float('nan')) for i, (name, k) in enumerate(zip(names, path))]


def path_table(rows: Sequence[Tuple[str, int, float]]) -> str:
    """A text table of :func:`path_rows`."""
    width = max(len('layer'), *(len(r[0]) for r in rows))
    lines = [f'{"layer":<{width}}  unit  probability']
    for name, unit, prob in rows:
        shown = '-' if prob != prob else f'{prob:.4f}'
        lines.append(f'{name:<{width}}  {unit:>4}  {shown:>11}')
    return '\n'.join(lines)


def extract_path_checkpoint(backbone: nn.Module,
                            task: Optional[str] = None,
                            path: Optional[Sequence[int]] = None,
                            target: str = 'mmdet',
                            prefix: str = 'backbone.',
                            source: Optional[str] = None) -> Dict[str, Any]:
    """A plain backbone checkpoint of one path.

    The result loads into a stock OpenMMLab model with
    ``init_cfg=dict(type='Pretrained', checkpoint=FILE, prefix=prefix)``.

    Returns:
        dict: ``{'state_dict': {prefix + key: tensor}, 'meta': {...}}``;
        ``meta`` holds the task, the path, the layer names, the selection
        probabilities, the target library and (for LegoResNet) the config
        of the plain backbone.

    Example:
        >>> from gppf_mm.models.backbones import LegoResNet
        >>> lego = LegoResNet(depth=18, base_channels=8, num_units=2,
        ...                   tasks=['coco'])
        >>> ckpt = extract_path_checkpoint(lego, task='coco')
        >>> print(ckpt['meta']['path'])
        [0, 0, 0, 0, 0, 0, 0, 0, 0]
        >>> print(tuple(ckpt['state_dict']['backbone.conv1.weight'].shape))
        (8, 3, 7, 7)
    """
    path = resolve_task_path(backbone, task, path)
    kwargs = {}
    if hasattr(backbone, 'plain_backbone_cfg'):
        kwargs['target'] = target
    # the task's own normalisation statistics, where the backbone has them
    plain = backbone.extract_path(task=task, path=path, **kwargs)
    rows = path_rows(backbone, path, task)
    meta = dict(
        task=task,
        path=list(path),
        layers=[r[0] for r in rows],
        probabilities=[r[2] for r in rows],
        target=target,
        source=source)
    if hasattr(backbone, 'plain_backbone_cfg'):
        # plain containers: a backbone built from a config holds
        # ConfigDicts, which the safe (weights-only) loader refuses
        meta['backbone_cfg'] = _builtin(backbone.plain_backbone_cfg(target))
    return dict(
        state_dict={
            f'{prefix}{k}': v.detach().clone()
            for k, v in plain.items()
        },
        meta=meta)


PATH_SCHEME = 'gppf-path://'


def path_uri(checkpoint: str, task: Optional[str] = None,
             path: Optional[Sequence[int]] = None,
             target: str = 'mmdet') -> str:
    """A checkpoint name that MMEngine's ``CheckpointLoader`` resolves to
    one path of a GPPF checkpoint, extracted when it is loaded:
    ``gppf-path://FILE?task=NAME&target=LIBRARY`` (or ``path=0,1,...``).

    It works wherever a checkpoint file name does: ``Pretrained`` init
    configs (``prefix='backbone.'``), ``load_from``, and the Swin
    Transformers of MMDet and MMSeg, whose ``init_weights`` loads
    ``init_cfg['checkpoint']`` whatever the init type (so
    ``gppf_mm.GPPFPath`` never runs there).
    """
    query = [f'task={task}'] if task is not None else []
    if path is not None:
        query.append('path=' + ','.join(str(int(k)) for k in path))
    query.append(f'target={target}')
    return f'{PATH_SCHEME}{checkpoint}?' + '&'.join(query)


def parse_path_uri(uri: str) -> Dict[str, Any]:
    """``checkpoint``, ``task``, ``path`` and ``target`` of a
    :func:`path_uri`; a wrong query names the URI and the field."""
    from urllib.parse import parse_qs
    body = uri[len(PATH_SCHEME):]
    checkpoint, _, query = body.rpartition('?')
    if not checkpoint:
        checkpoint, query = body, ''
    fields = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(fields) - {'task', 'path', 'target'}
    if unknown or not checkpoint or not ({'task', 'path'} & set(fields)):
        raise ValueError(
            f'{uri!r}: expected {PATH_SCHEME}FILE?task=NAME&target=LIBRARY '
            f'(or path=0,1,... instead of task), got fields {sorted(fields)}')
    path = fields.get('path')
    if path is not None:
        try:
            path = [int(k) for k in path.split(',')]
        except ValueError:
            raise ValueError(f'{uri!r}: path must be unit indices separated '
                             f'by commas, got {fields["path"]!r}') from None
    target = fields.get('target', 'mmdet')
    if target not in ('mmdet', 'mmseg', 'mmpretrain'):
        raise ValueError(f'{uri!r}: target must be mmdet, mmseg or '
                         f'mmpretrain, got {target!r}')
    return dict(checkpoint=checkpoint, task=fields.get('task'), path=path,
                target=target)


def load_path_uri(uri: str, map_location=None) -> Dict[str, Any]:
    """MMEngine checkpoint loader of ``gppf-path://`` names: the path's
    plain backbone checkpoint, keys under ``'backbone.'``."""
    from mmengine.logging import print_log
    spec = parse_path_uri(uri)
    backbone, _ = load_lego_backbone(spec['checkpoint'])
    ckpt = extract_path_checkpoint(
        backbone, task=spec['task'], path=spec['path'],
        target=spec['target'], prefix='backbone.',
        source=spec['checkpoint'])
    print_log(f'the path {ckpt["meta"]["path"]} of task {spec["task"]!r} in '
              f'{spec["checkpoint"]}, for {spec["target"]}',
              logger='current')
    return ckpt


def _register_path_scheme() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes=PATH_SCHEME, loader=load_path_uri, force=True)


_register_path_scheme()


def _library_of(module: nn.Module) -> str:
    root = type(module).__module__.split('.')[0]
    if root not in ('mmdet', 'mmseg', 'mmpretrain'):
        raise TypeError(
            f'GPPFPath initialises an MMDet, MMSeg or MMPretrain backbone, '
            f'got {type(module).__module__}.{type(module).__name__}')
    return root


@WEIGHT_INITIALIZERS.register_module()
class GPPFPath:
    """Initialise a plain upstream backbone from one task's path of a GPPF
    checkpoint: fixed-path finetuning from a config alone.

    In a stock MMDet / MMSeg / MMPretrain config (with
    ``custom_imports = dict(imports=['gppf_mm'])``)::

        model = dict(backbone=dict(
            type='ResNet', depth=50,
            init_cfg=dict(type='gppf_mm.GPPFPath',
                          checkpoint='work_dirs/gppf/iter_500000.pth',
                          task='coco')))

    The lego backbone is rebuilt from the config the checkpoint stores (or
    ``config``), the task's argmax path (or an explicit ``path``) is
    extracted with the task's own normalisation statistics, in the key
    layout of the backbone's library, and loaded with ``strict=True``: a
    backbone that does not match the path's architecture fails with the
    keys named. ``tools/extract_path.py`` writes the same weights to a file.

    MMDet's and MMSeg's ``SwinTransformer`` load ``init_cfg['checkpoint']``
    themselves whatever the init type, so this class never runs there: give
    them ``init_cfg=dict(type='Pretrained', checkpoint=path_uri(...))``
    (``gppf-path://FILE?task=NAME&target=LIBRARY``) instead.

    Args:
        checkpoint (str): the GPPF checkpoint.
        task (str, optional): whose argmax path to take.
        path (Sequence[int], optional): or this unit per lego layer.
        config (str | dict, optional): the training config, when the
            checkpoint stores none.
        prefix (str): the backbone's key prefix in the checkpoint.
    """

    def __init__(self, checkpoint: str, task: Optional[str] = None,
                 path: Optional[Sequence[int]] = None,
                 config: Optional[Union[str, dict]] = None,
                 prefix: str = 'backbone.') -> None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(f'GPPFPath needs a checkpoint path, got '
                             f'{checkpoint!r}')
        if task is None and path is None:
            raise ValueError('GPPFPath needs task=NAME (its argmax path) or '
                             'path=[unit per layer]')
        self.checkpoint = checkpoint
        self.task = task
        self.path = path
        self.config = config
        self.prefix = prefix

    def __call__(self, module: nn.Module) -> None:
        from mmengine.logging import print_log
        target = _library_of(module)
        backbone, _ = load_lego_backbone(self.checkpoint, self.config,
                                         self.prefix)
        ckpt = extract_path_checkpoint(
            backbone, task=self.task, path=self.path, target=target,
            prefix='', source=self.checkpoint)
        try:
            module.load_state_dict(ckpt['state_dict'], strict=True)
        except RuntimeError as err:
            raise RuntimeError(
                f'the path of task {self.task!r} in {self.checkpoint!r} does '
                f'not fit {type(module).__name__} (the path is a '
                f'{ckpt["meta"].get("backbone_cfg")}): {err}') from None
        # as with 'Pretrained': MMPretrain's ResNet zeroes the last norm of
        # every block after its init config unless told the weights are
        # loaded
        if getattr(module, 'zero_init_residual', False):
            module.zero_init_residual = False
        print_log(
            f'{type(module).__name__} initialised from the path '
            f'{ckpt["meta"]["path"]} of task {self.task!r} in '
            f'{self.checkpoint}', logger='current')


__all__ = [
    'lego_backbone_cfg', 'load_lego_backbone', 'resolve_task_path',
    'path_uri', 'parse_path_uri', 'load_path_uri', 'PATH_SCHEME',
    'path_rows', 'path_table', 'extract_path_checkpoint', 'GPPFPath',
    'task_heads_state_dict', 'FINAL_LAYERS'
]
