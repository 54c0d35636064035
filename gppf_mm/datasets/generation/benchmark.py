# Copyright (c) gppf_mm contributors. All rights reserved.
"""A small multi-task, multi-domain benchmark in the formats that MMDet,
MMSeg and MMPretrain read (COCO json, image + PNG label folders, annotation
lists, VOC xml), generated deterministically from a seed."""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from .drawing import SHAPES, background, paint, place_objects, shape_mask

GENERATOR_VERSION = 1
MARKER = 'benchmark.json'
SCALES = dict(default=1.0, tiny=0.1)
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]
JPG = [cv2.IMWRITE_JPEG_QUALITY, 92]

# name -> spec; classes are (name, shape, BGR colour)
TASKS: Dict[str, dict] = dict(
    street_det=dict(
        kind='det', domain='street', size=96, split=(300, 60),
        objects=(2, 6), size_range=(0.18, 0.42),
        classes=[('car', 'car', (40, 40, 200)),
                 ('person', 'person', (60, 150, 230)),
                 ('sign', 'diamond', (30, 200, 230))]),
    aerial_det=dict(
        kind='det', domain='aerial', size=96, split=(300, 60),
        objects=(3, 7), size_range=(0.15, 0.35),
        classes=[('house', 'house', (60, 60, 170)),
                 ('tree', 'tree', (30, 120, 30)),
                 ('pool', 'ellipse', (220, 180, 60)),
                 ('field', 'box', (90, 200, 200))]),
    indoor_seg=dict(
        kind='seg', domain='indoor', size=64, split=(300, 60),
        objects=(2, 5), size_range=(0.2, 0.45),
        regions=('wall', 'floor'),
        classes=[('table', 'box', (40, 80, 140)),
                 ('lamp', 'triangle', (80, 220, 240)),
                 ('rug', 'ellipse', (140, 40, 120))]),
    nature_seg=dict(
        kind='seg', domain='nature', size=64, split=(300, 60),
        objects=(2, 5), size_range=(0.2, 0.45),
        regions=('sky', 'water', 'grass'),
        classes=[('rock', 'hexagon', (110, 110, 120)),
                 ('bush', 'star', (40, 140, 60))]),
    shapes_cls=dict(
        kind='cls', domain='shapes', size=32, split=(1500, 300),
        classes=[(s, s, None) for s in SHAPES[:10]]),
    underwater_voc=dict(
        kind='voc', domain='underwater', size=96, split=(150, 50),
        objects=(2, 5), size_range=(0.18, 0.4),
        classes=[('fish', 'ellipse', (60, 160, 240)),
                 ('crab', 'star', (40, 40, 200)),
                 ('shell', 'triangle', (200, 200, 230))]),
    depth=dict(kind='depth', domain='street', size=64, split=(150, 50)),
    texture_cls=dict(
        kind='cls', domain='shapes', size=32, split=(300, 100),
        classes=[(s, s, None) for s in SHAPES[8:12]]),
)


def _count(n: int, scale: float) -> int:
    return max(6, int(round(n * scale)))


def _imwrite(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    ok = cv2.imwrite(path, img, JPG if path.endswith('.jpg') else PNG)
    if not ok:
        raise IOError(f'could not write {path}')


def _dump_json(path: str, obj) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, sort_keys=True, separators=(',', ':'))


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def _box(mask: np.ndarray) -> Tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    return x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0


# ------------------------------------------------------------- writers
def _write_det(root: str, name: str, spec: dict, rng, scale: float) -> dict:
    classes = [c[0] for c in spec['classes']]
    draw = [(c[1], c[2]) for c in spec['classes']]
    size = spec['size']
    out = {}
    for split, n in zip(('train', 'val'), spec['split']):
        images, anns = [], []
        for i in range(_count(n, scale)):
            img = background(rng, size, size, spec['domain'])
            objs = place_objects(rng, img, draw,
                                 int(rng.integers(*spec['objects'])),
                                 spec['size_range'])
            fname = f'{split}/{i:05d}.png'
            _imwrite(osp.join(root, name, 'images', fname), img)
            images.append(dict(id=i + 1, file_name=fname, width=size,
                               height=size))
            for label, mask in objs:
                polys = _polygons(mask)
                if not polys:
                    continue
                anns.append(dict(
                    id=len(anns) + 1, image_id=i + 1, category_id=label + 1,
                    bbox=list(_box(mask)), area=float(mask.sum()),
                    iscrowd=0, segmentation=polys))
        _dump_json(
            osp.join(root, name, 'annotations', f'instances_{split}.json'),
            dict(images=images, annotations=anns,
                 categories=[dict(id=k + 1, name=c)
                             for k, c in enumerate(classes)]))
        out[split] = dict(images=len(images), instances=len(anns))
    return dict(kind='det', classes=classes, splits=out,
                ann_file='annotations/instances_{split}.json',
                img_prefix='images/')


def _write_seg(root: str, name: str, spec: dict, rng, scale: float) -> dict:
    regions = list(spec['regions'])
    classes = regions + [c[0] for c in spec['classes']]
    draw = [(c[1], c[2]) for c in spec['classes']]
    size = spec['size']
    out = {}
    for split, n in zip(('train', 'val'), spec['split']):
        count = _count(n, scale)
        for i in range(count):
            img = background(rng, size, size, spec['domain'])
            label = np.zeros((size, size), np.uint8)
            # horizontal bands of the region classes, each its own tint
            cuts = np.sort(rng.integers(size // 5, size - size // 5,
                                        len(regions) - 1))
            edges = [0] + cuts.tolist() + [size]
            for r in range(len(regions)):
                label[edges[r]:edges[r + 1]] = r
                tint = np.array([(r * 53) % 90 - 45, (r * 31) % 70 - 35,
                                 (r * 71) % 80 - 40], np.int16)
                band = img[edges[r]:edges[r + 1]].astype(np.int16) + tint
                img[edges[r]:edges[r + 1]] = band.clip(0, 255)
            objs = place_objects(rng, img, draw,
                                 int(rng.integers(*spec['objects'])),
                                 spec['size_range'], min_visible=4)
            for k, mask in objs:
                label[mask.astype(bool)] = len(regions) + k
            stem = f'{i:05d}.png'
            _imwrite(osp.join(root, name, 'img_dir', split, stem), img)
            _imwrite(osp.join(root, name, 'ann_dir', split, stem), label)
        out[split] = dict(images=count)
    return dict(kind='seg', classes=classes, splits=out,
                img_dir='img_dir/{split}', ann_dir='ann_dir/{split}')


def _write_cls(root: str, name: str, spec: dict, rng, scale: float) -> dict:
    classes = [c[0] for c in spec['classes']]
    size = spec['size']
    out = {}
    for split, n in zip(('train', 'val'), spec['split']):
        count = max(len(classes) * 2, int(round(n * scale)))
        lines = []
        for i in range(count):
            label = i % len(classes)
            img = background(rng, size, size, spec['domain'])
            mask = shape_mask(rng, size, size, spec['classes'][label][1],
                              size / 2 + rng.uniform(-3, 3),
                              size / 2 + rng.uniform(-3, 3),
                              size * rng.uniform(0.5, 0.8))
            colour = tuple(float(v) for v in rng.integers(0, 255, 3))
            paint(rng, img, mask, colour, textured=rng.random() < 0.5)
            rel = f'{split}/{classes[label]}/{i:05d}.png'
            _imwrite(osp.join(root, name, rel), img)
            lines.append(f'{rel} {label}')
        os.makedirs(osp.join(root, name, 'meta'), exist_ok=True)
        with open(osp.join(root, name, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        out[split] = dict(images=count)
    with open(osp.join(root, name, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    return dict(kind='cls', classes=classes, splits=out,
                ann_file='meta/{split}.txt')


def _write_voc(root: str, name: str, spec: dict, rng, scale: float) -> dict:
    classes = [c[0] for c in spec['classes']]
    draw = [(c[1], c[2]) for c in spec['classes']]
    size = spec['size']
    sub = osp.join(root, name, 'VOC2007')
    out = {}
    ids_all = {}
    offset = 0
    for split, n in zip(('trainval', 'test'), spec['split']):
        ids, total = [], 0
        for i in range(_count(n, scale)):
            img_id = f'{offset + i:06d}'
            img = background(rng, size, size, spec['domain'])
            objs = place_objects(rng, img, draw,
                                 int(rng.integers(*spec['objects'])),
                                 spec['size_range'])
            _imwrite(osp.join(sub, 'JPEGImages', f'{img_id}.jpg'), img)
            xml = [
                '<annotation>', f'<filename>{img_id}.jpg</filename>',
                f'<size><width>{size}</width><height>{size}</height>'
                '<depth>3</depth></size>'
            ]
            for label, mask in objs:
                x, y, w, h = _box(mask)
                xml.append(
                    f'<object><name>{classes[label]}</name><difficult>0'
                    f'</difficult><bndbox><xmin>{int(x) + 1}</xmin><ymin>'
                    f'{int(y) + 1}</ymin><xmax>{int(x + w)}</xmax><ymax>'
                    f'{int(y + h)}</ymax></bndbox></object>')
            xml.append('</annotation>')
            os.makedirs(osp.join(sub, 'Annotations'), exist_ok=True)
            with open(osp.join(sub, 'Annotations', f'{img_id}.xml'),
                      'w') as f:
                f.write('\n'.join(xml) + '\n')
            ids.append(img_id)
            total += len(objs)
        offset += len(ids)
        ids_all[split] = ids
        out[split] = dict(images=len(ids), instances=total)
    os.makedirs(osp.join(sub, 'ImageSets', 'Main'), exist_ok=True)
    for split, ids in ids_all.items():
        with open(osp.join(sub, 'ImageSets', 'Main', f'{split}.txt'),
                  'w') as f:
            f.write('\n'.join(ids) + '\n')
    return dict(kind='voc', classes=classes, splits=out,
                ann_file='VOC2007/ImageSets/Main/{split}.txt',
                sub_data_root='VOC2007/')


def _write_depth(root: str, name: str, spec: dict, rng,
                 scale: float) -> dict:
    size = spec['size']
    out = {}
    yy = np.arange(size, dtype=np.float32)[:, None].repeat(size, 1)
    for split, n in zip(('train', 'val'), spec['split']):
        count = _count(n, scale)
        names = []
        for i in range(count):
            horizon = rng.uniform(0.25, 0.45) * size
            # ground plane: depth ~ 1 / (y - horizon), sky far away
            depth = np.where(yy > horizon + 1,
                             2000.0 * size / (yy - horizon + 1e-3) / 4,
                             20000.0).clip(500, 20000)
            img = background(rng, size, size, spec['domain'])
            for _ in range(int(rng.integers(1, 4))):
                foot = rng.uniform(horizon + 6, size - 2)
                d = float(2000.0 * size / (foot - horizon) / 4)
                s = max(4.0, 0.9 * size * (foot - horizon) / size)
                cx = rng.uniform(s / 2, size - s / 2)
                m = shape_mask(rng, size, size, 'box', cx, foot - s / 2, s)
                m = m.astype(bool) & (depth > d)
                depth[m] = d
            shade = (1.0 - (np.log(depth) - np.log(500)) /
                     (np.log(20000) - np.log(500)))[..., None]
            img = (img.astype(np.float32) * (0.35 + 0.65 * shade)).clip(
                0, 255).astype(np.uint8)
            stem = f'{i:05d}.png'
            _imwrite(osp.join(root, name, 'rgb', split, stem), img)
            _imwrite(osp.join(root, name, 'depth', split, stem),
                     depth.round().astype(np.uint16))
            names.append(stem)
        with open(osp.join(root, name, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
        out[split] = dict(images=count)
    return dict(kind='depth', classes=[], splits=out, depth_unit='mm',
                rgb_dir='rgb/{split}', depth_dir='depth/{split}')


WRITERS = dict(det=_write_det, seg=_write_seg, cls=_write_cls,
               voc=_write_voc, depth=_write_depth)


# ----------------------------------------------------------------- API
def generate_benchmark(root: str, seed: int = 0, scale: str = 'default',
                       force: bool = False) -> dict:
    """Write the benchmark to ``root`` and return its description.

    Each task draws from its own generator (seeded by ``seed`` and the task
    name), so adding a task leaves the others' bytes unchanged. The marker
    ``benchmark.json`` is written last: a folder without it is incomplete.
    """
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {list(SCALES)}, got '
                         f'{scale!r}')
    if osp.exists(root):
        if not force and osp.exists(osp.join(root, MARKER)):
            raise FileExistsError(f'{root} already holds a benchmark; use '
                                  'force=True to rewrite it')
        shutil.rmtree(root)
    os.makedirs(root)
    tasks = {}
    for index, (name, spec) in enumerate(TASKS.items()):
        rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
        info = WRITERS[spec['kind']](root, name, spec, rng, SCALES[scale])
        info.update(domain=spec['domain'], path=name)
        tasks[name] = info
    desc = dict(version=GENERATOR_VERSION, seed=seed, scale=scale,
                tasks=tasks)
    _dump_json(osp.join(root, MARKER), desc)
    return desc


def default_root(scale: str = 'default') -> str:
    env = os.environ.get('GPPF_DATA_ROOT')
    if env:
        return env
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    suffix = '' if scale == 'default' else f'_{scale}'
    return osp.join(repo, 'data', f'gppf_bench{suffix}')


def ensure_benchmark(root: Optional[str] = None, seed: int = 0,
                     scale: str = 'default') -> str:
    """Generate the benchmark on first use and reuse it afterwards.

    A folder whose marker is missing (an interrupted run) or names another
    seed, scale or generator version is generated again.
    """
    root = root or default_root(scale)
    marker = osp.join(root, MARKER)
    if osp.exists(marker):
        with open(marker) as f:
            desc = json.load(f)
        if (desc.get('seed'), desc.get('scale'),
                desc.get('version')) == (seed, scale, GENERATOR_VERSION):
            return root
    generate_benchmark(root, seed=seed, scale=scale, force=True)
    return root
