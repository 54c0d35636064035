# Copyright (c) gppf_mm contributors. All rights reserved.
"""Gradient fusion of SIMT: each parameter's gradient is the mean over the
ranks that used it in this iteration (the paper's 1/N_gpu^p sum)."""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.modules.batchnorm import _BatchNorm

from gppf_mm.models.layers import CrossTaskBatchNorm2d
from gppf_mm.registry import MODEL_WRAPPERS


def _distributed(group=None) -> bool:
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size(group) > 1)


@MODEL_WRAPPERS.register_module()
class GradientFusionWrapper(nn.Module):
    """Model wrapper for SIMT training (select with
    ``model_wrapper_cfg = dict(type='GradientFusionWrapper')``).

    Unlike DDP it allows every rank to run a different graph (a different
    task) and averages each parameter's gradient over exactly the ranks
    that used it: a task average, not a sample average and not DDP's
    division by the world size. A parameter that no rank used keeps
    ``grad=None`` everywhere, so the optimizer leaves it, its momentum and
    its weight decay untouched; one used by some ranks gets the fused
    gradient on every rank, so the replicas stay identical.

    One small all-reduce carries the per-parameter usage counts, then one
    pass of all-reduces over flat buckets (``bucket_size_mb``) carries the
    gradients of the parameters some rank used.

    BatchNorm layers outside the backbone (task heads) run only on the ranks
    of their task; after each update their running statistics are set to
    the mean over the ranks that ran them (cross-task BN layers are already
    identical everywhere).

    Args:
        module (BaseModel): the model (a GPPF model or any BaseModel).
        bucket_size_mb (float): size of one flat gradient bucket.
        broadcast_init (bool): broadcast rank 0's parameters and buffers at
            construction so all ranks start identical.
        process_group: defaults to the whole world.
    """

    def __init__(self,
                 module: BaseModel,
                 bucket_size_mb: float = 25.0,
                 broadcast_init: bool = True,
                 process_group=None) -> None:
        super().__init__()
        self.module = module
        self.bucket_bytes = int(bucket_size_mb * 1024 * 1024)
        self.process_group = process_group
        self._params = [(n, p) for n, p in module.named_parameters()
                        if p.requires_grad]
        self._norms = [
            m for m in module.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats
            and not isinstance(m, CrossTaskBatchNorm2d)
        ]
        self._tracked = [int(m.num_batches_tracked) for m in self._norms]
        if broadcast_init and _distributed(process_group):
            with torch.no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(t.data, 0, group=process_group)
        self.last_usage: Optional[torch.Tensor] = None

    # ------------------------------------------------------------- steps
    def train_step(self, data, optim_wrapper: OptimWrapper) -> Dict:
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.backward(parsed_loss)
        if optim_wrapper.should_update():
            self.fuse_gradients()
            optim_wrapper.step()
            optim_wrapper.zero_grad()
            self.sync_norm_buffers()
        return log_vars

    def val_step(self, data) -> List:
        return self.module.val_step(data)

    def test_step(self, data) -> List:
        return self.module.test_step(data)

    def _run_forward(self, data, mode: str):
        if isinstance(data, dict):
            return self.module(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self.module(*data, mode=mode)
        raise TypeError(f'unsupported data type {type(data)}')

    # ------------------------------------------------------------ fusion
    @torch.no_grad()
    def fuse_gradients(self) -> None:
        """Average every gradient over the ranks that produced one."""
        params = [p for _, p in self._params]
        if not params:
            return
        device = params[0].device
        used = torch.tensor([p.grad is not None for p in params],
                            dtype=torch.float32, device=device)
        if not _distributed(self.process_group):
            self.last_usage = used
            return
        dist.all_reduce(used, group=self.process_group)
        self.last_usage = used
        active = [(p, float(c)) for p, c in zip(params, used.tolist()) if c]
        for bucket in self._buckets(active):
            grads = [
                p.grad if p.grad is not None else torch.zeros_like(p)
                for p, _ in bucket
            ]
            flat = _flatten_dense_tensors(grads)
            dist.all_reduce(flat, group=self.process_group)
            for (p, count), g in zip(bucket,
                                     _unflatten_dense_tensors(flat, grads)):
                g.div_(count)
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.copy_(g)

    def _buckets(self, active):
        bucket, size = [], 0
        for item in active:
            p = item[0]
            nbytes = p.numel() * p.element_size()
            same_kind = not bucket or (bucket[0][0].dtype == p.dtype
                                       and bucket[0][0].device == p.device)
            if bucket and (size + nbytes > self.bucket_bytes or not same_kind):
                yield bucket
                bucket, size = [], 0
            bucket.append(item)
            size += nbytes
        if bucket:
            yield bucket

    @torch.no_grad()
    def sync_norm_buffers(self) -> None:
        """Mean running statistics of task-head BNs over the ranks that
        ran them since the last call."""
        if not self._norms or not _distributed(self.process_group):
            self._tracked = [int(m.num_batches_tracked) for m in self._norms]
            return
        ran = [
            float(int(m.num_batches_tracked) != t)
            for m, t in zip(self._norms, self._tracked)
        ]
        pieces = []
        for m, r in zip(self._norms, ran):
            pieces += [m.running_mean.float() * r, m.running_var.float() * r]
        pieces.append(torch.tensor(ran, device=pieces[0].device))
        flat = _flatten_dense_tensors(pieces)
        dist.all_reduce(flat, group=self.process_group)
        out = _unflatten_dense_tensors(flat, pieces)
        counts = out[-1].tolist()
        tracked = torch.tensor(
            [int(m.num_batches_tracked) for m in self._norms],
            device=pieces[0].device)
        dist.all_reduce(
            tracked, op=dist.ReduceOp.MAX, group=self.process_group)
        for i, m in enumerate(self._norms):
            if counts[i] > 0:
                m.running_mean.copy_(out[2 * i] / counts[i])
                m.running_var.copy_(out[2 * i + 1] / counts[i])
            m.num_batches_tracked.fill_(int(tracked[i]))
        self._tracked = [int(m.num_batches_tracked) for m in self._norms]
