# Copyright (c) gppf_mm contributors. All rights reserved.
"""Turn a config's ``tasks`` dict into the arguments of an MMEngine Runner.

A GPPF config lists its tasks once::

    tasks = dict(
        coco=dict(
            algorithm=dict(type='mmdet.MaskRCNN', ...),   # no backbone
            sample_weight=2.5, loss_weight=1.0,
            train_dataloader=dict(batch_size=8, dataset=..., sampler=...),
            val_dataloader=..., val_evaluator=...,
            test_dataloader=..., test_evaluator=...),
        ade20k=dict(...))

A task can also be a stock single-task config of MMDet, MMSeg or
MMPretrain, named with its library's prefix; GPPF takes its model without
the backbone, its dataloaders and its evaluators, and the task's other
fields override parts of them::

    tasks = dict(lvis=dict(
        config='mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py',
        sample_weight=2.5, train_dataloader=dict(batch_size=8)))

A key with dots reaches into lists (``algorithm={'roi_head.bbox_head.0.
num_classes': 365}``, e.g. the three heads of a Cascade R-CNN).

An ``algorithm`` may start from a named template of the config's
``algorithms`` dict and override parts of it; a template is a model config
or names an upstream config whose model (without the backbone) it
overrides::

    algorithms = dict(mask_rcnn=dict(
        config='mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
        neck=dict(out_channels=64)))
    tasks = dict(coco=dict(algorithm=dict(
        template='mask_rcnn', roi_head=dict(bbox_head=dict(num_classes=80))),
        ...))

:func:`expand_tasks` distributes those parts: the algorithms and loss
weights go to ``model.tasks``, the dataloaders to ``train_dataloader`` /
``val_dataloader`` / ``test_dataloader`` (dicts keyed by task), the sampling
weights to ``train_cfg.task_weights``. Every field is checked first, so a
broken config fails before any data is read, with a message that names the
task and the field.
"""
import copy
import numbers
from typing import Any, List, Optional

from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

from gppf_mm.utils.scope import UPSTREAM_SCOPES, scope_of, with_scope

from .task_errors import TaskConfigError
from .task_errors import task_error as _err
from .upstream_tasks import (
    TEMPLATE_KEY,
    merge_overrides,
    plain_copy,
    resolve_upstream_configs,
    upstream_algorithm,
)

KIND_NAMES = dict(MODELS='model', DATASETS='dataset', METRICS='metric',
                  TRANSFORMS='transform')

KNOWN_TASK_KEYS = {
    'config', 'data_config', 'algorithm', 'sample_weight', 'loss_weight',
    'train_dataloader',
    'val_dataloader', 'val_evaluator', 'test_dataloader', 'test_evaluator',
    'skip_bad_samples'
}


def _registry_of(scope: str, kind: str):
    import importlib
    module = importlib.import_module(f'{scope}.registry')
    return getattr(module, kind)


def _lookup(task: str, field: str, cfg: Any, kind: str,
            default_scope: str) -> type:
    """Find the class a config names, in the config's own library."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise _err(task, field, f'must be a dict with a "type", got {cfg!r}')
    scope = scope_of(cfg) or default_scope
    type_name = str(cfg['type']).split('.', 1)[-1] if scope_of(
        cfg) and str(cfg['type']).startswith(scope + '.') else cfg['type']
    if not isinstance(type_name, str):
        return type_name
    try:
        registry = _registry_of(scope, kind)
    except (ImportError, AttributeError):
        raise _err(task, field, f'unknown library scope {scope!r}') from None
    with DefaultScope.overwrite_default_scope(scope):
        found = registry.get(type_name)
    if found is None:
        raise _err(
            task, f'{field}.type',
            f'{cfg["type"]!r} is not a registered {KIND_NAMES[kind]} type '
            f'of {scope}')
    return found


def _head_num_classes(algorithm: dict) -> List[tuple]:
    """``(field, num_classes)`` of every head of an algorithm config."""
    found = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f'{path}.{key}' if path else key
                if key == 'num_classes' and isinstance(value, int):
                    found.append((sub, value))
                elif key not in ('train_cfg', 'test_cfg'):
                    visit(value, sub)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}[{i}]')

    visit(algorithm, 'algorithm')
    return found


def _dataset_classes(task: str, field: str, dataset: dict,
                     default_scope: str) -> Optional[tuple]:
    """The class names a dataset config declares, if they can be known
    without reading data."""
    if not isinstance(dataset, dict):
        return None
    for key in ('dataset', 'datasets'):
        if key in dataset:  # dataset wrappers
            inner = dataset[key]
            inner = inner[0] if isinstance(inner, (list, tuple)) else inner
            return _dataset_classes(task, f'{field}.{key}', inner,
                                    scope_of(dataset) or default_scope)
    metainfo = dataset.get('metainfo') or {}
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    cls = _lookup(task, field, dataset, 'DATASETS', default_scope)
    classes = getattr(cls, 'METAINFO', {}).get('classes')
    return tuple(classes) if classes else None


def resolve_templates(tasks: Any, algorithms: Any) -> None:
    """Replace ``algorithm=dict(template=NAME, **overrides)`` in place by the
    template merged with the overrides."""
    if not isinstance(tasks, dict):
        return
    for name, task in tasks.items():
        algorithm = task.get('algorithm') if isinstance(task, dict) else None
        if not isinstance(algorithm, dict) or TEMPLATE_KEY not in algorithm:
            continue
        template = algorithm[TEMPLATE_KEY]
        if not isinstance(algorithms, dict) or template not in algorithms:
            known = list(algorithms) if isinstance(algorithms, dict) else []
            raise _err(name, f'algorithm.{TEMPLATE_KEY}',
                       f'unknown template {template!r}; the config\'s '
                       f'`algorithms` has {known}')
        overrides = {
            k: v
            for k, v in algorithm.items() if k != TEMPLATE_KEY
        }
        base = dict(plain_copy(algorithms[template]))
        if 'config' in base:
            # a template that names an upstream config: its model without
            # the backbone, with the template's own fields merged over it
            upstream, _ = upstream_algorithm(
                name, f'algorithms.{template}.config (its template)',
                base.pop('config'))
            base = merge_overrides(upstream, base)
        task['algorithm'] = ConfigDict(merge_overrides(base, overrides))


def _check_dataset(task: str, field: str, dataset: Any, scope: str) -> None:
    """The dataset type, wrapped datasets and pipeline transforms exist in
    the task's library (also when ``metainfo`` names the classes)."""
    if not isinstance(dataset, dict):
        raise _err(task, field, f'must be a dict, got {dataset!r}')
    _lookup(task, field, dataset, 'DATASETS', scope)
    scope = scope_of(dataset) or scope
    for key in ('dataset', 'datasets'):
        if key in dataset:
            inner = dataset[key]
            items = inner if isinstance(inner, (list, tuple)) else [inner]
            for i, item in enumerate(items):
                sub = f'{field}.{key}' + (f'[{i}]' if key == 'datasets'
                                          else '')
                _check_dataset(task, sub, item, scope)
    pipeline = dataset.get('pipeline') or []
    if not isinstance(pipeline, (list, tuple)):
        raise _err(task, f'{field}.pipeline',
                   f'must be a list of transforms, got {pipeline!r}')
    for i, step in enumerate(pipeline):
        if isinstance(step, dict):
            _lookup(task, f'{field}.pipeline[{i}]', step, 'TRANSFORMS',
                    scope)


def _check_loader(task: str, field: str, loader: Any, scope: str) -> None:
    if not isinstance(loader, dict):
        raise _err(task, field, f'must be a dict, got {loader!r}')
    if 'dataset' not in loader:
        raise _err(task, f'{field}.dataset', 'missing')
    batch_size = loader.get('batch_size', 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
            batch_size < 1:
        raise _err(task, f'{field}.batch_size',
                   f'must be an int >= 1, got {batch_size!r}')
    _check_dataset(task, f'{field}.dataset', loader['dataset'], scope)


def _check_evaluator(task: str, field: str, evaluator: Any,
                     scope: str) -> None:
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        _check_evaluator(task, f'{field}.metrics', evaluator['metrics'],
                         scope)
        return
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator
    ]
    for i, metric in enumerate(metrics):
        sub = f'{field}[{i}]' if isinstance(evaluator, (list, tuple)) \
            else field
        _lookup(task, sub, metric, 'METRICS', scope)


def validate_tasks(tasks: Any) -> None:
    """Check every task of a GPPF config; raise :class:`TaskConfigError`."""
    if not isinstance(tasks, dict) or not tasks:
        raise TaskConfigError(
            'the config needs a non-empty `tasks` dict: '
            'tasks = dict(name=dict(algorithm=..., train_dataloader=...))')
    for name, task in tasks.items():
        if not isinstance(task, dict):
            raise _err(name, '', f'must be a dict, got {type(task).__name__}')
        unknown = set(task) - KNOWN_TASK_KEYS
        if unknown:
            raise _err(name, sorted(unknown)[0],
                       f'unknown field; known fields: '
                       f'{sorted(KNOWN_TASK_KEYS)}')
        if 'algorithm' not in task:
            raise _err(name, 'algorithm', 'missing')
        algorithm = task['algorithm']
        if not isinstance(algorithm, dict):
            raise _err(name, 'algorithm', f'must be a dict, got {algorithm!r}')
        if scope_of(algorithm) is None:
            type_ = algorithm.get('type')
            if isinstance(type_, str) and '.' in type_:
                raise _err(
                    name, 'algorithm.type',
                    f'unknown library scope {type_.split(".", 1)[0]!r} in '
                    f'{type_!r}; known: {sorted(UPSTREAM_SCOPES)}')
            raise _err(
                name, 'algorithm.type', f'{type_!r} must '
                'name its library, e.g. "mmdet.MaskRCNN"')
        scope = scope_of(algorithm)
        _lookup(name, 'algorithm', algorithm, 'MODELS', scope)
        if 'train_dataloader' not in task:
            raise _err(name, 'train_dataloader', 'missing: every task needs '
                       'a training dataloader')
        loader = task['train_dataloader']
        _check_loader(name, 'train_dataloader', loader, scope)
        for split in ('val', 'test'):
            if f'{split}_dataloader' in task and \
                    task[f'{split}_dataloader'] is None:
                continue  # this task explicitly has no such split
            has_loader = f'{split}_dataloader' in task
            has_eval = task.get(f'{split}_evaluator') is not None
            if has_loader != has_eval:
                missing = f'{split}_evaluator' if has_loader else \
                    f'{split}_dataloader'
                raise _err(name, missing,
                           f'missing (a {split} split needs both a '
                           'dataloader and an evaluator)')
            if has_loader:
                _check_loader(name, f'{split}_dataloader',
                              task[f'{split}_dataloader'], scope)
                _check_evaluator(name, f'{split}_evaluator',
                                 task[f'{split}_evaluator'], scope)
        weight = task.get('sample_weight', 1.0)
        if isinstance(weight, bool) or not isinstance(
                weight, numbers.Real) or not weight > 0:
            raise _err(name, 'sample_weight',
                       f'must be a number > 0, got {weight!r} (a task that '
                       'is never sampled never trains its head: leave it '
                       'out of `tasks` instead)')
        skip = task.get('skip_bad_samples', 0)
        if not isinstance(skip, (bool, int)) or skip < 0:
            raise _err(name, 'skip_bad_samples',
                       f'must be a bool or an int >= 0, got {skip!r}')
        loss_weight = task.get('loss_weight', 1.0)
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, numbers.Real) or loss_weight < 0:
            raise _err(name, 'loss_weight',
                       f'must be a number >= 0, got {loss_weight!r}')
        classes = _dataset_classes(name, 'train_dataloader.dataset',
                                   loader['dataset'], scope)
        if classes is not None:
            for field, num in _head_num_classes(algorithm):
                if num != len(classes):
                    raise _err(
                        name, field,
                        f'num_classes={num} disagrees with the '
                        f'{len(classes)} classes of its dataset {classes}')
    for split in ('val', 'test'):
        key = f'{split}_dataloader'
        having = [n for n, t in tasks.items() if t.get(key) is not None]
        lacking = [n for n, t in tasks.items() if key not in t]
        if having and lacking:
            raise _err(
                lacking[0], f'{split}_dataloader',
                f'missing: tasks {having} have a {split} set and this task '
                f'has none, so it would silently not be evaluated; give it '
                f'{split}_dataloader and {split}_evaluator, or set '
                f'{split}_dataloader=None to leave it out on purpose')


def _scoped_loader(loader: dict, scope: str) -> dict:
    """A dataloader config whose dataset is built in ``scope``, and whose
    sampler and batch sampler are too when gppf_mm's registry (with
    MMEngine's) does not have them (an upstream config's
    ``AspectRatioBatchSampler`` is MMDet's)."""
    from gppf_mm.registry import DATA_SAMPLERS
    loader = copy.deepcopy(loader)
    dataset = loader['dataset']
    if scope_of(dataset) is None:
        dataset = dict(dataset)
        dataset['_scope_'] = scope
    loader['dataset'] = with_scope(dataset)
    for key in ('sampler', 'batch_sampler'):
        sampler = loader.get(key)
        if isinstance(sampler, dict) and scope_of(sampler) is None and \
                isinstance(sampler.get('type'), str) and \
                DATA_SAMPLERS.get(sampler['type']) is None:
            loader[key] = dict(sampler, _scope_=scope)
    return loader


def _task_loader(name: str, task: dict, scope: str) -> dict:
    """The task's train dataloader, its dataset wrapped in
    :class:`~gppf_mm.datasets.TaskDataset` (errors that name the task and
    the file; ``skip_bad_samples``)."""
    loader = _scoped_loader(task['train_dataloader'], scope)
    loader['dataset'] = dict(
        type='gppf_mm.TaskDataset', dataset=loader['dataset'], task=name,
        skip_bad_samples=task.get('skip_bad_samples', 0))
    return loader


def _scoped_evaluator(evaluator: Any, scope: str) -> Any:
    def fix(metric):
        metric = copy.deepcopy(dict(metric))
        if scope_of(metric) is None:
            metric['type'] = f'{scope}.{metric["type"]}'
        return metric

    if isinstance(evaluator, (list, tuple)):
        return [fix(m) for m in evaluator]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = copy.deepcopy(dict(evaluator))
        evaluator['metrics'] = _scoped_evaluator(evaluator['metrics'], scope)
        return evaluator
    return fix(evaluator)


def expand_tasks(cfg: Config, only: Optional[List[str]] = None) -> Config:
    """Return a copy of ``cfg`` with the runner arguments filled from
    ``cfg.tasks`` (see the module docstring).

    Args:
        cfg: a GPPF config with a ``tasks`` dict and ``model.type='GPPF'``.
        only: keep only these tasks (e.g. ``tools/test.py --task``).
    """
    cfg = copy.deepcopy(cfg)
    tasks = cfg.get('tasks')
    resolve_upstream_configs(tasks)
    resolve_templates(tasks, cfg.get('algorithms'))
    validate_tasks(tasks)
    if only:
        missing = [t for t in only if t not in tasks]
        if missing:
            raise TaskConfigError(f'unknown task(s) {missing}; the config '
                                  f'has {list(tasks)}')
        tasks = ConfigDict({k: v for k, v in tasks.items() if k in only})
        cfg.tasks = tasks
    model = cfg.get('model')
    if not isinstance(model, dict):
        raise TaskConfigError('the config needs `model = dict(type="GPPF", '
                              'backbone=...)`')
    model.tasks = {
        name: dict(
            algorithm=t['algorithm'], loss_weight=t.get('loss_weight', 1.0))
        for name, t in tasks.items()
    }
    scopes = {name: scope_of(t['algorithm']) for name, t in tasks.items()}
    cfg.train_dataloader = {
        name: _task_loader(name, t, scopes[name])
        for name, t in tasks.items()
    }
    train_cfg = cfg.get('train_cfg') or ConfigDict(type='SIMTTrainLoop')
    train_cfg.setdefault('type', 'SIMTTrainLoop')
    train_cfg['task_weights'] = {
        name: float(t.get('sample_weight', 1.0))
        for name, t in tasks.items()
    }
    cfg.train_cfg = train_cfg
    for split in ('val', 'test'):
        names = [
            n for n, t in tasks.items()
            if t.get(f'{split}_dataloader') is not None
        ]
        if not names:
            cfg[f'{split}_dataloader'] = None
            cfg[f'{split}_evaluator'] = None
            cfg[f'{split}_cfg'] = None
            continue
        cfg[f'{split}_dataloader'] = {
            n: _scoped_loader(tasks[n][f'{split}_dataloader'], scopes[n])
            for n in names
        }
        cfg[f'{split}_evaluator'] = {
            n: _scoped_evaluator(tasks[n][f'{split}_evaluator'], scopes[n])
            for n in names
        }
        loop = cfg.get(f'{split}_cfg') or ConfigDict()
        loop.setdefault('type', f'MultiTask{split.capitalize()}Loop')
        cfg[f'{split}_cfg'] = loop
    cfg.setdefault('model_wrapper_cfg',
                   dict(type='gppf_mm.GradientFusionWrapper'))
    return cfg


def task_names(cfg: Config) -> List[str]:
    return list((cfg.get('tasks') or {}).keys())


__all__ = [
    'validate_tasks', 'expand_tasks', 'task_names', 'resolve_templates',
    'KNOWN_TASK_KEYS'
]
