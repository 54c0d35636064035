# Copyright (c) gppf_mm contributors. All rights reserved.
"""Task-batches trained per second by layouts of processes x virtual
devices, in one run (one after the other, on the same machine).

Every layout trains the config for ``--iters`` iterations (no validation,
no checkpoints); the median iteration time after ``--warmup`` iterations
gives the task-batches per second (``P * K`` per iteration). Layouts with
the same number of devices train exactly the same model, so the fastest of
them is the one to use.

Example::

    python tools/analysis_tools/benchmark_layouts.py \\
        --layouts 2x1 1x2 1x5 2x3 5x1
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO, 'configs', 'gppf',
                'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEMO)
    parser.add_argument('--layouts', nargs='+', default=['2x1', '1x2'],
                        help='PxK: P processes with K virtual devices each; '
                        'PxKtT runs T OpenMP threads per process (default: '
                        'the cores divided by P)')
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--data-root', help='benchmark folder (default: '
                        '$GPPF_DATA_ROOT or data/gppf_bench)')
    return parser.parse_args(argv)


def parse_layout(text):
    threads = None
    if 't' in text:
        text, threads = text.split('t')
        threads = int(threads)
    p, k = (int(v) for v in text.split('x'))
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // p)
    return p, k, threads


def run_layout(config, p, k, threads, iters, work_dir, env):
    from gppf_mm.utils.dist import find_free_port
    options = [
        f'train_cfg.virtual_devices={k}', f'train_cfg.max_iters={iters}',
        'train_cfg.val_begin=100000000',
        'default_hooks.checkpoint.interval=100000000',
        'default_hooks.checkpoint.save_last=False',
        'default_hooks.logger.interval=1'
    ]
    train = [osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
             work_dir]
    if p > 1:
        cmd = [sys.executable, '-m', 'torch.distributed.run',
               f'--nproc_per_node={p}', f'--master_port={find_free_port()}',
               *train, '--launcher', 'pytorch']
    else:
        cmd = [sys.executable, *train]
    cmd += ['--cfg-options', *options]
    env = dict(env, OMP_NUM_THREADS=str(threads))
    log = osp.join(osp.dirname(work_dir), f'{p}x{k}.log')
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        # the resources of the launcher and the processes it waited for:
        # ru_maxrss is the peak resident memory of the largest of them
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        with open(log) as f:
            raise RuntimeError(f'{p}x{k} failed:\n{f.read()[-3000:]}')
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    times = [r['time'] for r in records if 'time' in r and 'loss' in r]
    return times, usage.ru_maxrss / 1024  # MiB


def main(argv=None):
    args = parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    env = dict(os.environ)
    if args.data_root:
        env['GPPF_DATA_ROOT'] = args.data_root
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.layouts:
            p, k, threads = parse_layout(text)
            times, peak = run_layout(args.config, p, k, threads,
                                     args.iters, osp.join(tmp, text), env)
            step = statistics.median(times[args.warmup:])
            rows.append((text, p, k, threads, step, p * k / step, peak))
            print(f'{text}: {p} process(es) x {k} device(s), {threads} '
                  f'thread(s): {step:.3f} s per iteration, '
                  f'{p * k / step:.2f} task-batches/s, peak memory of one '
                  f'process {peak:.0f} MiB', flush=True)
    base = rows[0][5]
    print('\nlayout  processes  devices  threads  s/iter  batches/s  ratio  '
          'peak MiB/process')
    for text, p, k, threads, step, rate, peak in rows:
        print(f'{text:<7} {p:>9} {k:>8} {threads:>8} {step:>7.3f} '
              f'{rate:>10.2f} {rate / base:>6.2f} {peak:>10.0f}')


if __name__ == '__main__':
    main()
