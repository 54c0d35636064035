# Copyright (c) gppf_mm contributors. All rights reserved.
"""Data decoded per task against data consumed under SIMT sampling.

Runs the data side of :class:`gppf_mm.engine.runner.SIMTTrainLoop` -- its
task sampler and its lazily created per-task iterators (``next_batch``) --
for ``--iters`` iterations over synthetic datasets whose ``__getitem__``
counts every decode in shared memory (worker processes included). A short
sleep per iteration stands in for the training step, so the workers fill
their prefetch queues.

For every task it prints the batches drawn, the samples consumed and
decoded, the prefetch bound ``num_workers * prefetch_factor * batch_size``
(what a started iterator may hold decoded but unconsumed) and the ratio
``(decoded - prefetch bound) / consumed``, which must stay <= 1.1 (1.0 means
nothing is decoded beyond what is consumed plus the loader's prefetch). A
task never drawn must decode nothing. ``--eager`` creates every iterator up
front instead, as a single-dataloader loop would, for comparison.

``--rank`` / ``--world-size`` reproduce the draws of one rank of a SIMT run
(seed ``seed + rank``) without starting processes.

Example::

    python tools/analysis_tools/benchmark_simt_loading.py --iters 200 \\
        --weights 2.5 1.0 4.0 --batch-sizes 4 2 8 --workers 2
"""
import argparse
import multiprocessing as mp
import time
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from torch.utils.data import Dataset

from gppf_mm.engine.runner import SIMTTrainLoop
from gppf_mm.utils import register_all_modules


class CountingDataset(Dataset):
    """Synthetic images; ``decoded`` counts ``__getitem__`` calls in every
    process."""

    def __init__(self, name: str, size: int, decode_ms: float) -> None:
        self.name = name
        self.size = size
        self.decode_ms = decode_ms
        self.decoded = mp.Value('l', 0)
        self.metainfo = dict(task=name)

    def __deepcopy__(self, memo) -> 'CountingDataset':
        return self  # the runner copies dataloader configs; keep the counter

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        with self.decoded.get_lock():
            self.decoded.value += 1
        if self.decode_ms:
            time.sleep(self.decode_ms / 1000)
        rng = np.random.default_rng(index)
        img = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
        return dict(inputs=torch.from_numpy(img), data_samples=index)


def build_loop(args, datasets: Dict[str, CountingDataset]) -> SIMTTrainLoop:
    """A SIMTTrainLoop on a minimal runner (the loop only builds
    dataloaders and draws tasks here)."""
    runner = SimpleNamespace(
        seed=args.seed,
        _randomness_cfg=dict(seed=args.seed),
        hooks=[],
        register_hook=lambda hook: runner.hooks.append(hook),
        logger=MMLogger.get_instance('benchmark_simt_loading'),
        build_dataloader=Runner.build_dataloader)
    loaders = {
        name: dict(
            dataset=ds,
            batch_size=bs,
            num_workers=args.workers,
            prefetch_factor=args.prefetch_factor
            if args.workers > 0 else None,
            persistent_workers=args.workers > 0,
            sampler=dict(type='ResumableInfiniteSampler', shuffle=True))
        for (name, ds), bs in zip(datasets.items(), args.batch_sizes)
    }
    weights = dict(zip(datasets, args.weights))
    loop = SIMTTrainLoop(runner, loaders, max_iters=args.iters,
                         task_weights=weights, seed=args.seed)
    # emulate one rank of a SIMT run without processes
    loop.task_sampler = type(loop.task_sampler)(
        weights, args.seed, 'simt', args.rank, args.world_size)
    return loop


def run(args) -> List[dict]:
    names = [f'task{i}' for i in range(len(args.weights))]
    datasets = {
        n: CountingDataset(n, args.dataset_size, args.decode_ms)
        for n in names
    }
    loop = build_loop(args, datasets)
    drawn = {n: 0 for n in names}
    if args.eager:  # every iterator starts (and prefetches) now
        for n in names:
            loop._iterators[n] = iter(loop.dataloaders[n])
    start = time.perf_counter()
    for _ in range(args.iters):
        task = loop.task_sampler.sample()
        loop.next_batch(task)
        drawn[task] += 1
        time.sleep(args.step_ms / 1000)
    elapsed = time.perf_counter() - start
    time.sleep(0.5)  # let the workers finish what they prefetched
    rows = []
    for n, bs in zip(names, args.batch_sizes):
        consumed = drawn[n] * bs
        decoded = datasets[n].decoded.value
        bound = args.workers * args.prefetch_factor * bs \
            if args.workers else 0
        ratio = (decoded - bound) / consumed if consumed else float('nan')
        rows.append(
            dict(task=n, weight=dict(zip(names, args.weights))[n],
                 drawn=drawn[n], consumed=consumed, decoded=decoded,
                 bound=bound, ratio=ratio))
    loop._iterators.clear()  # shuts the workers down
    print(f'{args.iters} iterations in {elapsed:.2f}s '
          f'({"eager" if args.eager else "lazy"} iterators, rank '
          f'{args.rank}/{args.world_size}, {args.workers} workers, '
          f'prefetch_factor {args.prefetch_factor})')
    print(f'{"task":<8}{"weight":>7}{"drawn":>7}{"consumed":>10}'
          f'{"decoded":>9}{"prefetch":>10}{"ratio":>8}')
    for r in rows:
        print(f'{r["task"]:<8}{r["weight"]:>7.2f}{r["drawn"]:>7}'
              f'{r["consumed"]:>10}{r["decoded"]:>9}{r["bound"]:>10}'
              f'{r["ratio"]:>8.3f}')
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--weights', type=float, nargs='+',
                        default=[2.5, 1.0, 4.0])
    parser.add_argument('--batch-sizes', type=int, nargs='+',
                        default=[4, 2, 8])
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--prefetch-factor', type=int, default=2)
    parser.add_argument('--dataset-size', type=int, default=500)
    parser.add_argument('--decode-ms', type=float, default=0.2,
                        help='simulated decode time per sample')
    parser.add_argument('--step-ms', type=float, default=5.0,
                        help='simulated training step per iteration')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--rank', type=int, default=0)
    parser.add_argument('--world-size', type=int, default=1)
    parser.add_argument('--eager', action='store_true',
                        help='create every iterator up front')
    args = parser.parse_args(argv)
    if len(args.weights) != len(args.batch_sizes):
        parser.error('--weights and --batch-sizes need one value per task')
    return args


def main(argv=None) -> List[dict]:
    register_all_modules()
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
