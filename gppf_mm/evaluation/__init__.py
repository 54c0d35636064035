# Copyright (c) gppf_mm contributors. All rights reserved.
from gppf_mm.utils.compat import patch_lvis_numpy

from .kitti_depth_metric import KITTIDepthMetric

# MMDet's LVISMetric through lvis 0.5.3 under NumPy >= 1.24
patch_lvis_numpy()

__all__ = ['KITTIDepthMetric']
