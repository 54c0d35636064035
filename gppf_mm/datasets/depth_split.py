# Copyright (c) gppf_mm contributors. All rights reserved.
"""Monocular depth datasets listed by a split file (the KITTI Eigen split's
``image depth focal`` lines) and KITTI's benchmark crop."""
import os.path as osp
from typing import List, Optional

from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.fileio import list_from_file
from mmengine.logging import print_log
from mmseg.registry import DATASETS, TRANSFORMS


@DATASETS.register_module()
class DepthSplitDataset(BaseDataset):
    """Images and depth maps listed in a split file, one sample per line:
    ``IMAGE DEPTH [FOCAL]`` (the KITTI Eigen split files of the depth
    literature, e.g. ``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/
    0000000069.png 2011_09_26_drive_0002_sync/proj_depth/groundtruth/
    image_02/0000000069.png 721.5377``).

    ``IMAGE`` is relative to ``data_prefix['img_path']`` and ``DEPTH`` to
    ``data_prefix['depth_map_path']`` (both under ``data_root``). Lines whose
    depth is ``None`` (KITTI frames without projected ground truth) are
    skipped, and the count logged. Each sample holds ``img_path``,
    ``depth_map_path`` and ``focal`` (None when the line has none); MMSeg's
    ``LoadDepthAnnotation`` reads the map (``depth_rescale_factor=1/256``
    for KITTI's 16-bit PNGs).

    Args:
        ann_file (str): the split file.
        **kwargs: ``BaseDataset``'s arguments.
    """

    def __init__(self,
                 ann_file: str,
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        data_prefix = {'img_path': '', 'depth_map_path': '',
                       **(data_prefix or {})}
        super().__init__(ann_file=ann_file, data_prefix=data_prefix,
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix['img_path']
        depth_dir = self.data_prefix['depth_map_path']
        data_list, skipped = [], 0
        for number, line in enumerate(list_from_file(self.ann_file), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (2, 3):
                raise ValueError(
                    f'{self.ann_file}, line {number}: expected "IMAGE DEPTH '
                    f'[FOCAL]", got {line!r}')
            if fields[1] == 'None':
                skipped += 1
                continue
            try:
                focal = float(fields[2]) if len(fields) == 3 else None
            except ValueError:
                raise ValueError(f'{self.ann_file}, line {number}: the focal '
                                 f'length {fields[2]!r} is not a number'
                                 ) from None
            data_list.append(dict(
                img_path=osp.join(img_dir, fields[0]),
                depth_map_path=osp.join(depth_dir, fields[1]),
                focal=focal, seg_fields=[]))
        if skipped:
            print_log(f'{self.ann_file}: {skipped} line(s) without ground '
                      'truth depth skipped', logger='current')
        return data_list


@TRANSFORMS.register_module()
class KBCrop(BaseTransform):
    """KITTI's benchmark crop: the bottom ``height`` rows and the centred
    ``width`` columns of the image and of every map in ``seg_fields``
    (352 x 1216 for KITTI raw frames, as in the depth literature).

    Required keys: ``img``, ``seg_fields``. Modified: ``img``, the maps,
    ``img_shape``.
    """

    def __init__(self, height: int = 352, width: int = 1216) -> None:
        self.height = height
        self.width = width

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        if h < self.height or w < self.width:
            raise ValueError(
                f'KBCrop: {results.get("img_path")} is {h} x {w}, smaller '
                f'than the crop {self.height} x {self.width}')
        top, left = h - self.height, (w - self.width) // 2
        box = (slice(top, top + self.height), slice(left, left + self.width))
        results['img'] = results['img'][box]
        for key in results.get('seg_fields', []):
            results[key] = results[key][box]
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(height={self.height}, '
                f'width={self.width})')
