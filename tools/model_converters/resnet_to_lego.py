# Copyright (c) gppf_mm contributors. All rights reserved.
"""Turn a plain ImageNet ResNet checkpoint into a LegoResNet checkpoint whose
every unit starts from the matching pretrained block.

Example::

    python tools/model_converters/resnet_to_lego.py resnet50.pth \\
        lego_r50_n2.pth --num-units 2

The input may be a torchvision file (``conv1.weight``, ``fc.*`` dropped) or
an OpenMMLab one (``state_dict`` with ``backbone.*``). The output holds
``{'state_dict': {'backbone.' + key: tensor}, 'meta': {...}}`` and loads
into a GPPF model with ``load_from`` or into a LegoResNet with
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')``
(the controller logits are not in it and keep their zero init).
"""
import argparse
import sys
from typing import List, Optional

from gppf_mm.models.backbones import (
    load_plain_checkpoint,
    save_lego_checkpoint,
)
from gppf_mm.models.backbones.lego_resnet import resnet_to_lego_state_dict


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a plain ResNet checkpoint to a LegoResNet one')
    parser.add_argument('src', help='plain ResNet checkpoint')
    parser.add_argument('dst', help='output LegoResNet checkpoint')
    parser.add_argument(
        '--num-units', type=int, required=True, help='units per lego layer')
    parser.add_argument(
        '--depth',
        type=int,
        help='insist on this depth (default: read from the checkpoint)')
    parser.add_argument(
        '--prefix',
        help='backbone key prefix in the input (default: "backbone." when '
        'present, else none)')
    parser.add_argument(
        '--out-prefix',
        default='backbone.',
        help='key prefix in the output')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if args.num_units < 1:
        raise ValueError(f'--num-units must be >= 1, got {args.num_units}')
    plain = load_plain_checkpoint(args.src, args.prefix)
    arch = {} if args.depth is None else dict(depth=args.depth)
    state, arch = resnet_to_lego_state_dict(plain, args.num_units, **arch)
    ckpt = save_lego_checkpoint(state, arch, args.num_units, args.src,
                                args.dst, args.out_prefix)
    print(f'LegoResNet-{arch["depth"]} (base_channels '
          f'{arch["base_channels"]}, {args.num_units} units per layer): '
          f'saved {len(state)} tensors to {args.dst}')
    return ckpt


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError) as err:
        sys.exit(f'error: {err.args[0] if err.args else err}')
