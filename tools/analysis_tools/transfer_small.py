# Copyright (c) gppf_mm contributors. All rights reserved.
"""Transfer at small scale (the shape of the paper's Tables 4, 5 and 7) in
one command.

Every row finetunes the same stock downstream configs
(``configs/downstream/``) on the embedded benchmark's held-out sets,
``underwater_voc`` (Faster R-CNN, AP50), ``texture_cls`` (ResNet
classifier, top-1) and ``town_depth`` (BTS head, d1 and AbsRel), from a
different start:

- ``scratch``: the upstream default initialisation;
- ``single-task``: a backbone pre-trained on the closest
  pre-training task alone (street_det for detection, shapes_cls for
  classification), with that task's share of the GPPF run's budget
  (``T * w_t / sum(w)`` iterations on the same ranks, N = 1);
- ``GPPF path <task>``: fixed-path finetuning from each pre-training task's
  path of the GPPF checkpoint (``gppf_mm.GPPFPath``);
- ``GPPF path + heads <task>`` (detection): the closest task's path and its
  neck and heads except the final layers (``tools/extract_path.py
  --heads-only`` into ``load_from``), as the paper starts UODB detectors
  from its Objects365 detector;
- ``DyFinetune``: a new controller over the GPPF units, evaluated on its
  argmax path;
- ``DyFinetune + retrain``: fixed-path finetuning on the path DyFinetune
  extracted.

The GPPF checkpoint is ``--gppf-checkpoint`` or, by default, a run of the
demo config for ``--pretrain-iters`` iterations. Every row is run with each
of ``--seeds``; the table gives the mean and the per-seed values and is
written as ``transfer.md`` / ``transfer.csv``. Finished runs are reused
when the tool is called again with the same work directory.

Example::

    python tools/analysis_tools/transfer_small.py     # about 52 minutes
    python tools/analysis_tools/transfer_small.py --gppf-checkpoint \\
        work_dirs/demo/train/iter_450.pth --seeds 0
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

PRETRAIN_CONFIG = osp.join(
    REPO, 'configs', 'gppf',
    'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')
_DOWN = osp.join(REPO, 'configs', 'downstream')
# downstream set -> its configs, metrics (label, key, scale; the first is
# the headline), the closest pre-training task, finetuning iterations
DOWNSTREAM = {
    'underwater_voc': dict(
        metrics=[('AP50', 'pascal_voc/mAP', 100.0)],
        source='street_det', iters=150, prefix='faster-rcnn_', heads=True,
        configs=dict(
            scratch='r50-slim-scratch_1xb4-600it_underwater-voc.py',
            path='r50-slim-gppf-path_1xb4-600it_underwater-voc.py',
            dyfinetune='lego-r50-slim-dyfinetune_1xb4-600it_underwater-voc.py',
            retrain='r50-slim-retrain_1xb4-600it_underwater-voc.py')),
    'texture_cls': dict(
        metrics=[('top-1', 'accuracy/top1', 1.0)],
        source='shapes_cls', iters=300, prefix='',
        configs=dict(
            scratch='resnet50-slim-scratch_1xb32-300it_texture-cls.py',
            path='resnet50-slim-gppf-path_1xb32-300it_texture-cls.py',
            dyfinetune='lego-r50-slim-dyfinetune_1xb32-300it_texture-cls.py',
            retrain='resnet50-slim-retrain_1xb32-300it_texture-cls.py')),
    'town_depth': dict(
        metrics=[('d1', 'depth/d1', 100.0), ('AbsRel', 'depth/abs_rel', 1.0)],
        source='nature_seg', iters=150, prefix='bts_',
        configs=dict(
            scratch='r50-slim-scratch_1xb8-300it_town-depth.py',
            path='r50-slim-gppf-path_1xb8-300it_town-depth.py',
            dyfinetune='lego-r50-slim-dyfinetune_1xb8-300it_town-depth.py',
            retrain='r50-slim-retrain_1xb8-300it_town-depth.py')),
}


def config_path(down: str, kind: str) -> str:
    spec = DOWNSTREAM[down]
    return osp.join(_DOWN, spec['prefix'] + spec['configs'][kind])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gppf-checkpoint',
                        help='a GPPF checkpoint (default: pre-train one with '
                        'the demo config)')
    parser.add_argument('--pretrain-config', default=PRETRAIN_CONFIG)
    parser.add_argument('--pretrain-iters', type=int,
                        help='iterations T of the GPPF pre-training run '
                        '(default: the pre-training config\'s); the '
                        'single-task backbones get their tasks\' share of T')
    parser.add_argument('--nproc', type=int, default=2,
                        help='ranks of the pre-training runs')
    parser.add_argument('--downstream', nargs='+', choices=list(DOWNSTREAM),
                        default=list(DOWNSTREAM))
    parser.add_argument('--iters', type=int, nargs='+',
                        help='finetuning iterations per downstream set (in '
                        'the order of --downstream; default 150 for '
                        'underwater_voc, 300 for texture_cls, 150 for '
                        'town_depth)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--jobs', type=int, default=2,
                        help='finetuning runs at a time (one thread each '
                        'when > 1)')
    parser.add_argument('--work-dir',
                        default=osp.join(REPO, 'work_dirs', 'transfer_small'))
    parser.add_argument('--data-root', help='benchmark folder (default: '
                        '$GPPF_DATA_ROOT or data/gppf_bench)')
    return parser.parse_args(argv)


def plan_finetunes(downs, pre_tasks, seeds):
    """(row, downstream, seed, config kind, init) for every finetuning run;
    ``init`` is ``None`` (scratch), ``('single', task)``, ``('gppf',
    task)``, ``('heads', task)`` (path and heads), ``('dyfinetune',
    None)`` or ``('retrain', None)``."""
    runs = []
    for down in downs:
        source = DOWNSTREAM[down]['source']
        for seed in seeds:
            runs.append(('scratch', down, seed, 'scratch', None))
            runs.append(('single-task', down, seed, 'path',
                         ('single', source)))
            for task in pre_tasks:
                runs.append((f'GPPF path {task}', down, seed, 'path',
                             ('gppf', task)))
            if DOWNSTREAM[down].get('heads'):
                runs.append((f'GPPF path + heads {source}', down, seed,
                             'path', ('heads', source)))
            runs.append(('DyFinetune', down, seed, 'dyfinetune',
                         ('dyfinetune', None)))
            runs.append(('DyFinetune + retrain', down, seed, 'retrain',
                         ('retrain', None)))
    return runs


def run_name(row, down, seed):
    slug = row.lower().replace(' + ', '_').replace(' ', '_')
    return f'{down}/{slug}_s{seed}'


def init_options(init, checkpoints, work_dir, down, seed):
    """The ``--cfg-options`` that start the backbone of one run
    (``checkpoints``: ``'gppf'``, ``('single', task)`` and ``('heads',
    task)`` -> file)."""
    if init is None:
        return []
    kind, task = init
    if kind in ('single', 'gppf', 'heads'):
        ckpt = checkpoints[init if kind == 'single' else 'gppf']
        opts = [f'model.backbone.init_cfg.checkpoint={ckpt}',
                f'model.backbone.init_cfg.task={task}']
        if kind == 'heads':
            opts.append(f'load_from={checkpoints[init]}')
        return opts
    if kind == 'dyfinetune':
        return [f'model.backbone.init_cfg.checkpoint={checkpoints["gppf"]}']
    dy_dir = osp.join(work_dir, run_name('DyFinetune', down, seed))
    return [f'model.backbone.init_cfg.checkpoint='
            f'{osp.join(dy_dir, down + "_path.pth")}']


def pretrain(args, cfg, env, work_dir):
    """The GPPF checkpoint and the single-task ones (reused when done)."""
    from gppf_mm.apis import (
        iteration_overrides,
        last_checkpoint,
        single_task_iters,
        train,
        write_run_config,
    )

    def run(name, tasks, iters, opts):
        run_dir = osp.join(work_dir, 'pretrain', name)
        if osp.isfile(osp.join(run_dir, 'last_checkpoint')):
            return last_checkpoint(run_dir)
        config = write_run_config(cfg, tasks, osp.join(run_dir, 'config.py'),
                                  opts)
        return train(config, run_dir, args.nproc,
                     iteration_overrides(cfg, iters, validate=False),
                     env, label=f'pretrain {name}')

    if args.pretrain_iters is None:
        args.pretrain_iters = cfg.train_cfg.max_iters
    checkpoints = dict(gppf=args.gppf_checkpoint)
    if not checkpoints['gppf']:
        checkpoints['gppf'] = run('gppf', None, args.pretrain_iters, [])
    weights = {t: float(task.get('sample_weight', 1.0))
               for t, task in cfg.tasks.items()}
    split = single_task_iters(weights, args.pretrain_iters)
    for down in args.downstream:
        source = DOWNSTREAM[down]['source']
        checkpoints[('single', source)] = run(
            f'single_{source}', [source], split[source],
            ['model.backbone.num_units=1'])
        if DOWNSTREAM[down].get('heads'):
            checkpoints[('heads', source)] = task_heads_file(
                checkpoints['gppf'], source, work_dir)
    return checkpoints, split


def task_heads_file(gppf_checkpoint, task, work_dir):
    """The neck and heads of ``task`` without its final layers
    (``tools/extract_path.py --heads-only``), written once."""
    out = osp.join(work_dir, 'pretrain', f'{task}_heads.pth')
    if not osp.isfile(out):
        sys.path.insert(0, osp.join(REPO, 'tools'))
        import extract_path
        extract_path.main([gppf_checkpoint, '--task', task, '--heads-only',
                           '--out', out])
    return out


def finetune_schedule(cfg, iters):
    """``--cfg-options`` that shorten a downstream config to ``iters``
    iterations: the schedule scaled (``iteration_overrides``) except the
    warm-up, which keeps its length (at most a third of the run). A warm-up
    scaled down with the run (50 of 600 -> 12 of 150) made finetuning from
    pre-trained backbones diverge on some seeds (AP50 0-1 %, the loss
    rising from 1.8 to 3.8 after the warm-up)."""
    from gppf_mm.apis import iteration_overrides
    opts = iteration_overrides(cfg, iters)
    warmup = cfg.param_scheduler[0]
    if warmup.get('type') != 'LinearLR':
        return opts
    end = min(warmup['end'], iters // 3)
    opts.append(f'param_scheduler.0.end={end}')
    if cfg.param_scheduler[1].get('begin'):  # the decay starts after it
        opts.append(f'param_scheduler.1.begin={end}')
    merged = dict(opt.split('=', 1) for opt in opts)  # the last one wins
    return [f'{k}={v}' for k, v in merged.items()]


def finetune(run, checkpoints, schedules, env, work_dir):
    """Train one row's run (validating at its end) and return its
    metric; ``schedules[(down, kind)]`` are the ``--cfg-options`` of the
    run's length."""
    from gppf_mm.apis import last_val_metrics, train
    row, down, seed, kind, init = run
    run_dir = osp.join(work_dir, run_name(row, down, seed))
    done = osp.join(run_dir, 'metrics.json')
    if osp.isfile(done):
        with open(done) as f:
            return json.load(f)
    config = config_path(down, kind)
    opts = init_options(init, checkpoints, work_dir, down, seed)
    opts += schedules[(down, kind)]
    opts.append(f'randomness.seed={seed}')
    train(config, run_dir, 1, opts, env,
          label=f'{down} {row} seed {seed}')
    _, key, scale = DOWNSTREAM[down]['metrics'][0]
    metrics = last_val_metrics(run_dir)
    result = dict(value=metrics[key] * scale, metrics=metrics)
    path_file = osp.join(run_dir, down + '_path.pth')
    if osp.isfile(path_file):
        from gppf_mm.utils import safe_torch_load
        result['path'] = safe_torch_load(path_file)['meta']['path']
    with open(done, 'w') as f:
        json.dump(result, f)
    return result


def metric_value(result, down, index):
    """The ``index``-th metric of ``DOWNSTREAM[down]`` in one run's
    result, scaled."""
    _, key, scale = DOWNSTREAM[down]['metrics'][index]
    if index == 0:
        return result['value']
    return result['metrics'][key] * scale


def path_agreement(path, gppf_checkpoint):
    """For each pre-training task, the share of layers where ``path``
    takes the task's argmax unit."""
    from gppf_mm.utils import safe_torch_load
    state = safe_torch_load(gppf_checkpoint)['state_dict']
    prefix = 'backbone.controller.logits.'
    out = {}
    for key, logits in state.items():
        if key.startswith(prefix):
            argmax = logits.argmax(-1).tolist()
            same = sum(a == b for a, b in zip(argmax, path))
            out[key[len(prefix):]] = same / len(path)
    return out


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    from mmengine.config import Config

    from gppf_mm.apis import markdown_table, write_csv
    from gppf_mm.datasets.generation import ensure_benchmark

    root = ensure_benchmark(args.data_root)
    env = dict(GPPF_DATA_ROOT=root, CUDA_VISIBLE_DEVICES='',
               OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    os.environ['GPPF_DATA_ROOT'] = root
    iters = {d: DOWNSTREAM[d]['iters'] for d in args.downstream}
    if args.iters:
        if len(args.iters) != len(args.downstream):
            raise SystemExit('--iters needs one value per --downstream set')
        iters = dict(zip(args.downstream, args.iters))
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    cfg = Config.fromfile(args.pretrain_config)
    checkpoints, split = pretrain(args, cfg, env, work_dir)

    runs = plan_finetunes(args.downstream, list(cfg.tasks),
                          args.seeds)
    print(f'[transfer] {len(runs)} finetuning runs, {args.jobs} at a time; '
          f'work dir {work_dir}', flush=True)
    ft_env = dict(env)
    if args.jobs > 1:
        ft_env['OMP_NUM_THREADS'] = '1'
    # configs are read here: MMEngine's config loading is not thread-safe
    schedules = {(r[1], r[3]): finetune_schedule(
        Config.fromfile(config_path(r[1], r[3])), iters[r[1]]) for r in runs}
    results = {}

    def one(run):
        results[run] = finetune(run, checkpoints, schedules, ft_env,
                                work_dir)

    # DyFinetune first (the longest runs, and retrain needs their paths)
    first = [r for r in runs if r[3] != 'retrain']
    first.sort(key=lambda r: r[3] != 'dyfinetune')
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, first))
        list(pool.map(one, [r for r in runs if r[3] == 'retrain']))

    rows = list(dict.fromkeys(r[0] for r in runs))
    columns = [(d, i, label) for d in args.downstream
               for i, (label, _, _) in enumerate(DOWNSTREAM[d]['metrics'])]
    header = ['start'] + [f'{d} {label}' for d, _, label in columns]
    md_rows, csv_rows = [], []
    for row in rows:
        md, csv = [row], [row]
        for down, i, _ in columns:
            values = [metric_value(results[r], down, i) for r in runs
                      if r[0] == row and r[1] == down]
            if not values:
                md.append(None)
                csv.append(None)
                continue
            mean = sum(values) / len(values)
            digits = 3 if DOWNSTREAM[down]['metrics'][i][0] == 'AbsRel' else 1
            each = ' / '.join(f'{v:.{digits}f}' for v in values)
            md.append(f'{mean:.{digits}f} ({each})' if len(values) > 1 else
                      f'{mean:.{digits}f}')
            csv.append(round(mean, 4))
        md_rows.append(md)
        csv_rows.append(csv)
    table = markdown_table(header, md_rows)
    notes = [f'GPPF checkpoint: {checkpoints["gppf"]}; single-task rows: '
             f'the closest task alone, its share of the budget (iterations '
             f'on {args.nproc} ranks): ' + ', '.join(
                 f'{DOWNSTREAM[d]["source"]} {split[DOWNSTREAM[d]["source"]]}'
                 for d in args.downstream),
             'finetuning iterations: ' + ', '.join(
                 f'{d} {n}' for d, n in iters.items()),
             f'seeds: {args.seeds} (mean, then each seed)']
    for r in runs:
        if r[0] == 'DyFinetune' and 'path' in results[r]:
            agree = path_agreement(results[r]['path'], checkpoints['gppf'])
            notes.append(f'DyFinetune path of {r[1]} (seed {r[2]}) shares '
                         'layers with: ' + ', '.join(
                             f'{t} {v:.0%}' for t, v in agree.items()))
    text = table + '\n\n' + '\n'.join(f'- {n}' for n in notes) + '\n'
    with open(osp.join(work_dir, 'transfer.md'), 'w') as f:
        f.write(text)
    write_csv(osp.join(work_dir, 'transfer.csv'), header, csv_rows)
    print('\n' + text)
    took = time.time() - start
    print(f'[transfer] written to {osp.join(work_dir, "transfer.md")} '
          f'(and .csv) in {int(took // 60)} min {int(took % 60)} s')
    return results


if __name__ == '__main__':
    main()
