# Copyright (c) gppf_mm contributors. All rights reserved.
"""The all-reduces of one gradient fusion update: which parameters some
rank uses, their flat buckets, launching them during backward and writing
the task averages back (used by :class:`GradientFusionWrapper`)."""
from typing import Dict, Iterator, List, Optional, Set, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn


def reached_parameters(loss: torch.Tensor) -> Set[int]:
    """``id``s of the leaf tensors that ``loss.backward()`` will reach
    (the variables of the ``AccumulateGrad`` nodes of its graph)."""
    found: Set[int] = set()
    root = loss.grad_fn
    if root is None:
        return found
    seen = set()
    stack = [root]
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, 'variable', None)
        if var is not None:
            found.add(id(var))
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
    return found


def write_back(bucket: List[nn.Parameter], views: List[torch.Tensor],
               sent: List[int], count_of: Dict[int, int],
               skip: Set[int] = frozenset()) -> None:
    """Copy each parameter's part of the reduced flat buffer into its
    gradient.

    Every rank sent its gradient divided by ``sent[i]``, the number of
    ranks expected to use the parameter; where fewer ranks produced one
    (``count_of``), the part is rescaled. A parameter that no rank used,
    or one in ``skip``, keeps its own gradient. The gradients stay tensors
    of their own (autograd's where there was one), so the buffer can be
    reused and ``zero_grad`` frees what it frees under DDP.
    """
    for p, view, divisor in zip(bucket, views, sent):
        count = count_of[id(p)]
        if count == 0 or id(p) in skip:
            continue
        if count != divisor:
            view.mul_(divisor / count)
        if p.grad is None:
            p.grad = view.clone()
        else:
            p.grad.copy_(view)


class FusionPlan:
    """The all-reduces of one update.

    ``counts[i]`` ranks expect a gradient for ``params[i]``; the parameters
    with a positive count are cut into buckets in reverse order. A bucket
    is launched when the gradients this rank waits for in it have arrived
    and every earlier bucket is launched, so all ranks issue the same
    collectives in the same order whatever their graphs.

    Args:
        params (list[Parameter]): the trainable parameters, in the same
            order on every rank.
        expected (list[bool]): whether this rank expects a gradient for
            each parameter.
        counts (list[int]): the number of ranks that expect one (the sum
            of ``expected`` over the ranks).
        waiting (set[int]): ``id``s of the parameters whose gradients this
            rank waits for before it launches their bucket; empty when the
            plan is made after backward.
        after_backward (bool): the gradients are complete, ``counts`` are
            final and nothing can arrive late.
        bucket_bytes (int): the size of one bucket.
        group (ProcessGroup, optional): the group of the all-reduces.
        pool (BufferPool, optional): where the flat buffers come from;
            None allocates new ones.
    """

    def __init__(self, params: List[nn.Parameter], expected: List[bool],
                 counts: List[int], waiting: Set[int], after_backward: bool,
                 bucket_bytes: int, group=None,
                 pool: Optional['BufferPool'] = None) -> None:
        self.group = group
        self.pool = pool
        if pool is not None:
            pool.begin()
        self.bucket_bytes = bucket_bytes
        self.params = params
        self.param_ids = [id(p) for p in params]
        self.expected = expected
        self.counts = counts
        self.count_of = dict(zip(self.param_ids, counts))
        self.after_backward = after_backward
        self.mine = {id(p) for p, e in zip(params, expected) if e}
        active = [p for p, c in zip(params[::-1], counts[::-1]) if c > 0]
        self.buckets = list(cut_buckets(active, bucket_bytes))
        self.slot: Dict[int, int] = {}
        self.bucket_of: Dict[int, int] = {}
        self.pending: List[int] = []
        for i, bucket in enumerate(self.buckets):
            self.bucket_of.update((id(p), i) for p in bucket)
            waits = [id(p) for p in bucket if id(p) in waiting]
            self.slot.update((pid, i) for pid in waits)
            self.pending.append(len(waits))
        self.launched: list = []
        # expected gradients that grew again after their bucket was sent
        # (a parameter used both outside and inside a reentrant checkpoint)
        self.regrown: Set[int] = set()

    def ready(self, param: nn.Parameter) -> None:
        pid = id(param)
        i = self.slot.pop(pid, None)
        if i is None:
            b = self.bucket_of.get(pid)
            if (b is not None and b < len(self.launched)
                    and pid in self.mine):
                self.regrown.add(pid)
            return
        self.pending[i] -= 1
        if self.pending[i] == 0 and i == len(self.launched):
            self.launch_ready()

    def launch_ready(self, force: bool = False) -> None:
        while len(self.launched) < len(self.buckets):
            i = len(self.launched)
            if self.pending[i] > 0 and not force:
                break
            bucket = self.buckets[i]
            items = [(p, id(p) in self.mine, self.count_of[id(p)])
                     for p in bucket]
            self.launched.append(flat_grads(items, self.group, self.pool))

    def finish(self) -> Tuple[torch.Tensor, Dict[str, int]]:
        early = len(self.launched)
        self.launch_ready(force=True)
        params = self.params
        n = len(params)
        used = [p.grad is not None for p in params]
        if self.after_backward:
            counts, late = self.counts, [0] * n
        else:
            # what backward actually produced: a parameter whose gradient
            # came without being expected (a graph re-entered during
            # backward, as reentrant checkpointing does), or grew after its
            # bucket was sent, is fused again below, after every rank has
            # learnt of it
            late_here = [(u and not e) or pid in self.regrown
                         for u, e, pid in zip(used, self.expected,
                                              self.param_ids)]
            info = torch.tensor(
                used + late_here, dtype=torch.int32,
                device=params[0].device)
            dist.all_reduce(info, group=self.group)
            info = info.tolist()
            counts, late = info[:n], info[n:]
        count_of = dict(zip(self.param_ids, counts))
        late_ids = {pid for pid, c in zip(self.param_ids, late) if c > 0}
        for bucket, views, sent, work in self.launched:
            work.wait()
            write_back(bucket, views, sent, count_of, skip=late_ids)
        late_params = [p for p in params if id(p) in late_ids]
        redo = [
            flat_grads([(p, True, count_of[id(p)]) for p in bucket],
                       self.group, self.pool)
            for bucket in cut_buckets(late_params, self.bucket_bytes)
        ]
        for bucket, views, sent, work in redo:
            work.wait()
            write_back(bucket, views, sent, count_of)
        fused = sum(c > 0 for c in counts)
        stats = dict(
            params=n,
            used_here=sum(used),
            fused=fused,
            unused=n - fused,
            buckets=len(self.buckets) + len(redo),
            overlapped=early,
            late=len(late_ids))
        return torch.tensor(counts, dtype=torch.int32), stats


def flat_grads(items: List[Tuple[nn.Parameter, bool, int]],
               group=None,
               pool: Optional['BufferPool'] = None):
    """Write the gradients of ``(param, mine, divisor)`` triples,
    divided by ``divisor``, into one flat buffer, taken from ``pool`` or
    new (zeros where ``mine`` is False or the gradient is missing), and
    start an asynchronous all-reduce of it.

    The buffer never shares memory with a gradient: backward may still
    add to a gradient after its bucket was sent (see ``regrown``), and
    the gradient must then still hold this rank's own sum.

    Returns:
        tuple: the parameters, their views of the buffer, the divisors
        and the all-reduce's work handle.
    """
    first = items[0][0]
    numel = sum(p.numel() for p, _, _ in items)
    if pool is None:
        flat = torch.empty(numel, dtype=first.dtype, device=first.device)
    else:
        flat = pool.take(numel, first.dtype, first.device)
    views = []
    offset = 0
    for p, mine, divisor in items:
        view = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        views.append(view)
        if not mine or p.grad is None:
            view.zero_()
        elif p.grad.is_sparse:
            raise RuntimeError('gradient fusion supports dense '
                               'gradients only')
        elif divisor > 1:
            # dividing before the sum, as DDP does, saves a pass
            torch.div(p.grad, divisor, out=view)
        else:
            # the parameter's dtype, so every rank flattens alike
            view.copy_(p.grad)
    work = dist.all_reduce(flat, group=group, async_op=True)
    return ([p for p, _, _ in items], views,
            [max(d, 1) for _, _, d in items], work)


def cut_buckets(params: List[nn.Parameter],
                bucket_bytes: int) -> Iterator[List[nn.Parameter]]:
    """Consecutive runs of parameters of one dtype and device,
    each at most ``bucket_bytes`` (or a single larger parameter)."""
    bucket: List[nn.Parameter] = []
    size = 0
    kind = None
    for p in params:
        # every rank must cut the buckets alike: use the parameter's
        # dtype and device, which are the same on every rank
        this_kind = (p.dtype, p.device)
        nbytes = p.numel() * p.element_size()
        if bucket and (size + nbytes > bucket_bytes
                       or this_kind != kind):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += nbytes
        kind = this_kind
    if bucket:
        yield bucket


class BufferPool:
    """Flat bucket buffers kept from one update to the next, as DDP keeps
    its buckets.

    A fresh buffer of tens of MB for every bucket of every update costs
    page faults on the CPU (thousands per step, on one rank and not the
    other, depending on the state of its heap); reusing them does not.

    Args:
        bucket_bytes (int): new buffers hold at least this many bytes, so
            that buckets of another iteration's layout fit in them.
    """

    def __init__(self, bucket_bytes: int) -> None:
        self.bucket_bytes = bucket_bytes
        self.buffers: List[torch.Tensor] = []
        self.free: List[torch.Tensor] = []

    def begin(self) -> None:
        """Start an update: every buffer is free again (the previous update
        has copied its buckets out); buffers that this update does not
        take are released at the next call."""
        self.free, self.buffers = self.buffers, []

    def take(self, numel: int, dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
        """A flat tensor of ``numel`` elements: the front of the smallest
        free buffer that fits, or of a new one."""
        fits = [
            i for i, b in enumerate(self.free) if b.dtype == dtype
            and b.device == device and b.numel() >= numel
        ]
        if fits:
            buf = self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        else:
            itemsize = torch.empty((), dtype=dtype).element_size()
            buf = torch.empty(
                max(numel, self.bucket_bytes // itemsize),
                dtype=dtype,
                device=device)
        self.buffers.append(buf)
        return buf[:numel]
