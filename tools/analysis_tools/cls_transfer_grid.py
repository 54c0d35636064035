# Copyright (c) gppf_mm contributors. All rights reserved.
"""The classification-transfer grid search of the paper's Table 7 (D.2, the
SimCLR / BYOL protocol) for one config of ``configs/downstream/
cls_transfer/``.

Every point of learning rate x weight decay trains on the config's
``grid_search.train`` part and is scored on ``grid_search.val`` by
``grid_search.metric`` (a validation split the dataset ships, or a
stratified 20 % held out of the training set by ``HoldoutSplit``). The best
point then trains on the config's own training set and is evaluated on its
test set. The grid is the paper's: 7 learning rates log-spaced in
[1e-4, 0.1], weight decay 0 or 7 values log-spaced in [1e-6, 1e-3], and the
weight decay given to SGD is that value divided by the learning rate.

Finished points are reused when the tool is called again with the same work
directory (a point is finished when its ``metrics.json`` exists). The
result, ``grid.md`` and ``grid.csv`` in the work directory, holds the
validation metric of every point, the chosen point and its test metrics.

Example::

    python tools/analysis_tools/cls_transfer_grid.py \\
        configs/downstream/cls_transfer/resnet50-gppf-path_8xb32-20k_dtd.py \\
        --nproc 8 --cfg-options model.backbone.init_cfg.task=coco
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

import numpy as np

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

PAPER_LRS = [float(f'{v:.3g}') for v in np.logspace(-4, -1, 7)]
PAPER_WDS = [0.0] + [float(f'{v:.3g}') for v in np.logspace(-6, -3, 7)]


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='default: work_dirs/cls_grid/'
                        '<config name>')
    parser.add_argument('--lrs', type=float, nargs='+', default=PAPER_LRS)
    parser.add_argument('--wds', type=float, nargs='+', default=PAPER_WDS,
                        help='weight decay values before the division by '
                        'the learning rate')
    parser.add_argument('--iters', type=int,
                        help='iterations of every run (default: the '
                        "config's); the schedule is scaled to them")
    parser.add_argument('--nproc', type=int, default=1,
                        help='ranks of every run')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='overrides of the config, applied '
                        'before the grid search builds its runs')
    return parser.parse_args(argv)


def grid_spec(cfg):
    """``(metric, train dataset, val dataset)`` of ``cfg.grid_search``,
    with the config's train and test pipelines put in."""
    spec = cfg.get('grid_search')
    if not spec or not {'metric', 'train', 'val'} <= set(spec):
        raise KeyError(
            f'{cfg.filename}: grid_search = dict(metric=..., train=dataset, '
            f'val=dataset) is missing or incomplete; the grid search needs '
            f'the parts it trains and selects on')

    def with_pipeline(ds, loader):
        ds = copy.deepcopy(ds.to_dict() if hasattr(ds, 'to_dict') else ds)
        inner = ds['dataset'] if ds.get('type') == 'HoldoutSplit' else ds
        inner['pipeline'] = copy.deepcopy(
            cfg[loader]['dataset']['pipeline'])
        return ds

    return (spec['metric'], with_pipeline(spec['train'], 'train_dataloader'),
            with_pipeline(spec['val'], 'val_dataloader'))


def point_name(lr, wd):
    return f'lr{lr:.3g}_wd{wd:.3g}'


def run_config(cfg, lr, wd, train_ds=None, val_ds=None):
    """The config of one run: SGD at ``lr`` with weight decay ``wd / lr``
    and, for a search point, the grid's train / val parts."""
    from mmengine.config import Config
    run = Config(copy.deepcopy(cfg.to_dict()), filename=cfg.filename)
    run.optim_wrapper.optimizer.lr = lr
    run.optim_wrapper.optimizer.weight_decay = wd / lr
    if train_ds is not None:
        run.train_dataloader.dataset = train_ds
        run.val_dataloader.dataset = val_ds
        run.test_dataloader = copy.deepcopy(run.val_dataloader)
    return run


def run_point(run_cfg, run_dir, args, env, label):
    """Train one run (evaluated at its end) unless it is finished; return
    its metrics."""
    from gppf_mm.apis import iteration_overrides, last_val_metrics, train
    done = osp.join(run_dir, 'metrics.json')
    if osp.isfile(done):
        with open(done) as f:
            return json.load(f)
    os.makedirs(run_dir, exist_ok=True)
    config = osp.join(run_dir, 'config.py')
    run_cfg.dump(config)
    opts = [f'randomness.seed={args.seed}']
    if args.iters:
        opts = iteration_overrides(run_cfg, args.iters) + opts
    train(config, run_dir, args.nproc, opts, env, label=label)
    metrics = last_val_metrics(run_dir)
    with open(done, 'w') as f:
        json.dump(metrics, f)
    return metrics


def best_point(scores, lrs, wds):
    """The (lr, wd) of the highest score; ties go to the first in grid
    order (learning rates, then weight decays, as given)."""
    best = None
    for lr in lrs:
        for wd in wds:
            value = scores[(lr, wd)]
            if best is None or value > scores[best]:
                best = (lr, wd)
    return best


def report(metric, scores, lrs, wds, best, test_metrics):
    """Markdown and CSV rows of the grid and the chosen point."""
    from gppf_mm.apis import markdown_table
    header = ['lr \\ wd'] + [f'{wd:.3g}' for wd in wds]
    rows = []
    for lr in lrs:
        row = [f'{lr:.3g}']
        for wd in wds:
            text = f'{scores[(lr, wd)]:.2f}'
            row.append(f'**{text}**' if (lr, wd) == best else text)
        rows.append(row)
    lines = [f'Validation {metric} of every point (weight decay given to '
             f'SGD: wd / lr):', '', markdown_table(header, rows), '',
             f'Chosen: lr {best[0]:.3g}, wd {best[1]:.3g} (SGD weight decay '
             f'{best[1] / best[0]:.3g}); test: ' + ', '.join(
                 f'{k} {v:.2f}' for k, v in sorted(test_metrics.items()))]
    csv_rows = [[lr, wd, scores[(lr, wd)], (lr, wd) == best]
                for lr in lrs for wd in wds]
    return '\n'.join(lines) + '\n', csv_rows


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from gppf_mm.apis import write_csv
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    metric, train_ds, val_ds = grid_spec(cfg)
    if any(lr <= 0 for lr in args.lrs) or any(wd < 0 for wd in args.wds):
        raise SystemExit('learning rates must be > 0, weight decays >= 0')
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = osp.abspath(args.work_dir or osp.join(
        REPO, 'work_dirs', 'cls_grid', name))
    env = dict(CUDA_VISIBLE_DEVICES=os.environ.get('CUDA_VISIBLE_DEVICES',
                                                   ''))
    scores = {}
    for lr in args.lrs:
        for wd in args.wds:
            point = point_name(lr, wd)
            metrics = run_point(
                run_config(cfg, lr, wd, train_ds, val_ds),
                osp.join(work_dir, 'search', point), args, env,
                f'{name} {point}')
            if metric not in metrics:
                raise KeyError(f'{args.config}: grid_search.metric '
                               f'{metric!r} was not logged; the run logged '
                               f'{sorted(metrics)}')
            scores[(lr, wd)] = metrics[metric]
    best = best_point(scores, args.lrs, args.wds)
    test_metrics = run_point(
        run_config(cfg, *best), osp.join(work_dir, 'final'), args, env,
        f'{name} final {point_name(*best)}')
    text, csv_rows = report(metric, scores, args.lrs, args.wds, best,
                            test_metrics)
    with open(osp.join(work_dir, 'grid.md'), 'w') as f:
        f.write(text)
    write_csv(osp.join(work_dir, 'grid.csv'),
              ['lr', 'wd', metric, 'chosen'], csv_rows)
    print(text)
    return dict(scores=scores, best=best, test=test_metrics,
                work_dir=work_dir)


if __name__ == '__main__':
    try:
        main()
    except (KeyError, ValueError) as err:
        sys.exit(f'error: {err.args[0] if err.args else err}')
