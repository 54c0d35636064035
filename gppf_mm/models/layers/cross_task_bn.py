# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BatchNorm: statistics over every rank's batch, whatever task,
batch size and image size each rank runs (the paper's SIMT + SyncBN)."""
from typing import List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm


def _world(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class _CrossTaskBNFunction(torch.autograd.Function):
    """Batch norm whose statistics and input gradients are all-reduced.

    Every call all-reduces one ``(num_units, 2C + 1)`` buffer in the
    forward pass and one ``(num_units, 2C)`` buffer in the backward pass,
    whatever unit the rank computes and whatever its batch (empty batches
    included), so ranks that run different units or tasks take part in the
    same collectives in the same order.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, bn: 'CrossTaskBatchNorm2d'):
        group, k, n_units = bn.process_group, bn.unit_index, bn.num_units
        c = x.shape[1]
        x64 = x.detach().to(torch.float64)
        buf = x.new_zeros((n_units, 2 * c + 1), dtype=torch.float64)
        if x.numel():
            buf[k, :c] = x64.sum(dim=(0, 2, 3))
            buf[k, c:2 * c] = (x64 * x64).sum(dim=(0, 2, 3))
        buf[k, 2 * c] = x.shape[0] * x.shape[2] * x.shape[3]
        dist.all_reduce(buf, group=group)
        counts = buf[:, 2 * c]
        if counts[k] == 0:
            raise RuntimeError('cross-task BN: no rank has data for this '
                               'unit, which cannot happen for a unit that '
                               'was computed here')
        means = buf[:, :c] / counts.clamp(min=1)[:, None]
        vars_ = (buf[:, c:2 * c] / counts.clamp(min=1)[:, None] -
                 means * means).clamp(min=0)
        bn._update_running_stats(means, vars_, counts)
        mean = means[k].to(x.dtype)
        invstd = torch.rsqrt(vars_[k] + bn.eps).to(x.dtype)
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) * invstd.view(shape)
        if weight is not None:
            y = y * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.total = float(counts[k])
        ctx.bn = bn
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, invstd = ctx.saved_tensors
        bn = ctx.bn
        group, k, n_units = bn.process_group, bn.unit_index, bn.num_units
        c = x.shape[1]
        shape = (1, c, 1, 1)
        dy = dy.contiguous()
        xmu = x - mean.view(shape)
        sum_dy = dy.sum(dim=(0, 2, 3))
        sum_dy_xmu = (dy * xmu).sum(dim=(0, 2, 3))
        buf = dy.new_zeros((n_units, 2 * c), dtype=torch.float64)
        buf[k, :c] = sum_dy
        buf[k, c:] = sum_dy_xmu
        dist.all_reduce(buf, group=group)
        g_sum_dy = buf[k, :c].to(dy.dtype)
        g_sum_dy_xmu = buf[k, c:].to(dy.dtype)
        scale = invstd if weight is None else invstd * weight
        grad_x = scale.view(shape) * (
            dy - g_sum_dy.view(shape) / ctx.total -
            xmu * (invstd * invstd).view(shape) *
            g_sum_dy_xmu.view(shape) / ctx.total)
        grad_w = grad_b = None
        if weight is not None:
            # this rank's contribution; gradient fusion averages over ranks
            grad_w = sum_dy_xmu * invstd
            grad_b = sum_dy
        return grad_x, grad_w, grad_b, None


class CrossTaskBatchNorm2d(_BatchNorm):
    """BatchNorm2d with statistics shared by all ranks of a process group.

    Unlike ``torch.nn.SyncBatchNorm`` it runs on CPU (gloo) and CUDA (NCCL),
    accepts different batch and image sizes on every rank and an empty batch
    on some, and never deadlocks under hard routing: a lego layer binds the
    norms at the same position of its N units into one group
    (:meth:`set_unit_slot`); every call reduces the statistics of all N of
    them, so ranks that compute different units make the same collective
    calls. Each unit normalises with the statistics of the ranks that
    computed it, and every rank updates the running statistics of every unit
    that some rank computed, so the replicas stay identical.

    Without a process group (or with one rank) and in eval mode it is
    exactly ``nn.BatchNorm2d``.
    """
    _abbr_ = 'bn'

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True,
                 process_group=None,
                 device=None,
                 dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine,
                         track_running_stats, device, dtype)
        self.process_group = process_group
        self.unit_index = 0
        # plain attribute: siblings are registered in their own units
        object.__setattr__(self, '_siblings', [self])

    @property
    def num_units(self) -> int:
        return len(self._siblings)

    def set_unit_slot(self, index: int,
                      siblings: List['CrossTaskBatchNorm2d']) -> None:
        """Called by :meth:`LegoLayer.bind_unit_slots`."""
        if siblings[index] is not self:
            raise ValueError('siblings[index] must be this module')
        self.unit_index = index
        object.__setattr__(self, '_siblings', list(siblings))

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'expected a 4D input (N, C, H, W), got '
                             f'{x.dim()}D input of shape {tuple(x.shape)}')
        if x.shape[1] != self.num_features:
            raise ValueError(f'expected {self.num_features} channels, got '
                             f'{x.shape[1]}')

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, vars_: torch.Tensor,
                              counts: torch.Tensor) -> None:
        if not self.track_running_stats:
            return
        for j, sibling in enumerate(self._siblings):
            n = float(counts[j])
            if n == 0:
                continue
            sibling.num_batches_tracked.add_(1)
            if sibling.momentum is None:
                factor = 1.0 / float(sibling.num_batches_tracked)
            else:
                factor = sibling.momentum
            unbiased = vars_[j] * (n / max(n - 1.0, 1.0))
            rm, rv = sibling.running_mean, sibling.running_var
            rm.mul_(1 - factor).add_(means[j].to(rm.dtype), alpha=factor)
            rv.mul_(1 - factor).add_(unbiased.to(rv.dtype), alpha=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats or _world(self.process_group) == 1:
            factor = 0.0
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)
                          if self.momentum is None else self.momentum)
            return F.batch_norm(
                x, self.running_mean
                if not self.training or self.track_running_stats else None,
                self.running_var
                if not self.training or self.track_running_stats else None,
                self.weight, self.bias, use_batch_stats, factor, self.eps)
        return _CrossTaskBNFunction.apply(x, self.weight, self.bias, self)


MMENGINE_MODELS.register_module('CrossTaskBN', module=CrossTaskBatchNorm2d)


def convert_cross_task_bn(module: nn.Module,
                          process_group=None) -> nn.Module:
    """Replace every BatchNorm (``BatchNorm2d``, ``SyncBatchNorm``) in
    ``module`` by :class:`CrossTaskBatchNorm2d`, keeping weights, buffers
    and ``requires_grad``, then bind the lego layers' unit groups.
    """
    from gppf_mm.models.routing import LegoLayer

    def convert(m: nn.Module) -> nn.Module:
        out = m
        if isinstance(m, _BatchNorm) and not isinstance(
                m, CrossTaskBatchNorm2d):
            out = CrossTaskBatchNorm2d(m.num_features, m.eps, m.momentum,
                                       m.affine, m.track_running_stats,
                                       process_group)
            if m.affine:
                with torch.no_grad():
                    out.weight.copy_(m.weight)
                    out.bias.copy_(m.bias)
                out.weight.requires_grad_(m.weight.requires_grad)
                out.bias.requires_grad_(m.bias.requires_grad)
            if m.track_running_stats:
                out.running_mean.copy_(m.running_mean)
                out.running_var.copy_(m.running_var)
                out.num_batches_tracked.copy_(m.num_batches_tracked)
            out.train(m.training)
        for name, child in m.named_children():
            out.add_module(name, convert(child))
        return out

    module = convert(module)
    for m in module.modules():
        if isinstance(m, LegoLayer):
            m.bind_unit_slots()
    return module
