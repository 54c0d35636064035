# Copyright (c) gppf_mm contributors. All rights reserved.
"""Every task's metric under the paper's shared BatchNorm statistics and
under per-task statistics (the default), from one checkpoint.

Cross-task BN normalises each task with statistics pooled over whatever
tasks the other ranks run; at test time a task runs alone. With few ranks
the shared running statistics describe a mixture of tasks, not what the
task's own forward saw. This prints both evaluations side by side.

Example::

    python tools/analysis_tools/bn_stats_diagnostic.py \\
        configs/gppf/gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py \\
        work_dirs/demo/train/iter_800.pth
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

MODES = ('shared', 'task')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--task', nargs='+', help='only these tasks')
    parser.add_argument('--work-dir', default=osp.join(
        REPO, 'work_dirs', 'bn_stats_diagnostic'))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from gppf_mm.apis import evaluate, headline, markdown_table, task_columns
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} not found')
    cfg = Config.fromfile(args.config)
    columns = task_columns(cfg)
    tasks = args.task or list(cfg.tasks)
    env = dict(OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    results = {}
    for mode in MODES:
        results[mode] = evaluate(
            args.config, args.checkpoint, osp.join(args.work_dir, mode),
            tasks=args.task, cfg_options=[f'test_cfg.bn_stats={mode}'],
            env=env, label=f'evaluate ({mode} statistics)')
    header = ['task', 'metric', 'shared statistics', 'per-task statistics']
    rows = []
    for task in tasks:
        values = {m: headline(results[m], task, columns[task]) for m in MODES}
        for col in values['shared']:
            rows.append([task, col] + [values[m].get(col) for m in MODES])
    table = markdown_table(header, rows)
    print('\n' + table)
    with open(osp.join(args.work_dir, 'bn_stats.md'), 'w') as f:
        f.write(table + '\n')
    return results


if __name__ == '__main__':
    main()
