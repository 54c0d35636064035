# Copyright (c) gppf_mm contributors. All rights reserved.
"""Cross-task BatchNorm: statistics over every rank's batch, whatever task,
batch size and image size each rank runs (SIMT with synchronised BN, the
paper's Section 3.2)."""
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from gppf_mm.registry import MODELS

from . import collectives
from .collectives import all_reduce_named
from .lockstep import active_lockstep

_FULL_PRECISION = (torch.float32, torch.float64)


def _world_size(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half and bfloat16 inputs are normalised in float32."""
    return dtype if dtype in _FULL_PRECISION else torch.float32


class _CrossTaskBNFunction(torch.autograd.Function):
    """Batch norm of one or more inputs whose statistics and input gradients
    are all-reduced.

    ``bns[d]`` normalises ``xs[d]`` (``d`` a rank's only input, or one of
    the virtual devices of a process, see
    :mod:`~gppf_mm.models.layers.lockstep`); all ``bns`` belong to one
    sibling group of ``N`` units. Forward all-reduces one float64 buffer of
    shape ``(N, 2C + 1 + T)`` holding, for each unit, the pixel count
    ``n``, ``n * mean`` and ``n * (var + mean^2)`` and the pixels of each of
    the ``T`` tasks; every input adds to the row of its own unit. The local
    mean and variance come from one ``torch.var_mean`` pass, so the float64
    merge is numerically sane even for large activations. Backward
    all-reduces a ``(N, 2C)`` buffer of ``sum(dy)`` and
    ``sum(dy * (x - mean))`` in the same way.

    Every call makes exactly one collective in forward and one in backward,
    whatever units the inputs take and whatever their batches (empty
    batches included), so ranks that run different units, tasks or numbers
    of devices stay in step. With ``distributed=False`` (one process) the
    buffers are this process's only.
    """

    @staticmethod
    def forward(ctx, bns: tuple, tasks: tuple, distributed: bool, *tensors):
        k_in = len(bns)
        xs, ws, bs = (tensors[:k_in], tensors[k_in:2 * k_in],
                      tensors[2 * k_in:])
        bn = bns[0]
        n_units = bn.num_units
        c = xs[0].shape[1]
        dtype = _compute_dtype(xs[0].dtype)
        n_tasks = bn.num_tasks
        buf = torch.zeros((n_units, 2 * c + 1 + n_tasks),
                          dtype=torch.float64,
                          device=xs[0].device)
        counts_in = []
        for m, x, task in zip(bns, xs, tasks):
            k = m.unit_index
            xc = x if x.dtype == dtype else x.to(dtype)
            count = x.shape[0] * x.shape[2] * x.shape[3]
            counts_in.append(count)
            buf[k, 0] += count
            if task is not None:
                buf[k, 2 * c + 1 + task] += count
            if count > 0:
                var, mean = torch.var_mean(xc, dim=(0, 2, 3), correction=0)
                mean64, var64 = mean.double(), var.double()
                buf[k, 1:c + 1] += mean64 * count
                buf[k, c + 1:2 * c + 1] += (var64 + mean64 * mean64) * count
        if distributed:
            all_reduce_named(buf, bn, 'forward')

        counts = buf[:, 0]
        totals = counts.clamp(min=1)[:, None]
        means = buf[:, 1:c + 1] / totals
        vars_ = (buf[:, c + 1:2 * c + 1] / totals -
                 means * means).clamp_(min=0)
        bn._update_running_stats(means, vars_, counts)
        if n_tasks:
            bn._update_task_stats(means, vars_, counts, buf[:, 2 * c + 1:])

        ys, saved, ctx.totals = [], [], []
        for m, x, weight, bias in zip(bns, xs, ws, bs):
            k = m.unit_index
            xc = x if x.dtype == dtype else x.to(dtype)
            mean = means[k].to(dtype)
            var = vars_[k].to(dtype)
            invstd = torch.rsqrt(var + m.eps)
            w = None if weight is None else weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            # eval-mode batch_norm with the global statistics: one fused
            # kernel
            y = F.batch_norm(xc, mean, var, w, b, False, 0.0, m.eps)
            ys.append(y.to(x.dtype))
            saved += [x, mean, invstd]
            ctx.totals.append(float(counts[k]))
        ctx.save_for_backward(*saved)
        ctx.bns = bns
        # input d's tensors among the node's inputs (for the usage walk of
        # gradient fusion by device)
        affine = ws[0] is not None
        ctx.device_inputs = [[i, k_in + i, 2 * k_in + i] if affine else [i]
                             for i in range(k_in)]
        ctx.weights = ws
        ctx.distributed = distributed
        return tuple(ys)

    @staticmethod
    def backward(ctx, *dys: torch.Tensor):
        bns = ctx.bns
        k_in = len(bns)
        saved = ctx.saved_tensors
        bn = bns[0]
        n_units = bn.num_units
        x0 = saved[0]
        c = x0.shape[1]
        shape = (1, c, 1, 1)
        buf = torch.zeros((n_units, 2 * c),
                          dtype=torch.float64,
                          device=x0.device)
        parts = []
        for i, (m, dy) in enumerate(zip(bns, dys)):
            x, mean, invstd = saved[3 * i:3 * i + 3]
            k = m.unit_index
            dtype = mean.dtype
            xc = x if x.dtype == dtype else x.to(dtype)
            dyc = dy if dy.dtype == dtype else dy.to(dtype)
            xmu = xc - mean.view(shape)
            sum_dy = dyc.sum(dim=(0, 2, 3))
            sum_dy_xmu = (dyc * xmu).sum(dim=(0, 2, 3))
            buf[k, :c] += sum_dy
            buf[k, c:] += sum_dy_xmu
            parts.append((xmu, dyc, sum_dy, sum_dy_xmu))
        if ctx.distributed:
            all_reduce_named(buf, bn, 'backward')

        grad_xs, grad_ws, grad_bs = [], [], []
        for i, m in enumerate(bns):
            x, mean, invstd = saved[3 * i:3 * i + 3]
            weight = ctx.weights[i]
            xmu, dyc, sum_dy, sum_dy_xmu = parts[i]
            k = m.unit_index
            dtype = mean.dtype
            grad_x = grad_w = grad_b = None
            if ctx.needs_input_grad[3 + i]:
                total = max(ctx.totals[i], 1.0)
                g_mean_dy = (buf[k, :c] / total).to(dtype)
                g_mean_dy_xmu = (buf[k, c:] / total).to(dtype)
                scale = invstd if weight is None else invstd * weight.to(
                    dtype)
                # dx = scale * (dy - mean(dy) - xmu * invstd^2 *
                # mean(dy * xmu))
                coef_xmu = -scale * invstd * invstd * g_mean_dy_xmu
                grad_x = xmu.mul_(coef_xmu.view(shape))
                grad_x.add_((-scale * g_mean_dy).view(shape))
                grad_x.addcmul_(dyc, scale.view(shape))
                grad_x = grad_x.to(x.dtype)
            if weight is not None:
                # this input's share; gradient fusion combines the ranks
                if ctx.needs_input_grad[3 + k_in + i]:
                    grad_w = (sum_dy_xmu * invstd).to(weight.dtype)
                if ctx.needs_input_grad[3 + 2 * k_in + i]:
                    grad_b = sum_dy.to(weight.dtype)
            grad_xs.append(grad_x)
            grad_ws.append(grad_w)
            grad_bs.append(grad_b)
        return (None, None, None, *grad_xs, *grad_ws, *grad_bs)


def cross_task_bn(bns: Sequence['CrossTaskBatchNorm2d'],
                  xs: Sequence[torch.Tensor],
                  tasks: Sequence[Optional[str]],
                  distributed: bool) -> List[torch.Tensor]:
    """Normalise ``xs[d]`` with ``bns[d]`` (modules of one sibling group)
    with the statistics pooled over every input of this call, and over
    every process when ``distributed``: one collective in forward and one
    in backward (see :class:`_CrossTaskBNFunction`)."""
    first = bns[0].siblings
    for m in bns[1:]:
        group = m.siblings
        if len(group) != len(first) or any(
                a is not b for a, b in zip(group, first)):
            raise RuntimeError(
                'the devices reached different cross-task norms in one '
                'call; every device must run the same layers in the same '
                'order')
    index = [None if t is None or not m.task_names else
             m.task_names.index(t) for m, t in zip(bns, tasks)]
    outs = _CrossTaskBNFunction.apply(
        tuple(bns), tuple(index), distributed, *xs,
        *[m.weight for m in bns], *[m.bias for m in bns])
    return list(outs)


class CrossTaskBatchNorm2d(_BatchNorm):
    """BatchNorm2d with statistics shared by all ranks of a process group.

    Unlike ``torch.nn.SyncBatchNorm`` it runs on CPU (gloo) and CUDA (NCCL),
    accepts a different batch size and image size on every rank and an
    empty batch on some, and does not deadlock when ranks compute different
    units of a lego layer.

    Unit groups: a :class:`~gppf_mm.models.routing.LegoLayer` calls
    :meth:`set_unit_slot` on the cross-task norms of its ``N`` units (the
    norms at the same position in every unit form one sibling group). Every
    call of any member of the group makes one collective over an ``(N, ...)``
    buffer in which the rank fills the row of its own unit, so under hard
    routing (rank 0 on unit 0, rank 1 on unit 1) the ranks still take part
    in the same collectives in the same order. Unit ``k`` is normalised with
    the statistics of the ranks that computed unit ``k`` in that call, and
    every rank updates the running statistics of every sibling whose row has
    data, so all replicas hold the same buffers. Without a lego layer the
    group is the module itself (``N = 1``).

    All ranks must call the norms of a layer equally often and in the same
    order (true for hard, argmax and soft routing with one routing mode on
    every rank); a rank without data for its task passes an empty batch.

    The weight and bias gradients are this rank's share (its own pixels);
    :class:`~gppf_mm.engine.model_wrappers.GradientFusionWrapper` combines
    them across ranks. The input gradient is the exact gradient of the
    global statistics.

    In eval mode, without an initialised process group or with a world of
    one rank it is exactly ``nn.BatchNorm2d``. It is registered as
    ``'CrossTaskBN'`` in the ``gppf_mm`` and MMEngine root ``MODELS``
    registries with the abbreviation ``'bn'``, so
    ``norm_cfg=dict(type='CrossTaskBN')`` in an MMDetection / MMPretrain /
    MMSegmentation backbone keeps the layer names (``bn1``...) and state
    dict keys of ``BN``.

    Args:
        num_features (int): number of channels ``C``.
        eps (float): added to the variance. Defaults to 1e-5.
        momentum (float, optional): running statistics momentum; ``None``
            for a cumulative average. Defaults to 0.1.
        affine (bool): learnable weight and bias. Defaults to True.
        track_running_stats (bool): keep running statistics. Defaults to
            True.
        process_group (ProcessGroup, optional): the group whose ranks share
            the statistics. Defaults to the default process group.
        device: device of the parameters and buffers.
        dtype: dtype of the parameters and buffers.
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
        # a plain attribute: the siblings are registered in their own units
        object.__setattr__(self, '_siblings', [self])
        self.task_names: List[str] = []
        self.active_task: Optional[str] = None
        self.use_task_stats = True

    # ----------------------------------------------------- task statistics
    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def active_task_index(self) -> Optional[int]:
        if self.active_task is None or not self.task_names:
            return None
        return self.task_names.index(self.active_task)

    def set_tasks(self, tasks: Sequence[str]) -> None:
        """Keep running statistics per task as well: buffers
        ``task_mean__{t}`` / ``task_var__{t}`` of shape ``(C, )`` and
        ``task_count__{t}`` (batches tracked) for every task ``t``, one set
        per task so that a model built with some of the tasks loads them
        from a checkpoint of all.

        In training, the rank that runs task ``t`` (:attr:`active_task`)
        marks its row of the all-reduced buffer, and every rank then updates
        the statistics of task ``t`` with the cross-task statistics that the
        ranks running ``t`` were normalised with in that call (an
        exponential average like ``running_mean``). In eval mode a module
        whose active task has statistics normalises with them; otherwise,
        or with ``use_task_stats = False``, with the shared running
        statistics (the paper's behaviour).
        """
        tasks = list(tasks)
        if len(set(tasks)) != len(tasks):
            raise ValueError(f'task names must be unique, got {tasks}')
        bad = [t for t in tasks if not t or '.' in t]
        if bad:
            raise ValueError(f'task names must be non-empty and without '
                             f"'.', got {bad}")
        self.task_names = tasks
        if not self.track_running_stats:
            return
        ref = self.running_mean
        for t in tasks:
            self.register_buffer(f'task_mean__{t}', torch.zeros_like(ref))
            self.register_buffer(f'task_var__{t}', torch.ones_like(ref))
            self.register_buffer(
                f'task_count__{t}',
                torch.zeros((), dtype=torch.long, device=ref.device))

    def task_statistics(self, task: str):
        """``(mean, var, batches tracked)`` buffers of ``task``."""
        return (getattr(self, f'task_mean__{task}'),
                getattr(self, f'task_var__{task}'),
                getattr(self, f'task_count__{task}'))

    def set_active_task(self, task: Optional[str]) -> None:
        if task is not None and self.task_names and \
                task not in self.task_names:
            raise KeyError(f'unknown task {task!r}; this norm keeps the '
                           f'statistics of {self.task_names}')
        self.active_task = task

    def has_task_stats(self, task: Optional[str] = None) -> bool:
        """Whether ``task`` (default: the active one) has statistics."""
        task = self.active_task if task is None else task
        if task is None or task not in self.task_names or \
                not self.track_running_stats:
            return False
        return bool(self.task_statistics(task)[2])

    @torch.no_grad()
    def _update_task_stats(self, means: torch.Tensor, vars_: torch.Tensor,
                           counts: torch.Tensor,
                           task_counts: torch.Tensor) -> None:
        """Update task ``t`` of every sibling ``j`` that a rank running
        ``t`` computed, with unit ``j``'s normalisation statistics."""
        for j, sibling in enumerate(self._siblings):
            n = float(counts[j])
            if n == 0 or not (sibling.task_names
                              and sibling.track_running_stats):
                continue
            unbiased = (vars_[j] * (n / max(n - 1.0, 1.0)))
            for t in torch.nonzero(task_counts[j] > 0).flatten().tolist():
                rm, rv, tracked = sibling.task_statistics(
                    sibling.task_names[t])
                tracked.add_(1)
                if sibling.momentum is None:
                    factor = 1.0 / float(tracked)
                else:
                    factor = sibling.momentum
                rm.mul_(1 - factor).add_(means[j].to(rm), alpha=factor)
                rv.mul_(1 - factor).add_(unbiased.to(rv), alpha=factor)

    @property
    def num_units(self) -> int:
        """Number of units in this module's sibling group."""
        return len(self._siblings)

    @property
    def siblings(self) -> List['CrossTaskBatchNorm2d']:
        """The sibling group, indexed by unit (``siblings[unit_index]`` is
        this module)."""
        return list(self._siblings)

    def set_unit_slot(self, index: int,
                      siblings: Sequence['CrossTaskBatchNorm2d']) -> None:
        """Join a sibling group (called by ``LegoLayer.bind_unit_slots``).

        Args:
            index (int): the unit this module belongs to.
            siblings (Sequence[CrossTaskBatchNorm2d]): the modules at the
                same position in every unit, ``siblings[index] is self``.
        """
        siblings = list(siblings)
        if not 0 <= index < len(siblings) or siblings[index] is not self:
            raise ValueError('siblings[index] must be this module')
        for s in siblings:
            if not isinstance(s, CrossTaskBatchNorm2d):
                raise TypeError(f'a sibling of a CrossTaskBatchNorm2d must '
                                f'be one too, got {type(s).__name__}')
            if s.num_features != self.num_features:
                raise ValueError(f'siblings have {s.num_features} and '
                                 f'{self.num_features} channels')
        self.unit_index = index
        object.__setattr__(self, '_siblings', siblings)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.num_units > 1:
            text += f', unit={self.unit_index}/{self.num_units}'
        return text

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'expected a 4D input (N, C, H, W), got a '
                             f'{x.dim()}D input of shape {tuple(x.shape)}')
        if x.shape[1] != self.num_features:
            raise ValueError(f'expected {self.num_features} channels, got '
                             f'{x.shape[1]}')

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, vars_: torch.Tensor,
                              counts: torch.Tensor) -> None:
        """Update every sibling whose row has data, as ``nn.BatchNorm2d``
        would with the global (biased -> unbiased) batch statistics."""
        for j, sibling in enumerate(self._siblings):
            n = float(counts[j])
            if n == 0 or not sibling.track_running_stats:
                continue
            sibling.num_batches_tracked.add_(1)
            if sibling.momentum is None:
                factor = 1.0 / float(sibling.num_batches_tracked)
            else:
                factor = sibling.momentum
            unbiased = vars_[j] * (n / max(n - 1.0, 1.0))
            rm, rv = sibling.running_mean, sibling.running_var
            rm.mul_(1 - factor).add_(means[j].to(rm), alpha=factor)
            rv.mul_(1 - factor).add_(unbiased.to(rv), alpha=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            if self.use_task_stats and self.has_task_stats():
                mean, var, _ = self.task_statistics(self.active_task)
                return F.batch_norm(x, mean, var, self.weight, self.bias,
                                    False, 0.0, self.eps)
            return super().forward(x)
        lockstep = active_lockstep()
        if lockstep is not None:
            # a virtual device: normalised together with the process's
            # other devices at this call
            return lockstep.arrive(self, x)
        if _world_size(self.process_group) == 1:
            out = super().forward(x)
            if self.num_tasks and self.active_task is not None:
                self._track_local_task_stats(x)
            return out
        record = collectives.current_record()
        if record is not None:
            record.before(self)
        (out, ) = cross_task_bn([self], [x], [self.active_task], True)
        if record is not None:
            record.calls.append((self, out))
        return out

    @torch.no_grad()
    def _track_local_task_stats(self, x: torch.Tensor) -> None:
        """One process: the active task's statistics are this batch's."""
        if x.numel() == 0:
            return
        var, mean = torch.var_mean(
            x.to(_compute_dtype(x.dtype)), dim=(0, 2, 3), correction=0)
        counts = x.new_zeros(self.num_units, dtype=torch.float64)
        counts[self.unit_index] = x.shape[0] * x.shape[2] * x.shape[3]
        task_counts = counts.new_zeros((self.num_units, self.num_tasks))
        task_counts[self.unit_index, self.active_task_index] = 1
        means = mean.double().expand(self.num_units, -1)
        vars_ = var.double().expand(self.num_units, -1)
        self._update_task_stats(means, vars_, counts, task_counts)


MODELS.register_module('CrossTaskBN', module=CrossTaskBatchNorm2d)
# mmcv's build_norm_layer looks names up in the current default scope's
# registry and its ancestors: the root registration makes 'CrossTaskBN'
# reachable from the mmdet, mmseg and mmpretrain scopes as well.
MMENGINE_MODELS.register_module('CrossTaskBN', module=CrossTaskBatchNorm2d)
