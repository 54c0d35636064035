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

from .collective_check import CollectiveCheck
from .device_step import DeviceUsage, VirtualBatch, device_train_step
from .fusion_plan import BufferPool, FusionPlan, reached_parameters
from .nonfinite import NonFiniteGuard


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

    Communication per update, overlapped with backward (``overlap=True``,
    used by :meth:`train_step` when the optim wrapper does not accumulate
    gradients): before backward every rank walks its loss's autograd graph
    for the parameters it will produce gradients for, and one small
    all-reduce of these flags tells every rank which parameters some rank
    uses. Those are cut into flat buckets (``bucket_size_mb``) in reverse
    registration order, the order backward produces them. A
    post-accumulate-grad hook launches a bucket's asynchronous all-reduce
    (of this rank's gradients divided by the number of ranks expected to
    use them, zeros where it has none) as soon as the gradients it waits
    for have arrived and every earlier bucket is launched, so every rank
    issues the same collectives in the same order although the ranks run
    different graphs. After backward one more small all-reduce gives the
    number of ranks that actually produced each gradient (a bucket entry
    is rescaled where it differs from the expected one); a gradient that
    arrived unannounced (a graph re-entered during backward, e.g.
    reentrant checkpointing) or that grew after its bucket was sent is
    fused again after backward. Each gradient is copied once into its
    bucket (divided on the way) and once back; the bucket buffers are
    reused by the next update. Called on its own after backward,
    :meth:`fuse_gradients` does the same without the overlap.

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
        overlap (bool, optional): start the bucket all-reduces during
            backward, on a process group of their own. None (default) turns
            it on for distributed runs without cross-task BN. Beside
            cross-task BN it is off: on NCCL the norms' backward all-reduces
            and the buckets would run on two communicators in an order that
            differs between ranks, which NCCL does not guarantee to
            complete; on gloo the buckets' threads slow every norm's
            all-reduce down (1.5x the iteration time measured on 2 CPU
            cores).
        unused_norms (str): what to do at a task's first step when its loss
            does not reach some cross-task norms (a head that ignores
            backbone outputs), whose backward collectives the ranks of other
            tasks make: ``'zero_grad'`` (default) gives them zero gradients
            in that task's steps and logs a warning, ``'error'`` raises (see
            :mod:`gppf_mm.engine.model_wrappers.collective_check`).
        nonfinite (str): a non-finite loss or gradient in a step, on any
            rank: ``'skip'`` (default) the update on every rank and restore
            the norms' statistics, ``'raise'`` a ``FloatingPointError``
            naming the task(s) and the iteration, ``'off'`` step anyway (see
            :mod:`gppf_mm.engine.model_wrappers.nonfinite`).
        max_consecutive_skips (int): with ``'skip'``, raise after this many
            skipped updates in a row. Defaults to 10.
        process_group (ProcessGroup, optional): defaults to the default
            process group.

    Attributes:
        last_usage (Tensor | None): after :meth:`fuse_gradients`, the number
            of ranks that used each parameter (``named_parameters`` order,
            trainable parameters only).
        fusion_stats (dict): counts of the last fusion: ``params``,
            ``used_here``, ``fused``, ``unused``, ``buckets``,
            ``overlapped`` (buckets launched during backward) and ``late``
            (parameters fused again after backward).
    """

    def __init__(self,
                 module: BaseModel,
                 bucket_size_mb: float = 25.0,
                 broadcast_init: bool = True,
                 sync_norms: bool = True,
                 overlap: Optional[bool] = None,
                 unused_norms: str = 'zero_grad',
                 nonfinite: str = 'skip',
                 max_consecutive_skips: int = 10,
                 process_group=None) -> None:
        super().__init__()
        if bucket_size_mb <= 0:
            raise ValueError(f'bucket_size_mb must be > 0, got '
                             f'{bucket_size_mb}')
        self.module = module
        self.bucket_bytes = int(bucket_size_mb * 1024 * 1024)
        self.sync_norms = sync_norms
        self.process_group = process_group
        self.overlap = self._resolve_overlap(overlap)
        # the buckets of an overlapped fusion are launched at points of
        # backward that differ between ranks, so they need a group of their
        # own: interleaved with cross-task BN's collectives on one group,
        # they would be matched with the wrong peers
        self.fusion_group = process_group
        if self.overlap and self.distributed:
            self.fusion_group = dist.new_group(
                ranks=dist.get_process_group_ranks(
                    process_group or dist.group.WORLD))
        self.last_usage: Optional[torch.Tensor] = None
        self.fusion_stats: Dict[str, int] = {}
        self._plan: Optional[FusionPlan] = None
        self._pool = BufferPool(self.bucket_bytes)
        self._hooks: list = []
        if self.overlap:
            self._register_hooks()
        if broadcast_init and self.distributed:
            self._broadcast_state()
        self._tracked: Dict[str, int] = {}
        self._snapshot_norms()
        self.collectives = CollectiveCheck(
            module, unused_norms, active=self.distributed)
        self.nonfinite = NonFiniteGuard(module, nonfinite,
                                        max_consecutive_skips, process_group)
        # taken again before the first update: a resumed run loads its
        # checkpoint (and the norms' counters) after the wrapper is built
        self._snapshot_due = True
        # virtual devices (device_step.py): which of this process's devices
        # used each parameter, and ran each norm, since the last update
        self.device_usage = DeviceUsage()
        self.device_norm_runs: Dict[str, int] = {}

    def _resolve_overlap(self, overlap: Optional[bool]) -> bool:
        if overlap is not None:
            return bool(overlap)
        if not self.distributed:
            return False
        has_cross_task_bn = any(
            isinstance(m, CrossTaskBatchNorm2d)
            for m in self.module.modules())
        # Beside cross-task BN the bucket all-reduces share the processes
        # with the norms' collectives, one per norm in forward and backward:
        # - NCCL does not promise progress when two communicators' kernels
        #   wait on each other in different orders on different ranks;
        # - on gloo the buckets' threads compete with backward and delay
        #   every norm's all-reduce (the benchmark's classification task on
        #   2 ranks and 2 cores: 1.16 s per iteration with overlap, 0.76 s
        #   without).
        return not has_cross_task_bn

    def _snapshot_norms(self) -> None:
        self._tracked = {
            name: int(m.num_batches_tracked)
            for name, m in self._norms()
        }

    @property
    def rank(self) -> int:
        if not (dist.is_available() and dist.is_initialized()):
            return 0
        return dist.get_rank()

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
        if isinstance(data, VirtualBatch):
            return device_train_step(self, data, optim_wrapper)
        if self._snapshot_due:
            self._snapshot_norms()
            self._snapshot_due = False
        task = data.get('task') if isinstance(data, dict) else None
        # AMP's loss scaler makes its own (equally rank-consistent) decision
        guard = not hasattr(optim_wrapper, 'loss_scaler')
        if guard:
            self.nonfinite.snapshot()
        with optim_wrapper.optim_context(self), \
                self.collectives.record(task) as record:
            data = self.module.data_preprocessor(data, training=True)
            losses = self.module._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        # every cross-task norm of the forward makes its backward collective
        parsed_loss = self.collectives.tie(task, parsed_loss, record)
        del record
        # divided by the accumulation count, as OptimWrapper.update_params
        parsed_loss = optim_wrapper.scale_loss(parsed_loss)
        # overlap only when this backward is the update's only one
        if (self.overlap and getattr(optim_wrapper,
                                     '_accumulative_counts', None) == 1):
            self.prepare_fusion(parsed_loss)
        try:
            optim_wrapper.backward(parsed_loss)
        except BaseException:
            # all-reduces of the dropped plan may still write into their
            # buffers: the next update takes new ones
            self._plan = None
            self._pool = BufferPool(self.bucket_bytes)
            raise
        if optim_wrapper.should_update():
            self.fuse_gradients()
            if not guard or self.nonfinite.check(self._trainable(), task,
                                                 parsed_loss):
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

    def _register_hooks(self) -> None:
        for p in self.module.parameters():
            if p.requires_grad:
                self._hooks.append(
                    p.register_post_accumulate_grad_hook(self._on_grad))

    def _on_grad(self, param: nn.Parameter) -> None:
        """Post-accumulate-grad hook: count the gradient in and launch the
        buckets that are complete."""
        if self._plan is not None:
            self._plan.ready(param)

    @torch.no_grad()
    def prepare_fusion(self, loss: torch.Tensor) -> None:
        """Plan the fusion of the coming ``loss.backward()`` so that its
        bucket all-reduces start while backward still runs.

        Walks ``loss``'s autograd graph for the parameters it reaches (this
        rank's expected gradients), all-reduces these flags once and cuts the
        parameters that some rank expects into buckets in reverse
        registration order (the order backward produces them). During
        backward a bucket is launched as soon as this rank's expected
        gradients in it have arrived and every earlier bucket is launched;
        :meth:`fuse_gradients` then finishes the plan. Every rank must call
        it at the same point. Without a distributed group it does nothing.

        Args:
            loss (Tensor): the loss that backward will be called on.
        """
        if not self.distributed:
            return
        if self._plan is not None:
            raise RuntimeError('prepare_fusion called twice before '
                               'fuse_gradients')
        params = self._trainable()
        if not params:
            return
        reached = reached_parameters(loss)
        expected = [id(p) in reached or p.grad is not None for p in params]
        self._plan = self._make_plan(params, expected, waiting=reached)
        self._plan.launch_ready()

    @torch.no_grad()
    def fuse_gradients(self,
                       device_counts: Optional[List[int]] = None) -> None:
        """Set every gradient to its mean over the ranks that produced one
        (with ``device_counts``, the number of this process's virtual
        devices that used each trainable parameter: over the devices).

        Every rank must call it at the same point (after backward, before
        the optimizer step). After :meth:`prepare_fusion` it finishes the
        all-reduces started during backward; otherwise it plans and runs
        them now. Without a distributed group it only records
        :attr:`last_usage`: the local gradients are already the mean.
        """
        params = self._trainable()
        if not params:
            self._plan = None
            self.last_usage = None
            self.fusion_stats = dict(
                params=0, used_here=0, fused=0, unused=0, buckets=0,
                overlapped=0, late=0)
            return
        if not self.distributed:
            used = [p.grad is not None for p in params]
            if device_counts is not None:
                for p, n in zip(params, device_counts):
                    if p.grad is not None and n > 1:
                        p.grad.div_(n)
                used = [u and n > 0 for u, n in zip(used, device_counts)]
            self.last_usage = torch.tensor(
                used if device_counts is None else device_counts,
                dtype=torch.int32)
            self.fusion_stats = dict(
                params=len(params), used_here=sum(used), fused=sum(used),
                unused=len(params) - sum(used), buckets=0, overlapped=0,
                late=0)
            return
        plan, self._plan = self._plan, None
        if device_counts is not None:
            # a device that used a parameter counts once; every device's
            # gradient is in this process's sum
            plan = self._make_plan(params, [
                n if p.grad is not None else 0
                for p, n in zip(params, device_counts)
            ], waiting=None)
        elif plan is None:
            plan = self._make_plan(
                params, [p.grad is not None for p in params], waiting=None)
        elif [id(p) for p in params] != plan.param_ids:
            raise RuntimeError('the trainable parameters changed between '
                               'prepare_fusion and fuse_gradients')
        self.last_usage, self.fusion_stats = plan.finish()

    def _make_plan(self, params: List[nn.Parameter], expected: List[bool],
                   waiting: Optional[set]) -> FusionPlan:
        """All-reduce this rank's ``expected`` flags into per-parameter
        counts and plan the buckets; ``waiting=None`` plans after backward
        (the gradients are complete)."""
        usage = torch.tensor(
            expected, dtype=torch.int32, device=params[0].device)
        dist.all_reduce(usage, group=self.fusion_group)
        return FusionPlan(
            params, expected, usage.tolist(), waiting=waiting or set(),
            after_backward=waiting is None, bucket_bytes=self.bucket_bytes,
            group=self.fusion_group, pool=self._pool)

    # ------------------------------------------------------- norm buffers
    def _norms(self) -> Iterator[Tuple[str, _BatchNorm]]:
        for name, m in self.module.named_modules():
            if (isinstance(m, _BatchNorm) and m.track_running_stats
                    and m.running_mean is not None
                    and not isinstance(m, CrossTaskBatchNorm2d)):
                yield name, m

    @torch.no_grad()
    def sync_norm_buffers(self,
                          device_runs: Optional[Dict[str, int]] = None
                          ) -> None:
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
        if device_runs is not None:
            # virtual devices: this process's statistics are the mean over
            # its devices that ran the norm, weighed by their number
            ran = [device_runs.get(name, 0) if r else 0
                   for (name, _), r in zip(norms, ran)]
        pieces = []
        for (_, m), r in zip(norms, ran):
            scale = float(r)
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
