# Copyright (c) gppf_mm contributors. All rights reserved.
"""Extract one task's path of a lego backbone as a plain backbone checkpoint.

Example::

    python tools/extract_path.py work_dirs/gppf/iter_600.pth \\
        --task street_det --target mmdet --out street_det_r50.pth

The output holds ``{'state_dict': {'backbone.' + key: tensor}, 'meta':
{...}}`` and initialises a stock OpenMMLab model with
``init_cfg=dict(type='Pretrained', checkpoint='street_det_r50.pth',
prefix='backbone.')`` on a backbone of the matching type (printed below the
path table; ``meta['backbone_cfg']`` holds it too).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from gppf_mm.models.backbones.lego_resnet import PLAIN_TARGETS
from gppf_mm.models.backbones.path_extraction import (
    extract_path_checkpoint,
    load_lego_backbone,
    path_rows,
    path_table,
    resolve_task_path,
)
from gppf_mm.utils import register_all_modules


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract a path of a lego backbone as a plain backbone '
        'checkpoint')
    parser.add_argument('checkpoint', help='GPPF checkpoint or bare lego '
                        'backbone state dict')
    parser.add_argument('--task', help='take the argmax path of this task')
    parser.add_argument(
        '--path',
        help='explicit unit per lego layer, comma separated (e.g. 0,1,0,...)')
    parser.add_argument(
        '--target',
        choices=PLAIN_TARGETS,
        default='mmdet',
        help='the library whose ResNet the keys are laid out for')
    parser.add_argument('--out', required=True, help='output checkpoint')
    parser.add_argument(
        '--config',
        help='config to rebuild the backbone from (default: the one stored '
        'in the checkpoint meta)')
    parser.add_argument(
        '--backbone-prefix',
        default='backbone.',
        help='prefix of the backbone keys, in the input and in the output')
    return parser.parse_args(argv)


def parse_path(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(k) for k in text.replace(' ', '').split(',') if k != '']
    except ValueError:
        raise ValueError(f'--path must be comma-separated unit indices, got '
                         f'{text!r}') from None


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if args.task is None and args.path is None:
        raise SystemExit('give --task NAME or --path 0,1,...')
    register_all_modules(init_default_scope=False)
    backbone, _ = load_lego_backbone(
        args.checkpoint, config=args.config, prefix=args.backbone_prefix)
    path = resolve_task_path(backbone, args.task, parse_path(args.path))
    title = f'task {args.task!r}' if args.task else 'explicit path'
    print(f'{title} of {args.checkpoint}:')
    print(path_table(path_rows(backbone, path, args.task)))
    ckpt = extract_path_checkpoint(
        backbone,
        task=args.task,
        path=path,
        target=args.target,
        prefix=args.backbone_prefix,
        source=osp.abspath(args.checkpoint))
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(ckpt, args.out)
    print(f'saved {len(ckpt["state_dict"])} tensors to {args.out}')
    if 'backbone_cfg' in ckpt['meta']:
        print(f'plain backbone: {ckpt["meta"]["backbone_cfg"]}')
    return ckpt


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as err:
        sys.exit(f'error: {err.args[0] if err.args else err}')
