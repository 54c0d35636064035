# Copyright (c) gppf_mm contributors. All rights reserved.
from .cross_task_bn import (
    CrossTaskBatchNorm2d,
    convert_cross_task_bn,
    select_task_statistics,
)
from .local_bn import TaskLocalBatchNorm, convert_head_sync_bn

__all__ = [
    'CrossTaskBatchNorm2d', 'convert_cross_task_bn', 'select_task_statistics',
    'TaskLocalBatchNorm', 'convert_head_sync_bn'
]
