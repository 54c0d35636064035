# Copyright (c) gppf_mm contributors. All rights reserved.
"""DepthSplitDataset reads KITTI Eigen-split style lists (with and without
focal lengths, lines without ground truth skipped, bad lines named), and
KBCrop cuts KITTI's benchmark crop from the image and the depth map."""
import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadDepthAnnotation

from gppf_mm.datasets import DepthSplitDataset, KBCrop


def write_split(tmp_path, lines, size=(20, 30)):
    for sub in ('raw/a/image_02/data', 'gt/a/groundtruth'):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f'raw/a/image_02/data/{i}.png'),
                    np.full((*size, 3), i, np.uint8))
        cv2.imwrite(str(tmp_path / f'gt/a/groundtruth/{i}.png'),
                    np.full(size, 256 * (i + 1), np.uint16))
    (tmp_path / 'split.txt').write_text('\n'.join(lines) + '\n')


def dataset(tmp_path, **kwargs):
    return DepthSplitDataset(
        data_root=str(tmp_path), ann_file='split.txt',
        data_prefix=dict(img_path='raw', depth_map_path='gt'), pipeline=[
            LoadImageFromFile(),
            LoadDepthAnnotation(depth_rescale_factor=1 / 256)
        ], **kwargs)


def test_split_file_with_focal_and_missing_ground_truth(tmp_path):
    write_split(tmp_path, [
        'a/image_02/data/0.png a/groundtruth/0.png 721.5377',
        'a/image_02/data/1.png None 721.5377',
        'a/image_02/data/2.png a/groundtruth/2.png 707.0493',
    ])
    ds = dataset(tmp_path)
    assert len(ds) == 2
    assert [ds.get_data_info(i)['focal'] for i in range(2)] == [721.5377,
                                                                707.0493]
    sample = ds[1]
    assert sample['img'][0, 0, 0] == 2
    # 16-bit PNG / 256 -> metres
    assert np.all(sample['gt_depth_map'] == 3.0)


def test_split_file_without_focal_and_bad_lines(tmp_path):
    write_split(tmp_path, ['a/image_02/data/0.png a/groundtruth/0.png'])
    ds = dataset(tmp_path)
    assert ds.get_data_info(0)['focal'] is None
    write_split(tmp_path, ['a/image_02/data/0.png'])
    with pytest.raises(ValueError, match=r'split.txt, line 1: expected'):
        dataset(tmp_path)
    write_split(tmp_path, ['a/image_02/data/0.png a/groundtruth/0.png f'])
    with pytest.raises(ValueError, match='focal length'):
        dataset(tmp_path)


def test_kb_crop_takes_the_bottom_centre():
    img = np.arange(10 * 12).reshape(10, 12, 1).repeat(3, 2)
    depth = np.arange(10 * 12, dtype=np.float32).reshape(10, 12)
    out = KBCrop(height=4, width=6)(dict(
        img=img, gt_depth_map=depth, seg_fields=['gt_depth_map']))
    # rows 6 .. 9, columns 3 .. 8
    assert out['img'].shape == (4, 6, 3) and out['img_shape'] == (4, 6)
    assert np.array_equal(out['gt_depth_map'], depth[6:10, 3:9])
    assert np.array_equal(out['img'][..., 0], img[6:10, 3:9, 0])
    with pytest.raises(ValueError, match='smaller than the crop'):
        KBCrop()(dict(img=img, seg_fields=[]))
