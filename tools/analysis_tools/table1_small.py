# Copyright (c) gppf_mm contributors. All rights reserved.
"""The shape of the paper's Table 1 at small scale, in one command.

Rows, all trained on the embedded benchmark with the same 2 ranks:

- ``single-task``: every task alone (N = 1, cross-task BN = SyncBN), for
  ``T * w_t / sum(w)`` iterations, so that the single-task runs together
  cost one multi-task run (the paper's Section 4.1 budget split);
- ``static``: GPPF static (N = 1), SIMT + cross-task BN, ``T`` iterations;
- ``static, no cross-task BN``: the same with every rank's BatchNorm
  statistics its own task's (the paper's "SIMT without SyncBN");
- ``dynamic N=2`` and ``dynamic N=3``: soft lego routing;
- ``per-batch``: static, but one task for all ranks per iteration (the
  paper's unstable sampling baseline).

Every run is evaluated with ``tools/test.py``; one table of per-task
metrics (COCO box / mask AP in percent, mIoU, top-1) is printed and
written as ``table1.md`` and ``table1.csv`` in the work directory. With the
single-task and a GPPF row in the table, the CKA pictures of the paper's
Appendix A (single-task model, GPPF model, cross-model) are drawn for one
segmentation task (``--cka-task``) into ``cka/``.

Example::

    python tools/analysis_tools/table1_small.py   # T = the config's (450)
    python tools/analysis_tools/table1_small.py --iters 50 --rows static
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from gppf_mm.apis.jobs import (  # noqa: E402
    single_task_iters,
    write_run_config,
)

DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'gppf',
    'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')
ROWS = ('single-task', 'static', 'static, no cross-task BN', 'dynamic N=2',
        'dynamic N=3', 'per-batch')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a GPPF config whose tasks form the table')
    parser.add_argument('--iters', type=int,
                        help='iterations T of one multi-task run (default: '
                        "the config's max_iters, the demo's budget)")
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--rows', nargs='+', choices=ROWS, default=ROWS)
    parser.add_argument('--work-dir',
                        default=osp.join(REPO, 'work_dirs', 'table1_small'))
    parser.add_argument('--data-root', help='benchmark folder (default: '
                        '$GPPF_DATA_ROOT or data/gppf_bench)')
    parser.add_argument('--cka-task', default='indoor_seg',
                        help='the task of the single-task vs GPPF CKA '
                        'pictures ("none" for no pictures)')
    parser.add_argument('--cka-row', default='dynamic N=2', choices=ROWS,
                        help='the GPPF row the single-task model is compared '
                        'with')
    return parser.parse_args(argv)


def plan_runs(cfg, rows, iters):
    """(row, run name, tasks, iterations, cfg-options) for every run."""
    weights = {t: float(task.get('sample_weight', 1.0))
               for t, task in cfg.tasks.items()}
    runs = []
    for row in rows:
        if row == 'single-task':
            for task, n in single_task_iters(weights, iters).items():
                runs.append((row, f'single_{task}', [task], n,
                             ['model.backbone.num_units=1']))
        elif row == 'static':
            runs.append((row, 'static', None, iters,
                         ['model.backbone.num_units=1']))
        elif row == 'static, no cross-task BN':
            runs.append((row, 'static_no_ctbn', None, iters, [
                'model.backbone.num_units=1', 'model.cross_task_bn=False'
            ]))
        elif row.startswith('dynamic'):
            n = int(row.split('=')[1])
            runs.append((row, f'dynamic_n{n}', None, iters, [
                f'model.backbone.num_units={n}',
                'model.backbone.routing_mode=soft'
            ]))
        elif row == 'per-batch':
            runs.append((row, 'per_batch', None, iters, [
                'model.backbone.num_units=1', 'train_cfg.sampling=per_batch'
            ]))
    return runs


def draw_cka(args, cfg, runs, checkpoints, work_dir):
    """Single-task vs GPPF CKA heatmaps for ``args.cka_task``."""
    task = args.cka_task
    single = f'single_{task}'
    gppf = [name for row, name, *_ in runs if row == args.cka_row]
    if task == 'none' or task not in cfg.tasks or single not in checkpoints \
            or not gppf or gppf[0] not in checkpoints:
        return {}
    from mmengine.config import Config

    from gppf_mm.apis import last_checkpoint
    from gppf_mm.visualization.cka import cka_report

    def run_cfg(name):  # the run's config (its options are merged in)
        config, run_dir = checkpoints[name]
        return Config.fromfile(config), last_checkpoint(run_dir)

    cfg1, ckpt1 = run_cfg(single)
    cfg2, ckpt2 = run_cfg(gppf[0])
    return cka_report(cfg1, ckpt1, task, cfg2, ckpt2, task,
                      out_dir=osp.join(work_dir, 'cka'), device='cpu')


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    from mmengine.config import Config

    from gppf_mm.apis import (
        evaluate,
        headline,
        iteration_overrides,
        markdown_table,
        task_columns,
        train,
        write_csv,
    )
    from gppf_mm.datasets.generation import ensure_benchmark

    root = ensure_benchmark(args.data_root)
    env = dict(GPPF_DATA_ROOT=root, CUDA_VISIBLE_DEVICES='',
               OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    os.environ['GPPF_DATA_ROOT'] = root
    cfg = Config.fromfile(args.config)
    args.iters = args.iters or cfg.train_cfg.max_iters
    columns = task_columns(cfg)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    runs = plan_runs(cfg, args.rows, args.iters)
    print(f'[table1] {len(runs)} runs, T = {args.iters} iterations on '
          f'{args.nproc} ranks; work dir {work_dir}', flush=True)

    results, checkpoints = {}, {}
    for i, (row, name, tasks, n, opts) in enumerate(runs):
        run_dir = osp.join(work_dir, name)
        done = osp.join(run_dir, 'metrics.json')
        config = osp.join(run_dir, 'config.py')
        if osp.isfile(done):  # finished by an earlier call: reuse
            with open(done) as f:
                metrics = json.load(f)
        else:
            # the model's options go into the run's config.py, which
            # training and evaluation both read
            write_run_config(cfg, tasks, config, opts)
            label = f'{i + 1}/{len(runs)} {name}'
            ckpt = osp.join(run_dir, 'train', f'iter_{n}.pth')
            if osp.isfile(ckpt):  # trained by an earlier call
                print(f'[table1] {label}: evaluating the trained {ckpt}',
                      flush=True)
            else:
                ckpt = train(config, osp.join(run_dir, 'train'), args.nproc,
                             iteration_overrides(cfg, n, validate=False),
                             env, label=label)
            metrics = evaluate(config, ckpt, osp.join(run_dir, 'test'),
                               env=env, label=label + ' eval')
            with open(done, 'w') as f:
                json.dump(metrics, f, indent=2)
        checkpoints[name] = (config, osp.join(run_dir, 'train'))
        for task in tasks or cfg.tasks:
            results.setdefault(row, {}).update({
                (task, col): v
                for col, v in headline(metrics, task, columns[task]).items()
            })

    keys = [(t, col) for t in cfg.tasks for col, _, _ in columns[t]]
    header = ['method'] + [f'{t} {col}' for t, col in keys]
    rows = [[row] + [results.get(row, {}).get(k) for k in keys]
            for row in args.rows]
    table = markdown_table(header, rows)
    with open(osp.join(work_dir, 'table1.md'), 'w') as f:
        f.write(f'T = {args.iters} iterations, {args.nproc} ranks\n\n'
                + table + '\n')
    write_csv(osp.join(work_dir, 'table1.csv'), header, rows)
    print('\n' + table)
    cka = draw_cka(args, cfg, runs, checkpoints, work_dir)
    if cka:
        print('[table1] CKA pictures: ' + ', '.join(sorted(cka.values())))
    took = time.time() - start
    print(f'\n[table1] written to {osp.join(work_dir, "table1.md")} '
          f'(and .csv) in {int(took // 60)} min {int(took % 60)} s')
    return results


if __name__ == '__main__':
    main()
