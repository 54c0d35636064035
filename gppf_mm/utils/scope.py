# Copyright (c) gppf_mm contributors. All rights reserved.
"""Which OpenMMLab scope a config dict builds in.

The engine and the models import these helpers; this module imports
neither (only MMEngine), so that neither side depends on
:func:`~gppf_mm.utils.register_all_modules`, which imports them all.
"""
from typing import Any, Optional

from mmengine.registry import Registry

UPSTREAM_SCOPES = ('mmdet', 'mmseg', 'mmpretrain', 'mmengine')


def scope_of(cfg: dict) -> Optional[str]:
    """The OpenMMLab scope a config dict should be built in.

    ``_scope_`` wins; otherwise the prefix of ``type`` (``'mmdet.MaskRCNN'``
    -> ``'mmdet'``); otherwise ``None`` (the current scope).
    """
    if not isinstance(cfg, dict):
        return None
    if cfg.get('_scope_'):
        return cfg['_scope_']
    type_ = cfg.get('type')
    if isinstance(type_, str) and '.' in type_:
        prefix = type_.split('.', 1)[0]
        if prefix in UPSTREAM_SCOPES or prefix == 'gppf_mm':
            return prefix
    return None


def with_scope(cfg: dict) -> dict:
    """Return a copy of ``cfg`` whose sub-modules build in its own library.

    A config that names ``type='mmdet.MaskRCNN'`` from a ``gppf_mm``-scoped
    file would otherwise build MaskRCNN's own children (its default data
    preprocessor, ``type='ResNet'`` ...) in the ``gppf_mm`` scope and fail.
    Setting ``_scope_`` makes MMEngine switch the default scope for the whole
    subtree. Children that live in another library keep working through
    their own prefix (``type='gppf_mm.LegoResNet'``).
    """
    scope = scope_of(cfg)
    if scope is None or scope == 'gppf_mm':
        return cfg
    cfg = cfg.copy()
    cfg['_scope_'] = scope
    cfg['type'] = cfg['type'].split('.', 1)[-1] if str(
        cfg['type']).startswith(scope + '.') else cfg['type']
    return cfg


def build_in_scope(registry: Registry, cfg: dict, **kwargs: Any) -> Any:
    """Build ``cfg`` from ``registry`` inside the config's own scope."""
    return registry.build(with_scope(cfg), **kwargs)


def resolve_scopes(cfg: Any) -> Any:
    """Apply :func:`with_scope` to the parts of a runner config that name
    an upstream type: the model, the datasets and the evaluators.

    This lets a ``gppf_mm``-scoped config use ``type='mmdet.FasterRCNN'``
    or ``type='mmseg.ADE20KDataset'`` with the upstream defaults and
    pipelines unchanged.
    """
    if isinstance(cfg.get('model'), dict):
        cfg.model = with_scope(cfg.model)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict) and isinstance(
                loader.get('dataset'), dict):
            loader.dataset = with_scope(loader.dataset)
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and 'type' in evaluator:
            cfg[f'{split}_evaluator'] = with_scope(evaluator)
        elif isinstance(evaluator, (list, tuple)):
            cfg[f'{split}_evaluator'] = [
                with_scope(m) if isinstance(m, dict) else m
                for m in evaluator
            ]
    return cfg
