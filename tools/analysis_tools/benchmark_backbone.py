# Copyright (c) gppf_mm contributors. All rights reserved.
"""Training cost of LegoResNet against mmdet's plain ResNet.

One forward + backward (loss: sum of the means of the stage outputs) of
every variant on the same input, in the same process, in alternating order,
repeated; the median time of each is reported, and its ratio to the plain
ResNet as the median of the per-round ratios (paired, so that slow drifts of
the machine cancel). Variants: plain, lego hard, lego soft (N units
computed), lego argmax (routing as in eval, model in train mode), and the
with_cp versions of plain, hard and soft. All lego units start from the
plain weights.

Memory, per variant, from one separate step:

- ``act MB`` (every device): the bytes of the distinct tensor storages that
  autograd keeps for backward at the end of the forward pass (collected with
  ``torch.autograd.graph.saved_tensors_hooks``, parameters excluded). This
  is the activation memory that dominates peak training memory; it is what
  ``with_cp`` lowers.
- ``peak MB`` (CUDA only): ``torch.cuda.max_memory_allocated`` during the
  step minus the memory allocated before it.

Example::

    python tools/analysis_tools/benchmark_backbone.py            # CPU
    python tools/analysis_tools/benchmark_backbone.py --device cuda \\
        --batch-size 32 --size 224
"""
import argparse
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

import gppf_mm  # noqa: F401  (before mmdet: mmcv ops, see gppf_mm/upstream)

# isort: split
from mmdet.models.backbones import ResNet

from gppf_mm.models.backbones import LegoResNet

# time ratio to the plain ResNet that each variant should stay under
TARGETS = (('hard', 1.05), ('soft', 2.1), ('argmax', 1.02))
AUTOCAST = dict(none=None, bf16=torch.bfloat16, fp16=torch.float16)


def autocast(x: torch.Tensor, dtype: Optional[torch.dtype]):
    return torch.autocast(x.device.type, dtype=dtype,
                          enabled=dtype is not None)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--base-channels', type=int, default=64)
    parser.add_argument('--num-units', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--autocast', choices=sorted(AUTOCAST),
                        default='none', help='mixed precision of the '
                        'forward pass (torch.autocast), e.g. bf16 on CUDA')
    return parser.parse_args(argv)


def build_variants(args: argparse.Namespace) -> Dict[str, nn.Module]:
    """The plain ResNet and the lego variants, all from the same weights."""
    torch.manual_seed(args.seed)
    arch = dict(depth=args.depth, base_channels=args.base_channels,
                norm_eval=False)
    plain = ResNet(**arch)
    weights = plain.state_dict()
    variants = dict(plain=plain, plain_cp=ResNet(with_cp=True, **arch))
    variants['plain_cp'].load_state_dict(weights)
    lego = dict(hard=('hard', args.num_units, False),
                soft=('soft', args.num_units, False),
                argmax=('argmax', args.num_units, False),
                hard_cp=('hard', args.num_units, True),
                soft_cp=('soft', args.num_units, True))
    for name, (mode, units, with_cp) in lego.items():
        model = LegoResNet(num_units=units, tasks=['bench'],
                           routing_mode=mode, with_cp=with_cp, **arch)
        model.load_state_dict(model.expand_plain_state_dict(weights),
                              strict=False)
        model.set_task('bench')
        model.controller.manual_seed(args.seed)
        variants[name] = model
    for model in variants.values():
        model.to(args.device).train()
    return variants


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def train_step(model: nn.Module, x: torch.Tensor,
               dtype: Optional[torch.dtype] = None) -> None:
    model.zero_grad(set_to_none=True)
    with autocast(x, dtype):
        loss = sum(out.float().mean() for out in model(x))
    loss.backward()


def saved_activation_bytes(model: nn.Module, x: torch.Tensor,
                           dtype: Optional[torch.dtype] = None) -> int:
    """Bytes of the distinct storages autograd saves for backward in one
    forward pass of ``model`` (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            autocast(x, dtype):
        outs = model(x)
    total = sum(storages.values())
    sum(out.float().mean() for out in outs).backward()
    return total


def cuda_peak_bytes(model: nn.Module, x: torch.Tensor,
                    dtype: Optional[torch.dtype] = None) -> int:
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(x.device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    train_step(model, x, dtype)
    torch.cuda.synchronize(x.device)
    return torch.cuda.max_memory_allocated(x.device) - base


def time_variants(variants: Dict[str, nn.Module], x: torch.Tensor,
                  repeats: int, warmup: int,
                  dtype: Optional[torch.dtype] = None
                  ) -> Dict[str, List[float]]:
    """Alternate the variants (the order rotates every round)."""
    names = list(variants)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            _sync(x.device)
            start = time.perf_counter()
            train_step(variants[name], x, dtype)
            _sync(x.device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def run(args: argparse.Namespace,
        printer: Callable[[str], None] = print) -> dict:
    device = torch.device(args.device)
    variants = build_variants(args)
    torch.manual_seed(args.seed)
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    with torch.no_grad():  # sanity: argmax routing is the plain network
        for name in ('plain', 'argmax'):
            variants[name].eval()
        diff = max((a - b).abs().max().item() for a, b in zip(
            variants['argmax'](x), variants['plain'](x)))
        for name in ('plain', 'argmax'):
            variants[name].train()
    dtype = AUTOCAST[args.autocast]
    memory = {n: saved_activation_bytes(m, x, dtype)
              for n, m in variants.items()}
    peak = ({n: cuda_peak_bytes(m, x, dtype)
             for n, m in variants.items()} if device.type == 'cuda' else {})
    times = time_variants(variants, x, args.repeats, args.warmup, dtype)
    median = {n: statistics.median(t) for n, t in times.items()}
    paired = {
        n: statistics.median(a / b for a, b in zip(t, times['plain']))
        for n, t in times.items()
    }

    printer(f'ResNet-{args.depth} (base_channels {args.base_channels}), '
            f'batch {args.batch_size} x 3 x {args.size} x {args.size}, '
            f'{args.num_units} units per lego layer, device {device}, '
            f'autocast {args.autocast}, '
            f'{torch.get_num_threads()} threads, median of {args.repeats} '
            f'alternating forward+backward steps')
    printer(f'max |argmax - plain| (eval) = {diff:.2e}')
    header = f'{"variant":<9}{"time ms":>10}{"x plain":>9}{"act MB":>9}'
    header += f'{"x plain":>9}' + (f'{"peak MB":>10}' if peak else '')
    printer(header)
    for name in variants:
        row = (f'{name:<9}{median[name] * 1e3:>10.1f}'
               f'{paired[name]:>9.3f}'
               f'{memory[name] / 2**20:>9.1f}'
               f'{memory[name] / memory["plain"]:>9.3f}')
        if peak:
            row += f'{peak[name] / 2**20:>10.1f}'
        printer(row)
    ratios = {}
    for name, target in TARGETS:
        ratios[f'{name}/plain'] = paired[name]
        verdict = 'ok' if paired[name] <= target else 'ABOVE'
        printer(f'time {name}/plain = {paired[name]:.3f} '
                f'(target <= {target}: {verdict})')
    for name in ('plain', 'hard', 'soft'):
        key = f'{name}_cp/{name}'
        ratios[key] = memory[f'{name}_cp'] / memory[name]
        line = f'activation memory {key} = {ratios[key]:.3f}'
        if peak:
            line += (f', CUDA peak {key} = '
                     f'{peak[f"{name}_cp"] / peak[name]:.3f}')
        printer(line)
    return dict(times=median, paired=paired, memory=memory, peak=peak,
                ratios=ratios,
                argmax_diff=diff)


def main(argv: Optional[List[str]] = None) -> dict:
    # mmdet's blocks call torch.utils.checkpoint without use_reentrant
    warnings.filterwarnings(
        'ignore', message='torch.utils.checkpoint: the use_reentrant')
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
