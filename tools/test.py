# Copyright (c) gppf_mm contributors. All rights reserved.
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from gppf_mm.registry import RUNNERS
from gppf_mm.utils import (
    prepare_dist_cfg,
    register_all_modules,
    resolve_scopes,
)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and eval) a gppf_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--task',
        nargs='+',
        help='evaluate only these tasks of a multi-task config '
        '(default: every task that has a test split)')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', help='dump the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def of_tasks(key, tasks):
    """Whether a state-dict key belongs to one of ``tasks``: its
    algorithm, its selection logits or its cross-task BN statistics."""
    return any(
        key.startswith(f'algorithms.{t}.') or key.endswith(f'.logits.{t}')
        or key.endswith(f'__{t}') for t in tasks)


def runner_tasks(runner):
    """The tasks the runner's model was built with."""
    model = getattr(runner.model, 'module', runner.model)
    return list(getattr(model, 'algorithms', None) or [])


class CheckpointFits(Hook):
    """Refuse a checkpoint that does not fit the model, in the
    ``after_load_checkpoint`` call MMEngine makes with the file's contents
    before it loads them non-strictly; keys of the tasks ``left_out`` of
    the model (``--task``) may be in the file."""

    def __init__(self, name, left_out):
        self.name = name
        self.left_out = set(left_out)

    def after_load_checkpoint(self, runner, checkpoint):
        from gppf_mm.utils.checkpoint import check_checkpoint_fits
        check_checkpoint_fits(
            runner.model, checkpoint, self.name,
            ignore_unexpected=lambda key: of_tasks(key, self.left_out),
            hint='A checkpoint trained with --cfg-options that change the '
            'model (e.g. model.backbone.num_units=3, '
            'model.cross_task_bn=False) is tested with the same options')


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} not found')
    cfg.load_from = args.checkpoint

    prepare_dist_cfg(cfg, args.launcher)
    if 'tasks' not in cfg:
        # single-algorithm configs may name upstream types ('mmdet.X')
        resolve_scopes(cfg)

    all_tasks = list(cfg.get('tasks', None) or [])
    if 'tasks' in cfg and 'runner_type' in cfg:
        runner_cls = RUNNERS.get(cfg.runner_type)
        runner = runner_cls.from_cfg(cfg, only_tasks=args.task)
    elif args.task:
        raise ValueError('--task needs a multi-task config with `tasks`')
    elif 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    from gppf_mm.utils.checkpoint import gppf_checkpoint_loading
    left_out = set(all_tasks) - set(runner_tasks(runner))

    runner.register_hook(CheckpointFits(args.checkpoint, left_out),
                         priority='VERY_HIGH')
    with gppf_checkpoint_loading():
        metrics = runner.test()
    if args.out and runner.rank == 0:
        import json
        import numbers
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        # numpy scalars are numbers.Real too: under numpy 2 MMSeg's mIoU is
        # a numpy.float32, which is no subclass of float
        with open(args.out, 'w') as f:
            json.dump({k: float(v) if isinstance(v, numbers.Real) else str(v)
                       for k, v in metrics.items()}, f, indent=2,
                      sort_keys=True)
    from gppf_mm.utils.dist import release_process_group
    release_process_group()
    return metrics


if __name__ == '__main__':
    main()
