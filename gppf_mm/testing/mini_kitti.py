# Copyright (c) gppf_mm contributors. All rights reserved.
"""A few frames in the on-disk layout of KITTI depth as the monocular depth
literature uses it (the Eigen split): raw frames, projected-LiDAR ground
truth and split files, so that the real configs run on them unchanged.

Layout (``root``)::

    raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png
    gt/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/
        0000000000.png                       uint16, metres * 256, 0 = none
    eigen_train_files_with_gt.txt            IMAGE DEPTH FOCAL per line
    eigen_test_files_with_gt.txt             (one test line has DEPTH None)

Frames are 375 x 1242 (KITTI's raw size), rendered by the benchmark's depth
scene; the ground truth keeps only about 5 % of the pixels, in the rows a
LiDAR covers, as KITTI's projected scans do.
"""
import os.path as osp
from typing import Dict

import numpy as np

from gppf_mm.datasets.generation.depth import depth_scene
from gppf_mm.datasets.generation.formats import imwrite, write_lines

DATE = '2011_09_26'
FOCAL = 721.5377  # KITTI's focal length of these drives, in pixels
SIZE = (375, 1242)


def write_mini_kitti(root: str, train: int = 4, test: int = 2,
                     seed: int = 0) -> Dict[str, str]:
    """Write the frames and split files; return the split files' paths."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    files = {}
    for split, n in (('train', train), ('test', test)):
        drive = f'{DATE}_drive_{1 if split == "train" else 2:04d}_sync'
        lines = []
        for i in range(n):
            img, depth_mm = depth_scene(rng, h, w)
            name = f'{i:010d}.png'
            image = f'{DATE}/{drive}/image_02/data/{name}'
            gt = f'{drive}/proj_depth/groundtruth/image_02/{name}'
            imwrite(osp.join(root, 'raw', image), img)
            keep = rng.random((h, w)) < 0.05
            keep[:int(0.3 * h)] = False  # above the LiDAR's field of view
            depth = np.where(keep, depth_mm.astype(np.float64) / 1000, 0)
            imwrite(osp.join(root, 'gt', gt),
                    np.round(depth * 256).astype(np.uint16))
            lines.append(f'{image} {gt} {FOCAL}')
        if split == 'test':  # a frame without projected ground truth
            lines.append(f'{DATE}/{drive}/image_02/data/{n:010d}.png None '
                         f'{FOCAL}')
        files[split] = osp.join(root, f'eigen_{split}_files_with_gt.txt')
        write_lines(files[split], lines)
    return files
