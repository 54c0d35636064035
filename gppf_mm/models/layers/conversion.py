# Copyright (c) gppf_mm contributors. All rights reserved.
"""Conversions around :class:`CrossTaskBatchNorm2d`: a module's BatchNorm
layers into cross-task BN, and a cross-task BN state dict into a plain
BatchNorm one that carries one task's statistics."""
from typing import Optional

import torch
import torch.nn as nn

from .cross_task_bn import CrossTaskBatchNorm2d


def _is_mmcv_sync_bn(module: nn.Module) -> bool:
    cls = type(module)
    return (cls.__name__ == 'SyncBatchNorm'
            and cls.__module__.startswith('mmcv.'))


def _should_convert(module: nn.Module) -> bool:
    if isinstance(module, CrossTaskBatchNorm2d):
        return False
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return True
    return _is_mmcv_sync_bn(module)


def _convert_one(m: nn.Module, process_group) -> CrossTaskBatchNorm2d:
    ref = m.weight if m.affine else m.running_mean
    factory = {} if ref is None else dict(device=ref.device, dtype=ref.dtype)
    out = CrossTaskBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine,
                               m.track_running_stats, process_group,
                               **factory)
    with torch.no_grad():
        if m.affine:
            out.weight.copy_(m.weight)
            out.bias.copy_(m.bias)
            out.weight.requires_grad_(m.weight.requires_grad)
            out.bias.requires_grad_(m.bias.requires_grad)
        if m.track_running_stats:
            out.running_mean.copy_(m.running_mean)
            out.running_var.copy_(m.running_var)
            if getattr(m, 'num_batches_tracked', None) is not None:
                out.num_batches_tracked.copy_(m.num_batches_tracked)
    out.train(m.training)
    return out


def convert_cross_task_bn(module: nn.Module,
                          process_group=None) -> nn.Module:
    """Replace the 2D BatchNorm layers of ``module`` by cross-task BN.

    Converts ``nn.BatchNorm2d``, ``torch.nn.SyncBatchNorm`` and mmcv's
    ``SyncBatchNorm`` (all assumed to see 4D inputs; ``BatchNorm1d`` and
    ``BatchNorm3d`` are left as they are), keeping weights, buffers,
    ``requires_grad`` and train/eval mode, so the state dict keys and values
    do not change. Then every module of the result that groups units
    (one with a ``bind_unit_slots`` method, such as
    :class:`~gppf_mm.models.routing.LegoLayer`) binds its norms' unit
    slots; norms do not depend on what groups them.

    Convert only modules that every rank runs in every iteration (the shared
    backbone), never task heads: a cross-task norm needs all ranks in its
    collectives.

    Args:
        module (nn.Module): the module tree (it may itself be a norm).
        process_group (ProcessGroup, optional): group of the new norms;
            defaults to the default process group.

    Returns:
        nn.Module: the converted module (``module`` itself unless it is a
        norm).
    """
    def convert(m: nn.Module) -> nn.Module:
        if _should_convert(m):
            return _convert_one(m, process_group)
        for name, child in m.named_children():
            new = convert(child)
            if new is not child:
                setattr(m, name, new)
        return m

    module = convert(module)
    for name, m in module.named_modules():
        if callable(getattr(m, 'bind_unit_slots', None)):
            m.bind_unit_slots()
        elif isinstance(m, CrossTaskBatchNorm2d):
            m.layer_name = name or type(m).__name__
    return module


TASK_STAT_PREFIXES = ('task_mean__', 'task_var__', 'task_count__')


def select_task_statistics(module: nn.Module, state_dict: dict,
                           task: Optional[str] = None) -> dict:
    """A state dict of ``module`` whose norms carry ``task``'s statistics.

    For every :class:`CrossTaskBatchNorm2d` with per-task statistics,
    ``running_mean`` / ``running_var`` become ``task``'s (when it has any)
    and the per-task buffers are left out, so the result has the keys of a
    plain BatchNorm backbone (what path extraction writes).

    Args:
        module (nn.Module): the module ``state_dict`` was taken from.
        state_dict (dict): its state dict (keys relative to ``module``).
        task (str, optional): the task whose statistics to keep; ``None``
            keeps the shared ones.
    """
    out = dict(state_dict)
    for name, m in module.named_modules():
        if not isinstance(m, CrossTaskBatchNorm2d) or not m.task_names:
            continue
        prefix = f'{name}.' if name else ''
        if task is not None and m.has_task_stats(task):
            mean, var, _ = m.task_statistics(task)
            out[prefix + 'running_mean'] = mean.clone()
            out[prefix + 'running_var'] = var.clone()
        for t in m.task_names:
            for key in TASK_STAT_PREFIXES:
                out.pop(f'{prefix}{key}{t}', None)
    return out
