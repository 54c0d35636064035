# Copyright (c) gppf_mm contributors. All rights reserved.
"""A few images of each of GPPF-15M's eight pre-training data sets, in the
on-disk layout their stock MMDet / MMSeg / MMPretrain configs read
(``configs/_base_/tasks/gppf_15m.py``), so that those configs, their
dataset classes, train pipelines and evaluators run unchanged on them.

Paths are those of the configs with their leading ``data/`` replaced by
``root`` (:func:`rebase_paths` does the same to a resolved task). Layout::

    imagenet21k/                                         in21k
        train/<wnid>/<wnid>_<n>.JPEG   meta/train.txt    'wnid/file label'
        val/<wnid>/<wnid>_<n>.JPEG     meta/val.txt
    coco/                                                coco
        train2017/<id:012d>.jpg        annotations/instances_train2017.json
        val2017/<id:012d>.jpg          annotations/instances_val2017.json
    lvis_v1/                                             lvis
        train2017/, val2017/           COCO's images, found via coco_url
        annotations/lvis_v1_train.json, annotations/lvis_v1_val.json
    Objects365/Obj365_v2/                                objects365
        train/patch<k>/objects365_v2_<id:08d>.jpg
        val/patch<k>/objects365_v2_<id:08d>.jpg
        annotations/zhiyuan_objv2_train.json, zhiyuan_objv2_val.json
    OpenImages/                                          openimages
        challenge2019/cls-label-description.csv     MID,name,id (1..500)
        challenge2019/class_label_tree.np           501 x 501, [child,
                                                     parent] = 1, row and
                                                     column 0 the root
        challenge2019/challenge-2019-{train,validation}-detection-bbox.txt
        challenge2019/challenge-2019-{train,validation}-metas.pkl
        challenge2019/challenge-2019-validation-detection-human-
            imagelabels.csv                          ImageID,LabelName,
                                                     Confidence
        OpenImages/train/<id>.jpg, OpenImages/validation/<id>.jpg
        OpenImages/train/train/<id>.jpg              (copies, see below)
        OpenImages/validation/validation/<id>.jpg
    ade/ADEChallengeData2016/                            ade20k
        images/{training,validation}/ADE_{train,val}_<n:08d>.jpg
        annotations/{training,validation}/ADE_{train,val}_<n:08d>.png
    coco_stuff164k/                                      coco_stuff
        images/{train,val}2017/<id:012d>.jpg
        annotations/{train,val}2017/<id:012d>_labelTrainIds.png
    VOCdevkit/VOC2012/                                   voc
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png      palette PNG, train and val ids
        SegmentationClassAug/<id>.png   grey PNG, the aug ids
        ImageSets/Segmentation/{train,val,aug}.txt

Formats, as the dataset classes and metrics read them:

* COCO: the 80 categories with their real, non-contiguous ids; polygons
  that rasterise exactly to the drawn masks, ``iscrowd=0``.
* LVIS v1: all 1203 categories (ids 1..1203, MMDet's names) with
  ``frequency`` ('r' / 'c' / 'f' by LVIS's rule on the images of the
  written train split, so all 'r' here), ``image_count``,
  ``instance_count``; images with ``coco_url`` (the loader takes the file
  name from it; one val image lies in ``train2017/``, as in LVIS v1),
  ``neg_category_ids``, ``not_exhaustive_category_ids``.
* Objects365 v2: the 365 categories (ids 1..365, MMDet's names, trailing
  spaces included); ``file_name`` is ``images/v2/patch<k>/<name>.jpg``, of
  which the loader keeps ``patch<k>/<name>.jpg`` under ``data_prefix``.
  The train file also lists ``patch16/objects365_v2_00908726.jpg``,
  without an image, as the real one does; the loader skips it.
* Open Images challenge 2019: 500 classes (``/m/0k4j`` Car, ``/m/01g317``
  Person, ``/m/01mqdt`` Traffic sign, ``/m/01prls`` Land vehicle and
  ``/m/07yv9`` Vehicle at ids 100, 300, 400, 200, 500; the others are
  placeholders), Car < Land vehicle < Vehicle in the tree. A box file
  holds, per image, its file name (``train/<id>.jpg`` or
  ``validation/<id>.jpg``), a line the loader skips (``-1``), the box count
  and ``label xmin ymin xmax ymax is_group_of`` lines (1-based label,
  coordinates relative to the image size). The metas files (made upstream
  by ``tools/misc/get_image_metas.py``) hold ``filename`` and
  ``ori_shape`` per image, in the box file's order; the human-verified
  image-level labels hold positives (confidence 1) and negatives (0). The
  file names carry their split folder, so only the val loader's
  ``data_prefix`` (``OpenImages/``) matches the release's layout; MMDet
  3.x's challenge config leaves train at ``OpenImages/train/`` and test at
  ``OpenImages/validation/``, which double the folder. Each image is
  written at its place in the release and where each stock loader reads
  it.
* ADE20K: ``uint8`` maps, 0 = other (ignored with ``reduce_zero_label``),
  class ``k`` of MMSeg's list as ``k + 1``.
* COCO-Stuff 164k: train ids 0..170 (MMSeg's list), 255 = unlabelled.
* VOC 2012: 0 = background, 1..20, 255 = void (a one-pixel band inside each
  object's outline, as VOC marks outlines); ``aug.txt`` lists the
  augmented set's own images.

Objects are the benchmark's scenes (street scenes for COCO, LVIS and Open
Images, indoor scenes for Objects365 and ADE20K, nature scenes for
COCO-Stuff, shapes for ImageNet-21K) with their few classes mapped onto the
real label spaces; every class list keeps its real length. Images are
``size`` pixels, JPEG or PNG with fixed encoder settings, JSON with sorted
keys, pickles with protocol 4: the bytes depend only on ``seed`` (and
``images`` / ``size``).
"""
import csv
import io
import os.path as osp
import pickle
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np

from gppf_mm.datasets.generation.formats import (
    dump_json,
    imwrite,
    mask_box,
    mask_to_polygons,
    write_bytes,
    write_jpeg,
    write_lines,
)
from gppf_mm.datasets.generation.scenes import (
    det_scene,
    seg_scene,
    shape_image,
)

TASKS = ('in21k', 'coco', 'lvis', 'objects365', 'openimages', 'ade20k',
         'coco_stuff', 'voc')
Size = Tuple[int, int]
RngFor = Callable[[str, int], np.random.Generator]

# COCO's 80 category ids, in the order of MMDet's class names
COCO_IDS = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] +
            list(range(31, 45)) + list(range(46, 66)) + [67, 70] +
            list(range(72, 83)) + list(range(84, 91)))
# scene classes (in the domain's order) -> each data set's class names
DET_CLASSES = dict(
    coco=('street', ('car', 'person', 'stop sign')),
    lvis=('street', ('car_(automobile)', 'person', 'street_sign')),
    objects365=('indoor', ('Dinning Table', 'Lamp', 'Carpet')),
    openimages=('street', ('Car', 'Person', 'Traffic sign')))
# seg scenes: region names, then object classes -> data set class names
SEG_CLASSES = dict(
    ade20k=('indoor', ('wall', 'floor', 'table', 'lamp', 'rug')),
    coco_stuff=('nature', ('sky-other', 'water-other', 'grass', 'rock',
                           'bush')))
VOC_CLASSES = ('car', 'person', None)  # street signs are no VOC class
IN21K_CLASSES = 10450
IN21K_SHAPES = ('ellipse', 'box', 'triangle', 'star')
# Open Images: (MID, name, challenge id); parents by MID
OI_NUM_CLASSES = 500
OI_CLASSES = (('/m/0k4j', 'Car', 100), ('/m/01prls', 'Land vehicle', 200),
              ('/m/01g317', 'Person', 300), ('/m/01mqdt', 'Traffic sign',
                                             400),
              ('/m/07yv9', 'Vehicle', 500))
OI_PARENTS = {'/m/0k4j': ('/m/01prls', '/m/07yv9'),
              '/m/01prls': ('/m/07yv9', )}
OI_PREFIX = dict(train='OpenImages/train/', val='OpenImages/',
                 test='OpenImages/validation/')
OBJ365_IGNORED = 'images/v2/patch16/objects365_v2_00908726.jpg'


def _classes(kind: str, name: str) -> Tuple[str, ...]:
    """A dataset class's own class names (MMDet / MMSeg)."""
    if kind == 'mmdet':
        from mmdet import datasets
    else:
        from mmseg import datasets
    return tuple(getattr(datasets, name).METAINFO['classes'])


def _det_image(rng: np.random.Generator, domain: str, size: Size
               ) -> Tuple[np.ndarray, List[dict]]:
    """A detection scene with at least one object; per object its scene
    class, mask, ``[x, y, w, h]`` box, polygons and area (objects thinner
    than 2 px, which COCO polygons cannot hold, are left out)."""
    h, w = size
    while True:
        img, anns = det_scene(rng, domain, h, w)
        objects = []
        for label, mask, _ in anns:
            box = mask_box(mask)
            polygons = mask_to_polygons(mask)
            if min(box[2], box[3]) < 2 or not polygons:
                continue
            objects.append(dict(cls=label, mask=mask, box=box,
                                polygons=polygons, area=int(mask.sum())))
        if objects:
            return img, objects


def _xyxy(box: List[int]) -> List[float]:
    return [float(box[0]), float(box[1]), float(box[0] + box[2]),
            float(box[1] + box[3])]


def _record(n: int, labels: List[list], boxes: Optional[List[list]] = None
            ) -> dict:
    out = dict(images=n, labels=labels)
    if boxes is not None:
        out['boxes'] = boxes
        out['instances'] = sum(len(b) for b in boxes)
    return out


# --------------------------------------------------------------------------
# ImageNet-21K
# --------------------------------------------------------------------------
def _in21k(root: str, images: int, size: Size, rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'imagenet21k')
    # the first and last of the head's classes first
    labels = np.linspace(0, IN21K_CLASSES - 1, len(IN21K_SHAPES)).astype(
        int).tolist()
    labels = [labels[0], labels[-1]] + labels[1:-1]
    splits = {}
    for split in ('train', 'val'):
        lines, split_labels = [], []
        for i in range(images):
            k = i % len(IN21K_SHAPES)
            label = labels[k]
            # synthetic WordNet ids, sorted as the labels are
            wnid = f'n9{label:07d}'
            img = shape_image(rng_for(split, i), IN21K_SHAPES[k],
                              min(size))
            img = cv2.resize(img, (size[1], size[0]),
                             interpolation=cv2.INTER_LINEAR)
            rel = f'{wnid}/{wnid}_{i}.JPEG'
            write_jpeg(osp.join(task_root, split, rel), img)
            lines.append(f'{rel} {label}')
            split_labels.append([label])
        write_lines(osp.join(task_root, 'meta', f'{split}.txt'), lines)
        splits[split] = _record(images, split_labels)
    return dict(root=task_root, num_classes=IN21K_CLASSES, splits=splits)


# --------------------------------------------------------------------------
# COCO, LVIS, Objects365 (COCO-style JSON)
# --------------------------------------------------------------------------
def _label_map(task: str, dataset: str) -> List[int]:
    """Scene class -> index in the dataset class's class list."""
    names = _classes('mmdet', dataset)
    return [names.index(n) for n in DET_CLASSES[task][1]]


def _coco(root: str, images: int, size: Size, rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'coco')
    names = _classes('mmdet', 'CocoDataset')
    to_label = _label_map('coco', 'CocoDataset')
    categories = [dict(id=COCO_IDS[k], name=n) for k, n in enumerate(names)]
    h, w = size
    splits = {}
    for s, split in enumerate(('train', 'val')):
        imgs, anns, labels, boxes = [], [], [], []
        for i in range(images):
            img_id = (s + 1) * 1000 + i
            name = f'{img_id:012d}.jpg'
            img, objects = _det_image(rng_for(split, i), 'street', size)
            write_jpeg(osp.join(task_root, f'{split}2017', name), img)
            imgs.append(dict(
                id=img_id, file_name=name, height=h, width=w,
                coco_url=f'http://images.cocodataset.org/{split}2017/{name}'))
            labels.append([to_label[o['cls']] for o in objects])
            boxes.append([_xyxy(o['box']) for o in objects])
            for o in objects:
                anns.append(dict(
                    id=len(anns) + 1 + s * 100000, image_id=img_id,
                    category_id=COCO_IDS[to_label[o['cls']]], bbox=o['box'],
                    area=o['area'], iscrowd=0, segmentation=o['polygons']))
        dump_json(
            osp.join(task_root, 'annotations', f'instances_{split}2017.json'),
            dict(info=dict(description='mini COCO 2017', version='1.0'),
                 licenses=[], images=imgs, annotations=anns,
                 categories=categories))
        splits[split] = _record(images, labels, boxes)
    return dict(root=task_root, num_classes=len(names), splits=splits)


def _lvis_frequency(image_count: int) -> str:
    """LVIS's frequency groups by training images: rare 1-10, common
    11-100, frequent more (0 images counts as rare here)."""
    return 'r' if image_count <= 10 else 'c' if image_count <= 100 else 'f'


def _lvis(root: str, images: int, size: Size, rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'lvis_v1')
    names = _classes('mmdet', 'LVISV1Dataset')
    to_label = _label_map('lvis', 'LVISV1Dataset')
    h, w = size
    drawn = {}
    for s, split in enumerate(('train', 'val')):
        imgs, anns = [], []
        for i in range(images):
            img_id = (s + 1) * 1000 + i
            # LVIS v1 val also takes images of COCO's train2017
            folder = 'train2017' if split == 'train' or i % 2 else 'val2017'
            name = f'{img_id:012d}.jpg'
            img, objects = _det_image(rng_for(split, i), 'street', size)
            write_jpeg(osp.join(task_root, folder, name), img)
            present = sorted({to_label[o['cls']] + 1 for o in objects})
            absent = [c for c in sorted(k + 1 for k in to_label)
                      if c not in present]
            imgs.append(dict(
                id=img_id, height=h, width=w,
                coco_url=f'http://images.cocodataset.org/{folder}/{name}',
                neg_category_ids=absent, not_exhaustive_category_ids=[]))
            for o in objects:
                anns.append(dict(
                    id=len(anns) + 1 + s * 100000, image_id=img_id,
                    category_id=to_label[o['cls']] + 1, bbox=o['box'],
                    area=o['area'], segmentation=o['polygons']))
            drawn.setdefault(split, []).append(objects)
        drawn[split + '_json'] = (imgs, anns)
    train_anns = drawn['train_json'][1]
    splits = {}
    for split in ('train', 'val'):
        imgs, anns = drawn[split + '_json']
        categories = []
        for k, n in enumerate(names):
            cat_anns = [a for a in train_anns if a['category_id'] == k + 1]
            image_count = len({a['image_id'] for a in cat_anns})
            categories.append(dict(
                id=k + 1, name=n, frequency=_lvis_frequency(image_count),
                image_count=image_count, instance_count=len(cat_anns)))
        dump_json(
            osp.join(task_root, 'annotations', f'lvis_v1_{split}.json'),
            dict(info=dict(description='mini LVIS v1', version='1.0'),
                 licenses=[], images=imgs, annotations=anns,
                 categories=categories))
        objects = drawn[split]
        splits[split] = _record(
            images, [[to_label[o['cls']] for o in obj] for obj in objects],
            [[_xyxy(o['box']) for o in obj] for obj in objects])
    return dict(root=task_root, num_classes=len(names), splits=splits)


def _objects365(root: str, images: int, size: Size,
                rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'Objects365', 'Obj365_v2')
    names = _classes('mmdet', 'Objects365V2Dataset')
    to_label = _label_map('objects365', 'Objects365V2Dataset')
    categories = [dict(id=k + 1, name=n) for k, n in enumerate(names)]
    h, w = size
    splits = {}
    for s, split in enumerate(('train', 'val')):
        imgs, anns, labels, boxes = [], [], [], []
        if split == 'train':  # listed, but its image is missing upstream
            imgs.append(dict(id=908726, file_name=OBJ365_IGNORED, height=h,
                             width=w))
            anns.append(dict(id=1, image_id=908726, category_id=1,
                             bbox=[1, 1, 10, 10], area=100, iscrowd=0))
        for i in range(images):
            img_id = (s + 1) * 1000 + i
            patch = f'patch{i % 2}'
            file_name = f'images/v2/{patch}/objects365_v2_{img_id:08d}.jpg'
            img, objects = _det_image(rng_for(split, i), 'indoor', size)
            write_jpeg(osp.join(task_root, split, patch,
                                osp.basename(file_name)), img)
            imgs.append(dict(id=img_id, file_name=file_name, height=h,
                             width=w))
            labels.append([to_label[o['cls']] for o in objects])
            boxes.append([_xyxy(o['box']) for o in objects])
            for o in objects:
                anns.append(dict(
                    id=len(anns) + 1 + s * 100000, image_id=img_id,
                    category_id=to_label[o['cls']] + 1, bbox=o['box'],
                    area=o['area'], iscrowd=0))
        dump_json(
            osp.join(task_root, 'annotations',
                     f'zhiyuan_objv2_{split}.json'),
            dict(info=dict(description='mini Objects365 v2',
                           version='2.0'),
                 licenses=[], images=imgs, annotations=anns,
                 categories=categories))
        splits[split] = _record(images, labels, boxes)
    return dict(root=task_root, num_classes=len(names), splits=splits)


# --------------------------------------------------------------------------
# Open Images (challenge 2019)
# --------------------------------------------------------------------------
def openimages_classes() -> List[Tuple[str, str, int]]:
    """The 500 rows of the written class description: ``(MID, name,
    challenge id)``, by id."""
    known = {cid: (mid, name) for mid, name, cid in OI_CLASSES}
    return [known[k] + (k, ) if k in known else
            (f'/m/0gppf{k:03d}', f'Placeholder {k}', k)
            for k in range(1, OI_NUM_CLASSES + 1)]


def openimages_tree() -> np.ndarray:
    """The class tree: ``tree[child, parent] = 1`` (and 1 on the
    diagonal); index 0 is the root, class ``id`` is index ``id``."""
    ids = {mid: cid for mid, _, cid in OI_CLASSES}
    tree = np.eye(OI_NUM_CLASSES + 1)
    tree[:, 0] = 1
    for child, parents in OI_PARENTS.items():
        for parent in parents:
            tree[ids[child], ids[parent]] = 1
    return tree


def _openimages(root: str, images: int, size: Size,
                rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'OpenImages')
    ann_dir = osp.join(task_root, 'challenge2019')
    rows = openimages_classes()
    classes = io.StringIO()
    csv.writer(classes, lineterminator='\n').writerows(rows)
    write_bytes(osp.join(ann_dir, 'cls-label-description.csv'),
                 classes.getvalue().encode())
    buf = io.BytesIO()
    np.save(buf, openimages_tree())
    write_bytes(osp.join(ann_dir, 'class_label_tree.np'), buf.getvalue())

    scene_ids = [dict((n, c) for _, n, c in OI_CLASSES)[n]
                 for n in DET_CLASSES['openimages'][1]]
    h, w = size
    splits = {}
    for split, folder in (('train', 'train'), ('val', 'validation')):
        lines, metas, labels, boxes, levels = [], [], [], [], []
        readers = ('train', ) if split == 'train' else ('val', 'test')
        for i in range(images):
            rng = rng_for(split, i)
            img_id = f'{int(rng.integers(0, 2**62)):016x}'
            img, objects = _det_image(rng, 'street', size)
            file_name = f'{folder}/{img_id}.jpg'
            # the release's own place, and where each stock loader looks
            places = {'OpenImages/' + file_name}
            places |= {OI_PREFIX[r] + file_name for r in readers}
            for place in sorted(places):
                write_jpeg(osp.join(task_root, place), img)
            lines += [file_name, '-1', str(len(objects))]
            for o in objects:
                x1, y1, x2, y2 = _xyxy(o['box'])
                lines.append(f"{scene_ids[o['cls']]} {x1 / w!r} {y1 / h!r} "
                             f'{x2 / w!r} {y2 / h!r} 0')
            metas.append(dict(
                filename=f'data/OpenImages/{OI_PREFIX[readers[0]]}'
                f'{file_name}', ori_shape=(h, w, 3)))
            labels.append([scene_ids[o['cls']] - 1 for o in objects])
            boxes.append([_xyxy(o['box']) for o in objects])
            present = sorted({scene_ids[o['cls']] for o in objects})
            by_id = {cid: mid for mid, _, cid in OI_CLASSES}
            levels += [(img_id, by_id[c], 1) for c in present]
            # human-verified negatives: the scene classes not drawn, and
            # always one class of no scene
            absent = [c for c in sorted(set(scene_ids)) if c not in present]
            levels += [(img_id, by_id[c], 0) for c in absent]
            levels.append((img_id, rows[0][0], 0))
        name = f'challenge-2019-{folder}'
        write_lines(osp.join(ann_dir, f'{name}-detection-bbox.txt'), lines)
        write_bytes(osp.join(ann_dir, f'{name}-metas.pkl'),
                     pickle.dumps(metas, protocol=4))
        if split == 'val':
            write_lines(
                osp.join(ann_dir, f'{name}-detection-human-imagelabels.csv'),
                ['ImageID,LabelName,Confidence'] +
                [f'{a},{b},{c}' for a, b, c in levels])
        splits[split] = _record(images, labels, boxes)
    return dict(root=task_root, num_classes=OI_NUM_CLASSES, splits=splits)


# --------------------------------------------------------------------------
# Semantic segmentation
# --------------------------------------------------------------------------
def _seg_labels(task: str, dataset: str) -> np.ndarray:
    """A lookup table: scene label (regions, then classes, 255 clutter) ->
    the dataset's label value on disk."""
    names = _classes('mmseg', dataset)
    lut = np.full(256, 255, np.uint8)
    for k, n in enumerate(SEG_CLASSES[task][1]):
        lut[k] = names.index(n) + (1 if task == 'ade20k' else 0)
    if task == 'ade20k':
        lut[255] = 0  # 'other', dropped by reduce_zero_label
    return lut


def _present(label: np.ndarray, reduce_zero_label: bool) -> List[int]:
    values = np.unique(label).astype(int)
    if reduce_zero_label:
        values = values[values > 0] - 1
    return [int(v) for v in values if v != 255]


def _ade20k(root: str, images: int, size: Size, rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'ade', 'ADEChallengeData2016')
    lut = _seg_labels('ade20k', 'ADE20KDataset')
    splits = {}
    for split, folder, tag in (('train', 'training', 'train'),
                               ('val', 'validation', 'val')):
        labels = []
        for i in range(images):
            img, scene = seg_scene(rng_for(split, i), 'indoor', *size)
            label = lut[scene]
            name = f'ADE_{tag}_{i + 1:08d}'
            write_jpeg(osp.join(task_root, 'images', folder, name + '.jpg'),
                       img)
            imwrite(osp.join(task_root, 'annotations', folder,
                             name + '.png'), label)
            labels.append(_present(label, reduce_zero_label=True))
        splits[split] = _record(images, labels)
    return dict(root=task_root, num_classes=150, splits=splits)


def _coco_stuff(root: str, images: int, size: Size,
                rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'coco_stuff164k')
    lut = _seg_labels('coco_stuff', 'COCOStuffDataset')
    splits = {}
    for s, split in enumerate(('train', 'val')):
        labels = []
        for i in range(images):
            img, scene = seg_scene(rng_for(split, i), 'nature', *size)
            label = lut[scene]
            name = f'{(s + 1) * 1000 + i:012d}'
            write_jpeg(osp.join(task_root, 'images', f'{split}2017',
                                name + '.jpg'), img)
            imwrite(osp.join(task_root, 'annotations', f'{split}2017',
                             name + '_labelTrainIds.png'), label)
            labels.append(_present(label, reduce_zero_label=False))
        splits[split] = _record(images, labels)
    return dict(root=task_root, num_classes=171, splits=splits)


def voc_palette() -> List[int]:
    """Pascal VOC's colour map (index -> RGB), 256 entries flattened."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _write_palette_png(path: str, label: np.ndarray) -> None:
    from PIL import Image
    img = Image.fromarray(label, mode='P')
    img.putpalette(voc_palette())
    buf = io.BytesIO()
    img.save(buf, format='PNG', optimize=False, compress_level=6)
    write_bytes(path, buf.getvalue())


def _voc_label(objects: List[dict], size: Size) -> np.ndarray:
    names = _classes('mmseg', 'PascalVOCDataset')
    label = np.zeros(size, np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for o in objects:
        cls = VOC_CLASSES[o['cls']]
        if cls is None:
            continue
        mask = o['mask'].astype(np.uint8)
        inner = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT,
                          borderValue=0).astype(bool)
        label[mask.astype(bool)] = 255
        label[inner] = names.index(cls)
    return label


def _voc(root: str, images: int, size: Size, rng_for: RngFor) -> dict:
    task_root = osp.join(root, 'VOCdevkit', 'VOC2012')
    splits = {}
    for s, (split, year) in enumerate((('train', 2007), ('val', 2008),
                                       ('aug', 2011))):
        ids, labels = [], []
        for i in range(images):
            img_id = f'{year}_{(s + 1) * 1000 + i:06d}'
            img, objects = _det_image(rng_for(split, i), 'street', size)
            label = _voc_label(objects, size)
            write_jpeg(osp.join(task_root, 'JPEGImages', img_id + '.jpg'),
                       img)
            if split == 'aug':
                imwrite(osp.join(task_root, 'SegmentationClassAug',
                                 img_id + '.png'), label)
            else:
                _write_palette_png(
                    osp.join(task_root, 'SegmentationClass',
                             img_id + '.png'), label)
            ids.append(img_id)
            labels.append(_present(label, reduce_zero_label=False))
        write_lines(osp.join(task_root, 'ImageSets', 'Segmentation',
                             f'{split}.txt'), ids)
        splits[split] = _record(images, labels)
    return dict(root=task_root, num_classes=21, splits=splits)


WRITERS: Dict[str, Callable[[str, int, Size, RngFor], dict]] = dict(
    in21k=_in21k, coco=_coco, lvis=_lvis, objects365=_objects365,
    openimages=_openimages, ade20k=_ade20k, coco_stuff=_coco_stuff,
    voc=_voc)


def write_mini_gppf15m(root: str, tasks: Optional[Iterable[str]] = None,
                       images: int = 2, size: Size = (64, 80),
                       seed: int = 0) -> Dict[str, dict]:
    """Write ``images`` images per split of each task (default: all eight)
    under ``root``, which stands for the configs' ``data/``.

    Args:
        root (str): The folder that replaces ``data/``.
        tasks (Iterable[str], optional): Names among :data:`TASKS`.
        images (int): Images per split (train, val; VOC also aug).
        size (tuple): ``(height, width)`` of the images.
        seed (int): Seed; a task's bytes do not depend on the other tasks
            written.

    Returns:
        dict: Per task, ``root`` (its data root), ``num_classes`` and
        ``splits``: per split ``images``, per image the ``labels`` a dataset
        yields (class indices; for segmentation the classes present, after
        ``reduce_zero_label``) and, for detection, ``boxes`` (``x1, y1, x2,
        y2`` in pixels) and the ``instances`` count.
    """
    tasks = TASKS if tasks is None else tuple(tasks)
    unknown = [t for t in tasks if t not in WRITERS]
    if unknown:
        raise KeyError(f'unknown tasks {unknown}, expected some of {TASKS}')
    out = {}
    for task in tasks:
        t = TASKS.index(task)

        def rng_for(split: str, i: int, t: int = t) -> np.random.Generator:
            s = ('train', 'val', 'aug').index(split)
            return np.random.default_rng([seed, t, s, i])

        out[task] = WRITERS[task](root, images, tuple(size), rng_for)
    return out


def rebase_paths(task_cfg: dict, root: str) -> dict:
    """A copy of a resolved task (or any config part) with every string
    that starts with ``data/`` moved under ``root``."""

    def move(node):
        if isinstance(node, dict):
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(move(v) for v in node)
        if isinstance(node, str) and node.startswith('data/'):
            return osp.join(root, node[len('data/'):])
        return node

    return move(task_cfg)


__all__ = [
    'TASKS', 'write_mini_gppf15m', 'rebase_paths', 'openimages_classes',
    'openimages_tree', 'voc_palette', 'write_jpeg'
]
