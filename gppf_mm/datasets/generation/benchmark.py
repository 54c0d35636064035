# Copyright (c) gppf_mm contributors. All rights reserved.
"""The embedded multi-task, multi-domain benchmark: task list, generation
and an on-disk cache.

Five pre-training tasks in different visual domains (two COCO detection +
instance segmentation tasks, two semantic segmentation tasks, one
classification task) and three held-out downstream tasks (VOC detection,
dense depth, classification) are generated from one seed. ``benchmark.json``
at the root describes every task and is written last, so it also marks a
complete folder.
"""
import contextlib
import json
import os
import os.path as osp
import shutil
import zlib
from typing import Dict, Iterator, Optional

import numpy as np

from .formats import WRITERS, dump_json
from .scenes import DOMAINS
from .textures import TEXTURES

GENERATOR_VERSION = 2
MARKER = 'benchmark.json'
SCALES: Dict[str, float] = dict(default=1.0, tiny=0.1)


def _det(domain: str, train: int = 300, val: int = 60) -> dict:
    return dict(kind='det', role='pretrain', domain=domain, size=96,
                splits=dict(train=train, val=val),
                classes=tuple(DOMAINS[domain]['classes']))


def _seg(domain: str, train: int = 300, val: int = 60) -> dict:
    d = DOMAINS[domain]
    return dict(kind='seg', role='pretrain', domain=domain, size=64,
                splits=dict(train=train, val=val),
                classes=tuple(d['regions']) + tuple(d['classes']))


# name -> spec; ``splits`` holds the sample counts at the default scale
TASKS: Dict[str, dict] = dict(
    street_det=_det('street'),
    aerial_det=_det('aerial'),
    indoor_seg=_seg('indoor'),
    nature_seg=_seg('nature'),
    shapes_cls=dict(
        kind='cls', role='pretrain', domain='shapes', size=32,
        splits=dict(train=1500, val=300),
        classes=('ellipse', 'box', 'triangle', 'star', 'hexagon', 'cross',
                 'ring', 'diamond', 'car', 'person')),
    underwater_voc=dict(
        kind='voc', role='downstream', domain='underwater', size=96,
        splits=dict(trainval=150, test=50),
        classes=tuple(DOMAINS['underwater']['classes'])),
    town_depth=dict(
        kind='depth', role='downstream', domain='town', size=(72, 96),
        splits=dict(train=150, val=50), classes=()),
    texture_cls=dict(
        kind='cls', role='downstream', domain='texture', size=32,
        splits=dict(train=180, val=60), classes=TEXTURES),
)


def split_counts(spec: dict, scale: str) -> Dict[str, int]:
    """Samples per split of a task at a scale (classification splits hold
    at least one image per class)."""
    least = len(spec['classes']) if spec['kind'] == 'cls' else 4
    return {split: max(least, int(round(n * SCALES[scale])))
            for split, n in spec['splits'].items()}


def _rng_factory(seed: int, task: str):
    """Per-image generators: image ``i`` of a split depends only on the
    seed, task, split and ``i`` (a tiny benchmark is a prefix of the
    default one)."""
    key = zlib.crc32(task.encode())

    def rng_for(split: str, index: int) -> np.random.Generator:
        return np.random.default_rng(
            [GENERATOR_VERSION, seed, key, zlib.crc32(split.encode()),
             index])

    return rng_for


def read_benchmark(root: str) -> Optional[dict]:
    """The description in ``root/benchmark.json``, or ``None`` when the
    folder holds no complete benchmark."""
    try:
        with open(osp.join(root, MARKER)) as f:
            desc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(desc, dict) or 'tasks' not in desc:
        return None
    return desc


def _matches(desc: Optional[dict], seed: int, scale: str) -> bool:
    return desc is not None and (desc.get('version'), desc.get('seed'),
                                 desc.get('scale')) == (GENERATOR_VERSION,
                                                        seed, scale)


def _owned(root: str) -> bool:
    """Whether ``root`` holds only what a generation writes, so that it may
    be deleted and written again."""
    names = set(os.listdir(root))
    known = set(TASKS) | {MARKER}
    desc = read_benchmark(root)
    if desc is not None:
        known |= set(desc['tasks'])
    return names <= known


def generate_benchmark(root: str, seed: int = 0, scale: str = 'default',
                       force: bool = False) -> dict:
    """Generate the benchmark into ``root`` and return its description.

    The files are written into a sibling folder that is renamed to ``root``
    once complete; ``benchmark.json`` is written last. The same seed and
    scale give identical bytes.

    Args:
        root: output folder.
        seed: non-negative seed.
        scale: ``'default'`` or ``'tiny'`` (about ten times fewer images).
        force: replace a benchmark already in ``root``. Without it, a
            complete benchmark of the same seed and scale is returned as it
            is and any other non-empty folder raises ``FileExistsError``.
            A folder holding anything the generator does not write is
            never deleted.

    Returns:
        dict: the content of ``benchmark.json``.
    """
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {sorted(SCALES)}, got '
                         f'{scale!r}')
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be an int >= 0, got {seed!r}')
    seed = int(seed)
    root = osp.abspath(root)
    if osp.isdir(root) and os.listdir(root):
        desc = read_benchmark(root)
        if not force:
            if _matches(desc, seed, scale):
                return desc
            raise FileExistsError(
                f'{root} is not empty; pass force=True to replace it')
        if not _owned(root):
            raise FileExistsError(
                f'{root} holds files that are not part of the benchmark; '
                'refusing to delete it')
    parent, base = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.{base}.partial-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tasks = {}
        for name, spec in TASKS.items():
            info = WRITERS[spec['kind']](
                osp.join(tmp, name), spec, split_counts(spec, scale),
                _rng_factory(seed, name))
            size = spec['size']
            info.update(
                kind=spec['kind'], role=spec['role'], domain=spec['domain'],
                path=name, classes=list(spec['classes']),
                num_classes=len(spec['classes']),
                image_size=list(size) if isinstance(size, tuple) else
                [size, size])
            tasks[name] = info
        desc = dict(generator='gppf_mm.datasets.generation',
                    version=GENERATOR_VERSION, seed=seed, scale=scale,
                    tasks=tasks)
        dump_json(osp.join(tmp, MARKER), desc)
        if osp.isdir(root):
            shutil.rmtree(root)
        os.rename(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return desc


def default_root(scale: str = 'default') -> str:
    """The cache folder: ``$GPPF_DATA_ROOT`` if set, else
    ``<repo>/data/gppf_bench`` (``gppf_bench_<scale>`` for other scales;
    the current directory stands in for the repository when the package
    is installed elsewhere)."""
    env = os.environ.get('GPPF_DATA_ROOT')
    if env:
        return osp.abspath(env)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    if not osp.isfile(osp.join(repo, 'setup.py')):
        repo = os.getcwd()
    suffix = '' if scale == 'default' else f'_{scale}'
    return osp.join(repo, 'data', f'gppf_bench{suffix}')


@contextlib.contextmanager
def _lock(root: str) -> Iterator[None]:
    """An exclusive lock next to ``root`` (so that concurrent processes,
    e.g. the ranks of one run, generate once)."""
    parent, base = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    with open(osp.join(parent, f'.{base}.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_benchmark(root: Optional[str] = None, seed: int = 0,
                     scale: str = 'default') -> str:
    """Generate the benchmark on first use and reuse it afterwards.

    A complete folder of the same seed, scale and generator version is
    left untouched; a folder without ``benchmark.json`` (an interrupted
    generation) or of another seed, scale or version is generated again.

    Args:
        root: folder; :func:`default_root` when ``None``.
        seed: non-negative seed.
        scale: ``'default'`` or ``'tiny'``.

    Returns:
        str: the absolute path of the benchmark folder.
    """
    root = osp.abspath(root or default_root(scale))
    if _matches(read_benchmark(root), seed, scale):
        return root
    with _lock(root):
        if not _matches(read_benchmark(root), seed, scale):
            generate_benchmark(root, seed=seed, scale=scale, force=True)
    return root
