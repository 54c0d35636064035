# Copyright (c) gppf_mm contributors. All rights reserved.
"""Generate the embedded multi-task, multi-domain benchmark.

Example::

    python tools/misc/generate_benchmark.py --out data/gppf_bench --seed 0

prints one line per task (kind, domain, classes, images per split), the
folder's size and the time taken. The same seed and scale always give the
same bytes; a folder that already holds the benchmark of that seed and
scale is kept unless ``--force`` is given.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional

from gppf_mm.datasets.generation import (
    SCALES,
    TASKS,
    default_root,
    generate_benchmark,
    read_benchmark,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the GPPF embedded benchmark')
    parser.add_argument(
        '--out', help='output folder (default: $GPPF_DATA_ROOT or '
        'data/gppf_bench in the repository)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--scale', choices=sorted(SCALES), default='default',
        help="'default' or 'tiny' (about ten times fewer images)")
    parser.add_argument(
        '--force', action='store_true',
        help='replace a benchmark already in the output folder')
    return parser.parse_args(argv)


def folder_size(root: str) -> tuple:
    """Number of files and total bytes under ``root``."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            size += osp.getsize(osp.join(dirpath, name))
    return files, size


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    out = osp.abspath(args.out or default_root(args.scale))
    existing = read_benchmark(out)
    start = time.perf_counter()
    try:
        desc = generate_benchmark(out, seed=args.seed, scale=args.scale,
                                  force=args.force)
    except FileExistsError:
        print(f'error: {out} is not empty and holds no benchmark of seed '
              f'{args.seed} and scale {args.scale!r}; pass --force to '
              'replace it (only a folder the generator wrote is deleted)',
              file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    kept = existing is not None and not args.force and existing == desc
    print(f'benchmark (seed {desc["seed"]}, scale {desc["scale"]}, '
          f'generator v{desc["version"]}) in {out}' +
          (' (already there, kept)' if kept else ''))
    names = [n for n in TASKS if n in desc['tasks']]
    names += sorted(set(desc['tasks']) - set(names))
    for name in names:
        task = desc['tasks'][name]
        order = list(TASKS[name]['splits']) if name in TASKS else sorted(
            task['splits'])
        splits = ', '.join(
            f'{split} {task["splits"][split]["images"]}' +
            (f' ({task["splits"][split]["instances"]} objects)'
             if 'instances' in task['splits'][split] else '')
            for split in order)
        h, w = task['image_size']
        classes = ', '.join(task['classes']) or '-'
        print(f'  {name:<15} {task["kind"]:<5} {task["role"]:<10} '
              f'{task["domain"]:<10} {h}x{w}  {splits}\n'
              f'  {"":<15} classes: {classes}')
    files, size = folder_size(out)
    print(f'{files} files, {size / 2**20:.1f} MiB, '
          f'{"checked" if kept else "generated"} in {elapsed:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
