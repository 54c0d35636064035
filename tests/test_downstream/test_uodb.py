# Copyright (c) gppf_mm contributors. All rights reserved.
"""UODBDataset reads VOC-layout trees with .jpg or .png images, and the two
AP50 modes the downstream detection configs offer (the paper's VOC 2012
area AP, UODB's VOC 2007 11-point AP) equal hand computations."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.evaluation import VOCMetric
from mmengine.structures import InstanceData

from gppf_mm.datasets import UODBDataset

CLASSES = ('fish', 'crab')


def write_voc(root, suffix, boxes):
    """A two-image VOC tree; ``boxes[i]`` are (name, x1, y1, x2, y2) in
    VOC's 1-based pixel indices."""
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        (root / 'VOC2007' / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i, objects in enumerate(boxes):
        img_id = f'{i:06d}'
        ids.append(img_id)
        cv2.imwrite(str(root / 'VOC2007' / 'JPEGImages' /
                        (img_id + suffix)), np.zeros((40, 50, 3), np.uint8))
        xml = ''.join(
            f'<object><name>{n}</name><difficult>0</difficult><bndbox>'
            f'<xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>'
            f'<ymax>{d}</ymax></bndbox></object>' for n, a, b, c, d in objects)
        (root / 'VOC2007' / 'Annotations' / f'{img_id}.xml').write_text(
            f'<annotation><size><width>50</width><height>40</height>'
            f'<depth>3</depth></size>{xml}</annotation>')
    (root / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt').write_text(
        '\n'.join(ids) + '\n')


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])
def test_uodb_dataset_reads_voc_trees_with_either_image_suffix(
        tmp_path, suffix):
    write_voc(tmp_path, suffix, [[('fish', 1, 2, 11, 22)],
                                 [('crab', 5, 5, 25, 15),
                                  ('fish', 30, 10, 40, 30)]])
    ds = UODBDataset(
        img_suffix=suffix, data_root=str(tmp_path),
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=CLASSES), test_mode=True, pipeline=[])
    assert len(ds) == 2
    info = ds.get_data_info(1)
    assert info['img_path'].endswith('000001' + suffix)
    assert osp.isfile(info['img_path'])
    # VOC's 1-based indices become 0-based: minus one on every coordinate,
    # as VOCDataset reads them
    assert [i['bbox'] for i in info['instances']] == [[4, 4, 24, 14],
                                                      [29, 9, 39, 29]]
    assert [i['bbox_label'] for i in info['instances']] == [1, 0]
    # no 'VOC2007' dataset type from the folder name: VOCMetric then names
    # the dataset's classes and uses the configured eval_mode
    assert ds.metainfo.get('dataset_type') is None
    with pytest.raises(ValueError, match='img_suffix'):
        UODBDataset(img_suffix='png', data_root=str(tmp_path),
                    ann_file='VOC2007/ImageSets/Main/test.txt',
                    metainfo=dict(classes=CLASSES), pipeline=[])


def sample(gt, pred, scores):
    gt_instances = InstanceData(
        bboxes=torch.tensor(gt, dtype=torch.float32),
        labels=torch.zeros(len(gt), dtype=torch.long))
    ignored = InstanceData(bboxes=torch.zeros(0, 4),
                           labels=torch.zeros(0, dtype=torch.long))
    pred_instances = InstanceData(
        bboxes=torch.tensor(pred, dtype=torch.float32),
        scores=torch.tensor(scores),
        labels=torch.zeros(len(pred), dtype=torch.long))
    return dict(gt_instances=gt_instances, ignored_instances=ignored,
                pred_instances=pred_instances)


@pytest.mark.parametrize('mode,expected', [
    # precision / recall after each detection (by score): 1/0.5, 0.5/0.5,
    # 2/3 / 1. Area (VOC 2012): the precision envelope is 1 up to recall
    # 0.5 and 2/3 after: 0.5 * 1 + 0.5 * 2/3.
    ('area', 0.5 * 1 + 0.5 * 2 / 3),
    # 11 points (VOC 2007): recall 0, 0.1 .. 0.5 -> 1; 0.6 .. 1.0 -> 2/3
    ('11points', (6 * 1 + 5 * 2 / 3) / 11),
])
def test_ap50_modes_equal_hand_computation(mode, expected):
    metric = VOCMetric(iou_thrs=[0.5], eval_mode=mode)
    metric.dataset_meta = dict(classes=('fish', ))
    gt = [[10, 10, 30, 30], [50, 50, 70, 80]]
    # a hit (score 0.9), a miss (0.8, no overlap), the second hit (0.7)
    pred = [[11, 10, 30, 31], [100, 100, 120, 120], [50, 52, 70, 80]]
    metric.process({}, [sample(gt, pred, [0.9, 0.8, 0.7])])
    result = metric.evaluate(1)
    assert result['pascal_voc/mAP'] == pytest.approx(expected, abs=1e-6)
