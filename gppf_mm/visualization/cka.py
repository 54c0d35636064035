# Copyright (c) gppf_mm contributors. All rights reserved.
"""CKA heatmaps of lego layers (the paper's Appendix A).

:func:`cka_report` builds one or two GPPF models from their configs and
checkpoints, runs a few test (or val) batches of a task through each
task's path, and writes minibatch linear CKA heatmaps between the lego
layers (the stem and every residual block of a lego ResNet): within each
model and across the two.
"""
import copy
import os
import os.path as osp
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from gppf_mm.analysis.cka import (
    cka_matrices,
    collect_layer_grams,
    layer_display_names,
)


def plot_cka_heatmap(matrix: torch.Tensor,
                     row_labels: Sequence[str],
                     col_labels: Sequence[str],
                     out_file: str,
                     title: Optional[str] = None,
                     xlabel: str = '',
                     ylabel: str = '') -> str:
    """Write a PNG heatmap of a CKA matrix (rows bottom to top, as in
    Kornblith et al. and Nguyen et al.); returns ``out_file``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    matrix = torch.as_tensor(matrix).detach().double().cpu()
    if matrix.dim() != 2 or matrix.shape != (len(row_labels),
                                              len(col_labels)):
        raise ValueError(f'{len(row_labels)} row and {len(col_labels)} '
                         f'column labels for a matrix of shape '
                         f'{tuple(matrix.shape)}')
    rows, cols = matrix.shape
    fig, ax = plt.subplots(
        figsize=(max(4.0, 0.32 * cols + 2.2), max(3.5, 0.32 * rows + 1.6)))
    image = ax.imshow(matrix.numpy(), origin='lower', cmap='magma',
                      vmin=0.0, vmax=1.0, interpolation='nearest')
    ax.set_xticks(range(cols))
    ax.set_xticklabels(col_labels, rotation=90, fontsize=7)
    ax.set_yticks(range(rows))
    ax.set_yticklabels(row_labels, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='CKA')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file


# ------------------------------------------------------------ models
def _backbone(model: nn.Module) -> nn.Module:
    return getattr(model, 'backbone', model)


def task_forward(model: nn.Module, task: Optional[str]) -> Callable:
    """Run ``model``'s backbone on an input batch along ``task``'s path:
    ``model.extract_feat(inputs, task)`` for a GPPF model, the backbone
    inside ``use_task(task)`` for a model that is a lego backbone or has
    one."""
    if hasattr(model, 'algorithms') and hasattr(model, 'extract_feat'):
        return lambda inputs: model.extract_feat(inputs, task)
    backbone = _backbone(model)
    use_task = getattr(backbone, 'use_task', None)

    def forward(inputs):
        with use_task(task) if use_task is not None else nullcontext():
            return backbone(inputs)

    return forward


def _device_of(model: nn.Module) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device('cpu')


def model_cka(model1: nn.Module,
              task1: Optional[str],
              batches: Sequence[torch.Tensor],
              model2: Optional[nn.Module] = None,
              task2: Optional[str] = None) -> dict:
    """Minibatch CKA of the lego layers of one or two models (eval mode,
    argmax paths) on the same input batches.

    Args:
        model1: a GPPF model or a lego backbone.
        task1: the task whose path ``model1`` takes.
        batches: preprocessed input tensors ``(n, C, H, W)``.
        model2, task2: the second model and its task (default
            ``task1``); ``model2=None`` with a ``task2`` compares two paths
            of ``model1``.

    Returns:
        dict: ``within1`` (L1 x L1), ``layers1`` and, with a second model
        or task, ``within2`` (L2 x L2), ``cross`` (L1 x L2), ``layers2``.
    """
    second = model2 is not None or task2 is not None
    model2 = model1 if model2 is None else model2
    task2 = task1 if task2 is None else task2

    def grams(model, task):
        device = _device_of(model)
        forward = task_forward(model, task)
        return collect_layer_grams(
            _backbone(model), forward, (x.to(device) for x in batches))

    grams1 = grams(model1, task1)
    grams2 = grams(model2, task2) if second else None
    out = cka_matrices(grams1, grams2)
    out['layers1'] = layer_display_names(_backbone(model1))
    if second:
        out['layers2'] = layer_display_names(_backbone(model2))
    return out


def build_model(cfg, checkpoint: Optional[str], device: str = 'cpu',
                strict: bool = True) -> nn.Module:
    """Build a config's model, load ``checkpoint`` and set eval mode.

    ``cfg`` is a config path or an mmengine ``Config``; a GPPF config's
    ``tasks`` are expanded into ``model.tasks`` first.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from gppf_mm.engine.task_config import expand_tasks
    from gppf_mm.registry import MODELS
    from gppf_mm.utils import register_all_modules
    from gppf_mm.utils.checkpoint import gppf_checkpoint_loading

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    if cfg.get('tasks'):
        cfg = expand_tasks(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', None) or 'gppf_mm'):
        model = MODELS.build(model_cfg)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} not found')
        with gppf_checkpoint_loading():
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=strict, logger='current')
    return model.to(device).eval()


def task_input_batches(cfg, model: nn.Module, task: str,
                       num_batches: int = 8,
                       split: str = 'test') -> List[torch.Tensor]:
    """Up to ``num_batches`` input tensors of ``task``'s ``split``
    dataloader (``test`` falls back to ``val``), through the task's data
    preprocessor (``model.algorithm(task).data_preprocessor``); on the
    CPU."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from gppf_mm.engine.task_config import expand_tasks

    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    if cfg.get('tasks'):
        if task not in cfg.tasks:
            raise KeyError(f'unknown task {task!r}; the config has '
                           f'{list(cfg.tasks)}')
        cfg = expand_tasks(cfg, only=[task])
    loaders = {}
    for name in (split, 'val') if split == 'test' else (split, ):
        loader = cfg.get(f'{name}_dataloader')
        if isinstance(loader, dict) and task in loader:
            loader = loader[task]  # per-task dataloaders
        if isinstance(loader, dict) and 'dataset' in loader:
            loaders[name] = loader
    if not loaders:
        raise KeyError(f'task {task!r} has no {split} dataloader')
    loader_cfg = copy.deepcopy(next(iter(loaders.values())))
    loader_cfg['num_workers'] = 0
    loader_cfg.pop('persistent_workers', None)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', None) or 'gppf_mm'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    algorithm = model.algorithm(task) if hasattr(model, 'algorithm') \
        else model
    batches = []
    with torch.no_grad():
        for data in loader:
            if len(batches) >= num_batches:
                break
            data = algorithm.data_preprocessor(data, False)
            inputs = data['inputs']
            if not isinstance(inputs, torch.Tensor):
                raise TypeError(f'task {task!r}: the data preprocessor gave '
                                f'{type(inputs).__name__} inputs, not a '
                                'batched tensor')
            batches.append(inputs.cpu())
    if not batches:
        raise ValueError(f'the {split} dataloader of {task!r} is empty')
    return batches


def cka_report(cfg1,
               ckpt1: Optional[str],
               task1: str,
               cfg2=None,
               ckpt2: Optional[str] = None,
               task2: Optional[str] = None,
               out_dir: str = 'work_dirs/cka',
               num_batches: int = 8,
               device: Optional[str] = None,
               split: str = 'test',
               strict: bool = True) -> Dict[str, str]:
    """CKA heatmaps of the lego layers of one or two GPPF models.

    The inputs are ``num_batches`` batches of ``task1``'s test (else val)
    split through ``task1``'s data preprocessor; model 1 runs them along
    ``task1``'s path, model 2 (``cfg2`` / ``ckpt2``; model 1 when neither
    is given) along ``task2``'s (default ``task1``).

    Args:
        cfg1, cfg2: config paths or mmengine ``Config`` s (``cfg2``
            defaults to ``cfg1`` when only ``ckpt2`` is given).
        ckpt1, ckpt2: checkpoints.
        task1, task2: task names.
        out_dir: output directory.
        num_batches: batches to accumulate.
        device: defaults to ``'cuda'`` when available.

    Returns:
        dict: ``within1``, ``within2``, ``cross`` (PNG paths; the last two
        only with a second model or task) and ``matrices`` (a ``.pth`` of
        the CKA matrices, tensors only).
    """
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if ckpt2 is not None and cfg2 is None:
        cfg2 = cfg1
    if cfg2 is not None and ckpt2 is None:
        raise ValueError('a second config needs its checkpoint (ckpt2)')
    model1 = build_model(cfg1, ckpt1, device, strict)
    model2 = build_model(cfg2, ckpt2, device, strict) \
        if cfg2 is not None else None
    if model2 is not None and task2 is None:
        task2 = task1
    batches = task_input_batches(cfg1, model1, task1, num_batches, split)
    result = model_cka(model1, task1, batches, model2, task2)
    if model2 is not None:
        name2 = f'{task2}_model2'
    else:  # a second path of model 1
        name2 = task2 if task2 != task1 else f'{task2}_path2'
    os.makedirs(out_dir, exist_ok=True)
    n = sum(x.shape[0] for x in batches)
    paths = dict(within1=plot_cka_heatmap(
        result['within1'], result['layers1'], result['layers1'],
        osp.join(out_dir, f'cka_{task1}.png'),
        title=f'CKA within model 1 ({task1} path, {n} images)',
        xlabel=f'model 1 ({task1})', ylabel=f'model 1 ({task1})'))
    if 'cross' in result:
        paths['within2'] = plot_cka_heatmap(
            result['within2'], result['layers2'], result['layers2'],
            osp.join(out_dir, f'cka_{name2}.png'),
            title=f'CKA within model 2 ({task2} path, {n} images)',
            xlabel=f'model 2 ({task2})', ylabel=f'model 2 ({task2})')
        paths['cross'] = plot_cka_heatmap(
            result['cross'], result['layers1'], result['layers2'],
            osp.join(out_dir, f'cka_{task1}_vs_{name2}.png'),
            title=f'CKA model 1 ({task1}) vs model 2 ({task2})',
            xlabel=f'model 2 ({task2})', ylabel=f'model 1 ({task1})')
    paths['matrices'] = osp.join(out_dir, 'cka_matrices.pth')
    torch.save({k: v for k, v in result.items()
                if isinstance(v, torch.Tensor)}, paths['matrices'])
    return paths


__all__ = [
    'plot_cka_heatmap', 'task_forward', 'model_cka', 'build_model',
    'task_input_batches', 'cka_report'
]
