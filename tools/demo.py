# Copyright (c) gppf_mm contributors. All rights reserved.
"""The main job on the embedded benchmark, end to end.

1. generate the benchmark on first use (``data/gppf_bench``, or
   ``$GPPF_DATA_ROOT``);
2. pre-train GPPF with SIMT: every rank samples its own task per iteration
   (2 CPU ranks on gloo without a GPU, one rank per GPU with CUDA);
3. evaluate every task with its own upstream metric (``tools/test.py``);
4. write the task-by-layer selection heatmap (the paper's Figure 3) and a
   results table.

Example::

    python tools/demo.py                       # what `make demo` runs
    python tools/demo.py --iters 100 --work-dir work_dirs/demo_short
"""
import argparse
import os
import os.path as osp
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'gppf',
    'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs',
                                                        'demo'))
    parser.add_argument(
        '--iters', type=int, help='training iterations (default: the '
        "config's); the schedule, temperature and checkpoint follow")
    parser.add_argument(
        '--nproc', type=int, help='processes of one device each (default: '
        'one per GPU with two or more GPUs; otherwise one process with 2 '
        'virtual devices)')
    parser.add_argument('--data-root', help='benchmark folder (default: '
                        '$GPPF_DATA_ROOT or data/gppf_bench)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the generated benchmark')
    return parser.parse_args(argv)


def selection_report(probs_file, work_dir, iters):
    """Draw the selection pictures and print how settled it is."""
    import torch

    from gppf_mm.analysis.selection import selection_summary
    from gppf_mm.visualization import plot_selection, plot_selection_history
    sel = torch.load(probs_file, weights_only=True)
    picture = plot_selection(
        sel['probs'], sel['tasks'], sel['layers'],
        osp.join(work_dir, 'selection.png'),
        title=f'Unit selection after {iters} SIMT iterations')
    top = float(sel['probs'].max(dim=-1).values.mean())
    print(f'[demo] mean top-unit selection probability: {top:.3f}')
    if len(sel['history_iters']):
        plot_selection_history(
            sel['history_iters'], sel['history'], sel['tasks'],
            sel['layers'], osp.join(work_dir, 'selection_history.png'))
        s = selection_summary(sel['history_iters'], sel['history'],
                              sel['tasks'], iters)
        by_task = ', '.join(f'{t} {n}' for t, n in s['flips_by_task'].items())
        print(f'[demo] argmax changes after iteration {s["start"]}: '
              f'{s["flips"]} ({by_task}); task x layer pairs changing more '
              f'than once: {s["repeated"]} of {s["pairs"]}')
    return picture


def loss_curves(cfg, train_dir, work_dir):
    """Draw every task's training loss (chance level marked for
    classifiers); return the picture's path, or None without a log."""
    import glob
    import math

    from gppf_mm.visualization import plot_task_losses, read_task_losses
    logs = sorted(glob.glob(osp.join(train_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not logs:
        return None
    curves = read_task_losses(logs[-1], list(cfg.tasks))
    chance = {}
    for name, task in cfg.tasks.items():
        head = task.get('algorithm', {}).get('head', {})
        if isinstance(head, dict) and head.get('num_classes'):
            chance[name] = math.log(head['num_classes'])
    if not any(iters for iters, _ in curves.values()):
        return None
    return plot_task_losses(curves, osp.join(work_dir, 'losses.png'),
                            chance=chance)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    from mmengine.config import Config

    from gppf_mm.apis.jobs import (
        device_plan,
        evaluate,
        iteration_overrides,
        train,
    )
    from gppf_mm.apis.report import (
        markdown_table,
        task_columns,
        task_results_table,
        write_csv,
    )
    from gppf_mm.datasets.generation import ensure_benchmark

    cfg_path = osp.abspath(args.config)
    if not osp.isfile(cfg_path):
        raise FileNotFoundError(f'config {cfg_path} not found')
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)

    print('[demo] benchmark data: ', end='', flush=True)
    root = ensure_benchmark(args.data_root, seed=args.seed)
    print(root, flush=True)
    env = dict(GPPF_DATA_ROOT=root, OMP_NUM_THREADS=os.environ.get(
        'OMP_NUM_THREADS', '1'))
    cfg = Config.fromfile(cfg_path)
    columns = task_columns(cfg)
    iters = args.iters or cfg.train_cfg.max_iters
    # every task is evaluated afterwards by tools/test.py
    opts = iteration_overrides(cfg, iters, validate=False)
    plan = device_plan(args.nproc)
    env.update(plan['env'])
    if plan['devices'] > 1:
        opts.append(f'train_cfg.virtual_devices={plan["devices"]}')
    print(f'[demo] config: {osp.relpath(cfg_path, REPO)}\n'
          f'[demo] tasks: {", ".join(cfg.tasks)}\n'
          f'[demo] SIMT pre-training: {iters} iterations on {plan["nproc"]} '
          f'{plan["device"].upper()} process(es) x {plan["devices"]} '
          f'device(s); logs in {work_dir}', flush=True)
    ckpt = train(cfg_path, osp.join(work_dir, 'train'), plan['nproc'],
                 opts, env, label='demo: pre-train')
    print('[demo] evaluating every task on its own split', flush=True)
    metrics = evaluate(cfg_path, ckpt, osp.join(work_dir, 'test'), env=env,
                       label='demo: evaluate')

    header, rows = task_results_table(metrics, columns)
    table = markdown_table(header, rows)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    write_csv(osp.join(work_dir, 'results.csv'), header, rows)

    picture = None
    probs_file = osp.join(work_dir, 'train', 'selection_probs.pth')
    if osp.isfile(probs_file):
        picture = selection_report(probs_file, work_dir, iters)
    curves = loss_curves(cfg, osp.join(work_dir, 'train'), work_dir)

    print('\n' + table)
    print(f'\n[demo] checkpoint: {ckpt}')
    print(f'[demo] results: {osp.join(work_dir, "results.md")} (and .csv)')
    if picture:
        print(f'[demo] selection heatmap (task x layer): {picture}')
    if curves:
        print(f'[demo] training loss per task: {curves}')
    took = time.time() - start
    print(f'[demo] finished in {int(took // 60)} min {int(took % 60)} s')
    return metrics


if __name__ == '__main__':
    main()
