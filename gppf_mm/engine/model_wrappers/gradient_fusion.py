# Copyright (c) gppf_mm contributors. All rights reserved.
"""Gradient fusion of SIMT: each parameter's gradient is the mean over the
ranks that used it in this iteration (the paper's Section 3.2,
``g^p = 1 / N_gpu^p * sum_i g_i^p``)."""
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.modules.batchnorm import _BatchNorm

from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.registry import MODEL_WRAPPERS


def _world_size(group=None) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class GradientFusionWrapper(nn.Module):
    """Model wrapper for SIMT training, where ranks run different tasks.

    Select it with ``model_wrapper_cfg=dict(type='gppf_mm.GradientFusion
    Wrapper')`` (the unprefixed name works too once ``gppf_mm.engine`` is
    imported). MMEngine's runner wraps a model only in distributed runs.

    Unlike DDP it lets every rank run a different graph, and it averages
    each parameter's gradient over exactly the ranks that used it in this
    iteration (``p.grad is not None`` after backward): a task average, not a
    sample average and not DDP's division by the world size. A parameter
    that no rank used keeps ``grad=None`` on every rank, so the optimizer
    leaves its value, momentum and weight decay untouched; a parameter used
    by some ranks gets the fused gradient on every rank, so the replicas
    stay identical. This relies on ``zero_grad`` setting gradients to
    ``None`` (the default of ``torch.optim`` and MMEngine's optim wrappers).

    Communication per update: one all-reduce of the per-parameter usage
    counts, then one all-reduce per flat bucket (``bucket_size_mb``) of the
    gradients of the parameters that some rank used (zeros where this rank
    did not), in the fixed order of ``module.named_parameters()``.

    Normalisation buffers: BatchNorm layers of task heads run only on the
    ranks of their task, so their running statistics would drift apart.
    After every update :meth:`sync_norm_buffers` sets ``running_mean`` and
    ``running_var`` of every ``_BatchNorm`` that is not a
    :class:`CrossTaskBatchNorm2d` (those are identical everywhere already)
    to the mean over the ranks that ran it since the previous sync (its
    ``num_batches_tracked`` changed), and ``num_batches_tracked`` to the
    maximum over the ranks; a norm that no rank ran is left untouched.

    At construction the parameters and buffers of rank 0 are broadcast, so
    every rank starts from the same replica.

    Args:
        module (BaseModel): the model (a GPPF model or any BaseModel).
        bucket_size_mb (float): size of one flat gradient bucket in MiB.
            Defaults to 25.
        broadcast_init (bool): broadcast rank 0's parameters and buffers at
            construction. Defaults to True.
        sync_norms (bool): synchronise the BatchNorm buffers after every
            update. Defaults to True.
        process_group (ProcessGroup, optional): defaults to the default
            process group.

    Attributes:
        last_usage (Tensor | None): after :meth:`fuse_gradients`, the number
            of ranks that used each parameter (``named_parameters`` order,
            trainable parameters only).
        fusion_stats (dict): counts of the last fusion: ``params``,
            ``used_here``, ``fused``, ``unused``, ``buckets``.
    """

    def __init__(self,
                 module: BaseModel,
                 bucket_size_mb: float = 25.0,
                 broadcast_init: bool = True,
                 sync_norms: bool = True,
                 process_group=None) -> None:
        super().__init__()
        if bucket_size_mb <= 0:
            raise ValueError(f'bucket_size_mb must be > 0, got '
                             f'{bucket_size_mb}')
        self.module = module
        self.bucket_bytes = int(bucket_size_mb * 1024 * 1024)
        self.sync_norms = sync_norms
        self.process_group = process_group
        self.last_usage: Optional[torch.Tensor] = None
        self.fusion_stats: Dict[str, int] = {}
        if broadcast_init and self.distributed:
            self._broadcast_state()
        self._tracked: Dict[str, int] = {}
        self._snapshot_norms()
        # taken again before the first update: a resumed run loads its
        # checkpoint (and the norms' counters) after the wrapper is built
        self._snapshot_due = True

    def _snapshot_norms(self) -> None:
        self._tracked = {
            name: int(m.num_batches_tracked)
            for name, m in self._norms()
        }

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank in the process group."""
        return _world_size(self.process_group) > 1

    # --------------------------------------------------------------- steps
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """Forward, backward and, when the optim wrapper updates in this
        iteration, fuse the gradients, step and sync the norm buffers.

        ``data`` goes to the module's data preprocessor untouched (it may
        carry a ``'task'`` key that the preprocessor and forward use).

        Args:
            data (dict | tuple | list): a batch from the dataloader.
            optim_wrapper (OptimWrapper): the optimizer wrapper.

        Returns:
            dict[str, Tensor]: the log variables of ``parse_losses``.
        """
        if self._snapshot_due:
            self._snapshot_norms()
            self._snapshot_due = False
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self.module._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.backward(parsed_loss)
        if optim_wrapper.should_update():
            self.fuse_gradients()
            optim_wrapper.step()
            optim_wrapper.zero_grad()
            if self.sync_norms:
                self.sync_norm_buffers()
        return log_vars

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """The module's ``val_step``."""
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """The module's ``test_step``."""
        return self.module.test_step(data)

    # ------------------------------------------------------------- fusion
    def _trainable(self) -> List[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    @torch.no_grad()
    def fuse_gradients(self) -> None:
        """Set every gradient to its mean over the ranks that produced one.

        Every rank must call it at the same point (after backward, before
        the optimizer step). Without a distributed group it only records
        :attr:`last_usage`: the local gradients are already the mean.
        """
        params = self._trainable()
        if not params:
            self.last_usage = None
            self.fusion_stats = dict(
                params=0, used_here=0, fused=0, unused=0, buckets=0)
            return
        device = params[0].device
        used_here = [p.grad is not None for p in params]
        usage = torch.tensor(used_here, dtype=torch.int32, device=device)
        if self.distributed:
            dist.all_reduce(usage, group=self.process_group)
        self.last_usage = usage
        counts = usage.tolist()
        active = [(p, c) for p, c in zip(params, counts) if c > 0]
        n_buckets = 0
        if self.distributed:
            # launch every bucket, then finish them in order: flattening a
            # bucket overlaps with the reduction of the previous ones
            pending = [
                self._launch_bucket(bucket)
                for bucket in self._buckets(active)
            ]
            for work in pending:
                self._finish_bucket(*work)
            n_buckets = len(pending)
        self.fusion_stats = dict(
            params=len(params),
            used_here=sum(used_here),
            fused=len(active),
            unused=len(params) - len(active),
            buckets=n_buckets)

    def _launch_bucket(self, bucket: List[Tuple[nn.Parameter, int]]):
        grads = []
        for p, _ in bucket:
            if p.grad is None:
                grads.append(torch.zeros_like(p))
            else:
                # the parameter's dtype, so every rank flattens alike
                grads.append(p.grad.to(p.dtype))
        flat = _flatten_dense_tensors(grads)
        work = dist.all_reduce(
            flat, group=self.process_group, async_op=True)
        return bucket, grads, flat, work

    @staticmethod
    def _finish_bucket(bucket: List[Tuple[nn.Parameter, int]],
                       grads: List[torch.Tensor], flat: torch.Tensor,
                       work) -> None:
        work.wait()
        fused = _unflatten_dense_tensors(flat, grads)
        for (p, count), g in zip(bucket, fused):
            if count > 1:
                g.div_(count)
            if p.grad is None:
                # a copy, so the flat bucket is freed after the loop
                p.grad = g.clone()
            else:
                p.grad.copy_(g)

    def _buckets(self, active: List[Tuple[nn.Parameter, int]]
                 ) -> Iterator[List[Tuple[nn.Parameter, int]]]:
        """Consecutive runs of parameters of one dtype and device,
        each at most ``bucket_bytes`` (or a single larger parameter)."""
        bucket: List[Tuple[nn.Parameter, int]] = []
        size = 0
        kind = None
        for item in active:
            p = item[0]
            if p.grad is not None and p.grad.is_sparse:
                raise RuntimeError('gradient fusion supports dense '
                                   'gradients only')
            # every rank must cut the buckets alike: use the parameter's
            # dtype and device, which are the same on every rank
            this_kind = (p.dtype, p.device)
            nbytes = p.numel() * p.element_size()
            if bucket and (size + nbytes > self.bucket_bytes
                           or this_kind != kind):
                yield bucket
                bucket, size = [], 0
            bucket.append(item)
            size += nbytes
            kind = this_kind
        if bucket:
            yield bucket

    # ------------------------------------------------------- norm buffers
    def _norms(self) -> Iterator[Tuple[str, _BatchNorm]]:
        for name, m in self.module.named_modules():
            if (isinstance(m, _BatchNorm) and m.track_running_stats
                    and m.running_mean is not None
                    and not isinstance(m, CrossTaskBatchNorm2d)):
                yield name, m

    @torch.no_grad()
    def sync_norm_buffers(self) -> None:
        """Mean running statistics of BatchNorm layers over the ranks that
        ran them since the previous call (see the class docstring).

        One all-reduce (sum) of ``used * running_mean``,
        ``used * running_var`` and ``used`` for all norms in one flat
        buffer, and one small all-reduce (max) of ``num_batches_tracked``.
        """
        norms = list(self._norms())
        if not norms:
            return
        if not self.distributed:
            self._tracked = {n: int(m.num_batches_tracked) for n, m in norms}
            return
        device = norms[0][1].running_mean.device
        ran = [
            int(m.num_batches_tracked) != self._tracked.get(name, 0)
            for name, m in norms
        ]
        pieces = []
        for (_, m), r in zip(norms, ran):
            scale = 1.0 if r else 0.0
            pieces.append(m.running_mean.float() * scale)
            pieces.append(m.running_var.float() * scale)
        pieces.append(torch.tensor(ran, dtype=torch.float32, device=device))
        flat = _flatten_dense_tensors(pieces)
        dist.all_reduce(flat, group=self.process_group)
        summed = _unflatten_dense_tensors(flat, pieces)
        tracked = torch.stack([m.num_batches_tracked for _, m in norms])
        tracked = tracked.to(device=device, dtype=torch.int64)
        dist.all_reduce(tracked, op=dist.ReduceOp.MAX,
                        group=self.process_group)
        counts = summed[-1].tolist()
        for i, ((_, m), count) in enumerate(zip(norms, counts)):
            if count > 0:
                m.running_mean.copy_(summed[2 * i] / count)
                m.running_var.copy_(summed[2 * i + 1] / count)
            m.num_batches_tracked.fill_(int(tracked[i]))
        self._tracked = {n: int(m.num_batches_tracked) for n, m in norms}

    @torch.no_grad()
    def _broadcast_state(self) -> None:
        """Broadcast rank 0's parameters and buffers, in flat buckets of one
        dtype and device."""
        group = self.process_group
        src = 0 if group is None else dist.get_global_rank(group, 0)
        tensors = [p.data for p in self.module.parameters()]
        tensors += [b for b in self.module.buffers() if b is not None]
        kinds: Dict[tuple, List[torch.Tensor]] = {}
        for t in tensors:
            kinds.setdefault((t.dtype, t.device), []).append(t)
        for same_kind in kinds.values():
            bucket: List[torch.Tensor] = []
            size = 0
            for t in same_kind:
                nbytes = t.numel() * t.element_size()
                if bucket and size + nbytes > self.bucket_bytes:
                    self._broadcast_bucket(bucket, src)
                    bucket, size = [], 0
                bucket.append(t)
                size += nbytes
            self._broadcast_bucket(bucket, src)

    def _broadcast_bucket(self, bucket: List[torch.Tensor], src: int) -> None:
        flat = _flatten_dense_tensors(bucket)
        dist.broadcast(flat, src, group=self.process_group)
        for dst, value in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            dst.copy_(value)


MODEL_WRAPPERS.register_module(module=GradientFusionWrapper)
# Runner.wrap_model looks the type up in MMEngine's root registry: the root
# registration lets the unprefixed name work once this module is imported.
MMENGINE_MODEL_WRAPPERS.register_module(module=GradientFusionWrapper)
