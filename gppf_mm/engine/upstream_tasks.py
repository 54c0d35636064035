# Copyright (c) gppf_mm contributors. All rights reserved.
"""A task of a GPPF config that names a stock single-task config of MMDet,
MMSeg or MMPretrain (``config='mmdet::...'``): its model without the
backbone, its dataloaders and evaluators, with the task's own fields merged
over them."""
import copy
from typing import Any

from mmengine.config import Config, ConfigDict

from gppf_mm.utils.scope import UPSTREAM_SCOPES, scope_of

from .task_errors import task_error as _err

TEMPLATE_KEY = 'template'


UPSTREAM_TASK_KEYS = ('train_dataloader', 'val_dataloader', 'val_evaluator',
                      'test_dataloader', 'test_evaluator')


def _load_upstream(name: str, field: str, path: Any) -> Config:
    """An upstream config file named ``'<lib>::<path>'`` (its library's
    installed configs), or an error naming the task and the field."""
    import os.path as osp

    from mmengine.utils import get_installed_path
    scope = path.split('::', 1)[0] if isinstance(path, str) else None
    if scope not in UPSTREAM_SCOPES:
        raise _err(name, field,
                   f"must name an upstream config, e.g. 'mmdet::mask_rcnn/"
                   f"mask-rcnn_r50_fpn_1x_coco.py' (prefixes "
                   f'{sorted(UPSTREAM_SCOPES)}), got {path!r}')
    file = osp.join(get_installed_path(scope), '.mim', 'configs',
                    path.split('::', 1)[1])
    if not osp.isfile(file):
        raise _err(name, field, f'{path!r}: no such config in the installed '
                   f'{scope} ({file})')
    return Config.fromfile(file)


def plain_copy(value: Any) -> Any:
    """A deep copy of ``value`` with configs as plain dicts."""
    return copy.deepcopy(value.to_dict() if hasattr(value, 'to_dict')
                         else value)


def _split_dotted(node: Any, path: str = '') -> tuple:
    """``(nested, dotted)``: the overrides whose keys have no dots, nested,
    and those with a dot in their key, as full dotted paths (which
    ``Config.merge_from_dict`` resolves, list indices included)."""
    if not isinstance(node, dict):
        return node, {}
    nested, dotted = {}, {}
    for key, value in node.items():
        full = f'{path}.{key}' if path else key
        if '.' in str(key):
            dotted[full] = value
            continue
        sub, sub_dotted = _split_dotted(value, full)
        if not (isinstance(value, dict) and not sub and sub_dotted):
            nested[key] = sub
        dotted.update(sub_dotted)
    return nested, dotted


def upstream_algorithm(name: str, field: str, path: Any) -> tuple:
    """``(algorithm, upstream)``: the model of the upstream config ``path``
    without its backbone (its type prefixed with the library, the config's
    top-level ``data_preprocessor`` moved in where the model has none, as
    MMEngine's Runner does), and the loaded config itself."""
    upstream = _load_upstream(name, field, path)
    scope = path.split('::', 1)[0]
    model = upstream.get('model')
    if not isinstance(model, dict) or 'type' not in model:
        raise _err(name, field, f'{path!r} has no `model`')
    algorithm = plain_copy(model)
    algorithm.pop('backbone', None)
    # MMSeg's segmentors name the backbone's ImageNet weights here; GPPF's
    # shared backbone has its own initialisation
    algorithm.pop('pretrained', None)
    if scope_of(algorithm) is None:
        algorithm['type'] = f'{scope}.{algorithm["type"]}'
    if upstream.get('data_preprocessor') is not None:
        algorithm.setdefault('data_preprocessor',
                             plain_copy(upstream.data_preprocessor))
    return algorithm, upstream


def merge_overrides(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged over it as MMEngine merges configs
    (``_delete_=True`` replaces; keys with dots reach into lists, e.g.
    ``'roi_head.bbox_head.0.num_classes'``)."""
    merged = Config(copy.deepcopy(base))
    nested, dotted = _split_dotted(copy.deepcopy(overrides))
    # list fields take dicts keyed by index ('--cfg-options tasks.coco.
    # train_dataloader.dataset.pipeline.2.scale=...' arrives this way)
    merged.merge_from_dict(nested, allow_list_keys=True)
    merged.merge_from_dict(dotted, allow_list_keys=True)
    return merged.to_dict()


def upstream_task(name: str, task: dict) -> dict:
    """The task ``config='mmdet::...'`` names, as a GPPF task: the model
    without its backbone (its type prefixed with the library, the config's
    top-level ``data_preprocessor`` moved in where the model has none, as
    MMEngine's Runner does), the dataloaders and evaluators; ``data_config``
    (another upstream config, e.g. a ``_base_/datasets`` file) replaces the
    dataloaders, evaluators and top-level ``data_preprocessor``. The task's
    own fields are then merged over them (``_delete_=True`` replaces).
    """
    if TEMPLATE_KEY in (task.get('algorithm') or {}):
        raise _err(name, 'algorithm.template',
                   'a task takes its algorithm from `config` or from a '
                   'template, not both')
    algorithm, upstream = upstream_algorithm(name, 'config', task['config'])
    data = upstream
    if task.get('data_config') is not None:
        data = _load_upstream(name, 'data_config', task['data_config'])
        if data.get('data_preprocessor') is not None:
            algorithm['data_preprocessor'] = plain_copy(data.data_preprocessor)
    base = dict(algorithm=algorithm)
    for key in UPSTREAM_TASK_KEYS:
        if data.get(key) is not None:
            base[key] = plain_copy(data[key])
    overrides = {k: v for k, v in task.items()
                 if k not in ('config', 'data_config')}
    out = merge_overrides(base, overrides)
    # a split the task turns off stays off
    for split in ('val', 'test'):
        if f'{split}_dataloader' in task and \
                task[f'{split}_dataloader'] is None:
            out[f'{split}_dataloader'] = None
            out.pop(f'{split}_evaluator', None)
    return out


def resolve_upstream_configs(tasks: Any) -> None:
    """Replace every task with ``config='<lib>::<file>'`` in place by the
    task it names (:func:`upstream_task`)."""
    if not isinstance(tasks, dict):
        return
    for name, task in tasks.items():
        if isinstance(task, dict) and 'config' in task:
            tasks[name] = ConfigDict(upstream_task(name, task))
