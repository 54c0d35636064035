# Copyright (c) gppf_mm contributors. All rights reserved.
"""A corrupt image or a malformed annotation in one task's data: an error
naming the task, the dataset and the file, or, with ``skip_bad_samples``,
the sample replaced and counted (real mmdet / mmseg datasets on the tiny
generated benchmark)."""
import os.path as osp
import shutil

import pytest

from gppf_mm.datasets import TaskDataError, TaskDataset
from gppf_mm.datasets.generation import generate_benchmark
from gppf_mm.utils import register_all_modules


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    register_all_modules(init_default_scope=False)
    root = str(tmp_path_factory.mktemp('bench') / 'gppf_bench_tiny')
    generate_benchmark(root, seed=0, scale='tiny')
    return root


def coco(root, pipeline):
    return dict(
        type='CocoDataset', _scope_='mmdet',
        data_root=osp.join(root, 'street_det') + '/',
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(classes=('car', 'person', 'sign')),
        filter_cfg=dict(filter_empty_gt=False), pipeline=pipeline)


def seg(root):
    return dict(
        type='BaseSegDataset', _scope_='mmseg',
        data_root=osp.join(root, 'indoor_seg') + '/',
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        img_suffix='.png', seg_map_suffix='.png',
        metainfo=dict(classes=('wall', 'floor', 'table', 'lamp', 'rug')),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')])


def corrupt(path):
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n truncated')


def test_corrupt_image_names_task_dataset_and_file(bench, tmp_path):
    root = str(tmp_path / 'bench')
    shutil.copytree(bench, root)
    ds = TaskDataset(coco(root, [dict(type='LoadImageFromFile')]),
                     'street_det')
    path = ds.get_data_info(1)['img_path']
    corrupt(path)
    ds[0]
    with pytest.raises(TaskDataError) as info:
        ds[1]
    message = str(info.value)
    assert message.startswith("task 'street_det', dataset CocoDataset: "
                              f'sample 1 (img_path={path}) could not be '
                              'loaded')
    assert 'skip_bad_samples' in message

    skipping = TaskDataset(coco(root, [dict(type='LoadImageFromFile')]),
                           'street_det', skip_bad_samples=2)
    got = skipping[1]  # replaced by sample 2
    assert got['img_path'] == skipping.get_data_info(2)['img_path']
    assert skipping.skipped == 1
    assert len(skipping) == len(ds) and skipping.metainfo['classes'] == (
        'car', 'person', 'sign')


def test_malformed_annotation_names_the_file(bench, tmp_path):
    root = str(tmp_path / 'bench')
    shutil.copytree(bench, root)
    ds = TaskDataset(seg(root), 'indoor_seg')
    ann = ds.get_data_info(0)['seg_map_path']
    corrupt(ann)
    with pytest.raises(TaskDataError, match=(
            r"^task 'indoor_seg', dataset BaseSegDataset: sample 0 "
            r'\(img_path=.*, seg_map_path=' + ann + r'\) could not be '
            r'loaded')):
        ds[0]
    # every bad sample beyond the allowance raises
    limited = TaskDataset(seg(root), 'indoor_seg', skip_bad_samples=1)
    corrupt(limited.get_data_info(1)['seg_map_path'])
    with pytest.raises(TaskDataError, match='sample 1'):
        limited[0]  # 0 is skipped (1 allowed), 1 is bad too
    assert limited.skipped == 1
