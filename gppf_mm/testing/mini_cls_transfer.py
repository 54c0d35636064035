# Copyright (c) gppf_mm contributors. All rights reserved.
"""Tiny copies, in the real on-disk formats, of the classification-transfer
datasets, readable by MMPretrain's own dataset classes.

Each writer lays out a handful of small class-dependent images (coloured
stripes whose hue and orientation depend on the class, plus noise) exactly
as the original download does, so that the unmodified MMPretrain class reads
it with ``data_root`` and ``split`` as in its docstring. Labels are valid
indices into the class's fixed category list. Layouts (``root`` is the
``data_root``)::

    imagenet         train/<wnid>/<wnid>_<n>.JPEG,
                     val/ILSVRC2012_val_<8d>.JPEG,
                     test/ILSVRC2012_test_<8d>.JPEG (no labels),
                     meta/train.txt ("<wnid>/<file> <label>"),
                     meta/val.txt ("<file> <label>")
    food101          images/<class>/<id>.jpg, meta/{train,test}.txt
                     ("<class>/<id>"), meta/{train,test}.json,
                     meta/classes.txt, meta/labels.txt
    cifar10          cifar-10-batches-py/data_batch_1..5, test_batch (pickles
                     with data uint8 (N, 3072) RGB planes, labels, filenames,
                     batch_label), batches.meta (label_names, num_vis, ...)
    cifar100         cifar-100-python/train, test (data, fine_labels,
                     coarse_labels, filenames, batch_label), meta
                     (fine_label_names, coarse_label_names)
    sun397           SUN397/<l>/<class>[/<sub>]/sun_<16 letters>.jpg,
                     Partitions/ClassName.txt ("/<l>/<class>[/<sub>]"),
                     Partitions/{Training,Testing}_01.txt ("/<l>/.../x.jpg")
    stanford_cars    car_ims/<6d>.jpg, cars_annos.mat (1xN struct array
                     annotations: relative_im_path, bbox_x1..bbox_y2, class
                     1-based, test 0/1; cell array class_names)
    fgvc_aircraft    data/images/<7d>.jpg, data/variants.txt,
                     data/images_variant_{train,val,trainval,test}.txt
                     ("<7d> <variant name>")
    dtd              images/<class>/<class>_<4d>.jpg, imdb/imdb.mat (struct
                     images: id, name "<class>/<file>", class 1-based,
                     set 1 train / 2 val / 3 test; struct meta: sets,
                     classes), labels/{train,val,test}1.txt,
                     labels/labels_joint_anno.txt
    oxford_iiit_pet  images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt
                     and list.txt ("<name> <class id> <species> <breed id>",
                     1-based; capitalised breeds are cats)
    caltech101       101_ObjectCategories/<class>/image_<4d>.jpg,
                     meta/{train,test}.txt ("<class>/<file> <label>")
    flowers102       jpg/image_<5d>.jpg, imagelabels.mat (labels 1x N uint8,
                     1-based), setid.mat (trnid, valid, tstid: 1-based
                     image ids, uint16)

MAT files are version 5 files written with integer classes, which is how
``mat4py`` (used by MMPretrain) returns integers, as it does for the
originals. They carry a fixed header text, JSON has sorted keys and images a
fixed encoder setting, so the bytes depend only on the seed.

MMPretrain's ``CIFAR10``/``CIFAR100`` check the md5 of the original files,
which a faithful mini copy cannot match; ``gppf_mm.testing.mini_cls``
provides ``MiniCIFAR10``/``MiniCIFAR100`` that only drop those pins. The
``reader`` entry of :data:`MINI_CLS_DATASETS` names the class to build.
"""
import io
import os
import os.path as osp
import pickle
import zlib
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import scipy.io
from mmpretrain.datasets.categories import (
    CALTECH101_CATEGORIES,
    CIFAR10_CATEGORIES,
    CIFAR100_CATEGORIES,
    DTD_CATEGORIES,
    FGVCAIRCRAFT_CATEGORIES,
    FOOD101_CATEGORIES,
    IMAGENET_CATEGORIES,
    STANFORDCARS_CATEGORIES,
    SUN397_CATEGORIES,
    OxfordIIITPet_CATEGORIES,
)

from gppf_mm.datasets.generation.formats import (
    dump_json,
    write_bytes,
    write_jpeg,
    write_lines,
)

IMG_SIZE = (48, 56)  # (h, w) of the file-based images
CIFAR_SIZE = (32, 32)
CIFAR_TRAIN_BATCHES = 5

MINI_CLS_DATASETS: Dict[str, dict] = {
    'imagenet': dict(type='ImageNet', splits=('train', 'val', 'test')),
    'food101': dict(type='Food101', splits=('train', 'test')),
    'cifar10': dict(type='CIFAR10', splits=('train', 'test')),
    'cifar100': dict(type='CIFAR100', splits=('train', 'test')),
    'sun397': dict(type='SUN397', splits=('train', 'test')),
    'stanford_cars': dict(type='StanfordCars', splits=('train', 'test')),
    'fgvc_aircraft':
    dict(type='FGVCAircraft', splits=('train', 'val', 'trainval', 'test')),
    'dtd': dict(type='DTD', splits=('train', 'val', 'trainval', 'test')),
    'oxford_iiit_pet':
    dict(type='OxfordIIITPet', splits=('trainval', 'test')),
    'caltech101': dict(type='Caltech101', splits=('train', 'test')),
    'flowers102':
    dict(type='Flowers102', splits=('train', 'val', 'trainval', 'test')),
}
"""Short key -> ``type`` (the MMPretrain class), ``splits`` (those the class
accepts) and ``reader`` (the registered class that reads the mini copy: the
same class, except for CIFAR, see the module docstring)."""
for _key, _entry in MINI_CLS_DATASETS.items():
    _entry['reader'] = ('Mini' + _entry['type']
                        if _key.startswith('cifar') else _entry['type'])

# (index in IMAGENET_CATEGORIES, WordNet id) of a few ImageNet-1k classes;
# the label of a class is the rank of its wnid among the 1000 sorted ones.
IMAGENET_WNIDS: Tuple[Tuple[int, str], ...] = (
    (0, 'n01440764'), (1, 'n01443537'), (2, 'n01484850'), (3, 'n01491361'),
    (4, 'n01494475'), (151, 'n02085620'), (207, 'n02099601'),
    (281, 'n02123045'), (285, 'n02124075'), (340, 'n02391049'),
    (386, 'n02504458'), (409, 'n02708093'), (530, 'n03196217'),
    (817, 'n04285008'), (948, 'n07742313'), (954, 'n07753592'),
    (980, 'n09472597'), (999, 'n15075141'))

# CIFAR-100 superclasses (coarse labels, in the order of the real meta).
CIFAR100_SUPERCLASSES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('aquatic_mammals', ('beaver', 'dolphin', 'otter', 'seal', 'whale')),
    ('fish', ('aquarium_fish', 'flatfish', 'ray', 'shark', 'trout')),
    ('flowers', ('orchid', 'poppy', 'rose', 'sunflower', 'tulip')),
    ('food_containers', ('bottle', 'bowl', 'can', 'cup', 'plate')),
    ('fruit_and_vegetables', ('apple', 'mushroom', 'orange', 'pear',
                              'sweet_pepper')),
    ('household_electrical_devices', ('clock', 'keyboard', 'lamp',
                                      'telephone', 'television')),
    ('household_furniture', ('bed', 'chair', 'couch', 'table', 'wardrobe')),
    ('insects', ('bee', 'beetle', 'butterfly', 'caterpillar', 'cockroach')),
    ('large_carnivores', ('bear', 'leopard', 'lion', 'tiger', 'wolf')),
    ('large_man-made_outdoor_things', ('bridge', 'castle', 'house', 'road',
                                       'skyscraper')),
    ('large_natural_outdoor_scenes', ('cloud', 'forest', 'mountain', 'plain',
                                      'sea')),
    ('large_omnivores_and_herbivores', ('camel', 'cattle', 'chimpanzee',
                                        'elephant', 'kangaroo')),
    ('medium_mammals', ('fox', 'porcupine', 'possum', 'raccoon', 'skunk')),
    ('non-insect_invertebrates', ('crab', 'lobster', 'snail', 'spider',
                                  'worm')),
    ('people', ('baby', 'boy', 'girl', 'man', 'woman')),
    ('reptiles', ('crocodile', 'dinosaur', 'lizard', 'snake', 'turtle')),
    ('small_mammals', ('hamster', 'mouse', 'rabbit', 'shrew', 'squirrel')),
    ('trees', ('maple_tree', 'oak_tree', 'palm_tree', 'pine_tree',
               'willow_tree')),
    ('vehicles_1', ('bicycle', 'bus', 'motorcycle', 'pickup_truck',
                    'train')),
    ('vehicles_2', ('lawn_mower', 'rocket', 'streetcar', 'tank', 'tractor')),
)

# Last words of SUN397 class names that are a sub-folder in the real tree
# (e.g. /a/apartment_building/outdoor); the reader joins them with '_'.
SUN397_SUBFOLDERS = ('indoor', 'outdoor', 'interior', 'exterior', 'public',
                     'home', 'natural', 'urban', 'vehicle', 'cultivated',
                     'wild', 'platform', 'broadleaf', 'needleleaf')

MAT_HEADER = b'MATLAB 5.0 MAT-file, Platform: posix, Created by: gppf_mm'
FLOWERS102_CLASSES = 102

# ---------------------------------------------------------------- helpers


def _categories(key: str) -> Sequence[str]:
    return {
        'imagenet': IMAGENET_CATEGORIES,
        'food101': FOOD101_CATEGORIES,
        'cifar10': CIFAR10_CATEGORIES,
        'cifar100': CIFAR100_CATEGORIES,
        'sun397': SUN397_CATEGORIES,
        'stanford_cars': STANFORDCARS_CATEGORIES,
        'fgvc_aircraft': FGVCAIRCRAFT_CATEGORIES,
        'dtd': DTD_CATEGORIES,
        'oxford_iiit_pet': OxfordIIITPet_CATEGORIES,
        'caltech101': CALTECH101_CATEGORIES,
        'flowers102': tuple(str(i) for i in range(1, FLOWERS102_CLASSES + 1)),
    }[key]


def pick_classes(key: str, num_classes: int) -> List[int]:
    """0-based labels used by the mini copy: spread over the class list."""
    if key == 'imagenet':
        pool = [idx for idx, _ in IMAGENET_WNIDS]
    else:
        pool = list(range(len(_categories(key))))
    if not 2 <= num_classes <= len(pool):
        raise ValueError(f'num_classes of {key} must be in [2, {len(pool)}]'
                         f', got {num_classes}')
    return [
        pool[(2 * k + 1) * len(pool) // (2 * num_classes)]
        for k in range(num_classes)
    ]


class _Images:
    """Class-dependent images, each from its own seeded generator."""

    def __init__(self, key: str, seed: int, labels: Sequence[int],
                 size: Tuple[int, int]):
        self.base = (seed, zlib.crc32(key.encode()))
        self.pos = {label: k for k, label in enumerate(labels)}
        self.size = size
        self.count = 0

    def __call__(self, label: int) -> np.ndarray:
        """A BGR image of class ``label``."""
        rng = np.random.default_rng([*self.base, self.count])
        self.count += 1
        k, n = self.pos[label], len(self.pos)
        h, w = self.size
        hsv = np.uint8([[[180 * k // n, 170, 210]]])
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
        theta = np.pi * k / n
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        period = 6.0 + 2.0 * (k % 3)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi / period *
                         (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        img = base * (0.7 + 0.3 * stripes[..., None])
        img = img + rng.normal(0, 10, (h, w, 3))
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _rng(key: str, seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(
        [seed, zlib.crc32(key.encode()),
         zlib.crc32(purpose.encode())])


def _savemat(path: str, mdict: dict) -> None:
    """A MAT v5 file whose header text does not carry the time."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, mdict, format='5', oned_as='row')
    data = bytearray(buf.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b' ')
    write_bytes(path, bytes(data))


def _row(values, dtype) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(1, -1)


def _cell(strings: Sequence[str]) -> np.ndarray:
    arr = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        arr[0, i] = s
    return arr


def _items(labels: Sequence[int], per_class: int) -> List[int]:
    """The labels of one split, grouped by class."""
    return [label for label in labels for _ in range(per_class)]


def _numbers(rng, labels, count, high):
    """Per class, an iterator over ``count`` sorted distinct file numbers
    (at least 1, below ``high`` unless ``count`` is large)."""
    pool = np.arange(1, max(high, 10 * count))
    return {
        label: iter(int(i) for i in np.sort(rng.choice(pool, count, False)))
        for label in labels
    }


# ---------------------------------------------------------------- writers
# Each writer returns {split: [gt_label of each sample in reader order]}.


def _imagenet(root, labels, per_class, images, rng):
    wnid = dict(IMAGENET_WNIDS)
    train = []
    for label in labels:
        for i in range(per_class):
            name = f'{wnid[label]}/{wnid[label]}_{i + 1}.JPEG'
            write_jpeg(osp.join(root, 'train', name), images(label))
            train.append((name, label))
    val_labels = [int(x) for x in rng.permutation(_items(labels, per_class))]
    val = []
    for j, label in enumerate(val_labels):
        name = f'ILSVRC2012_val_{j + 1:08d}.JPEG'
        write_jpeg(osp.join(root, 'val', name), images(label))
        val.append((name, label))
    test_labels = rng.permutation(_items(labels, per_class))
    for j, label in enumerate(test_labels):
        name = f'ILSVRC2012_test_{j + 1:08d}.JPEG'
        write_jpeg(osp.join(root, 'test', name), images(int(label)))
    for split, pairs in (('train', train), ('val', val)):
        write_lines(osp.join(root, 'meta', f'{split}.txt'),
                    [f'{name} {label}' for name, label in pairs])
    return {
        'train': [label for _, label in train],
        'val': [label for _, label in val],
        'test': [None] * len(test_labels)
    }


def _food101(root, labels, per_class, images, rng):
    classes = FOOD101_CATEGORIES
    ids = rng.choice(np.arange(100000, 4000000), 2 * per_class * len(labels),
                     replace=False)
    ids = iter(int(i) for i in ids)
    out = {}
    for split in ('train', 'test'):
        lines, per = [], {c: [] for c in classes}
        for label in labels:
            for _ in range(per_class):
                rel = f'{classes[label]}/{next(ids)}'
                write_jpeg(osp.join(root, 'images', rel + '.jpg'),
                            images(label))
                lines.append(rel)
                per[classes[label]].append(rel)
        write_lines(osp.join(root, 'meta', f'{split}.txt'), lines)
        dump_json(osp.join(root, 'meta', f'{split}.json'), per)
        out[split] = _items(labels, per_class)
    write_lines(osp.join(root, 'meta', 'classes.txt'), list(classes))
    write_lines(
        osp.join(root, 'meta', 'labels.txt'),
        [c.replace('_', ' ').capitalize() for c in classes])
    return out


def _cifar_rgb(images, label):
    return cv2.cvtColor(images(label), cv2.COLOR_BGR2RGB)


def _cifar_rows(imgs: List[np.ndarray]) -> np.ndarray:
    """(N, 3072) uint8: the R, G, B planes of each 32x32 image."""
    if not imgs:
        return np.zeros((0, 3 * CIFAR_SIZE[0] * CIFAR_SIZE[1]), np.uint8)
    arr = np.stack(imgs).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arr.reshape(len(imgs), -1), dtype=np.uint8)


def _dump_pickle(path: str, obj) -> None:
    write_bytes(path, pickle.dumps(obj, protocol=2))


def _cifar10(root, labels, per_class, images, rng):
    folder = osp.join(root, 'cifar-10-batches-py')
    names = CIFAR10_CATEGORIES
    train = [int(x) for x in rng.permutation(_items(labels, per_class))]
    test = [int(x) for x in rng.permutation(_items(labels, per_class))]
    batches = np.array_split(np.arange(len(train)), CIFAR_TRAIN_BATCHES)
    serial = iter(range(1, 10**6))

    def batch(batch_labels, batch_label):
        imgs = [_cifar_rgb(images, label) for label in batch_labels]
        return {
            'batch_label': batch_label,
            'labels': list(batch_labels),
            'data': _cifar_rows(imgs),
            'filenames': [f'{names[label]}_s_{next(serial):06d}.png'
                          for label in batch_labels],
        }

    for b, idx in enumerate(batches):
        _dump_pickle(
            osp.join(folder, f'data_batch_{b + 1}'),
            batch([train[i] for i in idx],
                  f'training batch {b + 1} of {CIFAR_TRAIN_BATCHES}'))
    _dump_pickle(osp.join(folder, 'test_batch'),
                 batch(test, 'testing batch 1 of 1'))
    _dump_pickle(
        osp.join(folder, 'batches.meta'), {
            'num_cases_per_batch': max(len(i) for i in batches),
            'label_names': list(names),
            'num_vis': 3 * CIFAR_SIZE[0] * CIFAR_SIZE[1],
        })
    return {'train': train, 'test': test}


def _cifar100(root, labels, per_class, images, rng):
    folder = osp.join(root, 'cifar-100-python')
    names = CIFAR100_CATEGORIES
    coarse_names = [c for c, _ in CIFAR100_SUPERCLASSES]
    coarse_of = {
        fine: i
        for i, (_, fines) in enumerate(CIFAR100_SUPERCLASSES)
        for fine in fines
    }
    serial = iter(range(1, 10**6))
    out = {}
    for split, batch_label in (('train', 'training batch 1 of 1'),
                               ('test', 'testing batch 1 of 1')):
        split_labels = [
            int(x) for x in rng.permutation(_items(labels, per_class))
        ]
        imgs = [_cifar_rgb(images, label) for label in split_labels]
        _dump_pickle(
            osp.join(folder, split), {
                'filenames': [f'{names[label]}_s_{next(serial):06d}.png'
                              for label in split_labels],
                'batch_label': batch_label,
                'fine_labels': split_labels,
                'coarse_labels': [coarse_of[names[label]]
                                  for label in split_labels],
                'data': _cifar_rows(imgs),
            })
        out[split] = split_labels
    _dump_pickle(osp.join(folder, 'meta'), {
        'fine_label_names': list(names),
        'coarse_label_names': coarse_names
    })
    return out


def sun397_folder(name: str) -> str:
    """The folder of a SUN397 class as in ``Partitions/ClassName.txt``."""
    head, _, tail = name.rpartition('_')
    rel = f'{head}/{tail}' if head and tail in SUN397_SUBFOLDERS else name
    return f'/{name[0]}/{rel}'


def _sun397(root, labels, per_class, images, rng):
    classes = SUN397_CATEGORIES
    letters = np.array(list('abcdefghijklmnopqrstuvwxyz'))
    out, used = {}, set()
    for split, fname in (('train', 'Training_01.txt'),
                         ('test', 'Testing_01.txt')):
        lines = []
        for label in labels:
            for _ in range(per_class):
                while True:
                    stem = 'sun_' + ''.join(rng.choice(letters, 16))
                    if stem not in used:
                        used.add(stem)
                        break
                rel = f'{sun397_folder(classes[label])}/{stem}.jpg'
                write_jpeg(osp.join(root, 'SUN397', rel[1:]), images(label))
                lines.append(rel)
        write_lines(osp.join(root, 'Partitions', fname), lines)
        out[split] = _items(labels, per_class)
    write_lines(
        osp.join(root, 'Partitions', 'ClassName.txt'),
        [sun397_folder(c) for c in classes])
    return out


def _stanford_cars(root, labels, per_class, images, rng):
    h, w = IMG_SIZE
    entries = [(label, 0) for label in _items(labels, per_class)]
    entries += [(label, 1) for label in _items(labels, per_class)]
    order = rng.permutation(len(entries))
    entries = [entries[i] for i in order]  # entry n has image id n + 1
    fields = ('relative_im_path', 'bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2',
              'class', 'test')
    ann = np.empty((1, len(entries)), dtype=[(f, object) for f in fields])
    for n, (label, test) in enumerate(entries):
        rel = f'car_ims/{n + 1:06d}.jpg'
        write_jpeg(osp.join(root, rel), images(label))
        ann[0, n] = (np.array(rel), np.array([[1]], np.uint16),
                     np.array([[1]], np.uint16), np.array([[w]], np.uint16),
                     np.array([[h]], np.uint16),
                     np.array([[label + 1]], np.uint8),
                     np.array([[test]], np.uint8))
    _savemat(
        osp.join(root, 'cars_annos.mat'), {
            'annotations': ann,
            'class_names': _cell(STANFORDCARS_CATEGORIES)
        })
    return {
        'train': [label for label, test in entries if not test],
        'test': [label for label, test in entries if test]
    }


def _fgvc_aircraft(root, labels, per_class, images, rng):
    classes = FGVCAIRCRAFT_CATEGORIES
    data = osp.join(root, 'data')
    n_total = 3 * per_class * len(labels)
    ids = iter(int(i) for i in rng.choice(
        np.arange(1, 2300000), n_total, replace=False))
    lines = {}
    for split in ('train', 'val', 'test'):
        lines[split] = []
        for label in labels:
            for _ in range(per_class):
                img_id = f'{next(ids):07d}'
                write_jpeg(osp.join(data, 'images', img_id + '.jpg'),
                            images(label))
                lines[split].append(f'{img_id} {classes[label]}')
    lines['trainval'] = lines['train'] + lines['val']
    out = {}
    for split, split_lines in lines.items():
        split_lines = sorted(split_lines)  # by image id, as the originals
        write_lines(osp.join(data, f'images_variant_{split}.txt'),
                    split_lines)
        out[split] = [
            classes.index(line.split(' ', 1)[1]) for line in split_lines
        ]
    write_lines(osp.join(data, 'variants.txt'), list(classes))
    return out


def _dtd(root, labels, per_class, images, rng):
    classes = DTD_CATEGORIES
    names, cls, sets = [], [], []
    numbers = _numbers(rng, labels, 3 * per_class, 1000)
    split_names = ('train', 'val', 'test')
    for set_id, split in enumerate(split_names, 1):
        for label in labels:
            for _ in range(per_class):
                name = (f'{classes[label]}/{classes[label]}_'
                        f'{next(numbers[label]):04d}.jpg')
                write_jpeg(osp.join(root, 'images', name), images(label))
                names.append(name)
                cls.append(label + 1)
                sets.append(set_id)
    order = sorted(range(len(names)), key=lambda i: names[i])
    names = [names[i] for i in order]
    cls = [cls[i] for i in order]
    sets = [sets[i] for i in order]
    _savemat(
        osp.join(root, 'imdb', 'imdb.mat'), {
            'images': {
                'id': _row(range(1, len(names) + 1), np.uint16),
                'name': _cell(names),
                'class': _row(cls, np.uint8),
                'set': _row(sets, np.uint8),
            },
            'meta': {
                'sets': _cell(split_names),
                'classes': _cell(classes),
            }
        })
    for set_id, split in enumerate(split_names, 1):
        write_lines(osp.join(root, 'labels', f'{split}1.txt'),
                    [n for n, s in zip(names, sets) if s == set_id])
    write_lines(osp.join(root, 'labels', 'labels_joint_anno.txt'),
                [f'{n} {n.split("/")[0]}' for n in names])
    out = {
        split: [c - 1 for c, s in zip(cls, sets) if s == set_id]
        for set_id, split in enumerate(split_names, 1)
    }
    out['trainval'] = [c - 1 for c, s in zip(cls, sets) if s in (1, 2)]
    return out


def _oxford_iiit_pet(root, labels, per_class, images, rng):
    classes = OxfordIIITPet_CATEGORIES
    cats = [c for c in classes if c[0].isupper()]
    dogs = [c for c in classes if not c[0].isupper()]

    def fields(label):
        breed = classes[label]
        if breed in cats:
            return label + 1, 1, cats.index(breed) + 1
        return label + 1, 2, dogs.index(breed) + 1

    numbers = _numbers(rng, labels, 2 * per_class, 200)
    lines, out = {}, {}
    for split in ('trainval', 'test'):
        lines[split] = []
        for label in labels:
            for _ in range(per_class):
                stem = f'{classes[label]}_{next(numbers[label])}'
                write_jpeg(osp.join(root, 'images', stem + '.jpg'),
                            images(label))
                class_id, species, breed_id = fields(label)
                lines[split].append(f'{stem} {class_id} {species} {breed_id}')
        write_lines(osp.join(root, 'annotations', f'{split}.txt'),
                    lines[split])
        out[split] = _items(labels, per_class)
    header = [
        '#Image CLASS-ID SPECIES BREED ID', '#ID: 1:37 Class ids',
        '#SPECIES: 1:Cat 2:Dog', '#BREED ID: 1-25:Cat 1:12:Dog',
        '#All images with 1st letter as captial are cat images',
        '#images with small first letter are dog images'
    ]
    write_lines(osp.join(root, 'annotations', 'list.txt'),
                header + sorted(lines['trainval'] + lines['test']))
    return out


def _caltech101(root, labels, per_class, images, rng):
    classes = CALTECH101_CATEGORIES
    out = {}
    numbers = {label: iter(range(1, 2 * per_class + 1)) for label in labels}
    for split in ('train', 'test'):
        lines = []
        for label in labels:
            for _ in range(per_class):
                rel = f'{classes[label]}/image_{next(numbers[label]):04d}.jpg'
                write_jpeg(osp.join(root, '101_ObjectCategories', rel),
                            images(label))
                lines.append(f'{rel} {label}')
        write_lines(osp.join(root, 'meta', f'{split}.txt'), lines)
        out[split] = _items(labels, per_class)
    return out


def _flowers102(root, labels, per_class, images, rng):
    split_names = ('train', 'val', 'test')
    entries = [(split, label) for split in split_names
               for label in _items(labels, per_class)]
    ids = rng.permutation(len(entries)) + 1  # entry n has image id ids[n]
    label_of = np.zeros(len(entries), np.uint8)
    for (_, label), img_id in zip(entries, ids):
        label_of[img_id - 1] = label + 1
    for img_id in range(1, len(entries) + 1):
        write_jpeg(osp.join(root, 'jpg', f'image_{img_id:05d}.jpg'),
                    images(int(label_of[img_id - 1]) - 1))
    split_ids = {
        split: [int(i) for (s, _), i in zip(entries, ids) if s == split]
        for split in split_names
    }
    _savemat(osp.join(root, 'imagelabels.mat'), {'labels': _row(label_of,
                                                                np.uint8)})
    _savemat(
        osp.join(root, 'setid.mat'), {
            'trnid': _row(split_ids['train'], np.uint16),
            'valid': _row(split_ids['val'], np.uint16),
            'tstid': _row(split_ids['test'], np.uint16),
        })
    out = {
        split: [int(label_of[i - 1]) - 1 for i in split_ids[split]]
        for split in split_names
    }
    out['trainval'] = out['train'] + out['val']
    return out


_WRITERS = {
    'imagenet': _imagenet,
    'food101': _food101,
    'cifar10': _cifar10,
    'cifar100': _cifar100,
    'sun397': _sun397,
    'stanford_cars': _stanford_cars,
    'fgvc_aircraft': _fgvc_aircraft,
    'dtd': _dtd,
    'oxford_iiit_pet': _oxford_iiit_pet,
    'caltech101': _caltech101,
    'flowers102': _flowers102,
}


def write_mini_cls_dataset(key: str,
                           root: str,
                           per_class: int = 2,
                           num_classes: int = 3,
                           seed: int = 0) -> dict:
    """Write the mini copy of dataset ``key`` under ``root``.

    Args:
        key: a key of :data:`MINI_CLS_DATASETS`.
        root: the ``data_root`` to give the MMPretrain class (best empty:
            e.g. ImageNet's test split lists whatever is under ``test/``).
        per_class: images per class in each disjoint split (train/val/test;
            trainval is train plus val). CIFAR-10 spreads its training
            images over the five batch files.
        num_classes: classes used, spread over the class list (for
            ImageNet over the classes of :data:`IMAGENET_WNIDS`).
        seed: the bytes written depend only on this (and the arguments).

    Returns:
        dict: ``type`` and ``reader`` (see :data:`MINI_CLS_DATASETS`),
        ``data_root``, ``splits`` ({split: number of samples}), ``labels``
        ({split: gt label of each sample, in the order the class reads
        them; None for the unlabelled ImageNet test split}), ``classes``
        (number of classes used), ``class_indices`` (their 0-based labels),
        ``num_categories`` (length of the class's category list) and
        ``img_shape`` (h, w, 3).
    """
    if key not in MINI_CLS_DATASETS:
        raise KeyError(f'unknown dataset {key!r}, expected one of '
                       f'{sorted(MINI_CLS_DATASETS)}')
    if per_class < 1:
        raise ValueError(f'per_class must be >= 1, got {per_class}')
    labels = pick_classes(key, num_classes)
    size = CIFAR_SIZE if key.startswith('cifar') else IMG_SIZE
    images = _Images(key, seed, labels, size)
    os.makedirs(root, exist_ok=True)
    split_labels = _WRITERS[key](root, labels, per_class, images,
                                 _rng(key, seed, 'layout'))
    entry = MINI_CLS_DATASETS[key]
    assert set(split_labels) == set(entry['splits'])
    return {
        'type': entry['type'],
        'reader': entry['reader'],
        'data_root': root,
        'splits': {s: len(split_labels[s])
                   for s in entry['splits']},
        'labels': {
            s: (None if None in split_labels[s] else list(split_labels[s]))
            for s in entry['splits']
        },
        'classes': len(labels),
        'class_indices': sorted(labels),
        'num_categories': len(_categories(key)),
        'img_shape': (*size, 3),
    }
