# Copyright (c) gppf_mm contributors. All rights reserved.
"""The mini classification-transfer datasets, read by MMPretrain's own
dataset classes: sample counts, labels, split disjointness, image shapes and
byte determinism."""
import hashlib
import os.path as osp
import pickle
from collections import Counter

import mat4py
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.registry import DATASETS
from test_generation import tree_digest

from gppf_mm.testing.mini_cls import MiniCIFAR10, MiniCIFAR100
from gppf_mm.testing.mini_cls_transfer import (
    CIFAR100_SUPERCLASSES,
    MINI_CLS_DATASETS,
    write_mini_cls_dataset,
)

CASES = [(key, split) for key, entry in MINI_CLS_DATASETS.items()
         for split in entry['splits']]
# Splits that the real datasets keep disjoint; trainval is train + val.
DISJOINT = {
    'imagenet': ('train', 'val', 'test'),
    'fgvc_aircraft': ('train', 'val', 'test'),
    'dtd': ('train', 'val', 'test'),
    'flowers102': ('train', 'val', 'test'),
    'oxford_iiit_pet': ('trainval', 'test'),
}


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    base = tmp_path_factory.mktemp('mini_cls')
    return {
        key: write_mini_cls_dataset(key, str(base / key))
        for key in MINI_CLS_DATASETS
    }


def build(info, split, pipeline=None):
    cfg = dict(type=info['reader'], data_root=info['data_root'], split=split)
    if info['type'].startswith('CIFAR'):
        cfg['download'] = False
        cfg['pipeline'] = pipeline or []
    else:
        cfg['pipeline'] = pipeline or [dict(type='LoadImageFromFile')]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(cfg)


def sample_ids(dataset):
    """Image path of each sample, or the pixel digest for CIFAR."""
    out = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        out.append(info['img_path'] if 'img_path' in info else hashlib.sha1(
            np.ascontiguousarray(info['img']).tobytes()).hexdigest())
    return out


def test_registry_entries():
    assert len(MINI_CLS_DATASETS) == 11
    for key, entry in MINI_CLS_DATASETS.items():
        assert DATASETS.get(entry['type']) is not None, key
        assert DATASETS.get(entry['reader']) is not None, key
    assert MINI_CLS_DATASETS['cifar10']['reader'] == 'MiniCIFAR10'
    assert MINI_CLS_DATASETS['dtd']['reader'] == 'DTD'


@pytest.mark.parametrize('key,split', CASES)
def test_upstream_class_reads_split(written, key, split):
    info = written[key]
    dataset = build(info, split)
    assert type(dataset).__name__ == info['reader']
    assert len(dataset) == info['splits'][split] > 0
    expected = info['labels'][split]
    if expected is None:  # ImageNet test: no labels
        assert key == 'imagenet' and split == 'test'
        assert 'gt_label' not in dataset.get_data_info(0)
    else:
        labels = [int(x) for x in dataset.get_gt_labels()]
        assert labels == expected
        assert set(labels) == set(info['class_indices'])
        union = split == 'trainval' and 'train' in info['splits']
        per_class = 4 if union else 2
        assert set(Counter(labels).values()) == {per_class}
        if dataset.CLASSES is None:  # Flowers102 has no category names
            assert key == 'flowers102'
        else:
            assert len(dataset.CLASSES) == info['num_categories']
        assert 0 <= min(labels) and max(labels) < info['num_categories']
    assert dataset[0]['img'].shape == tuple(info['img_shape'])
    assert dataset[0]['img'].dtype == np.uint8


def test_split_sizes(written):
    for key, info in written.items():
        n = info['splits']
        assert info['classes'] == 3 == len(info['class_indices'])
        assert all(count == 2 * 3 for split, count in n.items()
                   if split != 'trainval'), key
        if 'trainval' in n and 'train' in n:
            assert n['trainval'] == n['train'] + n['val']
            assert Counter(info['labels']['trainval']) == Counter(
                info['labels']['train'] + info['labels']['val'])


@pytest.mark.parametrize('key', sorted(MINI_CLS_DATASETS))
def test_splits_disjoint(written, key):
    info = written[key]
    ids = {split: sample_ids(build(info, split)) for split in info['splits']}
    for split, split_ids in ids.items():
        assert len(set(split_ids)) == len(split_ids), split
    disjoint = DISJOINT.get(key, ('train', 'test'))
    for i, a in enumerate(disjoint):
        for b in disjoint[i + 1:]:
            assert not set(ids[a]) & set(ids[b]), (a, b)
    if 'trainval' in ids and 'train' in ids:
        assert set(ids['trainval']) == set(ids['train']) | set(ids['val'])


@pytest.mark.parametrize('key', sorted(MINI_CLS_DATASETS))
def test_packed_labels_are_integers(written, key):
    """The full upstream pipeline: labels read from MAT files or pickles
    must be integers for PackInputs."""
    info = written[key]
    split = MINI_CLS_DATASETS[key]['splits'][0]
    pipeline = [dict(type='PackInputs')]
    if not key.startswith('cifar'):
        pipeline.insert(0, dict(type='LoadImageFromFile'))
    packed = build(info, split, pipeline)[0]
    h, w, _ = info['img_shape']
    assert tuple(packed['inputs'].shape) == (3, h, w)
    assert packed['data_samples'].gt_label.tolist() == [
        info['labels'][split][0]
    ]


def test_mat_files_layout(written):
    root = written['flowers102']['data_root']
    labels = mat4py.loadmat(osp.join(root, 'imagelabels.mat'))['labels']
    setid = mat4py.loadmat(osp.join(root, 'setid.mat'))
    ids = setid['trnid'] + setid['valid'] + setid['tstid']
    assert sorted(ids) == list(range(1, len(labels) + 1))  # 1-based ids
    assert min(labels) >= 1 and max(labels) <= 102  # 1-based labels
    assert all(isinstance(x, int) for x in labels + ids)
    for i in ids:
        assert osp.isfile(osp.join(root, 'jpg', f'image_{i:05d}.jpg'))

    imdb = mat4py.loadmat(
        osp.join(written['dtd']['data_root'], 'imdb', 'imdb.mat'))
    assert imdb['images']['id'] == list(range(1, 19))
    assert set(imdb['images']['set']) == {1, 2, 3}
    assert imdb['meta']['sets'] == ['train', 'val', 'test']
    assert len(imdb['meta']['classes']) == 47
    for name, cls in zip(imdb['images']['name'], imdb['images']['class']):
        assert name.split('/')[0] == imdb['meta']['classes'][cls - 1]

    cars = mat4py.loadmat(
        osp.join(written['stanford_cars']['data_root'], 'cars_annos.mat'))
    ann = cars['annotations']
    assert ann['relative_im_path'][0] == 'car_ims/000001.jpg'
    assert set(ann['test']) == {0, 1}
    assert len(cars['class_names']) == 196


def test_cifar_pickles_and_upstream_md5(written):
    root = written['cifar100']['data_root']
    with open(osp.join(root, 'cifar-100-python', 'train'), 'rb') as f:
        entry = pickle.load(f, encoding='latin1')
    assert entry['data'].dtype == np.uint8
    assert entry['data'].shape == (6, 3072)
    coarse = {f: i for i, (_, fs) in enumerate(CIFAR100_SUPERCLASSES)
              for f in fs}
    assert set(coarse) == set(CIFAR100.METAINFO['classes'])
    names = CIFAR100.METAINFO['classes']
    assert entry['coarse_labels'] == [
        coarse[names[i]] for i in entry['fine_labels']
    ]
    with open(osp.join(root, 'cifar-100-python', 'meta'), 'rb') as f:
        meta = pickle.load(f, encoding='latin1')
    assert meta['fine_label_names'] == list(names)
    assert len(meta['coarse_label_names']) == 20

    # The readers differ from upstream only by the md5 pins ...
    for mini, upstream in ((MiniCIFAR10, CIFAR10), (MiniCIFAR100, CIFAR100)):
        assert [n for n, _ in mini.train_list + mini.test_list] == [
            n for n, _ in upstream.train_list + upstream.test_list
        ]
        assert all(md5 is None
                   for _, md5 in mini.train_list + mini.test_list)
        assert mini.meta['md5'] is None
        assert mini.meta['filename'] == upstream.meta['filename']
        assert mini.load_data_list is upstream.load_data_list
    # ... which the upstream classes need to match the original files.
    for key, cls in (('cifar10', 'CIFAR10'), ('cifar100', 'CIFAR100')):
        with pytest.raises(RuntimeError, match='Cannot find'):
            DATASETS.build(
                dict(type=cls, data_root=written[key]['data_root'],
                     split='test', download=False))


def test_classes_learnable(written):
    """Nearest class mean on mean colour separates the classes."""
    info = written['flowers102']
    feats = {}
    for split in ('train', 'test'):
        dataset = build(info, split)
        feats[split] = (np.stack([
            dataset[i]['img'].reshape(-1, 3).mean(0)
            for i in range(len(dataset))
        ]), np.array(info['labels'][split]))
    x, y = feats['train']
    classes = sorted(set(y))
    means = np.stack([x[y == c].mean(0) for c in classes])
    xt, yt = feats['test']
    pred = np.array(classes)[((xt[:, None] - means[None])**2).sum(-1).argmin(
        1)]
    assert (pred == yt).all()


def test_bytes_deterministic(tmp_path):
    for key in ('flowers102', 'cifar10', 'dtd', 'imagenet'):
        a = write_mini_cls_dataset(key, str(tmp_path / 'a' / key), seed=3)
        b = write_mini_cls_dataset(key, str(tmp_path / 'b' / key), seed=3)
        c = write_mini_cls_dataset(key, str(tmp_path / 'c' / key), seed=4)
        da, db, dc = (tree_digest(x['data_root']) for x in (a, b, c))
        assert da == db and len(da) > 2, key
        assert da != dc, key
        assert a['splits'] == b['splits'] and a['labels'] == b['labels']


def test_bad_arguments(tmp_path):
    with pytest.raises(KeyError):
        write_mini_cls_dataset('mnist', str(tmp_path))
    with pytest.raises(ValueError):
        write_mini_cls_dataset('dtd', str(tmp_path), num_classes=1)
    with pytest.raises(ValueError):
        write_mini_cls_dataset('cifar10', str(tmp_path), num_classes=11)
    with pytest.raises(ValueError):
        write_mini_cls_dataset('food101', str(tmp_path), per_class=0)
