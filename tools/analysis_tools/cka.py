# Copyright (c) gppf_mm contributors. All rights reserved.
"""CKA heatmaps between the lego layers of GPPF models (the paper's
Appendix A).

The features of every lego layer (the stem and each residual block of a
lego ResNet) are flattened to ``(n, C*H*W)`` and compared with minibatch
linear CKA (unbiased HSIC, Nguyen et al. 2021), accumulated over
``--num-batches`` batches of the task's test (else val) split. Model 1 runs
``--task``'s path; model 2 (``--config2`` / ``--checkpoint2``, or model 1
when only ``--task2`` is given) runs ``--task2``'s path on the same
images.

Example::

    python tools/analysis_tools/cka.py CONFIG CKPT --task street_det \\
        --task2 indoor_seg --num-batches 8 --out-dir work_dirs/cka
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of model 1')
    parser.add_argument('checkpoint', help='checkpoint of model 1')
    parser.add_argument('--task', required=True,
                        help='task whose path model 1 runs (and whose data '
                        'is used)')
    parser.add_argument('--config2', help='config of model 2 (default: '
                        'the config of model 1)')
    parser.add_argument('--checkpoint2', help='checkpoint of model 2')
    parser.add_argument('--task2', help='task whose path model 2 runs '
                        '(default: --task)')
    parser.add_argument('--num-batches', type=int, default=8)
    parser.add_argument('--split', choices=('test', 'val'), default='test')
    parser.add_argument('--device', help="default: 'cuda' if available")
    parser.add_argument('--no-strict', action='store_true',
                        help='load checkpoints that do not match the model '
                        'exactly (missing / unexpected keys are logged)')
    parser.add_argument('--out-dir', required=True)
    args = parser.parse_args(argv)
    if args.num_batches < 1:
        parser.error('--num-batches must be >= 1')
    if args.config2 and not args.checkpoint2:
        parser.error('--config2 needs --checkpoint2')
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    args = parse_args(argv)
    from gppf_mm.visualization.cka import cka_report

    paths = cka_report(
        args.config,
        args.checkpoint,
        args.task,
        cfg2=args.config2,
        ckpt2=args.checkpoint2,
        task2=args.task2,
        out_dir=args.out_dir,
        num_batches=args.num_batches,
        device=args.device,
        split=args.split,
        strict=not args.no_strict)
    for key, path in paths.items():
        print(f'{key}: {path}')
    return paths


if __name__ == '__main__':
    main()
