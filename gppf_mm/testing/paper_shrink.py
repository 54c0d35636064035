# Copyright (c) gppf_mm contributors. All rights reserved.
"""``--cfg-options`` that run a paper-scale GPPF config on the mini
datasets of :mod:`gppf_mm.testing.mini_pretrain`: data paths
under the mini root, small images, a slim backbone with the heads' input
widths to match, small batches, no workers. Only command-line overrides:
the config itself runs unchanged."""
import copy
from typing import Any, Dict, List

from mmengine.config import Config

from gppf_mm.engine.upstream_tasks import upstream_task

SIZE_KEYS = ('scale', 'scales', 'crop_size', 'img_scale', 'size')
# stage widths of the paper's backbones -> of their slim versions: a
# ResNet-50 with base_channels=16, a Swin-T with embed_dims=24
SLIM = dict(
    resnet={2048: 512, 1024: 256, 512: 128, 256: 64},
    swin={768: 192, 384: 96, 192: 48, 96: 24})
SLIM_BACKBONE = dict(
    resnet=dict(base_channels=16, with_cp=False),
    swin=dict(embed_dims=24, num_heads=[1, 2, 3, 4], window_size=4,
              with_cp=False))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _small(value: Any, side: int) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(int(value), side)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (list, tuple)) for v in value):
            return [_small(v, side) for v in value]  # a list of scales
        return tuple(min(int(v), side) for v in value)
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return '(' + ','.join(_fmt(v) for v in value) + ',)' if len(
            value) == 1 else '(' + ','.join(_fmt(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ','.join(_fmt(v) for v in value) + ']'
    return str(value)


def _walk(node: Any, path: str, out: Dict[str, Any], root: str,
          side: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f'{path}.{key}'
            if key == 'pipeline' and isinstance(value, list):
                for i, t in enumerate(value):
                    for k in SIZE_KEYS:
                        if isinstance(t, dict) and k in t:
                            out[f'{sub}.{i}.{k}'] = _small(t[k], side)
            _walk(value, sub, out, root, side)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f'{path}.{i}', out, root, side)
    elif isinstance(node, str) and node.startswith('data/'):
        out[path] = root.rstrip('/') + '/' + node[len('data/'):]


def _widths(node: Any, path: str, out: Dict[str, Any], side: int,
            slim: Dict[int, int]) -> None:
    """Input widths of the heads for the slim backbone; the data
    preprocessors' fixed pad sizes down to the small images; no score
    threshold at test time."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f'{path}.{key}'
            if key == 'in_channels' and isinstance(value, list) and \
                    value == sorted(slim):
                out[sub] = [slim[v] for v in value]
            elif key == 'in_channels' and value in slim and (
                    'auxiliary_head' in path or path.endswith('.head')):
                out[sub] = slim[value]
            elif key in ('size', 'crop_size') and 'data_preprocessor' in sub:
                out[sub] = _small(value, side)
            elif key == 'score_thr' and '.test_cfg.' in sub:
                # a detector a few steps old scores below the usual 0.05;
                # its metric still gets boxes to evaluate
                out[sub] = 0.0
            else:
                _widths(value, sub, out, side, slim)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _widths(value, f'{path}.{i}', out, side, slim)


def paper_options(config: str, root: str, side: int = 64,
                  batch_size: int = 2) -> List[str]:
    """The ``--cfg-options`` of ``config`` for the mini datasets under
    ``root`` (``data/...`` -> ``root/...``)."""
    cfg = Config.fromfile(config)
    kind = 'swin' if 'Swin' in cfg.model.backbone.type else 'resnet'
    found: Dict[str, Any] = {}
    for name, task in cfg.tasks.items():
        resolved = upstream_task(name, copy.deepcopy(task.to_dict()))
        prefix = f'tasks.{name}'
        for key in LOADERS + ('val_evaluator', 'test_evaluator'):
            if resolved.get(key) is not None:
                _walk(resolved[key], f'{prefix}.{key}', found, root, side)
        for key in LOADERS:
            if resolved.get(key) is not None:
                found[f'{prefix}.{key}.num_workers'] = 0
                found[f'{prefix}.{key}.persistent_workers'] = False
        found[f'{prefix}.train_dataloader.batch_size'] = batch_size
        _widths(resolved['algorithm'], f'{prefix}.algorithm', found, side,
                SLIM[kind])
    for key, value in SLIM_BACKBONE[kind].items():
        found[f'model.backbone.{key}'] = value
    return [f'{k}={_fmt(v)}' for k, v in found.items()]
