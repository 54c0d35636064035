# Copyright (c) gppf_mm contributors. All rights reserved.
"""Step time of gradient fusion against torch DDP on CPU gloo ranks.

Every rank trains two replicas of the same model on the same batches:

- ``fusion``: forward, ``GradientFusionWrapper.prepare_fusion`` (graph
  walk, one usage all-reduce), backward (flat bucket all-reduces launched
  by gradient hooks as buckets fill), ``fuse_gradients`` (one count
  all-reduce, wait for the buckets, divide), SGD step; ``--no-overlap``
  launches the buckets after backward instead, as ``fuse_gradients``
  alone does;
- ``ddp``: the same under ``torch.nn.parallel.DistributedDataParallel``
  with ``find_unused_parameters=True`` and ``broadcast_buffers=False``
  (what MMEngine's default wrapper does), whose bucket all-reduces overlap
  with backward.

The two alternate step by step in one run (paired, so that slow drifts of
the machine cancel); the ranks meet at a barrier before every timed step.
Reported: the median step time of each, the median of the per-step ratios
fusion / DDP, the median time spent in ``prepare_fusion`` and
``fuse_gradients`` (the fusion work not hidden behind backward), and the
largest difference between the two replicas' weights after the run (both
took the same updates, so it is at float rounding level).

Example::

    python tools/analysis_tools/benchmark_gradient_fusion.py
    python tools/analysis_tools/benchmark_gradient_fusion.py \\
        --arch resnet50 --size 96 --iters 10
"""
import argparse
import os
import queue as queue_mod
import statistics
import time
import warnings
from datetime import timedelta
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--arch', default='resnet18', help='a torchvision model name')
    parser.add_argument('--world-size', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--size', type=int, default=64)
    # single steps vary by tens of percent on a shared 2-core machine:
    # 100 paired steps keep the median ratio within a few percent
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--bucket-mb',
        type=float,
        default=25.0,
        help='bucket size of GradientFusionWrapper')
    parser.add_argument(
        '--ddp-bucket-mb',
        type=float,
        default=25.0,
        help='bucket_cap_mb of DDP (25 is its default)')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads per rank')
    parser.add_argument(
        '--no-overlap',
        action='store_true',
        help='fuse after backward instead of during it')
    parser.add_argument('--port', type=int, default=0)
    return parser.parse_args(argv)


def build_model(arch: str) -> nn.Module:
    import torchvision
    torch.manual_seed(0)
    return torchvision.models.get_model(arch, weights=None, num_classes=10)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer,
          x: torch.Tensor, y: torch.Tensor, fusion=None,
          overlap: bool = True) -> Dict[str, float]:
    optimizer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    fuse_time = 0.0
    if fusion is not None and overlap:
        t = time.perf_counter()
        fusion.prepare_fusion(loss)
        fuse_time += time.perf_counter() - t
    loss.backward()
    if fusion is not None:
        t = time.perf_counter()
        fusion.fuse_gradients()
        fuse_time += time.perf_counter() - t
    optimizer.step()
    return dict(step=time.perf_counter() - start, fuse=fuse_time)


def worker(rank: int, args: argparse.Namespace, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    # broadcast_buffers is deprecated in recent torch, and still what
    # MMEngine passes
    warnings.filterwarnings('ignore', category=FutureWarning)
    dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=args.world_size,
        timeout=timedelta(seconds=300))
    try:
        from gppf_mm.engine.model_wrappers import GradientFusionWrapper

        fusion_model = build_model(args.arch)
        wrapper = GradientFusionWrapper(
            fusion_model,
            bucket_size_mb=args.bucket_mb,
            overlap=not args.no_overlap)
        ddp_model = build_model(args.arch)
        ddp = nn.parallel.DistributedDataParallel(
            ddp_model,
            find_unused_parameters=True,
            broadcast_buffers=False,
            bucket_cap_mb=args.ddp_bucket_mb)
        optims = dict(
            fusion=torch.optim.SGD(
                fusion_model.parameters(), lr=0.01, momentum=0.9),
            ddp=torch.optim.SGD(ddp_model.parameters(), lr=0.01, momentum=0.9))
        g = torch.Generator().manual_seed(rank)
        x = torch.randn(
            args.batch_size, 3, args.size, args.size, generator=g)
        y = torch.randint(0, 10, (args.batch_size, ), generator=g)
        times: Dict[str, List[float]] = dict(fusion=[], ddp=[], fuse=[])
        for it in range(args.warmup + args.iters):
            order = ('fusion', 'ddp') if it % 2 == 0 else ('ddp', 'fusion')
            for name in order:
                dist.barrier()
                if name == 'fusion':
                    res = _step(fusion_model, optims['fusion'], x, y,
                                wrapper, not args.no_overlap)
                else:
                    res = _step(ddp, optims['ddp'], x, y)
                if it >= args.warmup:
                    times[name].append(res['step'])
                    if name == 'fusion':
                        times['fuse'].append(res['fuse'])
        # the same work: both replicas took the same updates
        times['max_weight_diff'] = max(
            float((a - b).abs().max().detach()) for a, b in zip(
                fusion_model.parameters(), ddp_model.parameters()))
        queue.put((rank, times))
    finally:
        dist.destroy_process_group()


def summarize(per_rank: Dict[int, Dict[str, List[float]]]) -> Dict:
    """The slowest rank bounds a synchronous step: take the per-step max."""
    ranks = sorted(per_rank)
    merged = {
        key: [max(per_rank[r][key][i] for r in ranks)
              for i in range(len(per_rank[ranks[0]][key]))]
        for key in ('fusion', 'ddp', 'fuse')
    }
    ratios = [f / d for f, d in zip(merged['fusion'], merged['ddp'])]
    return dict(
        max_weight_diff=max(per_rank[r]['max_weight_diff'] for r in ranks),
        fusion=statistics.median(merged['fusion']),
        ddp=statistics.median(merged['ddp']),
        fuse=statistics.median(merged['fuse']),
        ratio=statistics.median(ratios))


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.port:
        port = args.port
    else:
        from gppf_mm.testing import find_free_port
        port = find_free_port()
    # DDP's C++ note that no parameter was unused is expected here
    os.environ.setdefault('TORCH_CPP_LOG_LEVEL', 'ERROR')
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(r, args, port, queue))
        for r in range(args.world_size)
    ]
    for p in procs:
        p.start()
    per_rank = {}
    try:
        while len(per_rank) < args.world_size:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError('a benchmark rank failed')
            try:
                rank, times = queue.get(timeout=1.0)
            except queue_mod.Empty:
                continue
            per_rank[rank] = times
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    res = summarize(per_rank)
    n_params = sum(p.numel() for p in build_model(args.arch).parameters())
    print(f'{args.arch}: {n_params / 1e6:.1f}M parameters, '
          f'{args.world_size} gloo ranks x {args.threads} thread(s), '
          f'batch {args.batch_size} at {args.size}x{args.size}, '
          f'{args.iters} timed steps each after {args.warmup} warm-up; '
          f'buckets: fusion {args.bucket_mb:g} MB, DDP '
          f'{args.ddp_bucket_mb:g} MB; fusion '
          f'{"after" if args.no_overlap else "during"} backward')
    print(f'median step  fusion: {res["fusion"] * 1e3:8.1f} ms '
          f'(prepare_fusion + fuse_gradients {res["fuse"] * 1e3:.1f} ms)')
    print(f'median step  DDP   : {res["ddp"] * 1e3:8.1f} ms '
          '(find_unused_parameters=True)')
    print(f'ratio fusion / DDP (median of paired steps): '
          f'{res["ratio"]:.3f}')
    print(f'max |weight fusion - weight DDP| after the run: '
          f'{res["max_weight_diff"]:.2e}')
    return res


if __name__ == '__main__':
    main()
