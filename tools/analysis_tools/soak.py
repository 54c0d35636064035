# Copyright (c) gppf_mm contributors. All rights reserved.
"""Soak test: a long SIMT run of the main job, checked for hangs, memory
growth and data decoded beyond what is consumed.

Runs the demo config (every embedded task, hard routing, cross-task BN) on
``--nproc`` ranks under ``torch.distributed.run`` with ``--workers``
dataloader workers per task, for ``--iters`` iterations. Each rank records,
every ``--interval`` iterations, its resident memory (its own and its
dataloader workers') and, per task, the batches it consumed and the samples
its workers decoded. At the end it prints, per rank:

- whether the run finished (a hang is a run past ``--timeout``);
- resident memory growth from the first record after ``--warmup``
  iterations to the end (target < 10 %);
- per task, ``(decoded - prefetch bound) / consumed`` in samples, where the
  prefetch bound is ``workers * prefetch_factor * batch_size`` (target
  <= 1.1).

Example (the figures in docs/reliability.md)::

    python tools/analysis_tools/soak.py --iters 1000 --workers 2
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'gppf',
    'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')
PREFETCH = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--iters', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--interval', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=200)
    parser.add_argument('--timeout', type=float, default=3 * 3600)
    parser.add_argument('--work-dir',
                        default=osp.join(REPO, 'work_dirs', 'soak'))
    parser.add_argument('--worker', action='store_true',
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MiB (Linux)."""
    total = 0
    pids = [pid]
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f'/proc/{p}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def worker(args) -> None:
    """One rank: the runner of the config with counting datasets and a
    recording hook."""
    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from gppf_mm.datasets import TaskDataset
    from gppf_mm.engine import GPPFRunner
    from gppf_mm.engine.task_config import expand_tasks
    from gppf_mm.registry import DATASETS
    from gppf_mm.utils import prepare_dist_cfg, register_all_modules

    @DATASETS.register_module(force=True)
    class CountingTaskDataset(TaskDataset):
        """Counts decoded samples in shared memory (workers included)."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.decoded = mp.Value('q', 0)

        def __getitem__(self, index):
            out = super().__getitem__(index)
            with self.decoded.get_lock():
                self.decoded.value += 1
            return out

    class SoakRecorder(Hook):
        priority = 'LOWEST'

        def __init__(self, path):
            self.path = path

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            it = runner.iter + 1
            if it % args.interval and it != args.iters:
                return
            loop = runner.train_loop
            record = dict(
                iter=it, time=time.time(), rss_mb=rss_mb(os.getpid()),
                consumed={t: loop.consumed[t] *
                          loop.dataloaders[t].batch_sampler.batch_size
                          for t in loop.tasks},
                decoded={t: loop.dataloaders[t].dataset.decoded.value
                         for t in loop.tasks},
                batch={t: loop.dataloaders[t].batch_sampler.batch_size
                       for t in loop.tasks})
            with open(self.path, 'a') as f:
                f.write(json.dumps(record) + '\n')

    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = 'pytorch'
    cfg = expand_tasks(cfg)
    for loader in cfg.train_dataloader.values():
        loader.num_workers = args.workers
        loader.persistent_workers = args.workers > 0
        loader.dataset.type = 'gppf_mm.CountingTaskDataset'
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters + 1
    cfg.param_scheduler[-1].end = args.iters
    cfg.default_hooks.checkpoint.interval = max(args.iters // 2, 1)
    cfg.default_hooks.logger.interval = args.interval
    prepare_dist_cfg(cfg, 'pytorch')
    # the config is expanded already (its datasets swapped for counting
    # ones): build the GPPF runner the way MMEngine's from_cfg does
    runner = Runner.from_cfg.__func__(GPPFRunner, cfg)
    rank = dist.get_rank() if dist.is_initialized() else 0
    runner.register_hook(
        SoakRecorder(osp.join(args.work_dir, f'soak_rank{rank}.jsonl')))
    runner.train()


def summarise(args) -> int:
    ok = True
    for rank in range(args.nproc):
        path = osp.join(args.work_dir, f'soak_rank{rank}.jsonl')
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        last = records[-1]
        warm = next(r for r in records if r['iter'] >= args.warmup)
        growth = (last['rss_mb'] - warm['rss_mb']) / warm['rss_mb']
        print(f'rank {rank}: {last["iter"]} iterations; resident memory '
              f'{warm["rss_mb"]:.0f} MiB at iteration {warm["iter"]}, '
              f'{last["rss_mb"]:.0f} MiB at the end: {growth:+.1%}')
        ok &= last['iter'] == args.iters and growth < 0.10
        for task, consumed in last['consumed'].items():
            decoded = last['decoded'][task]
            bound = args.workers * PREFETCH * last['batch'][task]
            ratio = (decoded - bound) / consumed if consumed else (
                0.0 if decoded == 0 else float('inf'))
            print(f'  {task}: consumed {consumed} samples, decoded '
                  f'{decoded} (prefetch bound {bound}): ratio {ratio:.3f}')
            ok &= ratio <= 1.1
    print('soak', 'passed' if ok else 'FAILED')
    return 0 if ok else 1


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    os.makedirs(args.work_dir, exist_ok=True)
    for rank in range(args.nproc):
        path = osp.join(args.work_dir, f'soak_rank{rank}.jsonl')
        if osp.exists(path):
            os.remove(path)
    from gppf_mm.utils import find_free_port
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.setdefault('GPPF_DATA_ROOT', osp.join(REPO, 'data', 'gppf_bench'))
    from gppf_mm.datasets.generation import ensure_benchmark
    ensure_benchmark(env['GPPF_DATA_ROOT'])
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
        f'--nproc_per_node={args.nproc}', f'--master_port={find_free_port()}',
        osp.abspath(__file__), '--worker', '--config', args.config,
        '--iters', str(args.iters), '--workers', str(args.workers),
        '--interval', str(args.interval), '--work-dir', args.work_dir
    ]
    start = time.time()
    try:
        proc = subprocess.run(cmd, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f'soak FAILED: no end after {args.timeout:.0f} s (a hang)')
        return 1
    print(f'finished with exit code {proc.returncode} in '
          f'{(time.time() - start) / 60:.1f} min')
    if proc.returncode != 0:
        return proc.returncode
    return summarise(args)


if __name__ == '__main__':
    sys.exit(main())
