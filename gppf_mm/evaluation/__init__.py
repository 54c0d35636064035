# Copyright (c) gppf_mm contributors. All rights reserved.
from .kitti_depth_metric import KITTIDepthMetric

__all__ = ['KITTIDepthMetric']
