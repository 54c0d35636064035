# Copyright (c) gppf_mm contributors. All rights reserved.
import datetime
import warnings
from typing import Any, Optional

from mmengine import DefaultScope
from mmengine.registry import Registry

UPSTREAM_SCOPES = ('mmdet', 'mmseg', 'mmpretrain', 'mmengine')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every gppf_mm module so that they register themselves.

    Args:
        init_default_scope (bool): set the default scope to ``'gppf_mm'``
            (creating a uniquely named ``DefaultScope`` instance if another
            scope is current, as the OpenMMLab packages do).
    """
    import gppf_mm.datasets  # noqa: F401,F403
    import gppf_mm.engine  # noqa: F401,F403
    import gppf_mm.evaluation  # noqa: F401,F403
    import gppf_mm.models  # noqa: F401,F403

    if init_default_scope:
        never_created = (DefaultScope.get_current_instance() is None
                         or not DefaultScope.check_instance_created('gppf_mm'))
        if never_created:
            DefaultScope.get_instance('gppf_mm', scope_name='gppf_mm')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'gppf_mm':
            warnings.warn('The current default scope '
                          f'"{current_scope.scope_name}" is not "gppf_mm", '
                          '`register_all_modules` will force the current'
                          'default scope to be "gppf_mm". If this is not '
                          'expected, please set `init_default_scope=False`.')
            new_instance_name = f'gppf_mm-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='gppf_mm')


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
