# Copyright (c) gppf_mm contributors. All rights reserved.
"""A few images in the Pascal VOC layout of every dataset a detection
config reads, so that the config runs unchanged on them: UODB's releases
(``JPEGImages/*.jpg|png``, ``Annotations/*.xml``, ``ImageSets/Main/<split>
.txt`` in one folder per dataset) and VOC 2007 + 2012 (``VOC2007/``,
``VOC2012/`` under ``VOCdevkit``).

What to write is read from the config itself (``ann_file``,
``data_prefix.sub_data_root``, ``img_suffix`` and the classes of each
dataset of its dataloaders, through ``ConcatDataset`` / ``RepeatDataset``
wrappers), so the config stays the one place that says where its data are.
Objects are the benchmark's street scenes, named after the config's
classes.
"""
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np

from gppf_mm.datasets.generation.formats import (
    imwrite,
    mask_box,
    voc_xml,
    write_lines,
)
from gppf_mm.datasets.generation.scenes import det_scene

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def voc_datasets(cfg) -> List[Tuple[str, dict]]:
    """The XML datasets of a config's dataloaders, as ``(dotted key,
    dataset config)``, the key usable with ``--cfg-options``."""
    found = []

    def walk(key: str, ds: dict) -> None:
        if 'datasets' in ds:
            for i, sub in enumerate(ds['datasets']):
                walk(f'{key}.datasets.{i}', sub)
        elif 'dataset' in ds:
            walk(f'{key}.dataset', ds['dataset'])
        elif str(ds.get('ann_file', '')).endswith('.txt'):
            found.append((key, ds))

    for loader in LOADERS:
        if cfg.get(loader) is not None:
            walk(f'{loader}.dataset', cfg[loader]['dataset'])
    return found


def dataset_classes(ds: dict) -> Sequence[str]:
    """The classes a dataset config names, or its class's own."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is None:
        from mmdet.registry import DATASETS
        cls = DATASETS.get(ds['type'])
        if cls is None:
            raise KeyError(f"dataset type {ds['type']!r} is not in MMDet's "
                           f'registry')
        classes = cls.METAINFO['classes']
    return tuple(classes)


def write_voc_split(folder: str, ann_file: str, classes: Sequence[str],
                    suffix: str, ids: Sequence[str], size: Tuple[int, int],
                    rng: np.random.Generator) -> int:
    """Write images and annotations into a VOC folder and the image set
    file ``ann_file`` (a path of its own, as MMDet's ``ann_file`` is relative
    to ``data_root``, not to the folder); return the object count."""
    h, w = size
    objects_total = 0
    for img_id in ids:
        img, objects = det_scene(rng, 'street', h, w)
        imwrite(osp.join(folder, 'JPEGImages', img_id + suffix), img)
        xml_objects = []
        for label, mask, visible in objects:
            box = mask_box(mask)
            if min(box[2], box[3]) < 2:
                continue
            xml_objects.append((classes[label % len(classes)], box, 0,
                                int(visible < 0.35)))
        objects_total += len(xml_objects)
        xml = voc_xml(img_id, h, w, xml_objects,
                      folder=osp.basename(folder.rstrip('/')), suffix=suffix)
        path = osp.join(folder, 'Annotations', img_id + '.xml')
        write_lines(path, xml.rstrip('\n').split('\n'))
    write_lines(ann_file, list(ids))
    return objects_total


def write_mini_voc(cfg, root: str, images: int = 3,
                   size: Tuple[int, int] = (96, 128),
                   seed: int = 0) -> Dict[str, dict]:
    """Write ``images`` images for every image set the config's datasets
    read, under ``root`` in place of their ``data_root``.

    Returns:
        dict: per dotted dataset key, ``data_root`` (= ``root``), the image
        set file, its images and objects.
    """
    rng = np.random.default_rng(seed)
    written: Dict[Tuple[str, str], dict] = {}
    out = {}
    for key, ds in voc_datasets(cfg):
        sub = (ds.get('data_prefix') or {}).get('sub_data_root', '') or ''
        folder = osp.join(root, sub)
        where = (folder, ds['ann_file'])  # one image set, written once
        if where not in written:
            first = sum(len(v['ids']) for v in written.values())
            ids = [f'{first + i:06d}' for i in range(images)]
            n_obj = write_voc_split(folder, osp.join(root, ds['ann_file']),
                                    dataset_classes(ds),
                                    ds.get('img_suffix', '.jpg'), ids, size,
                                    rng)
            written[where] = dict(ids=ids, objects=n_obj)
        out[key] = dict(data_root=root, ann_file=ds['ann_file'],
                        images=images, objects=written[where]['objects'])
    return out
