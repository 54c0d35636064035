# Copyright (c) gppf_mm contributors. All rights reserved.
"""What one rank of a GPPF config holds whatever tasks it draws: the shared
backbone and every task's algorithm (parameters, gradients and optimiser
state), and the dataloader workers it may start, after
``train_cfg.max_workers``.

Under SIMT each rank may draw any task, so every rank builds all the
tasks' algorithms and dataloaders; a task's workers start the first time
the rank draws it. The figures are computed from the built model, on the
CPU, without data. ``--activations`` adds the backbone's activations kept
for backward per device and per process (its virtual devices), measured
on one small image and scaled to every task's batch and image size.

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
    parser.add_argument(
        '--activations', action='store_true',
        help="also estimate the backbone's activations per device and per "
        'process (its virtual devices), from a training forward of one '
        '128 x 128 image scaled to every task\'s batch and image size')
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


def _transforms(dataset):
    """The train pipeline's transforms, inner datasets' first (a dataset
    wrapper's pipeline runs after its dataset's), nested ones flattened."""
    out = []
    if not isinstance(dataset, dict):
        return out
    inner = dataset.get('dataset')
    if isinstance(inner, dict):
        out += _transforms(inner)
    inners = dataset.get('datasets')
    if isinstance(inners, (list, tuple)) and inners:
        out += _transforms(inners[0])
    stack = list(dataset.get('pipeline') or [])
    while stack:
        t = stack.pop(0)
        if isinstance(t, (list, tuple)):
            stack = list(t) + stack
        elif isinstance(t, dict):
            out.append(t)
            for key in ('transforms', 'policies'):
                if isinstance(t.get(key), (list, tuple)):
                    stack = list(t[key]) + stack
    return out


def train_pixels(loader):
    """Pixels of one training image of a task: the last crop or resize
    size of its train pipeline (``crop_size``, ``scale``, the largest of
    ``scales``), or None."""
    pixels = None
    for t in _transforms(loader.get('dataset')):
        for key in ('crop_size', 'scale', 'scales'):
            v = t.get(key)
            if isinstance(v, int):
                pixels = v * v
            elif isinstance(v, (list, tuple)) and len(v) == 2 and all(
                    isinstance(x, int) for x in v):
                pixels = v[0] * v[1]
            elif isinstance(v, (list, tuple)) and v and all(
                    isinstance(x, (list, tuple)) and len(x) == 2
                    for x in v):
                # a choice of sizes (multi-scale training): the largest
                pixels = max(x[0] * x[1] for x in v)
            else:
                continue
            break
    return pixels


def backbone_activation_bytes(backbone_cfg, tasks, with_cp, probe=128):
    """Bytes the backbone keeps for backward per input pixel: a training
    forward of one ``probe`` x ``probe`` image, counting every tensor saved
    for backward once (parameters aside)."""
    import copy

    import torch

    from gppf_mm.registry import MODELS
    cfg = copy.deepcopy(dict(backbone_cfg))
    cfg['with_cp'] = with_cp
    if str(cfg.get('type', '')).split('.')[-1].startswith('Lego'):
        cfg.setdefault('tasks', list(tasks))
    backbone = MODELS.build(cfg).train()
    if hasattr(backbone, 'set_task') and getattr(backbone, 'controller',
                                                 None) is not None:
        backbone.set_task(list(tasks)[0])
    params = {p.untyped_storage().data_ptr() for p in backbone.parameters()}
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    x = torch.randn(1, 3, probe, probe)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        backbone(x)
    return sum(saved.values()) / (probe * probe)


def activations(cfg, devices):
    """Per task: batch, pixels per image and the backbone activations one
    device keeps for backward, with and without ``with_cp``; per process
    of ``devices`` devices: all drawing the largest task, and the
    sampling-weighted mean."""
    tasks = list(cfg.model.tasks)
    per_pixel = {
        cp: backbone_activation_bytes(cfg.model.backbone, tasks, cp)
        for cp in (False, True)
    }
    weights = cfg.train_cfg.get('task_weights') or {t: 1.0 for t in tasks}
    rows = {}
    for t in tasks:
        loader = cfg.train_dataloader[t]
        pixels = train_pixels(loader)
        batch = int(loader.get('batch_size', 1))
        rows[t] = dict(batch=batch, pixels=pixels, bytes={
            cp: None if pixels is None else v * pixels * batch
            for cp, v in per_pixel.items()
        })
    known = [r for r in rows.values() if r['pixels'] is not None]
    # the mean over the tasks whose image size is known
    total_w = sum(weights[t] for t, r in rows.items()
                  if r['pixels'] is not None) or 1.0
    per_process = {}
    for cp in (False, True):
        worst = max((r['bytes'][cp] for r in known), default=0)
        mean = sum(weights[t] / total_w * r['bytes'][cp]
                   for t, r in rows.items() if r['pixels'] is not None)
        per_process[cp] = (devices * worst, devices * mean)
    return dict(per_pixel=per_pixel, tasks=rows, per_process=per_process,
                devices=devices)


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
    if args.activations:
        expanded = expand_tasks(cfg)
        k = int(expanded.train_cfg.get('virtual_devices', 1))
        act = activations(expanded, k)
        result['activations'] = act
        gib = 2**30
        print('backbone activations kept for backward, fp32 (the task '
              "heads' come on top):")
        for t, r in act['tasks'].items():
            if r['pixels'] is None:
                print(f'  {t:<12} batch {r["batch"]}: no crop or resize '
                      'size in its pipeline')
                continue
            print(f'  {t:<12} batch {r["batch"]:>3} x {r["pixels"]:>8} px:'
                  f' {r["bytes"][False] / gib:6.2f} GiB per device, '
                  f'{r["bytes"][True] / gib:6.2f} GiB with with_cp')
        for cp in (False, True):
            worst, mean = act['per_process'][cp]
            print(f'  per process of {k} device(s), '
                  f'{"with" if cp else "without"} with_cp: '
                  f'{worst / gib:.2f} GiB if every device draws the '
                  f'largest task, {mean / gib:.2f} GiB on average')
    return result


if __name__ == '__main__':
    main()
