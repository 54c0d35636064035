# Copyright (c) gppf_mm contributors. All rights reserved.
"""The generated benchmark: determinism, its description, and loading every
task through the upstream dataset classes and pipelines."""
import hashlib
import json
import os
import os.path as osp
import shutil
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from pycocotools import mask as mask_utils

from gppf_mm.datasets.generation import (
    GENERATOR_VERSION,
    MARKER,
    TASKS,
    default_root,
    ensure_benchmark,
    generate_benchmark,
    mask_to_polygons,
    read_benchmark,
    split_counts,
)


def tree_digest(root: str) -> dict:
    """sha256 of every file, by path relative to ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return dict(sorted(out.items()))


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bench') / 'gppf_bench')
    desc = generate_benchmark(root, seed=0, scale='tiny')
    return root, desc


def build(scope: str, cfg: dict):
    """Build a dataset of an upstream library in that library's scope."""
    import importlib
    importlib.import_module(f'{scope}.datasets')
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        dataset = registry.build(cfg)
        return dataset, [dataset[i] for i in range(min(3, len(dataset)))]


# ------------------------------------------------------------ generation
def test_same_seed_same_bytes_other_seed_differs(bench, tmp_path):
    root, _ = bench
    again = str(tmp_path / 'again')
    generate_benchmark(again, seed=0, scale='tiny')
    reference = tree_digest(root)
    assert len(reference) > 300
    assert tree_digest(again) == reference
    other = str(tmp_path / 'seed1')
    generate_benchmark(other, seed=1, scale='tiny')
    digest1 = tree_digest(other)
    assert sorted(digest1) == sorted(reference)  # same layout
    images = [p for p in reference if p.endswith(('.png', '.jpg'))]
    changed = sum(digest1[p] != reference[p] for p in images)
    assert changed == len(images)
    with open(osp.join(other, MARKER)) as f:
        assert json.load(f)['seed'] == 1


def test_description_matches_files(bench):
    root, desc = bench
    assert read_benchmark(root) == desc
    assert (desc['version'], desc['seed'], desc['scale']) == (
        GENERATOR_VERSION, 0, 'tiny')
    assert sorted(desc['tasks']) == sorted(TASKS)
    kinds = sorted(t['kind'] for t in desc['tasks'].values())
    assert kinds == ['cls', 'cls', 'depth', 'det', 'det', 'seg', 'seg', 'voc']
    for name, task in desc['tasks'].items():
        spec = TASKS[name]
        assert task['path'] == name
        assert task['classes'] == list(spec['classes'])
        assert task['num_classes'] == len(spec['classes'])
        assert {s: v['images'] for s, v in task['splits'].items()} == \
            split_counts(spec, 'tiny')
    tasks = desc['tasks']
    assert tasks['street_det']['classes'] == ['car', 'person', 'sign']
    assert tasks['indoor_seg']['classes'][:2] == ['wall', 'floor']
    assert len(tasks['shapes_cls']['classes']) == 10
    assert tasks['street_det']['splits']['train']['images'] == 30
    assert tasks['shapes_cls']['splits']['train']['images'] == 150
    assert split_counts(TASKS['shapes_cls'], 'default') == dict(train=1500,
                                                                val=300)
    # the two detection domains and the two segmentation domains differ
    assert not set(tasks['street_det']['classes']) & set(
        tasks['aerial_det']['classes'])
    assert not set(tasks['indoor_seg']['classes']) & set(
        tasks['nature_seg']['classes'])


def test_polygons_rasterise_exactly():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = np.zeros((48, 48), np.uint8)
        cv2.ellipse(mask, (24, 24), (int(rng.integers(8, 20)),
                                     int(rng.integers(5, 20))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        cv2.circle(mask, (int(rng.integers(20, 28)), 24), 3, 0, -1)  # hole
        cv2.line(mask, (0, 0), (47, int(rng.integers(48))), 1, 1)
        polys = mask_to_polygons(mask)
        decoded = mask_utils.decode(mask_utils.merge(
            mask_utils.frPyObjects(polys, 48, 48)))
        assert np.array_equal(decoded, mask)


# ------------------------------------------------------------ upstream
@pytest.mark.parametrize('task', ['street_det', 'aerial_det'])
def test_coco_dataset(bench, task):
    root, desc = bench
    info = desc['tasks'][task]
    split = info['splits']['val']
    with open(osp.join(root, task, split['ann_file'])) as f:
        coco = json.load(f)
    assert len(coco['images']) == split['images'] == 6
    assert len(coco['annotations']) == split['instances'] > 6
    assert [c['name'] for c in coco['categories']] == info['classes']
    dataset, items = build('mmdet', dict(
        type='CocoDataset', data_root=osp.join(root, task),
        ann_file=split['ann_file'],
        data_prefix=dict(img=split['img_prefix']),
        metainfo=dict(classes=tuple(info['classes'])), test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs')
        ]))
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == tuple(info['classes'])
    for item in items:
        sample = item['data_samples']
        anns = [a for a in coco['annotations']
                if a['image_id'] == sample.img_id and not a['iscrowd']]
        assert len(anns) > 0
        assert tuple(item['inputs'].shape) == (3, 96, 96)
        gt = sample.gt_instances
        assert len(gt) == len(anns)
        assert gt.masks.masks.shape == (len(anns), 96, 96)
        boxes = np.array([[a['bbox'][0], a['bbox'][1],
                           a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns])
        np.testing.assert_allclose(gt.bboxes.numpy(), boxes)
        # visible masks: exact areas, no two objects share a pixel
        masks = gt.masks.masks.astype(np.int64)
        assert masks.sum((1, 2)).tolist() == [a['area'] for a in anns]
        assert masks.sum(0).max() == 1
        assert sorted(gt.labels.tolist()) == sorted(
            a['category_id'] - 1 for a in anns)


@pytest.mark.parametrize('task', ['indoor_seg', 'nature_seg'])
def test_seg_dataset(bench, task):
    root, desc = bench
    info = desc['tasks'][task]
    split = info['splits']['train']
    dataset, items = build('mmseg', dict(
        type='BaseSegDataset', data_root=osp.join(root, task),
        data_prefix=dict(img_path=split['img_dir'],
                         seg_map_path=split['ann_dir']),
        img_suffix=info['img_suffix'], seg_map_suffix=info['seg_map_suffix'],
        metainfo=dict(classes=tuple(info['classes'])),
        reduce_zero_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]))
    assert len(dataset) == split['images'] == 30
    assert dataset.metainfo['classes'] == tuple(info['classes'])
    allowed = set(range(len(info['classes']))) | {255}
    for item in items:
        assert tuple(item['inputs'].shape) == (3, 64, 64)
        seg = item['data_samples'].gt_sem_seg.data.numpy()
        assert seg.shape == (1, 64, 64)
        values = set(np.unique(seg).tolist())
        assert values <= allowed
        assert {0, 1} <= values  # the two top regions are always present
    # every class occurs in the split; some pixels are marked ignore
    assert min(split['class_pixels']) > 0
    assert split['ignore_pixels'] > 0


@pytest.mark.parametrize('task', ['shapes_cls', 'texture_cls'])
def test_custom_dataset(bench, task):
    root, desc = bench
    info = desc['tasks'][task]
    split = info['splits']['val']
    dataset, items = build('mmpretrain', dict(
        type='CustomDataset', data_root=osp.join(root, task),
        ann_file=split['ann_file'], data_prefix=split['data_prefix'],
        metainfo=dict(classes=tuple(info['classes'])),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')]))
    assert len(dataset) == split['images']
    assert dataset.metainfo['classes'] == tuple(info['classes'])
    with open(osp.join(root, task, split['ann_file'])) as f:
        labels = [int(line.split()[1]) for line in f]
    assert sorted(set(labels)) == list(range(len(info['classes'])))
    with open(osp.join(root, task, info['classes_file'])) as f:
        assert f.read().split() == info['classes']
    for i, item in enumerate(items):
        assert tuple(item['inputs'].shape) == (3, 32, 32)
        assert item['data_samples'].gt_label.tolist() == [labels[i]]
        name = info['classes'][labels[i]]
        assert f'/{name}/' in item['data_samples'].img_path


def test_voc_dataset(bench):
    root, desc = bench
    info = desc['tasks']['underwater_voc']
    split = info['splits']['trainval']
    dataset, items = build('mmdet', dict(
        type='VOCDataset', data_root=osp.join(root, 'underwater_voc'),
        ann_file=split['ann_file'],
        data_prefix=dict(sub_data_root=info['sub_data_root']),
        metainfo=dict(classes=tuple(info['classes'])), test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs')
        ]))
    assert len(dataset) == split['images'] == 15
    assert dataset.metainfo['dataset_type'] == 'VOC2007'
    assert dataset.metainfo['classes'] == ('fish', 'crab', 'shell',
                                           'jellyfish')
    total = difficult = 0
    for i in range(len(dataset)):
        instances = dataset.get_data_info(i)['instances']
        total += len(instances)
        difficult += sum(inst['ignore_flag'] for inst in instances)
    assert total == split['instances'] > 15
    assert difficult == split['difficult']
    for item in items:
        sample = item['data_samples']
        xml = ET.parse(osp.join(root, 'underwater_voc', 'VOC2007',
                                'Annotations', f'{sample.img_id}.xml'))
        objects = xml.findall('object')
        easy = [o for o in objects if o.find('difficult').text == '0']
        assert tuple(item['inputs'].shape) == (3, 96, 96)
        assert len(sample.gt_instances) == len(easy)
        assert len(sample.ignored_instances) == len(objects) - len(easy)
        names = sorted(o.find('name').text for o in easy)
        assert names == sorted(info['classes'][k]
                               for k in sample.gt_instances.labels.tolist())


def test_depth_files(bench):
    root, desc = bench
    info = desc['tasks']['town_depth']
    assert info['depth_unit'] == 'mm' and info['invalid_depth'] == 0
    h, w = info['image_size']
    for split in ('train', 'val'):
        entry = info['splits'][split]
        with open(osp.join(root, 'town_depth', entry['ann_file'])) as f:
            pairs = [line.split() for line in f]
        assert len(pairs) == entry['images']
        rgb_rel, depth_rel = pairs[0]
        rgb = cv2.imread(osp.join(root, 'town_depth', rgb_rel))
        depth = cv2.imread(osp.join(root, 'town_depth', depth_rel),
                           cv2.IMREAD_UNCHANGED)
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        assert depth.shape == (h, w) and depth.dtype == np.uint16
        valid = depth[depth > 0]
        assert valid.size > 0.5 * depth.size
        assert 1000 < valid.min() < valid.max() <= info['max_depth_mm']
        # the ground plane gets nearer towards the bottom of the image
        bottom = depth[-1][depth[-1] > 0].astype(float)
        assert bottom.mean() < valid.astype(float).mean()


# ------------------------------------------------------------ the cache
def test_ensure_reuses_complete_folder(bench):
    root, desc = bench
    before = {p: os.stat(osp.join(root, p)).st_mtime_ns
              for p in tree_digest(root)}
    assert ensure_benchmark(root, seed=0, scale='tiny') == root
    assert generate_benchmark(root, seed=0, scale='tiny') == desc
    after = {p: os.stat(osp.join(root, p)).st_mtime_ns
             for p in tree_digest(root)}
    assert after == before
    with pytest.raises(FileExistsError):
        generate_benchmark(root, seed=1, scale='tiny')


def test_ensure_regenerates_without_marker(bench, tmp_path):
    root, _ = bench
    copy = str(tmp_path / 'copy')
    shutil.copytree(root, copy)
    os.remove(osp.join(copy, MARKER))
    stale = osp.join(copy, 'street_det', 'images', 'train', '00000.png')
    with open(stale, 'wb') as f:
        f.write(b'half written')
    assert read_benchmark(copy) is None
    assert ensure_benchmark(copy, seed=0, scale='tiny') == copy
    assert tree_digest(copy) == tree_digest(root)
    assert not [n for n in os.listdir(tmp_path) if 'partial' in n]


def test_foreign_folder_is_never_deleted(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError):
        ensure_benchmark(str(root), seed=0, scale='tiny')
    assert (root / 'notes.txt').read_text() == 'keep me'


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.delenv('GPPF_DATA_ROOT', raising=False)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    assert default_root() == osp.join(repo, 'data', 'gppf_bench')
    assert default_root('tiny') == osp.join(repo, 'data', 'gppf_bench_tiny')
    monkeypatch.setenv('GPPF_DATA_ROOT', str(tmp_path / 'elsewhere'))
    assert default_root() == str(tmp_path / 'elsewhere')
    with pytest.raises(ValueError):
        generate_benchmark(str(tmp_path / 'x'), scale='huge')
