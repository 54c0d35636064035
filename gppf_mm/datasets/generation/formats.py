# Copyright (c) gppf_mm contributors. All rights reserved.
"""Writers of the dataset formats that MMDet, MMSeg and MMPretrain read.

Every writer takes the task folder, the task spec, the sample counts per
split and a factory of per-image random generators, and returns the task's
entry of ``benchmark.json`` (paths relative to the task folder). Files are
written with fixed encoder settings and JSON with sorted keys, so the bytes
depend only on the seed.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List

import cv2
import numpy as np

from .depth import MAX_DEPTH_MM, depth_scene, intrinsics
from .scenes import det_scene, seg_scene, shape_image, texture_image

RngFactory = Callable[[str, int], np.random.Generator]
PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE
]
JPG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_OPTIMIZE, 0]
VOC_DIFFICULT_VISIBLE = 0.35  # visible fraction below which VOC marks
VOC_DIFFICULT_SIDE = 6  # ... or boxes thinner than this many pixels


def imwrite(path: str, img: np.ndarray) -> None:
    """Write an image (PNG or JPEG by extension) with fixed settings."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    params = JPG_PARAMS if path.endswith('.jpg') else PNG_PARAMS
    if not cv2.imwrite(path, img, params):
        raise IOError(f'could not write {path}')


def write_jpeg(path: str, img: np.ndarray) -> None:
    """A JPEG with fixed encoder settings, whatever the extension's case
    (``.JPEG`` as ImageNet names its files)."""
    ok, buf = cv2.imencode('.jpg', img, JPG_PARAMS)
    if not ok:
        raise IOError(f'could not encode {path}')
    write_bytes(path, buf.tobytes())


def write_bytes(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def dump_json(path: str, obj) -> None:
    """Write JSON with sorted keys and no whitespace."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(json.dumps(obj, sort_keys=True, separators=(',', ':')) +
                '\n')


def write_lines(path: str, lines: List[str]) -> None:
    """Write text lines with a trailing newline."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons that rasterise (with pycocotools) exactly to ``mask``.

    Contours are traced on the mask upsampled twice, so vertices lie on
    pixel edges; holes are joined to their outer contour by a zero-width
    cut, since COCO polygons of one object are merged by union.
    """
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2,
                    interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    polys = []
    for i, contour in enumerate(contours):
        if hierarchy[i][3] != -1:  # a hole, handled with its parent
            continue
        poly = contour.reshape(-1, 2)
        child = hierarchy[i][2]
        while child != -1:
            hole = contours[child].reshape(-1, 2)
            dist = ((poly[:, None, :] - hole[None, :, :])**2).sum(-1)
            a, b = np.unravel_index(int(dist.argmin()), dist.shape)
            poly = np.concatenate(
                [poly[:a + 1], hole[b:], hole[:b + 1], poly[a:]])
            child = hierarchy[child][0]
        if len(poly) >= 3:
            polys.append([float(v) for v in (poly.reshape(-1) + 0.5) / 2])
    return polys


def mask_box(mask: np.ndarray) -> List[int]:
    """``[x, y, w, h]`` of a mask, measured on pixel edges."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]


def write_det(task_dir: str, spec: dict, counts: Dict[str, int],
              rng_for: RngFactory) -> dict:
    """COCO instance segmentation: ``images/{split}/*.png`` and
    ``annotations/instances_{split}.json`` (polygons, ``iscrowd=0``)."""
    classes = list(spec['classes'])
    h = w = spec['size']
    splits = {}
    for split, n in counts.items():
        images, anns = [], []
        for i in range(n):
            img, objects = det_scene(rng_for(split, i), spec['domain'], h, w)
            name = f'{split}/{i:05d}.png'
            imwrite(osp.join(task_dir, 'images', name), img)
            images.append(dict(id=i + 1, file_name=name, width=w, height=h))
            for label, mask, _ in objects:
                anns.append(dict(
                    id=len(anns) + 1, image_id=i + 1, category_id=label + 1,
                    bbox=mask_box(mask), area=int(mask.sum()), iscrowd=0,
                    segmentation=mask_to_polygons(mask)))
        ann_file = f'annotations/instances_{split}.json'
        dump_json(osp.join(task_dir, ann_file), dict(
            info=dict(description=f"GPPF benchmark: {spec['domain']} "
                      'detection', version='1.0'),
            licenses=[], images=images, annotations=anns,
            categories=[dict(id=k + 1, name=c, supercategory=spec['domain'])
                        for k, c in enumerate(classes)]))
        splits[split] = dict(images=n, instances=len(anns),
                             ann_file=ann_file, img_prefix='images/')
    return dict(format='coco', splits=splits)


def write_seg(task_dir: str, spec: dict, counts: Dict[str, int],
              rng_for: RngFactory) -> dict:
    """Semantic segmentation: ``img_dir/{split}/*.png`` and ``uint8`` label
    maps ``ann_dir/{split}/*.png`` (255 = ignore)."""
    h = w = spec['size']
    num_classes = len(spec['classes'])
    splits = {}
    for split, n in counts.items():
        pixels = np.zeros(num_classes + 1, np.int64)
        for i in range(n):
            img, label = seg_scene(rng_for(split, i), spec['domain'], h, w)
            imwrite(osp.join(task_dir, 'img_dir', split, f'{i:05d}.png'), img)
            imwrite(osp.join(task_dir, 'ann_dir', split, f'{i:05d}.png'),
                    label)
            counts_i = np.bincount(label.ravel(), minlength=256)
            pixels[:num_classes] += counts_i[:num_classes]
            pixels[num_classes] += counts_i[255]
        splits[split] = dict(
            images=n, img_dir=f'img_dir/{split}', ann_dir=f'ann_dir/{split}',
            class_pixels=pixels[:num_classes].tolist(),
            ignore_pixels=int(pixels[num_classes]))
    return dict(format='mmseg', img_suffix='.png', seg_map_suffix='.png',
                ignore_index=255, reduce_zero_label=False, splits=splits)


def write_cls(task_dir: str, spec: dict, counts: Dict[str, int],
              rng_for: RngFactory) -> dict:
    """Classification, ImageNet style: ``{split}/{class}/*.png``, lists
    ``meta/{split}.txt`` (``path label``) and ``meta/classes.txt``."""
    classes = list(spec['classes'])
    draw = texture_image if spec['domain'] == 'texture' else shape_image
    splits = {}
    for split, n in counts.items():
        lines = []
        for i in range(n):
            label = i % len(classes)
            img = draw(rng_for(split, i), classes[label], spec['size'])
            rel = f'{split}/{classes[label]}/{i:05d}.png'
            imwrite(osp.join(task_dir, rel), img)
            lines.append(f'{rel} {label}')
        write_lines(osp.join(task_dir, 'meta', f'{split}.txt'), lines)
        splits[split] = dict(images=n, ann_file=f'meta/{split}.txt',
                             data_prefix='')
    write_lines(osp.join(task_dir, 'meta', 'classes.txt'), classes)
    return dict(format='imagenet', classes_file='meta/classes.txt',
                splits=splits)


def voc_xml(img_id: str, h: int, w: int, objects: list,
            folder: str = 'VOC2007', suffix: str = '.jpg') -> str:
    """A Pascal VOC annotation; ``objects`` holds ``(name, (x, y, w, h),
    truncated, difficult)`` with 0-based boxes, written 1-based."""
    lines = [
        '<annotation>', f'  <folder>{folder}</folder>',
        f'  <filename>{img_id}{suffix}</filename>',
        f'  <size><width>{w}</width><height>{h}</height><depth>3</depth>'
        '</size>', '  <segmented>0</segmented>'
    ]
    for name, box, truncated, difficult in objects:
        x, y, bw, bh = box
        lines += [
            '  <object>', f'    <name>{name}</name>',
            '    <pose>Unspecified</pose>',
            f'    <truncated>{truncated}</truncated>',
            f'    <difficult>{difficult}</difficult>',
            f'    <bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>'
            f'<xmax>{x + bw}</xmax><ymax>{y + bh}</ymax></bndbox>',
            '  </object>'
        ]
    return '\n'.join(lines + ['</annotation>']) + '\n'


def write_voc(task_dir: str, spec: dict, counts: Dict[str, int],
              rng_for: RngFactory) -> dict:
    """Pascal VOC 2007 layout: ``VOC2007/JPEGImages/*.jpg``,
    ``Annotations/*.xml`` (1-based inclusive boxes, ``difficult`` for
    mostly hidden or tiny objects) and ``ImageSets/Main/{split}.txt``."""
    classes = list(spec['classes'])
    h = w = spec['size']
    sub = osp.join(task_dir, 'VOC2007')
    splits, offset = {}, 0
    for split, n in counts.items():
        ids, total, difficult_total = [], 0, 0
        for i in range(n):
            img_id = f'{offset + i:06d}'
            img, objects = det_scene(rng_for(split, i), spec['domain'], h, w)
            imwrite(osp.join(sub, 'JPEGImages', f'{img_id}.jpg'), img)
            xml_objects = []
            for label, mask, visible in objects:
                box = mask_box(mask)
                truncated = int(box[0] == 0 or box[1] == 0 or
                                box[0] + box[2] == w or box[1] + box[3] == h)
                difficult = int(visible < VOC_DIFFICULT_VISIBLE or
                                min(box[2], box[3]) < VOC_DIFFICULT_SIDE)
                xml_objects.append((classes[label], box, truncated,
                                    difficult))
                difficult_total += difficult
            xml_path = osp.join(sub, 'Annotations', f'{img_id}.xml')
            os.makedirs(osp.dirname(xml_path), exist_ok=True)
            with open(xml_path, 'w') as f:
                f.write(voc_xml(img_id, h, w, xml_objects))
            ids.append(img_id)
            total += len(xml_objects)
        offset += n
        ann_file = f'VOC2007/ImageSets/Main/{split}.txt'
        write_lines(osp.join(task_dir, ann_file), ids)
        splits[split] = dict(images=n, instances=total,
                             difficult=difficult_total, ann_file=ann_file)
    return dict(format='voc', sub_data_root='VOC2007/', splits=splits)


def write_depth(task_dir: str, spec: dict, counts: Dict[str, int],
                rng_for: RngFactory) -> dict:
    """Dense depth: ``rgb/{split}/*.png``, ``uint16`` millimetre depth
    ``depth/{split}/*.png`` (0 = no depth) and lists ``{split}.txt`` of
    ``rgb_path depth_path``."""
    h, w = spec['size']
    splits = {}
    for split, n in counts.items():
        lines = []
        for i in range(n):
            img, depth = depth_scene(rng_for(split, i), h, w)
            rgb, dep = f'rgb/{split}/{i:05d}.png', f'depth/{split}/{i:05d}.png'
            imwrite(osp.join(task_dir, rgb), img)
            imwrite(osp.join(task_dir, dep), depth)
            lines.append(f'{rgb} {dep}')
        write_lines(osp.join(task_dir, f'{split}.txt'), lines)
        splits[split] = dict(images=n, ann_file=f'{split}.txt',
                             rgb_dir=f'rgb/{split}',
                             depth_dir=f'depth/{split}')
    return dict(format='rgbd', depth_unit='mm', depth_scale=1000.0,
                invalid_depth=0, max_depth_mm=MAX_DEPTH_MM,
                intrinsics=intrinsics(h, w), splits=splits)


WRITERS: Dict[str, Callable[..., dict]] = dict(
    det=write_det, seg=write_seg, cls=write_cls, voc=write_voc,
    depth=write_depth)
