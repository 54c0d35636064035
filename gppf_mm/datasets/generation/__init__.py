# Copyright (c) gppf_mm contributors. All rights reserved.
"""A small generated multi-task, multi-domain benchmark in the formats of
MMDet (COCO, VOC), MMSeg and MMPretrain, plus a dense depth set."""
from .benchmark import (
                        GENERATOR_VERSION,
                        MARKER,
                        SCALES,
                        TASKS,
                        default_root,
                        ensure_benchmark,
                        generate_benchmark,
                        read_benchmark,
                        split_counts,
)
from .formats import mask_to_polygons

__all__ = [
    'generate_benchmark', 'ensure_benchmark', 'default_root',
    'read_benchmark', 'split_counts', 'mask_to_polygons', 'TASKS', 'SCALES',
    'MARKER', 'GENERATOR_VERSION'
]
