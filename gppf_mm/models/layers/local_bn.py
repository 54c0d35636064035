# Copyright (c) gppf_mm contributors. All rights reserved.
"""Task heads' synchronised BatchNorm made safe under SIMT.

Upstream detection and segmentation configs use ``SyncBN`` in necks and
heads. Under SIMT only the ranks that run a task run its heads, so a head's
SyncBN collective is entered by some ranks only: NCCL hangs, and on the CPU
torch refuses it. :func:`convert_head_sync_bn` replaces such norms by
:class:`TaskLocalBatchNorm` (batch statistics of the rank's own batch, as
``nn.BatchNorm``); the gradient fusion wrapper then averages their running
statistics over the ranks that ran them after each update.
"""
from typing import List

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


class TaskLocalBatchNorm(_BatchNorm):
    """``nn.BatchNorm`` for inputs of any rank >= 2 (what SyncBN accepts),
    with the same parameters, buffers and state-dict keys."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'expected an input of at least 2 dimensions, '
                             f'got {x.dim()}')


def _is_sync_bn(module: nn.Module) -> bool:
    if isinstance(module, nn.SyncBatchNorm):
        return True
    cls = type(module)
    return cls.__name__ == 'SyncBatchNorm' and cls.__module__.startswith(
        'mmcv')


def convert_head_sync_bn(module: nn.Module, prefix: str = '') -> List[str]:
    """Replace every SyncBN of ``module`` (torch's and mmcv's) by a
    :class:`TaskLocalBatchNorm` with the same weights, buffers,
    ``requires_grad`` and mode. Returns the names of the converted
    modules."""
    converted: List[str] = []

    def convert(parent: nn.Module, path: str) -> None:
        for name, child in list(parent.named_children()):
            full = f'{path}.{name}' if path else name
            if _is_sync_bn(child):
                local = TaskLocalBatchNorm(
                    child.num_features, eps=child.eps,
                    momentum=child.momentum, affine=child.affine,
                    track_running_stats=child.track_running_stats)
                local.load_state_dict(child.state_dict())
                if child.affine:
                    local.weight.requires_grad_(child.weight.requires_grad)
                    local.bias.requires_grad_(child.bias.requires_grad)
                local.to(next(iter(child.state_dict().values())).device)
                local.train(child.training)
                setattr(parent, name, local)
                converted.append(full)
            else:
                convert(child, full)

    convert(module, prefix)
    return converted
