# Copyright (c) gppf_mm contributors. All rights reserved.
"""How far the plain upstream classifier gets on ``shapes_cls`` alone in a
given number of steps: MMDetection's ``ResNet`` (the slim width of the demo,
no gppf_mm code), global average pooling and a linear head, trained in a
plain PyTorch loop with the demo's warm-up and cosine schedule.

It is the reference for what the demo's classification task can reach in
its share of the 10-minute budget (docs/pretraining.md).

Example::

    python tools/analysis_tools/plain_cls_budget.py --steps 130 --lr 0.02
    python tools/analysis_tools/plain_cls_budget.py --optimizer adamw \\
        --lr 1e-3 --size 64
"""
import argparse
import math
import os.path as osp
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=130)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=0.02)
    parser.add_argument('--optimizer', choices=('sgd', 'adamw'),
                        default='sgd')
    parser.add_argument('--warmup', type=int, default=50)
    parser.add_argument('--size', type=int, default=32,
                        help='resize the 32 x 32 images to this size')
    parser.add_argument('--base-channels', type=int, default=16)
    parser.add_argument('--data-root', help='benchmark folder (default: '
                        '$GPPF_DATA_ROOT or data/gppf_bench)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def load_split(root, split, size):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    task = osp.join(root, 'shapes_cls')
    with open(osp.join(task, 'meta', f'{split}.txt')) as f:
        items = [line.split() for line in f if line.strip()]
    imgs = np.stack([
        np.asarray(Image.open(osp.join(task, path)).convert('RGB'))
        for path, _ in items
    ]).astype(np.float32)
    imgs = (imgs - np.array(MEAN)) / np.array(STD)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().contiguous()
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode='bilinear',
                          align_corners=False)
    return x, torch.tensor([int(label) for _, label in items])


def main(argv=None):
    args = parse_args(argv)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from mmdet.models.backbones import ResNet

    from gppf_mm.datasets.generation import ensure_benchmark
    root = ensure_benchmark(args.data_root)
    x_train, y_train = load_split(root, 'train', args.size)
    x_val, y_val = load_split(root, 'val', args.size)

    torch.manual_seed(args.seed)
    backbone = ResNet(depth=50, base_channels=args.base_channels,
                      out_indices=(3, ))
    backbone.init_weights()
    head = nn.Linear(args.base_channels * 32, 10)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    params = list(backbone.parameters()) + list(head.parameters())
    if args.optimizer == 'sgd':
        optim = torch.optim.SGD(params, lr=args.lr, momentum=0.9,
                                weight_decay=1e-4)
    else:
        optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)

    def logits(x):
        return head(backbone(x)[0].mean(dim=(2, 3)))

    g = torch.Generator().manual_seed(args.seed)
    losses = []
    backbone.train()
    for it in range(args.steps):
        if it < args.warmup:
            factor = 0.01 + 0.99 * it / args.warmup
        else:
            span = max(args.steps - args.warmup, 1)
            factor = 0.5 * (1 + math.cos(math.pi * (it - args.warmup) /
                                         span))
        for group in optim.param_groups:
            group['lr'] = args.lr * factor
        idx = torch.randint(0, len(x_train), (args.batch_size, ),
                            generator=g)
        x = x_train[idx]
        if torch.rand(1, generator=g).item() < 0.5:
            x = x.flip(3)
        loss = F.cross_entropy(logits(x), y_train[idx])
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss))
    backbone.eval()
    with torch.no_grad():
        top1 = float((logits(x_val).argmax(1) == y_val).float().mean()) * 100
    curve = ' '.join(
        f'{sum(losses[i:i + 10]) / len(losses[i:i + 10]):.2f}'
        for i in range(0, len(losses), 10))
    print(f'loss every 10 steps: {curve}')
    print(f'top-1 after {args.steps} steps ({args.optimizer}, lr {args.lr}, '
          f'batch {args.batch_size}, {args.size} px): {top1:.1f}')
    return top1


if __name__ == '__main__':
    main()
