# Copyright (c) gppf_mm contributors. All rights reserved.
"""Start every unit of a lego backbone from a plain pretrained checkpoint.

A lego backbone that supports it defines
``expand_plain_state_dict(plain) -> state_dict``: the plain backbone state
dict copied into every unit of every lego layer, checked against the
backbone (keys and shapes) before anything is loaded.
"""
import logging
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit

from gppf_mm.registry import WEIGHT_INITIALIZERS
from gppf_mm.utils.checkpoint import (
    check_state_match,
    load_checkpoint_file,
    preview_keys,
)

LEGO_PRETRAINED_TYPES = ('LegoPretrained', 'gppf_mm.LegoPretrained')
# MMEngine's own ``Pretrained`` would load a plain checkpoint with
# ``strict=False`` into keys it does not have (``.units.k``): nothing loads
# and only a warning says so. On a lego backbone it is handled as
# ``LegoPretrained``.
PRETRAINED_TYPES = LEGO_PRETRAINED_TYPES + ('Pretrained', PretrainedInit)


def plain_backbone_state_dict(
        checkpoint: Dict[str, Any],
        prefix: Optional[str] = None,
        drop_prefixes: Sequence[str] = ('fc.', )
) -> 'OrderedDict[str, torch.Tensor]':
    """The backbone weights of a loaded checkpoint, keys relative to it.

    Accepts torchvision files (``conv1.weight`` ..., the classifier
    ``fc.*`` dropped), MMPretrain / MMDet / MMSeg files (a ``state_dict``
    whose backbone keys start with ``backbone.``), files with the weights
    under ``model`` (the official Swin releases) and bare backbone state
    dicts.

    Args:
        checkpoint (dict): the loaded checkpoint.
        prefix (str, optional): keep only the keys under this prefix and
            strip it. Defaults to ``'backbone.'`` when such keys exist.
        drop_prefixes (Sequence[str]): keys (after the prefix) to leave out.

    Returns:
        OrderedDict: the plain backbone state dict.

    Example:
        >>> ckpt = dict(state_dict={'backbone.conv1.weight': torch.ones(1),
        ...                         'head.fc.weight': torch.ones(1)})
        >>> list(plain_backbone_state_dict(ckpt))
        ['conv1.weight']
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must be a dict, got '
                        f'{type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    if state is checkpoint and isinstance(checkpoint.get('model'), dict):
        state = checkpoint['model']  # official Swin releases
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
    return OrderedDict(
        (k, v) for k, v in state.items()
        if torch.is_tensor(v) and not any(
            k.startswith(p) for p in drop_prefixes))


def load_plain_checkpoint(checkpoint: str, prefix: Optional[str] = None
                          ) -> 'OrderedDict[str, torch.Tensor]':
    """Load a file with MMEngine's loader and take its backbone weights.

    Raises:
        FileNotFoundError: ``checkpoint`` is a local path that does not
            exist.
    """
    if '://' not in str(checkpoint):
        import os.path as osp
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file {checkpoint!r} does '
                                    'not exist')
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    return plain_backbone_state_dict(ckpt, prefix)


def save_lego_checkpoint(state: Dict[str, torch.Tensor], arch: dict,
                         num_units: int, source: str, dst: str,
                         prefix: str = '') -> dict:
    """Write a converted lego state dict as a checkpoint file.

    The file holds ``state_dict`` (keys prefixed by ``prefix``, e.g.
    ``'backbone.'``) and ``meta`` with ``num_units``, the architecture
    arguments (tuples as lists) and the source path.
    """
    ckpt = dict(
        state_dict={f'{prefix}{k}': v
                    for k, v in state.items()},
        meta=dict(
            num_units=num_units,
            arch={k: list(v) if isinstance(v, tuple) else v
                  for k, v in arch.items()},
            source=osp.abspath(source)))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(ckpt, dst)
    return ckpt


_TASK_STATS = ('task_mean__', 'task_var__', 'task_count__')


def _is_task_stat(key: str) -> bool:
    return key.rsplit('.', 1)[-1].startswith(_TASK_STATS)


def _load_lego_layout(backbone: nn.Module, state: Dict[str, torch.Tensor],
                      checkpoint: str) -> None:
    """Load a checkpoint already in the lego layout (``.units.k`` keys),
    checked key by key first. The controller's logits and the norms'
    per-task statistics load for the tasks both sides have; the other
    tasks' are skipped and new tasks start afresh (e.g. a downstream task
    whose controller is learned over units pre-trained by GPPF)."""
    own = backbone.state_dict()
    missing, mismatched, out = [], [], OrderedDict()
    for key, value in own.items():
        theirs = state.get(key)
        if theirs is None:
            if not (key.startswith('controller.') or _is_task_stat(key)
                    or key.endswith('num_batches_tracked')):
                missing.append(repr(key))
            continue
        if tuple(theirs.shape) != tuple(value.shape):
            if not key.startswith('controller.'):
                mismatched.append(f'{key!r}: {tuple(theirs.shape)} in the '
                                  f'checkpoint, {tuple(value.shape)} here')
            continue
        out[key] = theirs
    unexpected = [
        repr(k) for k in state if k not in own
        and not (k.startswith('controller.') or _is_task_stat(k))
    ]
    what = (f'{checkpoint}: the lego checkpoint does not match this '
            f'{type(backbone).__name__}')
    # as MMEngine's Pretrained: keys the file lacks keep their values
    # (e.g. the norms of outputs a converted file was not made for), but
    # only when the rest fits and something loads
    check_state_match(what, mismatched, [] if out else missing, unexpected)
    if missing:
        print_log(f'{what}: {len(missing)} key(s) keep their initial '
                  f'values: {preview_keys(missing)}', logger='current',
                  level=logging.WARNING)
    backbone.load_state_dict(out, strict=False)


def load_lego_pretrained(backbone: nn.Module,
                         checkpoint: str,
                         prefix: Optional[str] = None) -> None:
    """Initialise a lego backbone from a checkpoint, whatever its layout.

    A plain backbone checkpoint (torchvision, MMDet, MMSeg, MMPretrain,
    official Swin) is copied into every unit of every lego layer; a lego
    checkpoint (keys with ``.units.k``, e.g. a GPPF pre-training) loads as
    it is. Either way the whole checkpoint is checked against the backbone
    first: nothing is changed when it does not match, and the error names
    the file and the keys.

    Args:
        backbone (nn.Module): a lego backbone with
            ``expand_plain_state_dict``.
        checkpoint (str): path or URL of the checkpoint.
        prefix (str, optional): see :func:`plain_backbone_state_dict`.

    Raises:
        KeyError / ValueError: the checkpoint does not fit the backbone
            (the message names the file and the keys).
    """
    expand = getattr(backbone, 'expand_plain_state_dict', None)
    if expand is None:
        raise TypeError(f'{type(backbone).__name__} cannot be initialised '
                        'from a plain checkpoint (no expand_plain_state_dict)')
    state = load_plain_checkpoint(checkpoint, prefix)
    if any('.units.' in k for k in state):
        _load_lego_layout(backbone, state, checkpoint)
        return
    try:
        expanded = expand(state)
    except (KeyError, ValueError) as error:
        message = error.args[0] if error.args else str(error)
        raise type(error)(f'{checkpoint}: {message}') from None
    backbone.load_state_dict(expanded, strict=False)


@WEIGHT_INITIALIZERS.register_module()
class LegoPretrained:
    """Start every lego unit from the matching block of a plain checkpoint.

    Use as ``init_cfg=dict(type='LegoPretrained', checkpoint=PATH)`` of a
    lego backbone (torchvision or OpenMMLab layout, see
    :func:`plain_backbone_state_dict`). Lego backbones apply it after every
    other initialisation, as MMEngine does with ``Pretrained``, so the init
    configs of their blocks do not overwrite it.

    Args:
        checkpoint (str): path or URL of the plain checkpoint.
        prefix (str, optional): the backbone's key prefix in the file.

    Example:
        >>> init = LegoPretrained('resnet50.pth')
        >>> init.checkpoint
        'resnet50.pth'
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None) -> None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(f'LegoPretrained needs a checkpoint path, got '
                             f'{checkpoint!r}')
        self.checkpoint = checkpoint
        self.prefix = prefix

    def __call__(self, module: nn.Module) -> None:
        load_lego_pretrained(module, self.checkpoint, self.prefix)

    @classmethod
    def from_cfg(cls, cfg: dict) -> 'LegoPretrained':
        # ``map_location`` of MMEngine's ``Pretrained``: always the CPU here
        return cls(**{
            k: v
            for k, v in cfg.items() if k not in ('type', 'map_location')
        })


def split_lego_pretrained(init_cfg: Any) -> Tuple[List[dict], List[dict]]:
    """Split an ``init_cfg`` into its checkpoint entries (``LegoPretrained``
    and MMEngine's ``Pretrained``) and the rest."""
    if not init_cfg:
        return [], []
    cfgs = list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [
        init_cfg
    ]
    lego = [
        c for c in cfgs
        if c.get('type') in PRETRAINED_TYPES + (LegoPretrained, )
    ]
    rest = [c for c in cfgs if not any(c is other for other in lego)]
    return lego, rest


def init_weights_with_lego_pretrained(module: nn.Module, init_weights
                                      ) -> None:
    """Run ``init_weights(module)`` without the checkpoint entries of
    ``module.init_cfg``, then load them (once, like MMEngine's
    ``Pretrained``) with :func:`load_lego_pretrained`."""
    lego, rest = split_lego_pretrained(module.init_cfg)
    if not lego or getattr(module, '_is_init', False):
        init_weights(module)
        return
    original = module.init_cfg
    module.init_cfg = rest or None
    try:
        init_weights(module)
    finally:
        module.init_cfg = original
    for cfg in lego:
        LegoPretrained.from_cfg(cfg)(module)
    module._is_init = True
