# Copyright (c) gppf_mm contributors. All rights reserved.
"""Turn a plain Swin Transformer checkpoint into a LegoSwinTransformer
checkpoint whose every unit starts from the matching pretrained block.

Example::

    python tools/model_converters/swin_to_lego.py swin_tiny.pth \\
        lego_swin_t_n2.pth --num-units 2

The input may be an OpenMMLab file (MMPretrain / MMDetection /
MMSegmentation: ``state_dict`` with ``backbone.*``), a bare backbone state
dict or an official file (``model`` with ``layers.*``). The architecture is
read from the weights. The output holds ``{'state_dict': {'backbone.' + key:
tensor}, 'meta': {...}}`` and loads into a GPPF model with ``load_from`` or
into a LegoSwinTransformer with ``init_cfg=dict(type='Pretrained',
checkpoint=OUT, prefix='backbone.')`` (the controller logits are not in it
and keep their zero init; output norms the input lacks keep their init).
"""
import argparse
import sys
from typing import List, Optional

from gppf_mm.models.backbones import save_lego_checkpoint
from gppf_mm.models.backbones.lego_swin import swin_to_lego_state_dict
from gppf_mm.models.backbones.swin_layout import load_swin_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a plain Swin checkpoint to a '
        'LegoSwinTransformer one')
    parser.add_argument('src', help='plain Swin checkpoint')
    parser.add_argument('dst', help='output LegoSwinTransformer checkpoint')
    parser.add_argument(
        '--num-units', type=int, required=True, help='units per lego layer')
    parser.add_argument(
        '--out-indices',
        type=int,
        nargs='+',
        help='stages with an output norm (default: all)')
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
    plain = load_swin_checkpoint(args.src, args.prefix)
    arch = {}
    if args.out_indices is not None:
        arch['out_indices'] = tuple(args.out_indices)
    state, arch = swin_to_lego_state_dict(plain, args.num_units, **arch)
    ckpt = save_lego_checkpoint(state, arch, args.num_units, args.src,
                                args.dst, args.out_prefix)
    print(f'LegoSwinTransformer (embed_dims {arch["embed_dims"]}, depths '
          f'{list(arch["depths"])}, {args.num_units} units per layer): '
          f'saved {len(state)} tensors to {args.dst}')
    return ckpt


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError) as err:
        sys.exit(f'error: {err.args[0] if err.args else err}')
