# Copyright (c) gppf_mm contributors. All rights reserved.
"""What one rank of a GPPF config holds whatever tasks it draws: the shared
backbone and every task's algorithm (parameters, gradients and optimiser
state), and the dataloader workers it may start, after
``train_cfg.max_workers``.

Under SIMT each rank may draw any task, so every rank builds all the
tasks' algorithms and dataloaders; a task's workers start the first time
the rank draws it. The figures are computed from the built model, on the
CPU, without data.

Example::

    python tools/analysis_tools/config_footprint.py \\
        configs/gppf/gppf_lego-r50-n2-soft_56xb-simt-500k_gppf-15m.py
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# optimiser state tensors per parameter
OPTIM_STATES = dict(SGD=1, AdamW=2, Adam=2)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={})
    return parser.parse_args(argv)


def count(module):
    return sum(p.numel() for p in module.parameters())


def footprint(cfg):
    """Per-part parameters, the fp32 bytes of one rank's training state and
    the workers per task; ``cfg`` is an expanded GPPF config."""
    from gppf_mm.engine.runner.simt_state import cap_workers
    from gppf_mm.registry import MODELS
    start = time.perf_counter()
    model = MODELS.build(cfg.model)
    built = time.perf_counter() - start
    parts = {'backbone': count(model.backbone)}
    parts.update({t: count(a) for t, a in model.algorithms.items()})
    optim = cfg.optim_wrapper.optimizer.type
    per_param = 4 * (2 + OPTIM_STATES.get(optim, 1))  # weights, grads, state
    loaders = cfg.train_dataloader
    asked = {t: int(loaders[t].get('num_workers', 0)) for t in loaders}
    cap = cfg.train_cfg.get('max_workers')
    workers = cap_workers(loaders, cap) if cap is not None else asked
    return dict(parts=parts, build_s=built, optim=optim,
                bytes=sum(parts.values()) * per_param, asked=asked,
                workers=workers, cap=cap)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from gppf_mm.engine.task_config import expand_tasks
    from gppf_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    result = footprint(expand_tasks(cfg))
    total = sum(result['parts'].values())
    print(f'built in {result["build_s"]:.1f} s; parameters per rank:')
    for name, n in result['parts'].items():
        print(f'  {name:<12} {n / 1e6:8.2f} M')
    heads = total - result['parts']['backbone']
    print(f'  {"total":<12} {total / 1e6:8.2f} M (task algorithms '
          f'{heads / total:.0%})')
    print(f'weights + gradients + {result["optim"]} state, fp32: '
          f'{result["bytes"] / 2**30:.2f} GiB per rank')
    print(f'dataloader workers asked {sum(result["asked"].values())} '
          f'{result["asked"]}; max_workers {result["cap"]}: '
          f'{sum(result["workers"].values())} {result["workers"]}')
    return result


if __name__ == '__main__':
    main()
