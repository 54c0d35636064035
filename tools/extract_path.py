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

With ``--with-heads`` the file also holds the task's own neck and heads
under the stock model's key names, without the layers that predict the
task's own label space (``fc_cls``, ``fc_reg``, ``conv_logits``,
``conv_seg``, a classifier's ``head.fc``; ``--exclude`` sets other regexes):
a downstream detector with other classes starts from it with
``load_from=FILE`` (the paper starts UODB detectors this way from its
Objects365 detector; MMEngine reports the layers left at their
initialisation as missing keys). ``--heads-only`` writes the neck and heads
without the backbone, for a config whose backbone starts from another
path (``gppf_mm.GPPFPath``): ``load_from`` runs after the backbone's
initialisation and leaves the keys it lacks as they are.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from gppf_mm.models.backbones.lego_resnet import PLAIN_TARGETS
from gppf_mm.models.backbones.path_extraction import (
    FINAL_LAYERS,
    extract_path_checkpoint,
    load_lego_backbone,
    path_rows,
    path_table,
    resolve_task_path,
    task_heads_state_dict,
)
from gppf_mm.utils import register_all_modules
from gppf_mm.utils.checkpoint import load_checkpoint_file


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
        '--with-heads', action='store_true',
        help="also write the task's neck and heads (needs --task)")
    parser.add_argument(
        '--heads-only', action='store_true',
        help="write only the task's neck and heads, not its backbone path "
        '(needs --task)')
    parser.add_argument(
        '--exclude', nargs='+', default=None,
        help='regexes of head keys not to write with --with-heads (default: '
        'the final prediction layers)')
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
    if (args.with_heads or args.heads_only) and args.task is None:
        flag = '--with-heads' if args.with_heads else '--heads-only'
        raise SystemExit(f'{flag} needs --task NAME (whose heads)')
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
    if args.with_heads or args.heads_only:
        state = load_checkpoint_file(args.checkpoint, map_location='cpu')
        heads, dropped = task_heads_state_dict(
            state.get('state_dict', state), args.task,
            FINAL_LAYERS if args.exclude is None else args.exclude)
        if args.heads_only:
            ckpt['state_dict'].clear()
        ckpt['state_dict'].update(heads)
        ckpt['meta']['heads'] = dict(task=args.task, excluded=dropped)
        print(f'with {len(heads)} tensors of the neck and heads of '
              f'{args.task!r}; not written: {dropped}')
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
